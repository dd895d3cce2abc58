/**
 * `ringleader sim`: runs the deterministic simulator over a range of seeds.
 *
 * Standard output depends only on the arguments, so `--seed S` replays a run and prints the same
 * thing every time; timings and progress go to standard error. The last line of standard output
 * is `SIM: <seeds> seeds, <violations> violations`, where <violations> counts the seeds that had
 * at least one violation (a broken run usually trips several checkers in a cascade; the number of
 * failing seeds is the figure that means something). The exit status is 1 when it is not zero.
 */
import type { Argv, CommandModule } from "yargs";
import {
  BUG_NAMES,
  DEFAULT_LIVENESS_TICKS,
  DEFAULT_TICKS,
  MAX_TICKS,
  runSimulation,
  type BugName,
  type SimResult,
} from "../../sim/index.js";
import { CheckFailedError, UsageError } from "../errors.js";
import {
  DEFAULT_MULTI_LIVENESS_TICKS,
  DEFAULT_MULTI_TICKS,
  checkMultiArgs,
  runMultiSeeds,
} from "./sim-multi.js";

interface SimArgs {
  seeds?: number;
  seed?: number;
  nodes?: number;
  bug?: string;
  ticks?: number;
  "liveness-ticks"?: number;
  rules: boolean;
  membership: boolean;
  multi: boolean;
  partitions?: number;
  "propose-timeout": boolean;
  trace: boolean;
  "trace-messages"?: string;
  /** The root's `--json` option. */
  json?: boolean;
}

const DEFAULT_SEEDS = 100;
const MAX_SEEDS = 1_000_000;
/** Violations printed per failing seed; the rest are counted. */
const SHOWN_VIOLATIONS = 5;
const PROGRESS_EVERY_SEEDS = 100;

export const simCommand: CommandModule<object, SimArgs> = {
  command: "sim",
  describe: "Run the deterministic cluster simulator over many seeds",
  builder: (y: Argv<object>): Argv<SimArgs> =>
    y
      .option("seeds", {
        type: "number",
        describe: `How many seeds to run (default ${DEFAULT_SEEDS}, or 1 with --seed)`,
      })
      .option("seed", { type: "number", describe: "First seed; alone, replays exactly that one run" })
      .option("nodes", {
        type: "number",
        describe:
          "Cluster size, 3 or 5 (default: odd seeds 3, even seeds 5); with --multi, founding boards 3-5",
      })
      .option("multi", {
        type: "boolean",
        default: false,
        describe:
          "Multi-Raft: a meta group and 4-8 partitions on 3-6 boards, the real controller moving replicas as boards join and drain",
      })
      .option("partitions", {
        type: "number",
        describe: "With --multi: partitions (1-16; default drawn by the seed); implies --multi",
      })
      .option("propose-timeout", {
        type: "boolean",
        default: true,
        describe:
          "With --multi: the controller abandons undecided meta writes (--no-propose-timeout shows the hang it fixes)",
      })
      .option("bug", {
        type: "string",
        describe: `Switch on a deliberate core defect: ${BUG_NAMES.join(", ")}`,
      })
      .option("ticks", {
        type: "number",
        describe: `Ticks of the safety phase (faults on; default ${DEFAULT_TICKS}, ${DEFAULT_MULTI_TICKS} with --multi)`,
      })
      .option("liveness-ticks", {
        type: "number",
        describe: `Bound on the liveness phase (faults off; default ${DEFAULT_LIVENESS_TICKS}, ${DEFAULT_MULTI_LIVENESS_TICKS} with --multi)`,
      })
      .option("rules", {
        type: "boolean",
        default: true,
        describe: "Rule checks (--no-rules: end-to-end only)",
      })
      .option("membership", { type: "boolean", default: true, describe: "Membership changes during the run" })
      .option("trace", {
        type: "boolean",
        default: false,
        describe: "Print the events of a single seed's run",
      })
      .option("trace-messages", {
        type: "string",
        choices: ["votes", "all"],
        describe: "With --trace, also print delivered messages",
      })
      .example("$0 sim --seeds 500", "seeds 1..500 of the one-group simulator")
      .example(
        "$0 sim --multi --seeds 100",
        "100 multi-Raft seeds: ring changes and replica moves under faults",
      )
      .example("$0 sim --multi --seed 7 --trace", "replay one multi-Raft seed, printing its events")
      .epilogue(
        "The summary line reads `SIM: <seeds> seeds, <violations> violations`, where <violations> is the\n" +
          "number of seeds that had at least one violation. Each failing seed is printed with the command\n" +
          "that replays it.",
      ) as unknown as Argv<SimArgs>,
  handler: async (args: SimArgs): Promise<void> => {
    if (args.multi || args.partitions !== undefined) {
      const plan = parseArgs({ ...args, nodes: undefined });
      checkMultiArgs(args.nodes, args.partitions);
      await runMultiSeeds({
        first: plan.first,
        count: plan.count,
        nodes: args.nodes,
        partitions: args.partitions,
        bug: plan.bug,
        ticks: args.ticks,
        livenessTicks: args["liveness-ticks"],
        rules: args.rules,
        membership: args.membership,
        proposeTimeout: args["propose-timeout"],
        trace: args.trace,
        json: args.json ?? false,
      });
      return;
    }
    const plan = parseArgs(args);
    const started = performance.now();
    let failing = 0;
    let ticks = 0;
    const results: SimResult[] = [];
    for (let i = 0; i < plan.count; i++) {
      const seed = plan.first + i;
      const result = runSimulation({
        seed,
        ...(plan.nodes !== undefined ? { nodes: plan.nodes } : {}),
        ...(plan.bug !== undefined ? { bug: plan.bug } : {}),
        ticks: args.ticks ?? DEFAULT_TICKS,
        livenessTicks: args["liveness-ticks"] ?? DEFAULT_LIVENESS_TICKS,
        ruleChecks: args.rules,
        membership: args.membership,
        ...(args.trace ? { trace: (line: string) => process.stdout.write(`${line}\n`) } : {}),
        ...(args["trace-messages"] === "votes" || args["trace-messages"] === "all"
          ? { traceMessages: args["trace-messages"] }
          : {}),
      });
      ticks += result.stats.ticks;
      if (result.violations.length > 0) failing++;
      if (args.json) results.push(result);
      else printResult(result, plan, args);
      if (plan.count >= 2 * PROGRESS_EVERY_SEEDS && (i + 1) % PROGRESS_EVERY_SEEDS === 0) {
        const secs = (performance.now() - started) / 1000;
        process.stderr.write(`sim: ${i + 1}/${plan.count} seeds, ${failing} failing, ${secs.toFixed(1)} s\n`);
      }
    }
    const secs = (performance.now() - started) / 1000;
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify({ seeds: plan.count, failingSeeds: failing, results }, jsonReplacer)}\n`,
      );
    } else {
      process.stdout.write(`SIM: ${plan.count} seeds, ${failing} violations\n`);
    }
    process.stderr.write(
      `sim: ${plan.count} seeds in ${secs.toFixed(1)} s ` +
        `(${Math.round((secs * 1000) / plan.count)} ms/seed, ${Math.round(ticks / Math.max(secs, 1e-6))} simulated ticks/s)\n`,
    );
    if (failing > 0) throw new CheckFailedError(`${failing} of ${plan.count} seeds found a violation`);
  },
};

interface Plan {
  first: number;
  count: number;
  nodes: 3 | 5 | undefined;
  bug: BugName | undefined;
}

function parseArgs(args: SimArgs): Plan {
  const count = args.seeds ?? (args.seed !== undefined ? 1 : DEFAULT_SEEDS);
  if (!Number.isInteger(count) || count < 1 || count > MAX_SEEDS) {
    throw new UsageError(`--seeds must be a whole number from 1 to ${MAX_SEEDS}`);
  }
  const first = args.seed ?? 1;
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(first + count)) {
    throw new UsageError("--seed must be a whole number");
  }
  if (args.nodes !== undefined && args.nodes !== 3 && args.nodes !== 5) {
    throw new UsageError("--nodes must be 3 or 5");
  }
  for (const [name, v] of [
    ["--ticks", args.ticks],
    ["--liveness-ticks", args["liveness-ticks"]],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > MAX_TICKS))
      throw new UsageError(`${name} must be a whole number from 1 to ${MAX_TICKS}`);
  }
  let bug: BugName | undefined;
  if (args.bug !== undefined) {
    const found = BUG_NAMES.find((b) => b === args.bug);
    if (found === undefined) {
      throw new UsageError(`unknown bug "${args.bug}"; choose one of: ${BUG_NAMES.join(", ")}`);
    }
    bug = found;
  }
  if (args.trace && count !== 1) throw new UsageError("--trace needs a single seed (--seed S)");
  return { first, count, nodes: args.nodes as 3 | 5 | undefined, bug };
}

function printResult(r: SimResult, plan: Plan, args: SimArgs): void {
  const s = r.stats;
  if (plan.count === 1) {
    process.stdout.write(
      `seed ${r.seed} (${r.nodes} nodes${r.bug ? `, bug ${r.bug}` : ""}): ${s.ticks} ticks, ${s.elections} elections, ` +
        `${s.crashes} crashes, ${s.partitions} partitions, ${s.confChanges} membership changes, ` +
        `${s.maxCommitIndex} entries committed, ${s.opsOk} ops ok / ${s.opsFailed} redirected / ${s.opsUnknown} unknown, ` +
        `linearizability ${s.linearizability}, liveness in ${s.livenessTicks} ticks, digest ${r.digest}\n`,
    );
  }
  if (r.violations.length === 0) return;
  process.stdout.write(`FAIL seed ${r.seed} (${r.nodes} nodes): ${r.violations.length} violation(s)\n`);
  for (const v of r.violations.slice(0, SHOWN_VIOLATIONS)) {
    process.stdout.write(`  tick ${v.tick} ${v.kind}: ${v.description}\n`);
  }
  if (r.violations.length > SHOWN_VIOLATIONS) {
    process.stdout.write(`  ... and ${r.violations.length - SHOWN_VIOLATIONS} more\n`);
  }
  process.stdout.write(`  mix: ${r.config}\n`);
  process.stdout.write(`  replay: ${replayCommand(r, args)}\n`);
}

function replayCommand(r: SimResult, args: SimArgs): string {
  let cmd = `ringleader sim --seed ${r.seed} --nodes ${r.nodes}`;
  if (r.bug !== null) cmd += ` --bug ${r.bug}`;
  if (args.ticks !== undefined && args.ticks !== DEFAULT_TICKS) cmd += ` --ticks ${args.ticks}`;
  if (args["liveness-ticks"] !== undefined && args["liveness-ticks"] !== DEFAULT_LIVENESS_TICKS)
    cmd += ` --liveness-ticks ${args["liveness-ticks"]}`;
  if (!args.rules) cmd += " --no-rules";
  if (!args.membership) cmd += " --no-membership";
  return cmd;
}

/** JSON has no Infinity: an unknown return time is written as null. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? null : value;
}
