/** The public types and options of the node store. */
import type { ConfState, Entry, GroupId, HardState, Snapshot } from "../raft/types.js";
import type { KvRecord } from "./codec.js";

export type KeyInput = string | Uint8Array;

export interface NodeStoreOptions {
  /** The node's data directory; created if missing. */
  readonly path: string;
  /** Creates the node id the first time the store is opened (default: a random UUID). */
  readonly newNodeId?: () => string;
  readonly maxKeyBytes?: number;
  readonly maxValueBytes?: number;
  readonly maxEntryBytes?: number;
  readonly maxPendingWrites?: number;
  readonly maxBatchBytes?: number;
  /** Newest entries of each group kept decoded in memory (0 turns the cache off). Default 64. */
  readonly tailCacheEntries?: number;
  /** Payload bytes the tail cache of one group may hold. Default 256 KiB. */
  readonly tailCacheBytes?: number;
  /**
   * How long a lazy write job (a flush of the applies' write-back buffer, a step of the log's
   * clean-up) may wait to share the commit of a later write (ms, default 100).
   */
  readonly applyDelayMs?: number;
  /**
   * Lazy applies (`applyGroups(…, { lazy: true })`) wait in memory, readable, and go to LMDB at
   * most this long after the first of them (ms, default 1000): the write-back buffer of
   * kv-overlay.ts.
   */
  readonly applyFlushMs?: number;
  /** ... or as soon as the buffers of all groups hold this many records (default 8192) ... */
  readonly applyFlushRecords?: number;
  /** ... or this many bytes of keys and values (default 16 MiB: values may be up to 1 MiB). */
  readonly applyFlushBytes?: number;
  /** Records deleted per background step when compacting the log or dropping an old KV table. */
  readonly gcBatchRecords?: number;
  /**
   * When set, the store bounds the groups' logs itself (and the caller takes no snapshots): at
   * every flush of the write-back buffer, each group keeps the last `logRetainEntries` entries
   * below its applied index, none of them older than the node's last `logRetainEntries` x (groups
   * on the node) log records, records a snapshot at its applied index and compacts the rest.
   * Unset (the default): the log is compacted only by `compact` and `createSnapshot`.
   */
  readonly logRetainEntries?: number;
  /**
   * lmdb-js's overlapping sync (commit visible before the fsync, flush on the write thread).
   * Off by default: we wait for the flush anyway, and without it each commit writes the meta
   * page once instead of twice (fewer bytes per save; see test/bench/storage-bench.ts).
   */
  readonly overlappingSync?: boolean;
  /**
   * LMDB map size in bytes (address space reserved for the file; lmdb-js grows it if needed).
   * Default `DEFAULT_MAP_SIZE_BYTES` (4 GiB; 512 MiB on 32-bit boards).
   */
  readonly mapSizeBytes?: number;
  /** Background clean-up failures (they never lose data; the clean-up retries on next open). */
  readonly onBackgroundError?: (err: unknown) => void;
}

export interface GroupUpdate {
  readonly group: GroupId;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

/** What `applyEntries` hands the state machine for one entry; writes carry the entry's index. */
export interface ApplyContext {
  /** The index of the entry being applied: the version every `put` here records. */
  readonly index: number;
  /** The record as it stands, including writes of earlier entries in the same call. */
  get(key: KeyInput): KvRecord | undefined;
  put(key: KeyInput, value: Uint8Array): void;
  /** Returns whether the key existed. */
  delete(key: KeyInput): boolean;
  /** Records the membership a conf entry produced, atomically with the applied index. */
  setConfState(cs: ConfState): void;
}

export interface AppliedEntry<R> {
  readonly index: number;
  readonly result: R;
}

export interface AppliedInfo {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface KvScanOptions {
  readonly prefix?: KeyInput;
  /** Only keys strictly greater than this one (for paging). */
  readonly after?: KeyInput;
  readonly limit: number;
}

export interface SnapshotStreamOptions {
  /**
   * Chunks stay within this size unless a single record is larger. Keep it within what the
   * receiver accepts (`InstallOptions.maxChunkBytes`, by default 2 * maxValueBytes + 64 KiB).
   */
  readonly maxChunkBytes: number;
}

export interface InstallOptions {
  /** Chunks larger than this are rejected (default: 2 * maxValueBytes + 64 KiB). */
  readonly maxChunkBytes?: number;
  readonly signal?: AbortSignal;
}

export const MAX_SCAN_LIMIT = 10_000;

export function checkOptions(o: NodeStoreOptions): void {
  const within = (name: string, v: number | undefined, lo: number, hi: number): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= lo && v <= hi)) {
      throw new RangeError(`${name} must be an integer in [${lo}, ${hi}], got ${v}`);
    }
  };
  // LMDB's largest key is 1978 bytes and ours carry an 8-byte prefix.
  within("maxKeyBytes", o.maxKeyBytes, 1, 1900);
  within("maxValueBytes", o.maxValueBytes, 0, 256 * 1024 * 1024);
  within("maxEntryBytes", o.maxEntryBytes, 0, 256 * 1024 * 1024);
  within("maxPendingWrites", o.maxPendingWrites, 1, 10_000_000);
  within("maxBatchBytes", o.maxBatchBytes, 1, 1024 * 1024 * 1024);
  within("gcBatchRecords", o.gcBatchRecords, 1, 1_000_000);
  within("logRetainEntries", o.logRetainEntries, 0, 100_000_000);
  within("applyDelayMs", o.applyDelayMs, 0, 60_000);
  within("applyFlushMs", o.applyFlushMs, 0, 60_000);
  within("applyFlushRecords", o.applyFlushRecords, 1, 10_000_000);
  within("applyFlushBytes", o.applyFlushBytes, 1, 1024 * 1024 * 1024);
  within("tailCacheEntries", o.tailCacheEntries, 0, 1_000_000);
  within("tailCacheBytes", o.tailCacheBytes, 0, 1024 * 1024 * 1024);
}

const textEncoder = new TextEncoder();

export function toBytes(key: KeyInput): Uint8Array {
  return typeof key === "string" ? textEncoder.encode(key) : key;
}
