/**
 * One node's picture of the whole cluster's health: every member with its latest board health,
 * how old that is, the round trip and clock skew measured when it was pulled; every partition
 * with its leader and replication state; and the warnings that follow.
 */
import type { BoardHealth } from "./board.js";
import type { PartitionState, Warning } from "./warnings.js";

export interface NodeHealth {
  readonly id: string;
  readonly api: string | null;
  /** The member state in the meta group: joining, up, draining, down. */
  readonly state: string;
  /** The last pull (or, for this node, the last sample) succeeded and is recent. */
  readonly reachable: boolean;
  /** Age of the latest record, ms; null if none was ever received. */
  readonly ageMs: number | null;
  readonly rttMs: number | null;
  /** Sender's clock minus ours at the moment it answered (half the round trip assumed each way). */
  readonly skewMs: number | null;
  readonly error: string | null;
  readonly board: BoardHealth | null;
  /** Partitions it leads (by its last record). */
  readonly leads: number;
  /** Partitions whose replicas the ring places on it. */
  readonly replicas: number;
  /** The least-loaded score (lower is better), or null if unknown. */
  readonly load: number | null;
}

export interface ClusterHealth {
  /** The node that computed this view. */
  readonly observer: string;
  readonly at: number;
  readonly intervalMs: number;
  readonly replicationFactor: number | null;
  readonly nodes: readonly NodeHealth[];
  readonly partitions: readonly PartitionState[];
  readonly warnings: readonly Warning[];
}

/** What the `least-loaded` balancing strategy asks: lower is better, undefined when unknown. */
export interface LoadSource {
  loadOf(node: string): number | undefined;
}

/**
 * The least-loaded score of a board: its CPU busy share (0-1; the 1-minute load per core when
 * the sampler has no busy share yet), plus a penalty that grows with the temperature above 60 °C
 * (+0.5 at 70 °C, +1 at 80 °C), plus 1 while the firmware throttles or caps the clock or the
 * supply is under-voltage (a board in that state is slower than its load says and should get
 * less traffic). About 0 for an idle cool board, over 2 for a busy throttled one.
 */
export function loadScore(b: BoardHealth): number {
  const busy = b.cpuLoadPct !== null ? b.cpuLoadPct / 100 : b.load1 / Math.max(1, b.cpus);
  const heat = b.tempC !== null && b.tempC > 60 ? (b.tempC - 60) / 20 : 0;
  const t = b.throttle;
  const throttled =
    t && (t.throttledNow || t.freqCappedNow || t.underVoltageNow || t.softTempLimitNow) ? 1 : 0;
  return Math.round((Math.min(busy, 4) + heat + throttled) * 1000) / 1000;
}
