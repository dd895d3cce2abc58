/**
 * `ringleader del <key>`: deletes one key. Deleting an absent key is not an error (the answer
 * says it was absent); `--cas V` deletes only if the key is at that version.
 */
import type { Argv, CommandModule } from "yargs";
import {
  clientFromArgs,
  withClientErrors,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface DelArgs extends GlobalArgs, ClientArgs {
  key: string;
  cas?: string;
}

export const delCommand: CommandModule<object, DelArgs> = {
  command: "del <key>",
  aliases: ["delete", "rm"],
  describe: "Delete a key",
  builder: (y: Argv<object>): Argv<DelArgs> =>
    withClientOptions(y)
      .positional("key", { type: "string", demandOption: true, describe: "The key" })
      .option("cas", { type: "string", describe: "Delete only if the key is at this version" })
      .example("$0 del sensors/kitchen/temp", "Delete a key")
      .example("$0 del lock/leader --cas 42", "Delete only if nobody changed it since version 42"),
  handler: async (args) => {
    const client = clientFromArgs(args);
    const result = await withClientErrors(() =>
      client.del(args.key, args.cas === undefined ? {} : { cas: args.cas }),
    );
    if (args.json) await writeJson({ key: args.key, ...result });
    else
      await writeLine(result.deleted ? `deleted (version ${result.version})` : "not found (nothing deleted)");
  },
};
