/**
 * Placement: which nodes replicate each partition. A pure function of the ring, so every node
 * holding the same ring computes the same answer with no coordination.
 */
import { partitionPosition } from "./keys.js";
import { RING_SIZE, RingArgumentError, type NodeId, type Ring } from "./types.js";
import { buildTokenIndex, walkFrom } from "./walk.js";

export interface PartitionReplicas {
  readonly partition: number;
  /** Distinct nodes in ring order from the partition's position; the first is the preferred leader. */
  readonly replicas: readonly NodeId[];
}

export interface Placement {
  /** One entry per partition, in partition order. */
  readonly partitions: readonly PartitionReplicas[];
}

export interface NodeLoad {
  replicas: number;
  /** Partitions this node is the first replica of, so the one it should lead. */
  preferredLeaders: number;
}

/** A replica that must move: `from` null is a new replica, `to` null a dropped one. */
export interface Move {
  readonly partition: number;
  readonly from: NodeId | null;
  readonly to: NodeId | null;
}

/**
 * Each partition's replicas: the first `replicationFactor` distinct nodes met going clockwise
 * from the partition's position (a token exactly at that position counts), or every node when
 * there are fewer.
 */
export function placement(ring: Ring): Placement {
  const index = buildTokenIndex(ring.nodes);
  const partitions: PartitionReplicas[] = [];
  for (let p = 0; p < ring.partitions; p++) {
    const walk = walkFrom(index, partitionPosition(p, ring.partitions), ring.replicationFactor, RING_SIZE);
    partitions.push({ partition: p, replicas: walk.owners.map((i) => ring.nodes[i]!.id) });
  }
  return { partitions };
}

/**
 * Replicas and preferred leaderships per node. Pass the ring to list its nodes that hold nothing
 * too (with zeros); the map follows the ring's node order, then first appearance in the placement.
 */
export function loadByNode(placed: Placement, ring?: Ring): Map<NodeId, NodeLoad> {
  const loads = new Map<NodeId, NodeLoad>();
  const entry = (id: NodeId): NodeLoad => {
    let load = loads.get(id);
    if (load === undefined) {
      load = { replicas: 0, preferredLeaders: 0 };
      loads.set(id, load);
    }
    return load;
  };
  for (const node of ring?.nodes ?? []) entry(node.id);
  for (const { replicas } of placed.partitions) {
    replicas.forEach((id, rank) => {
      const load = entry(id);
      load.replicas++;
      if (rank === 0) load.preferredLeaders++;
    });
  }
  return loads;
}

/**
 * The replicas that change between two placements of the same partitions, per partition: each
 * node that left the replica set is paired with one that joined it (in replica order), and the
 * unpaired rest become additions (`from` null) or removals (`to` null). A change of order only
 * (a new preferred leader) moves no data and is not listed.
 */
export function diffPlacement(before: Placement, after: Placement): Move[] {
  if (before.partitions.length !== after.partitions.length) {
    throw new RingArgumentError(
      `cannot compare placements of ${before.partitions.length} and ${after.partitions.length} partitions`,
    );
  }
  const moves: Move[] = [];
  before.partitions.forEach((b, i) => {
    const a = after.partitions[i]!;
    if (a.partition !== b.partition)
      throw new RingArgumentError("placements list partitions in different orders");
    const gone = b.replicas.filter((id) => !a.replicas.includes(id));
    const come = a.replicas.filter((id) => !b.replicas.includes(id));
    for (let k = 0; k < Math.max(gone.length, come.length); k++) {
      moves.push({ partition: b.partition, from: gone[k] ?? null, to: come[k] ?? null });
    }
  });
  return moves;
}
