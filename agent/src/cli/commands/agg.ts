/**
 * `ringleader agg <fn> --prefix P [--from K] [--to K]`: count, sum, min, max or avg over the
 * numeric values under a prefix, computed by each partition and combined by the entry node.
 */
import type { Argv, CommandModule } from "yargs";
import { withClientOptions, withConsistencyOption, type ClientArgs, type GlobalArgs } from "../options.js";
import { writeJson, writeLine } from "../output.js";
import { adminRequest } from "./admin-request.js";

interface AggArgs extends GlobalArgs, ClientArgs {
  fn: string;
  prefix: string;
  from?: string;
  to?: string;
  consistency: string;
}

export const aggCommand: CommandModule<object, AggArgs> = {
  command: "agg <fn>",
  describe: "Aggregate numeric values under a prefix: count, sum, min, max, avg",
  builder: (y: Argv<object>): Argv<AggArgs> =>
    withConsistencyOption(withClientOptions(y))
      .positional("fn", {
        type: "string",
        choices: ["count", "sum", "min", "max", "avg"],
        demandOption: true,
      })
      .option("prefix", { type: "string", default: "", describe: "Only keys starting with this" })
      .option("from", { type: "string", describe: "Only keys >= this" })
      .option("to", { type: "string", describe: "Only keys < this" })
      .example("$0 agg avg --prefix 'sensors/{kitchen}/temp/'", "Average kitchen temperature")
      .example(
        "$0 agg max --prefix 'sensors/{kitchen}/temp/' --from 'sensors/{kitchen}/temp/2026-11-26'",
        "Today's maximum",
      ) as Argv<AggArgs>,
  handler: async (args) => {
    const q = new URLSearchParams({ fn: args.fn, prefix: args.prefix, consistency: args.consistency });
    if (args.from) q.set("from", args.from);
    if (args.to) q.set("to", args.to);
    const r = await adminRequest<{
      value: number | null;
      count: number;
      skipped: number;
      partitions: number;
    }>(args, "GET", `/v1/aggregate?${q}`);
    if (args.json) return writeJson(r);
    return writeLine(
      `${args.fn} = ${r.value === null ? "(no values)" : r.value} over ${r.count} values` +
        (r.skipped ? ` (${r.skipped} non-numeric skipped)` : "") +
        ` from ${r.partitions} partition(s)`,
    );
  },
};
