/**
 * `ringleader scan`: lists keys in order, one page (`--limit`) or, with `--all`, every page by
 * following the cursors. People get a table with value previews; `--json` gets
 * `{"items":[{"key","value" (base64),"version"}],"next"}`, streamed item by item with `--all` so
 * a large scan never sits whole in memory.
 */
import type { Argv, CommandModule } from "yargs";
import type { KvItem } from "../../api/service.js";
import { BadResponseError } from "../../client/errors.js";
import { UsageError } from "../errors.js";
import {
  asConsistency,
  clientFromArgs,
  withClientErrors,
  withClientOptions,
  withConsistencyOption,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { formatTable, preview, toBase64, write, writeJson, writeLine } from "../output.js";

interface ScanArgs extends GlobalArgs, ClientArgs {
  prefix: string;
  limit: number;
  after?: string;
  all: boolean;
  consistency: string;
}

/** The server's largest page. */
const MAX_PAGE = 1000;

function jsonItem(item: KvItem): { key: string; value: string; version: string } {
  return { key: item.key, value: toBase64(item.value), version: item.version };
}

function tableRows(items: readonly KvItem[]): string[][] {
  return items.map((item) => [item.key, item.version, preview(item.value)]);
}

export const scanCommand: CommandModule<object, ScanArgs> = {
  command: "scan",
  aliases: ["ls"],
  describe: "List keys in order, optionally under a prefix",
  builder: (y: Argv<object>): Argv<ScanArgs> =>
    withConsistencyOption(withClientOptions(y))
      .option("prefix", { type: "string", default: "", describe: "Only keys starting with this" })
      .option("limit", { type: "number", default: 100, describe: `Keys per page (1-${MAX_PAGE})` })
      .option("after", {
        type: "string",
        describe: "Start after this cursor (the `next` of an earlier page)",
      })
      .option("all", { type: "boolean", default: false, describe: "Follow the cursors to the end" })
      .example("$0 scan --prefix sensors/", "The first 100 keys under sensors/")
      .example("$0 scan --prefix sensors/ --all --json", "Every key under sensors/, for a script"),
  handler: async (args) => {
    if (!Number.isInteger(args.limit) || args.limit < 1 || args.limit > MAX_PAGE) {
      throw new UsageError(`--limit must be an integer from 1 to ${MAX_PAGE}`);
    }
    const client = clientFromArgs(args);
    const base = { prefix: args.prefix, limit: args.limit, consistency: asConsistency(args.consistency) };
    if (!args.all) {
      const page = await withClientErrors(() =>
        client.scan({ ...base, ...(args.after ? { after: args.after } : {}) }),
      );
      if (args.json) {
        await writeJson({ items: page.items.map(jsonItem), next: page.next });
        return;
      }
      await printPage(page.items, true);
      if (page.next !== null) {
        process.stderr.write(
          `(more keys: --after ${JSON.stringify(page.next)} for the next page, or --all)\n`,
        );
      }
      return;
    }
    await withClientErrors(async () => {
      let after = args.after;
      let count = 0;
      if (args.json) await write('{"items":[');
      for (;;) {
        const page = await client.scan({ ...base, ...(after ? { after } : {}) });
        if (args.json) {
          const items = page.items.map(
            (item, i) => `${count + i === 0 ? "" : ","}${JSON.stringify(jsonItem(item))}`,
          );
          await write(items.join(""));
        } else if (page.items.length > 0 || count === 0) {
          await printPage(page.items, count === 0);
        }
        count += page.items.length;
        if (page.next === null) break;
        if (page.next === after) throw new BadResponseError("scan: the cursor did not advance");
        after = page.next;
      }
      if (args.json) await write('],"next":null}\n');
    });
  },
};

/** Prints items as table rows; the header only before the first. Column widths are per page. */
async function printPage(items: readonly KvItem[], withHeader: boolean): Promise<void> {
  if (items.length === 0) {
    if (withHeader) await writeLine("(no keys)");
    return;
  }
  const table = formatTable(["KEY", "VERSION", "VALUE"], tableRows(items));
  await writeLine(withHeader ? table : table.split("\n").slice(1).join("\n"));
}
