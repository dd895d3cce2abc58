/**
 * The consistent-hash ring: which nodes replicate which partition. Pure functions of a plain,
 * serialisable ring object; no IO, no clock, no randomness. See `allocate.ts` for how a joining
 * node's tokens are chosen and `keys.ts` for how a key finds its partition.
 */
export * from "./types.js";
export { xxhash32, xxhash32String } from "./hash.js";
export { hashTag, keyHash, partitionForKey, partitionOfPosition, partitionPosition } from "./keys.js";
export { createRing, addNode, removeNode } from "./ring.js";
export {
  placement,
  loadByNode,
  diffPlacement,
  type Placement,
  type PartitionReplicas,
  type NodeLoad,
  type Move,
} from "./placement.js";
export { weightedShares, totalReplicas, balanceTolerance, BALANCE_TOLERANCE } from "./shares.js";
export { formatRing, parseRing, ringFromObject, ringToObject, MAX_RING_TEXT_CHARS } from "./format.js";
