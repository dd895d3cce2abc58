/**
 * What each node should hold: its weighted share of the replicas, and how far from it the ring
 * may stray. Shared by the token allocator (which aims at the shares), the CLI (which prints the
 * deviation) and the tests (which assert the bound).
 */
import type { NodeId } from "./types.js";

/**
 * Replicas in the cluster: every partition has `replicationFactor` of them, or one per node when
 * there are fewer nodes than that (a node never holds two replicas of one partition).
 */
export function totalReplicas(partitions: number, replicationFactor: number, nodeCount: number): number {
  return partitions * Math.min(replicationFactor, nodeCount);
}

/**
 * Each node's weighted share of `totalReplicas`, capped at one replica per partition. The cap is
 * applied by water-filling: a node whose share exceeds `partitions` gets exactly `partitions` and
 * the rest is shared again among the others by weight, until no share exceeds the cap. The
 * shares sum to `totalReplicas` (up to rounding).
 */
export function weightedShares(
  nodes: readonly { readonly id: NodeId; readonly weight: number }[],
  partitions: number,
  replicationFactor: number,
): Map<NodeId, number> {
  const shares = new Map<NodeId, number>();
  let remaining = totalReplicas(partitions, replicationFactor, nodes.length);
  let open = nodes.slice();
  // Each round caps at least one node or ends, so this runs at most nodes.length + 1 times.
  for (;;) {
    const weight = open.reduce((sum, n) => sum + n.weight, 0);
    const capped = open.filter((n) => (remaining * n.weight) / weight > partitions);
    if (capped.length === 0) {
      for (const n of open) shares.set(n.id, (remaining * n.weight) / weight);
      return shares;
    }
    for (const n of capped) shares.set(n.id, partitions);
    remaining -= capped.length * partitions;
    open = open.filter((n) => !capped.includes(n));
  }
}

/** The balance bound's relative part: a node may hold 15 % more or less than its share. */
export const BALANCE_TOLERANCE = 0.15;

/**
 * How many replicas a node may be off its share: 15 % of the share, but never less than one
 * replica. The floor matters for small shares (below 20/3 ≈ 6.67 replicas, where 15 % is less
 * than one replica): replica counts are whole numbers, so a share of 1.5 can only be met as 1 or 2.
 */
export function balanceTolerance(share: number): number {
  return Math.max(1, BALANCE_TOLERANCE * share);
}
