/**
 * What a seed decides about a multi-Raft run: the one-group mix of `../config.ts` (Raft tuning,
 * network, faults, clients) plus the cluster's shape (founders, partitions), the controller's
 * timing and the operator's plan of joins and drains. Each seed draws its own mix.
 */
import { DEFAULT_REPLICATION_FACTOR } from "../../ring/types.js";
import { STREAM, UNITS_PER_TICK, deriveConfig, describeConfig, type SimConfig } from "../config.js";
import { Random } from "../random.js";
import type { OperatorPlan } from "./operator.js";

/** The multi-Raft run's own random streams, clear of the one-group ones. */
export const MULTI_STREAM = {
  config: 201,
  operator: 202,
  leaderPick: 203,
  hosts: 204,
  questions: 205,
} as const;

/** Virtual milliseconds per tick: the agent's default `--tick-ms`. */
export const MS_PER_TICK = 100;

export const MIN_PARTITIONS = 1;
export const MAX_SIM_PARTITIONS = 16;
export const MIN_FOUNDERS = 3;
export const MAX_FOUNDERS = 5;

export interface ControllerTiming {
  readonly intervalMs: number;
  readonly releaseAfterMs: number;
  readonly leaderBalanceEveryMs: number;
  readonly replaceAfterMs: number;
  readonly maxCatchUps: number;
}

export interface MultiSimConfig {
  readonly base: SimConfig;
  readonly founders: number;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly controller: ControllerTiming;
  readonly operator: OperatorPlan;
  /**
   * How many machines the boards run on (`MemberRecord.machine`, board k on machine k mod this),
   * or 0 for a machine each. Boards that share a machine hand their partitions' leaderships to
   * one of them (`preferredLeader`), as a local cluster's agents do.
   */
  readonly machines: number;
}

export function deriveMultiConfig(seed: number, founders?: number, partitions?: number): MultiSimConfig {
  const r = new Random(seed, MULTI_STREAM.config);
  const f = founders ?? r.pick([3, 3, 4, 5]);
  const p = partitions ?? r.int(4, 8);
  const base0 = deriveConfig(seed, f >= 5 ? 5 : 3);
  const majorityOfGroup = 2;
  const base: SimConfig = {
    ...base0,
    tuning: { ...base0.tuning, forwardProposals: true },
    // A partition has three replicas whatever the cluster's size: one crash keeps every majority,
    // and sometimes two go down together (safety must hold when progress cannot).
    faults: { ...base0.faults, maxDown: r.chance(0.2) ? majorityOfGroup : 1 },
    workload: {
      ...base0.workload,
      keys: r.int(2 * p, 3 * p),
      timeoutUnits: r.int(40, 100) * UNITS_PER_TICK,
    },
  };
  const controller: ControllerTiming = {
    intervalMs: 5 * MS_PER_TICK,
    releaseAfterMs: 100 * MS_PER_TICK,
    leaderBalanceEveryMs: 50 * MS_PER_TICK,
    // Some seeds replace a board that stays down past 25 s (crashes last up to 30 s).
    replaceAfterMs: r.chance(0.3) ? 250 * MS_PER_TICK : 3_600_000,
    maxCatchUps: r.pick([1, 2, 4]),
  };
  const operator: OperatorPlan = {
    intervalTicks: r.pick([150, 300, 600]),
    maxJoins: r.int(1, 3),
    minUp: 3,
    maxMembers: 6,
  };
  // Drawn last, so that every earlier draw of a seed stays what it was.
  const machines = r.pick([0, 0, 1, 2]);
  return {
    base,
    founders: f,
    partitions: p,
    replicationFactor: DEFAULT_REPLICATION_FACTOR,
    controller,
    operator,
    machines,
  };
}

export function describeMultiConfig(c: MultiSimConfig): string {
  const ctl = c.controller;
  return (
    `${c.founders} founders, ${c.partitions} partitions x ${c.replicationFactor} replicas + meta; ` +
    `operator every ${c.operator.intervalTicks} ticks (≤${c.operator.maxJoins} joins); ` +
    `controller every ${ctl.intervalMs} ms, ${ctl.maxCatchUps} catch-ups, replace after ${ctl.replaceAfterMs >= 3_600_000 ? "never" : `${ctl.replaceAfterMs} ms`}; ` +
    `${c.machines === 0 ? "a machine per board" : `boards on ${c.machines} machine(s)`}; ` +
    describeConfig(c.base).replace(/^\d+ nodes, /, "")
  );
}

export { STREAM };
