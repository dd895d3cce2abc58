/**
 * The consistent-hash ring's state and its errors. The ring is a plain object (JSON- and
 * CBOR-able) that the meta Raft group stores and every node reads; placement is a pure function of
 * it, so every node that holds the same ring computes the same replicas.
 */
import type { NodeId } from "../raft/types.js";

export type { NodeId };

/** The ring holds 2^32 positions, 0 … 2^32 − 1; a token is one of them. */
export const RING_SIZE = 0x1_0000_0000;

export const RING_FORMAT = 1;
export const DEFAULT_PARTITIONS = 64;
export const DEFAULT_REPLICATION_FACTOR = 3;
/**
 * Tokens per unit of weight. With 16, every join of every sequence of up to 6 nodes with weights
 * 1–4 (all 5,460 of them) and of random sequences up to 50 nodes stays within the balance bound;
 * with 8 a few joins of 7-node rings miss it by a replica. More tokens make joins slower and the
 * ring in the meta group bigger (50 nodes of weight 2.5 hold 2,000 tokens, about 8 KiB in CBOR)
 * without improving the balance: what limits it at 64 partitions is the ring's structure, not
 * the number of slots. See `allocate.ts`.
 */
export const DEFAULT_VNODES_PER_WEIGHT = 16;

/** Bounds, so that a damaged or hostile ring cannot make a node allocate without limit. */
export const MAX_PARTITIONS = 4096;
export const MAX_REPLICATION_FACTOR = 7;
export const MAX_VNODES_PER_WEIGHT = 256;
export const MAX_WEIGHT = 16;
export const MAX_NODES = 256;
/** Tokens in one ring; allocation time grows with it (a 50-node ring of weight 2.5 holds 2,000). */
export const MAX_RING_TOKENS = 32_768;
/** A node id: letters, digits, `.`, `_`, `-`; what hostnames and UUIDs use, and no separator of the CLI. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface RingNode {
  readonly id: NodeId;
  /** A whole number from 1 to MAX_WEIGHT, e.g. the board's memory in GiB. */
  readonly weight: number;
  /** `vnodesPerWeight × weight` distinct positions, ascending, chosen once when the node joined. */
  readonly tokens: readonly number[];
}

export interface Ring {
  readonly format: typeof RING_FORMAT;
  /** Fixed when the cluster is created: partition p covers key hashes [⌈p·2^32/P⌉, ⌈(p+1)·2^32/P⌉). */
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly vnodesPerWeight: number;
  /** In the order they joined (that order is informative only: placement depends on tokens). */
  readonly nodes: readonly RingNode[];
}

export interface RingOptions {
  partitions?: number;
  replicationFactor?: number;
  vnodesPerWeight?: number;
}

export interface NewNode {
  id: NodeId;
  weight?: number;
}

/** An argument that can never make a valid ring (a bad count, a duplicate or unknown node id). */
export class RingArgumentError extends Error {
  override readonly name = "RingArgumentError";
  constructor(message: string) {
    super(message);
  }
}

/** Serialised ring text or a decoded object that is not a valid ring. */
export class RingFormatError extends Error {
  override readonly name = "RingFormatError";
  constructor(readonly detail: string) {
    super(`invalid ring: ${detail}`);
  }
}
