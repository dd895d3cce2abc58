/**
 * `ringleader sim --multi`: the multi-Raft simulator over a range of seeds (see
 * `agent/src/sim/multi/`). Same contract as the one-group runs: standard output depends only on
 * the arguments and ends with `SIM: <seeds> seeds, <violations> violations`; timings go to
 * standard error; exit status 1 when any seed found a violation.
 */
import {
  DEFAULT_MULTI_LIVENESS_TICKS,
  DEFAULT_MULTI_TICKS,
  MAX_FOUNDERS,
  MAX_SIM_PARTITIONS,
  MIN_FOUNDERS,
  runMultiSimulation,
  type MultiSimResult,
  type MultiSimStats,
} from "../../sim/multi/index.js";
import type { BugName } from "../../raft/index.js";
import { CheckFailedError, UsageError } from "../errors.js";

export interface MultiPlan {
  readonly first: number;
  readonly count: number;
  readonly nodes: number | undefined;
  readonly partitions: number | undefined;
  readonly bug: BugName | undefined;
  readonly ticks: number | undefined;
  readonly livenessTicks: number | undefined;
  readonly rules: boolean;
  readonly membership: boolean;
  readonly proposeTimeout: boolean;
  readonly trace: boolean;
  readonly json: boolean;
}

const SHOWN_VIOLATIONS = 5;
const PROGRESS_EVERY_SEEDS = 50;

/** Counters summed over every seed: what the run exercised. */
const TOTALS: readonly (keyof MultiSimStats)[] = [
  "crashes",
  "partitions",
  "messagesLost",
  "messagesDuplicated",
  "transfers",
  "elections",
  "joins",
  "drains",
  "removals",
  "ringChanges",
  "replicaChanges",
  "snapshotsInstalled",
  "controllerWarnings",
  "removalsConfirmed",
  "joinsConfirmed",
  "opsOk",
  "opsUnknown",
];

export function checkMultiArgs(nodes: number | undefined, partitions: number | undefined): void {
  if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= MIN_FOUNDERS && nodes <= MAX_FOUNDERS)) {
    throw new UsageError(
      `with --multi, --nodes (founding boards) must be ${MIN_FOUNDERS} to ${MAX_FOUNDERS}`,
    );
  }
  if (
    partitions !== undefined &&
    !(Number.isInteger(partitions) && partitions >= 1 && partitions <= MAX_SIM_PARTITIONS)
  ) {
    throw new UsageError(`--partitions must be a whole number from 1 to ${MAX_SIM_PARTITIONS}`);
  }
}

export async function runMultiSeeds(plan: MultiPlan): Promise<void> {
  const started = performance.now();
  let failing = 0;
  const totals = new Map<string, number>();
  const results: MultiSimResult[] = [];
  for (let i = 0; i < plan.count; i++) {
    const seed = plan.first + i;
    const r = await runMultiSimulation({
      seed,
      ...(plan.nodes !== undefined ? { nodes: plan.nodes } : {}),
      ...(plan.partitions !== undefined ? { partitions: plan.partitions } : {}),
      ...(plan.bug !== undefined ? { bug: plan.bug } : {}),
      ...(plan.ticks !== undefined ? { ticks: plan.ticks } : {}),
      ...(plan.livenessTicks !== undefined ? { livenessTicks: plan.livenessTicks } : {}),
      ruleChecks: plan.rules,
      membership: plan.membership,
      proposeTimeout: plan.proposeTimeout,
      ...(plan.trace ? { trace: (line: string) => process.stdout.write(`${line}\n`) } : {}),
    });
    if (r.violations.length > 0) failing++;
    for (const k of TOTALS) totals.set(k, (totals.get(k) ?? 0) + (r.stats[k] as number));
    if (plan.json) results.push(r);
    else printResult(r, plan);
    if (plan.count >= 2 * PROGRESS_EVERY_SEEDS && (i + 1) % PROGRESS_EVERY_SEEDS === 0) {
      const secs = (performance.now() - started) / 1000;
      process.stderr.write(
        `sim --multi: ${i + 1}/${plan.count} seeds, ${failing} failing, ${secs.toFixed(1)} s\n`,
      );
    }
  }
  const secs = (performance.now() - started) / 1000;
  if (plan.json) {
    process.stdout.write(
      `${JSON.stringify({ seeds: plan.count, failingSeeds: failing, results }, jsonReplacer)}\n`,
    );
  } else {
    if (plan.count > 1) {
      process.stdout.write(`exercised: ${[...totals].map(([k, v]) => `${v} ${k}`).join(", ")}\n`);
    }
    process.stdout.write(`SIM: ${plan.count} seeds, ${failing} violations\n`);
  }
  process.stderr.write(
    `sim --multi: ${plan.count} seeds in ${secs.toFixed(1)} s (${(plan.count / Math.max(secs, 1e-6)).toFixed(1)} seeds/s)\n`,
  );
  if (failing > 0) throw new CheckFailedError(`${failing} of ${plan.count} seeds found a violation`);
}

function printResult(r: MultiSimResult, plan: MultiPlan): void {
  const s = r.stats;
  if (plan.count === 1) {
    process.stdout.write(
      `seed ${r.seed} multi (${r.nodes} founders, ${r.partitions} partitions${r.bug ? `, bug ${r.bug}` : ""}): ` +
        `${s.ticks} ticks, ${s.boards} boards, ${s.elections} elections, ${s.crashes} crashes, ${s.partitions} partitions, ` +
        `${s.joins} joins, ${s.drains} drains, ${s.removals} removals, ${s.ringChanges} ring changes, ` +
        `${s.replicaChanges} replica changes, ${s.snapshotsInstalled} snapshots installed, ` +
        `${s.opsOk} ops ok / ${s.opsFailed} redirected / ${s.opsUnknown} unknown, linearizability ${s.linearizability}, ` +
        `liveness in ${s.livenessTicks} ticks, digest ${r.digest}\n`,
    );
  }
  if (r.violations.length === 0) return;
  process.stdout.write(
    `FAIL seed ${r.seed} multi (${r.nodes} founders, ${r.partitions} partitions): ${r.violations.length} violation(s)\n`,
  );
  for (const v of r.violations.slice(0, SHOWN_VIOLATIONS)) {
    process.stdout.write(`  tick ${v.tick} ${v.kind}: ${v.description}\n`);
  }
  if (r.violations.length > SHOWN_VIOLATIONS) {
    process.stdout.write(`  ... and ${r.violations.length - SHOWN_VIOLATIONS} more\n`);
  }
  process.stdout.write(`  mix: ${r.config}\n`);
  process.stdout.write(`  replay: ${replayCommand(r, plan)}\n`);
}

function replayCommand(r: MultiSimResult, plan: MultiPlan): string {
  let cmd = `ringleader sim --multi --seed ${r.seed} --nodes ${r.nodes} --partitions ${r.partitions}`;
  if (r.bug !== null) cmd += ` --bug ${r.bug}`;
  if (plan.ticks !== undefined) cmd += ` --ticks ${plan.ticks}`;
  if (plan.livenessTicks !== undefined) cmd += ` --liveness-ticks ${plan.livenessTicks}`;
  if (!plan.rules) cmd += " --no-rules";
  if (!plan.membership) cmd += " --no-membership";
  if (!plan.proposeTimeout) cmd += " --no-propose-timeout";
  return cmd;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? null : value;
}

export { DEFAULT_MULTI_TICKS, DEFAULT_MULTI_LIVENESS_TICKS };
