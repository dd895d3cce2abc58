/**
 * What the agent needs from the node's durable store, per Raft group. The LMDB store implements
 * it for real; tests may use an in-memory one. Kept narrow so the ready loop reads as the Raft
 * contract does: persist, send, apply, advance.
 */
import type {
  ConfState,
  Entry,
  GroupId,
  HardState,
  Snapshot,
  SnapshotMetadata,
  Storage,
} from "../raft/index.js";

export interface GroupUpdate {
  readonly group: GroupId;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

export interface KvRecord {
  readonly value: Uint8Array;
  readonly version: string;
}

/** What applying one command does to the KV table. */
export type KvWrite =
  | { readonly kind: "put"; readonly key: string; readonly value: Uint8Array; readonly version: string }
  | { readonly kind: "del"; readonly key: string }
  | { readonly kind: "none" };

/** Counters of the store's group commit (see `WriteBatcherStats`). */
export interface StoreWriteStats {
  /** Transactions committed. */
  readonly batches: number;
  /** Of those, the ones flushed to disk before anything waiting on them went on. */
  readonly durableBatches: number;
  /** Write jobs (saves, applies, snapshots) that went into them. */
  readonly jobs: number;
  /** Puts and removes issued to LMDB. */
  readonly ops: number;
  /** Applied KV writes held in memory, not in the table yet (the store's write-back buffer). */
  readonly bufferedApplies?: number;
  /** Log entries and terms read from LMDB because their group's tail cache no longer held them. */
  readonly logReads?: number;
}

/** One group's share of an `apply` batch. */
export interface GroupApply {
  readonly group: GroupId;
  readonly entries: readonly Entry[];
  readonly decide: (entry: Entry, read: (key: string) => KvRecord | null) => KvWrite;
}

export interface DurableStore {
  /** Group-commit counters, for metrics; a store without a batcher may leave it out. */
  writeStats?(): StoreWriteStats;
  /**
   * True when the store snapshots and compacts the groups' logs itself (the LMDB store does, at
   * each flush of its write-back buffer); the host then takes no snapshots (`createSnapshot`).
   */
  readonly compactsOwnLog?: boolean;
  /** Every group that has state on this node. */
  groupIds(): GroupId[];
  /** Whether the group has any state here (a membership, a log or a vote). */
  hasGroup(group: GroupId): boolean;
  /** Creates a brand-new group whose first members are `voters`; durable when it resolves. */
  bootstrap(group: GroupId, voters: readonly string[], learners?: readonly string[]): Promise<void>;
  /** The stable log of a group, read synchronously by the Raft core. */
  storage(group: GroupId): Storage;
  /** Persists the Readies of many groups in one transaction; resolves once it is on disk (fsync). */
  saveBatch(updates: readonly GroupUpdate[]): Promise<void>;
  /** The index up to which the group's state machine has applied entries. */
  appliedIndex(group: GroupId): number;
  /**
   * Applies committed entries of one or more groups: `decide` sees each entry and the current
   * record of the key it touches and returns the write. All writes and the groups' new applied
   * indexes land in one transaction (one write job, however many groups took part). `lazy`: the
   * store may apply in memory only (readable at once through `get` and `scan`) and write to disk
   * later, with other applies; a crash then loses only applies the log can replay.
   */
  apply(batch: readonly GroupApply[], opts?: { lazy?: boolean }): Promise<void>;
  get(group: GroupId, key: string): KvRecord | null;
  scan(
    group: GroupId,
    opts: { prefix: string; after?: string; limit: number },
  ): { key: string; record: KvRecord }[];

  /**
   * Records a snapshot at `index` (already applied) and compacts the log below it, keeping the
   * last `retainEntries` entries so a follower a little behind still catches up from the log.
   */
  createSnapshot(group: GroupId, index: number, confState: ConfState, retainEntries: number): Promise<void>;
  /**
   * The group's state machine image, read from one consistent view, in chunks of about
   * `maxChunkBytes`. The first chunk is a header naming the image's index, term and membership.
   */
  snapshotChunks(group: GroupId, maxChunkBytes: number): AsyncIterable<Uint8Array>;
  /** The metadata in a stream's first chunk. Throws on a chunk that is not a valid header. */
  readSnapshotHeader(chunk: Uint8Array): SnapshotMetadata;
  /**
   * Writes a received image beside the live state; `saveBatch` with a snapshot of the same index
   * and term later swaps it in, atomically with the log reset.
   */
  stageSnapshot(group: GroupId, metadata: SnapshotMetadata, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Drops a staged image the Raft core did not take. */
  discardStagedSnapshot(group: GroupId): void;
  /**
   * Deletes all of a group's data on this node (a replica the group removed); the group must no
   * longer run here. Until it resolves the group cannot be created again.
   */
  deleteGroup(group: GroupId): Promise<void>;
  /** Whether `deleteGroup` is still at work on the group. */
  isDeleting(group: GroupId): boolean;
}
