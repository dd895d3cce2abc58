/**
 * `ringleader get <key>`: prints one value. Text values print as text with a newline; `--raw`
 * writes the exact bytes (for binary values and pipes); `--json` prints key, version and the value
 * in base64. A missing key exits with status 1.
 */
import type { Argv, CommandModule } from "yargs";
import { CheckFailedError } from "../errors.js";
import { STRATEGIES, isStrategy } from "../../balance/index.js";
import {
  asConsistency,
  clientFromArgs,
  withClientErrors,
  withClientOptions,
  withConsistencyOption,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { asPrintableText, toBase64, write, writeJson, writeLine } from "../output.js";

interface GetArgs extends GlobalArgs, ClientArgs {
  key: string;
  consistency: string;
  raw: boolean;
  "replica-strategy"?: string;
}

export const getCommand: CommandModule<object, GetArgs> = {
  command: "get <key>",
  describe: "Read the value of a key",
  builder: (y: Argv<object>): Argv<GetArgs> =>
    withConsistencyOption(withClientOptions(y))
      .positional("key", { type: "string", demandOption: true, describe: "The key" })
      .option("replica-strategy", {
        type: "string",
        choices: STRATEGIES,
        describe:
          "For --consistency eventual: how the agent picks the replica that answers (default: the agent's own --strategy)",
      })
      .option("raw", {
        type: "boolean",
        default: false,
        describe: "Write the value's bytes exactly, no newline",
      })
      .example("$0 get sensors/kitchen/temp", "Print a value")
      .example("$0 get sensors/kitchen/temp --consistency eventual", "Read from any replica (maybe stale)")
      .example(
        "$0 get sensors/kitchen/temp --consistency eventual --replica-strategy ip-hash",
        "Always read from the same replica, the one this machine's address hashes to",
      )
      .example("$0 get photos/cat --raw > cat.jpg", "Save a binary value")
      .example("$0 get lock/leader --json | jq -r .version", "The version, for a later cas"),
  handler: async (args) => {
    const client = clientFromArgs(args);
    const consistency = asConsistency(args.consistency);
    const replica = args["replica-strategy"];
    // yargs has checked it against the choices.
    const strategy = replica !== undefined && isStrategy(replica) ? replica : undefined;
    const found = await withClientErrors(() =>
      client.get(args.key, { consistency, ...(strategy ? { strategy } : {}) }),
    );
    if (found === null) {
      if (args.json) {
        await writeJson({ key: args.key, found: false });
        process.exitCode = 1;
        return;
      }
      throw new CheckFailedError(`key ${JSON.stringify(args.key)} not found`);
    }
    if (args.json) {
      await writeJson({ key: args.key, found: true, version: found.version, value: toBase64(found.value) });
    } else if (args.raw) {
      await write(found.value);
    } else {
      const text = asPrintableText(found.value);
      if (text === null) {
        throw new CheckFailedError(
          `the value of ${JSON.stringify(args.key)} is ${found.value.byteLength} bytes of binary; use --raw or --json`,
        );
      }
      await writeLine(text);
    }
  },
};
