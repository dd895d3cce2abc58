/**
 * Warnings about the cluster, computed from what one node knows: every node's latest health
 * record (with its age and the clock skew measured when it was pulled) and the partitions their
 * leaders reported. A pure function, so tests feed it recorded views.
 */
import type { HeldReplica } from "./record.js";
import { throttleProblems } from "./throttle.js";
import type { NodeHealth } from "./view.js";

export type WarningKind =
  | "disk-full"
  | "throttled"
  | "hot"
  | "under-replicated"
  | "no-leader"
  | "unreachable"
  | "clock-skew"
  | "memory-low"
  | "replica-held";

export interface Warning {
  readonly kind: WarningKind;
  /** The node it is about, when it is about one. */
  readonly node?: string;
  readonly partition?: number;
  readonly message: string;
}

export interface WarningThresholds {
  /** Disk nearly full below this share free (of the filesystem holding the data)… */
  readonly diskFreeRatio: number;
  /** …or below this many bytes free. */
  readonly diskFreeBytes: number;
  readonly hotC: number;
  readonly clockSkewMs: number;
  readonly memAvailableRatio: number;
}

export const DEFAULT_THRESHOLDS: WarningThresholds = {
  diskFreeRatio: 0.1,
  diskFreeBytes: 512 * 1024 * 1024,
  // The Pi firmware starts soft throttling at 80 °C; warn before.
  hotC: 75,
  clockSkewMs: 2000,
  memAvailableRatio: 0.05,
};

const GiB = 1024 * 1024 * 1024;

function gib(n: number): string {
  return `${(n / GiB).toFixed(1)} GiB`;
}

export function nodeWarnings(n: NodeHealth, t: WarningThresholds = DEFAULT_THRESHOLDS): Warning[] {
  const out: Warning[] = [];
  if (!n.reachable) {
    out.push({
      kind: "unreachable",
      node: n.id,
      message:
        n.ageMs === null
          ? `${n.id} has not answered yet${n.error ? ` (${n.error})` : ""}`
          : `${n.id} unreachable for ${Math.round(n.ageMs / 1000)} s${n.error ? ` (${n.error})` : ""}`,
    });
  }
  if (n.skewMs !== null && Math.abs(n.skewMs) > t.clockSkewMs) {
    out.push({
      kind: "clock-skew",
      node: n.id,
      message: `${n.id}'s clock is ${(n.skewMs / 1000).toFixed(1)} s ${n.skewMs > 0 ? "ahead" : "behind"} (check NTP)`,
    });
  }
  const b = n.board;
  if (!b) return out;
  if (b.diskFreeBytes !== null && b.diskTotalBytes) {
    if (b.diskFreeBytes < t.diskFreeBytes || b.diskFreeBytes / b.diskTotalBytes < t.diskFreeRatio) {
      out.push({
        kind: "disk-full",
        node: n.id,
        message: `${n.id} disk nearly full: ${gib(b.diskFreeBytes)} free of ${gib(b.diskTotalBytes)}`,
      });
    }
  }
  if (b.throttle) {
    for (const p of throttleProblems(b.throttle))
      out.push({ kind: "throttled", node: n.id, message: `${n.id}: ${p}` });
  }
  if (b.tempC !== null && b.tempC >= t.hotC) {
    out.push({ kind: "hot", node: n.id, message: `${n.id} is hot: ${b.tempC} °C` });
  }
  if (b.memTotalBytes > 0 && b.memAvailableBytes / b.memTotalBytes < t.memAvailableRatio) {
    out.push({
      kind: "memory-low",
      node: n.id,
      message: `${n.id} memory low: ${Math.round(b.memAvailableBytes / 1024 / 1024)} MiB available`,
    });
  }
  return out;
}

/**
 * How long a node may keep a replica the ring moved away before it is warned about: a leader is
 * asked every 5 s whether the node is out, so past this the node is most likely cut off from the
 * partition's leader (its replica then stays, costing only disk, until a leader answers).
 */
export const HELD_WARN_MS = 30_000;

export function heldWarnings(node: string, held: readonly HeldReplica[], minMs = HELD_WARN_MS): Warning[] {
  return held
    .filter((h) => h.waitingMs >= minMs)
    .map((h) => ({
      kind: "replica-held",
      node,
      partition: h.partition,
      message:
        `${node} keeps its replica of partition ${h.partition}, which the ring moved away: no leader ` +
        `has confirmed its removal for ${Math.round(h.waitingMs / 1000)} s (is ${node} cut off from the ` +
        `partition's leader?)`,
    }));
}

export interface PartitionState {
  readonly partition: number;
  readonly leader: string | null;
  readonly term: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly active: readonly string[];
  /** Replicas the ring wants for it. */
  readonly replicas: readonly string[];
}

export function partitionWarnings(
  parts: readonly PartitionState[],
  replicationFactor: number,
  allFresh: boolean,
): Warning[] {
  const out: Warning[] = [];
  for (const p of parts) {
    if (p.leader === null) {
      // With a node's record missing we cannot tell a leaderless partition from an unheard leader.
      if (allFresh)
        out.push({
          kind: "no-leader",
          partition: p.partition,
          message: `partition ${p.partition} has no leader`,
        });
      continue;
    }
    const want = Math.min(replicationFactor, Math.max(p.replicas.length, 1));
    const healthy = p.voters.filter((v) => p.active.includes(v)).length;
    if (healthy < want) {
      const down = p.voters.filter((v) => !p.active.includes(v));
      out.push({
        kind: "under-replicated",
        partition: p.partition,
        message:
          `partition ${p.partition}: ${healthy} of ${want} replicas healthy` +
          (down.length > 0
            ? ` (${down.join(", ")} not responding)`
            : p.voters.length < want
              ? " (rebuilding)"
              : ""),
      });
    }
  }
  return out;
}
