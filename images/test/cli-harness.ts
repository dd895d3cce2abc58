/**
 * A `ringleader` with only the image and selftest commands, wired like cli/main.ts, so the tests
 * run these commands as a user would (a child process, exit codes, stderr) on their own.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { imageCommand } from "../../agent/src/cli/commands/image.js";
import { selftestCommand } from "../../agent/src/cli/commands/selftest.js";
import { runWithErrorBoundary } from "../../agent/src/cli/errors.js";
import { failToBoundary } from "../../agent/src/cli/options.js";

await runWithErrorBoundary(async () => {
  await yargs(hideBin(process.argv))
    .scriptName("ringleader")
    .option("verbose", { type: "boolean", default: false })
    .option("json", { type: "boolean", default: false })
    .demandCommand(1)
    .strict()
    .fail(failToBoundary)
    .command(imageCommand)
    .command(selftestCommand)
    .parseAsync();
});
