#!/usr/bin/env node
/**
 * The `ringleader` command. This file only lists the commands; each lives in `commands/`.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { loadCommands } from "./commands/index.js";
import { runWithErrorBoundary } from "./errors.js";
import { failToBoundary } from "./options.js";

await runWithErrorBoundary(async () => {
  let cli = yargs(hideBin(process.argv))
    .scriptName("ringleader")
    .usage("$0 <command> [options]\n\nA cluster agent for Raspberry Pi home labs.")
    .option("verbose", { type: "boolean", default: false, describe: "Print stack traces on errors" })
    .option("json", { type: "boolean", default: false, describe: "Machine-readable output" })
    .demandCommand(1, "Name a command; `ringleader --help` lists them.")
    .recommendCommands()
    .strict()
    .fail(failToBoundary)
    .help()
    .alias("h", "help")
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100));
  for (const command of await loadCommands(hideBin(process.argv))) cli = cli.command(command);
  await cli.parseAsync();
});
