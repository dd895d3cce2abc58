/**
 * `ringleader cas <key> <expected-version> <value>`: writes only if the key is at the expected
 * version; `0` means "only if absent". A mismatch exits with status 1 and changes nothing.
 */
import type { Argv, CommandModule } from "yargs";
import { UsageError } from "../errors.js";
import {
  clientFromArgs,
  readValueInput,
  withClientErrors,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface CasArgs extends GlobalArgs, ClientArgs {
  key: string;
  "expected-version": string;
  value?: string;
  file?: string;
}

export const casCommand: CommandModule<object, CasArgs> = {
  command: "cas <key> <expected-version> [value]",
  describe: "Write a value only if the key is at the expected version (compare-and-set)",
  builder: (y: Argv<object>): Argv<CasArgs> =>
    withClientOptions(y)
      .positional("key", { type: "string", demandOption: true, describe: "The key" })
      .positional("expected-version", {
        type: "string",
        demandOption: true,
        describe: "The version the key must be at; 0 means it must be absent",
      })
      .positional("value", { type: "string", describe: "The new value as text; - reads it from stdin" })
      .option("file", { type: "string", describe: "Read the new value from this file" })
      .example("$0 cas lock/leader 0 node-a", "Take a lock only if nobody holds it")
      .example("$0 cas config/mode 17 maintenance", "Change a value only if it is still at version 17"),
  handler: async (args) => {
    const expected = args["expected-version"];
    if (!/^[0-9]+$/.test(expected))
      throw new UsageError(`expected version must be digits (0: absent), got "${expected}"`);
    const client = clientFromArgs(args);
    const value = await readValueInput(args.value, args.file);
    const { version } = await withClientErrors(() => client.cas(args.key, expected, value));
    if (args.json) await writeJson({ key: args.key, version });
    else await writeLine(`OK version ${version}`);
  },
};
