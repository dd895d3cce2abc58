/**
 * Everything a seed decides about a run before it starts. Each seed draws its own mix (swarm
 * testing): one seed has a lossy network and rare crashes, the next a clean network and a node
 * rebooting every few hundred ticks, another one-entry append messages and frequent snapshots.
 * Varying the mix finds more bugs than one average mix run many times.
 */
import type { FaultPlan } from "./faults.js";
import type { MembershipPlan } from "./membership.js";
import type { NetworkParams } from "./network.js";
import type { NodeTuning } from "./node.js";
import { Random } from "./random.js";
import type { WorkloadOptions } from "./workload.js";

/** Simulated time units per tick: messages and fsyncs land between ticks, not only on them. */
export const UNITS_PER_TICK = 10;

/** Random streams of one seed; each part of the simulation draws from its own. */
export const STREAM = {
  config: 1,
  network: 2,
  faults: 3,
  workload: 4,
  disk: 5,
  schedule: 6,
  membership: 7,
  clientLinks: 8,
  /** Node i's Raft core uses stream `raftBase + i`. */
  raftBase: 100,
} as const;

export interface SimConfig {
  readonly nodes: 3 | 5;
  readonly tuning: NodeTuning;
  readonly network: NetworkParams;
  readonly faults: FaultPlan;
  readonly membership: MembershipPlan;
  readonly workload: WorkloadOptions;
}

export function defaultNodeCount(seed: number): 3 | 5 {
  return Math.abs(seed) % 2 === 1 ? 3 : 5;
}

export function deriveConfig(seed: number, nodes?: 3 | 5): SimConfig {
  const r = new Random(seed, STREAM.config);
  const n = nodes ?? defaultNodeCount(seed);
  const electionTicks = 10;
  const fsyncMin = r.int(1, 5);
  const minDelay = r.int(1, 5);
  const tuning: NodeTuning = {
    electionTicks,
    heartbeatTicks: r.pick([1, 1, 2]),
    // Without pre-vote, candidates bump terms freely and split votes are common.
    preVote: r.chance(0.7),
    checkQuorum: true,
    readOnly: r.chance(0.15) ? "lease" : "safe",
    // One entry per append message makes a follower acknowledge old entries one at a time.
    maxSizePerMsg: r.pick([1, 200, 4096, 1 << 20]),
    maxInflightMsgs: r.pick([1, 1, 4, 256]),
    fsyncMin,
    fsyncMax: fsyncMin + r.pick([0, 5, 15, 25]),
    snapshotEvery: r.pick([5, 20, 50, 200]),
    keepEntries: r.pick([0, 2, 10, 50]),
  };
  const network: NetworkParams = {
    minDelay,
    maxDelay: minDelay + r.pick([0, 5, 15, 25]),
    slowChance: r.pick([0, 0.01, 0.05]),
    slowMaxDelay: r.int(50, 300),
    dropChance: r.pick([0, 0, 0.01, 0.05, 0.15]),
    duplicateChance: r.pick([0, 0.01, 0.05]),
    maxInFlight: 20_000,
  };
  const majority = Math.floor(n / 2) + 1;
  const faults: FaultPlan = {
    crashChance: 1 / r.pick([60, 150, 400, 1500]),
    // Sometimes a majority goes down together: safety must hold even when progress cannot.
    maxDown: r.chance(0.2) ? majority : n - majority,
    crashAfterFsyncChance: r.pick([0, 0.002, 0.01]),
    crashAfterVoteChance: r.pick([0, 0.1, 0.5]),
    leaderFaultChance: 1 / r.pick([Infinity, 100, 30, 10, 10]),
    partitionChance: 1 / r.pick([80, 250, 800]),
    partitionMinTicks: 10,
    partitionMaxTicks: r.pick([60, 200, 400]),
    transferChance: 1 / r.pick([150, 600, Infinity]),
  };
  const membership: MembershipPlan = {
    targetVoters: n,
    intervalTicks: r.pick([150, 400, Infinity]),
    maxAdded: 4,
    firstNewId: n + 1,
  };
  const workload: WorkloadOptions = {
    clients: r.int(3, 8),
    keys: r.int(5, 10),
    timeoutUnits: r.int(30, 80) * UNITS_PER_TICK,
    thinkUnits: r.int(0, 5) * UNITS_PER_TICK,
    followerReadChance: r.pick([0, 0.3, 0.6]),
  };
  return { nodes: n, tuning, network, faults, membership, workload };
}

/** One line describing the mix, for traces and failure reports. */
export function describeConfig(c: SimConfig): string {
  const t = c.tuning;
  const f = c.faults;
  const w = c.workload;
  const pct = (p: number): string => `${Math.round(p * 1000) / 10}%`;
  return (
    `${c.nodes} nodes, ${w.clients} clients, ${w.keys} keys; heartbeat ${t.heartbeatTicks}, reads ${t.readOnly}, ` +
    `maxSizePerMsg ${t.maxSizePerMsg}, inflight ${t.maxInflightMsgs}, snapshot every ${t.snapshotEvery} keep ${t.keepEntries}; ` +
    `${t.preVote ? "pre-vote" : "no pre-vote"}; net delay ${c.network.minDelay}-${c.network.maxDelay}u drop ${pct(c.network.dropChance)} dup ${pct(c.network.duplicateChance)}; ` +
    `crash 1/${Math.round(1 / f.crashChance)} ticks (max ${f.maxDown} down), partition 1/${Math.round(1 / f.partitionChance)}, ` +
    `leader fault 1/${Math.round(1 / f.leaderFaultChance)}, crash after vote ${pct(f.crashAfterVoteChance)}, ` +
    `membership every ${c.membership.intervalTicks}`
  );
}
