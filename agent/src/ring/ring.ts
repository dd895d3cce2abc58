/**
 * Creating a ring and changing its membership. Pure functions: each returns a new ring and leaves
 * its argument untouched, so the meta group can apply a change as one state-machine command.
 */
import { allocateTokens } from "./allocate.js";
import { checkPartitionCount } from "./keys.js";
import {
  DEFAULT_PARTITIONS,
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_VNODES_PER_WEIGHT,
  MAX_NODES,
  MAX_RING_TOKENS,
  MAX_REPLICATION_FACTOR,
  MAX_VNODES_PER_WEIGHT,
  MAX_WEIGHT,
  NODE_ID_PATTERN,
  RING_FORMAT,
  RingArgumentError,
  type NewNode,
  type NodeId,
  type Ring,
  type RingOptions,
} from "./types.js";

/**
 * An empty ring. The partition count is fixed for the cluster's life (each partition is a Raft
 * group); the defaults are 64 partitions, 3 replicas and 16 tokens per unit of weight.
 */
export function createRing(options: RingOptions = {}): Ring {
  const partitions = options.partitions ?? DEFAULT_PARTITIONS;
  const replicationFactor = options.replicationFactor ?? DEFAULT_REPLICATION_FACTOR;
  const vnodesPerWeight = options.vnodesPerWeight ?? DEFAULT_VNODES_PER_WEIGHT;
  checkPartitionCount(partitions);
  checkWhole("replicationFactor", replicationFactor, 1, MAX_REPLICATION_FACTOR);
  checkWhole("vnodesPerWeight", vnodesPerWeight, 1, MAX_VNODES_PER_WEIGHT);
  return { format: RING_FORMAT, partitions, replicationFactor, vnodesPerWeight, nodes: [] };
}

/**
 * The ring with `node` added. Its `vnodesPerWeight × weight` tokens are chosen here, once, to even
 * out the load (see `allocate.ts`); replicas move only onto the new node.
 */
export function addNode(ring: Ring, node: NewNode): Ring {
  const weight = node.weight ?? 1;
  checkNodeId(node.id);
  checkWhole(`the weight of ${node.id}`, weight, 1, MAX_WEIGHT);
  if (ring.nodes.some((n) => n.id === node.id)) {
    throw new RingArgumentError(`node ${node.id} is already in the ring`);
  }
  if (ring.nodes.length >= MAX_NODES) throw new RingArgumentError(`a ring holds at most ${MAX_NODES} nodes`);
  const tokenCount = ring.nodes.reduce((sum, n) => sum + n.tokens.length, ring.vnodesPerWeight * weight);
  if (tokenCount > MAX_RING_TOKENS) {
    throw new RingArgumentError(`a ring holds at most ${MAX_RING_TOKENS} tokens (vnodes × weight, summed)`);
  }
  const tokens = allocateTokens(ring, weight);
  return { ...ring, nodes: [...ring.nodes, { id: node.id, weight, tokens }] };
}

/**
 * The ring without node `id`. Its tokens simply disappear, so replicas move only off the removed
 * node, each to the next distinct node clockwise (the partition's successor); nothing else moves.
 */
export function removeNode(ring: Ring, id: NodeId): Ring {
  if (!ring.nodes.some((n) => n.id === id)) throw new RingArgumentError(`node ${id} is not in the ring`);
  return { ...ring, nodes: ring.nodes.filter((n) => n.id !== id) };
}

export function checkNodeId(id: unknown): asserts id is NodeId {
  if (typeof id !== "string" || !NODE_ID_PATTERN.test(id)) {
    throw new RingArgumentError(
      `node id ${JSON.stringify(id)} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

function checkWhole(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RingArgumentError(`${name} must be a whole number from ${min} to ${max}`);
  }
}
