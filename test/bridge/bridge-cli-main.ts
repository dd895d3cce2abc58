/**
 * Runs `ringleader bridge` on its own, exactly as the CLI would, for the CLI test: the command is
 * registered in the CLI's command list separately, and this keeps the test independent of that.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { bridgeCommand } from "../../agent/src/cli/commands/bridge.js";
import { runWithErrorBoundary } from "../../agent/src/cli/errors.js";
import { failToBoundary } from "../../agent/src/cli/options.js";

await runWithErrorBoundary(async () => {
  await yargs(hideBin(process.argv))
    .scriptName("ringleader")
    .option("verbose", { type: "boolean", default: false })
    .option("json", { type: "boolean", default: false })
    .command(bridgeCommand)
    .demandCommand(1)
    .strict()
    .fail(failToBoundary)
    .parseAsync();
});
