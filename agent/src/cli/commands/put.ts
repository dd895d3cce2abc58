/**
 * `ringleader put <key> [value]`: writes one value. The value is the argument, stdin with `-`, or
 * a file with `--file`; `--cas V` makes the write conditional.
 */
import type { Argv, CommandModule } from "yargs";
import {
  clientFromArgs,
  readValueInput,
  withClientErrors,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface PutArgs extends GlobalArgs, ClientArgs {
  key: string;
  value?: string;
  file?: string;
  cas?: string;
}

export const putCommand: CommandModule<object, PutArgs> = {
  command: "put <key> [value]",
  describe: "Write a value under a key",
  builder: (y: Argv<object>): Argv<PutArgs> =>
    withClientOptions(y)
      .positional("key", { type: "string", demandOption: true, describe: "The key; may contain /" })
      .positional("value", { type: "string", describe: "The value as text; - reads it from stdin" })
      .option("file", { type: "string", describe: "Read the value from this file" })
      .option("cas", {
        type: "string",
        describe: "Write only if the key is at this version (0: only if absent)",
      })
      .example("$0 put sensors/kitchen/temp 21.5", "Write a text value")
      .example("$0 put backup/config --file ./config.yaml", "Write a file's contents")
      .example("cat photo.jpg | $0 put photos/cat -", "Write stdin")
      .example("$0 put lock/leader me --cas 0", "Write only if the key is absent"),
  handler: async (args) => {
    const client = clientFromArgs(args);
    const value = await readValueInput(args.value, args.file);
    const { version } = await withClientErrors(() =>
      client.put(args.key, value, args.cas === undefined ? {} : { cas: args.cas }),
    );
    if (args.json) await writeJson({ key: args.key, version });
    else await writeLine(`OK version ${version}`);
  },
};
