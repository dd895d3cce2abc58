/**
 * The node's durable store: ONE LMDB environment per node (its data directory) holding the
 * node's identity and, for every Raft group it hosts, the log, the hard state, the snapshot
 * point, the applied state and the group's key-value table.
 *
 * Layout (see `codec.ts`): five named databases with binary, big-endian keys. Group records and
 * KV tables are prefixed by the group id, so one group's KV table is one contiguous key range;
 * the log is ONE sequence for all groups, so that a turn's appends to many groups dirty one or
 * two pages instead of one per group (which sequence holds which entry is kept in memory).
 *
 *   node     identity: format, node id, cluster id, small metadata
 *   group    [group][tag] -> CBOR: log head, snapshot point, conf state
 *   state    [group][tag] -> CBOR: hard state, applied state (rewritten every turn: kept apart, so
 *            that they share a page or two)
 *   entries  [sequence u64] -> group u32 | index u64 | term u64 | type u8 | data
 *   kv       [group][generation u32][key] -> version u64 | value
 *
 * Format 1 kept the log as `log` [group][index u64] -> term | type | data, and every group record
 * in `group`; opening such a store moves them in one durable write (`migrateFormat1`).
 *
 * Reads are synchronous (the Raft core needs that) and all go through one read transaction,
 * taken at the first read after each committed batch, so they always see exactly the state the
 * in-memory metadata describes. Writes are planned and group-committed by `WriteBatcher`.
 *
 * Durability: `saveBatch`, `bootstrap`, `installSnapshot` and identity writes resolve only once
 * their transaction is flushed to disk. `applyEntries`, `compact` and `createSnapshot` resolve
 * when committed (visible): after a crash LMDB comes back at some committed transaction, so the
 * applied index and the KV table always agree, and whatever the log lost to a crash is re-sent
 * by the leader, while anything the log had acknowledged was durable before it was. Lazy applies
 * (`applyGroups(…, { lazy: true })`) wait in a write-back buffer in memory, readable, and reach
 * the table with a later flush (kv-overlay.ts); the log keeps their entries until then.
 */
import { randomUUID } from "node:crypto";
import { open, type DatabaseOptions, type RootDatabase, type Transaction } from "lmdb";
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from "../raft/errors.js";
import { EMPTY_BYTES, type ConfState, type Entry, type GroupId, type HardState } from "../raft/types.js";
import type { Snapshot, SnapshotMetadata } from "../raft/types.js";
import { bootstrapState, entryBytes, limitSize } from "../raft/storage.js";
import {
  appliedRecord,
  assertGroupId,
  assertIndex,
  confStateRecord,
  decodeKvValue,
  decodeLogRecord,
  encodeKvValue,
  encodeLogRecord,
  generationEndKey,
  groupEndKey,
  groupStartKey,
  GroupTag,
  groupKey,
  groupKeyTag,
  hardStateRecord,
  kvKey,
  keyGroup,
  kvUserKey,
  logHeadRecord,
  logKeyIndex,
  LOG_PLACE_ENCODER,
  logRecordOf,
  logRecordTerm,
  type LogPlace,
  MAX_GENERATION,
  prefixSuccessor,
  seqKey,
  snapshotMetadataRecord,
  type AppliedState,
  type KvRecord,
} from "./codec.js";
import {
  ApplyOrderError,
  ClusterIdMismatchError,
  GroupDeletingError,
  GroupExistsError,
  LogGapError,
  SnapshotCorruptError,
  SnapshotInProgressError,
  SnapshotNotAppliedError,
  StoreClosedError,
  StoreCorruptError,
  StoreLimitError,
} from "./errors.js";
import {
  distinctGroups,
  EMPTY_GROUP_META,
  isPristine,
  loadGroup,
  recordDb,
  scanLog,
  type GroupMeta,
  type StoreDbs,
} from "./group-meta.js";
import { LogSeqs, PlannedLog, takeOldestGarbage, type PlannedEdit } from "./log-seqs.js";
import { LmdbGroupStorage, type GroupBackend } from "./group-storage.js";
import { SnapshotReader } from "./snapshot-format.js";
import {
  KvOverlay,
  OverlayApply,
  overlayRecord,
  type OverlayAccess,
  type OverlayWrite,
} from "./kv-overlay.js";
import { streamGroupImage } from "./snapshot-stream.js";
import { TailCache } from "./tail-cache.js";
import {
  checkOptions,
  toBytes,
  type AppliedEntry,
  type AppliedInfo,
  type ApplyContext,
  type GroupUpdate,
  type InstallOptions,
  type KeyInput,
  type KvScanOptions,
  type NodeStoreOptions,
  type SnapshotStreamOptions,
  MAX_SCAN_LIMIT,
} from "./types.js";
import { WriteBatcher, type BinaryDb, type JobTx, type WriteBatcherStats } from "./write-batch.js";

const STORE_FORMAT = "2";
const BINARY = { keyEncoding: "binary", encoding: "binary" } as const;
const EMPTY_KEY = new Uint8Array(0);

/**
 * The LMDB map reserved at open (address space, not memory: pages count only once read or
 * written). lmdb-js otherwise maps 128 KiB and doubles the map as the file grows, and it keeps
 * every earlier map until the store closes (readers on other threads may still use them), so the
 * pages read through an old map stay in the process's RSS beside the same pages in the new one:
 * a leader's 30 MB file showed 63 MB of mapped RSS after a minute of c=64 puts. A larger file
 * still grows the map (then once per doubling). A 32-bit board (armhf) has 3 GiB of address
 * space for everything, so it reserves 512 MiB.
 */
export const DEFAULT_MAP_SIZE_BYTES =
  process.arch === "arm" || process.arch === "ia32" ? 512 * 1024 ** 2 : 4 * 1024 ** 3;

/**
 * The tail cache of each group (tail-cache.ts). A leader reads the entries its followers have not
 * acknowledged yet, a few per group under load, so 64 is ~0.8 s of a partition's writes at
 * 5,000 puts/s over 64 partitions; older ones come from LMDB. Each cached entry costs ~250 bytes
 * of heap beside its payload, and V8 lets the heap grow to a multiple of what is live before it
 * collects: 64 instead of 256 entries lowered the leading agent's peak RSS at c=64 puts from
 * 239-248 MB to 209-213 MB in four interleaved pairs, at the same puts/s within the noise
 * (4,702/5,208/5,823/5,277 against 4,768/5,717/4,902/5,564). Over 160,000 such puts no node read
 * an entry from LMDB after start (`ringleader_storage_log_reads_total`).
 */
const DEFAULT_TAIL_CACHE_ENTRIES = 64;
/** ... and at most this many payload bytes (values may be 1 MiB; 65 groups x 256 KiB = 16 MiB). */
const DEFAULT_TAIL_CACHE_BYTES = 256 * 1024;

const MAX_METADATA_NAME = 128;
const MAX_METADATA_BYTES = 64 * 1024;

/** One group's part of an `applyInMemory` call, until every entry of the call has applied. */
interface ApplyPlan {
  readonly staged: Map<string, OverlayWrite>;
  applied: AppliedState;
  confState: ConfState;
  confChanged: boolean;
}

interface StagedImage {
  readonly metadata: SnapshotMetadata;
  readonly generation: number;
}

interface GroupSlot {
  meta: GroupMeta;
  maxGeneration: number;
  storage: LmdbGroupStorage | null;
  staged: StagedImage | null;
  staging: boolean;
  /** Where the live log entries are in the node-wide log (committed state). */
  log: LogSeqs;
  /** Sequences of records below the head (compacted) or of a deleted group, not yet removed. */
  readonly logGarbage: number[];
  /** Set while `deleteGroup` removes the group's data; the group cannot be created meanwhile. */
  deleting: Promise<void> | null;
  readonly cache: TailCache;
  /** Applied writes not in LMDB yet (see kv-overlay.ts); null when the table is up to date. */
  overlay: KvOverlay | null;
}

/** Compacted log records deleted per step of the sweep (its batch is shared with live writes). */
const LOG_SWEEP_STEP = 1024;

export class NodeStore implements GroupBackend {
  private readonly slots = new Map<GroupId, GroupSlot>();
  private readonly writer: WriteBatcher;
  private readonly background = new Set<Promise<void>>();
  /** Log entries and terms read from LMDB: not in their group's tail cache (any more). */
  private logReads = 0;
  /** The read snapshot of the last committed batch, taken when first needed after it (see `view`). */
  private viewTxn: Transaction | null = null;
  private closing = false;
  private nodeIdValue = "";
  private clusterIdValue: string | null = null;
  /** The sequence the next log record takes (records are keyed by it, in write order). */
  private nextSeq = 1;
  /** The background deletion of compacted log records, while it runs (see `sweepLog`). */
  private logSweep: Promise<void> | null = null;
  private logSweepAgain = false;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  readonly maxEntryBytes: number;
  private readonly gcBatchRecords: number;
  /** `NodeStoreOptions.logRetainEntries`; null: only `compact` and `createSnapshot` compact. */
  private readonly logRetainEntries: number | null;
  private readonly onBackgroundError: (err: unknown) => void;
  private readonly applyFlushMs: number;
  private readonly applyFlushRecords: number;
  private readonly applyFlushBytes: number;
  /** The timer that flushes the write-back buffers (see `scheduleFlush`). */
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing = false;
  private readonly overlayAccess: OverlayAccess;

  private constructor(
    private readonly root: RootDatabase,
    private readonly nodeDb: BinaryDb,
    private readonly dbs: StoreDbs,
    private readonly opts: NodeStoreOptions,
  ) {
    this.maxKeyBytes = opts.maxKeyBytes ?? 1024;
    this.maxValueBytes = opts.maxValueBytes ?? 1024 * 1024;
    this.maxEntryBytes = opts.maxEntryBytes ?? 8 * 1024 * 1024;
    this.gcBatchRecords = opts.gcBatchRecords ?? 4096;
    this.logRetainEntries = opts.logRetainEntries ?? null;
    this.onBackgroundError =
      opts.onBackgroundError ??
      ((err) => console.error(`ringleader store: background clean-up failed: ${String(err)}`));
    this.writer = new WriteBatcher(
      root,
      {
        maxPendingJobs: opts.maxPendingWrites ?? 65_536,
        maxBatchBytes: opts.maxBatchBytes ?? 64 * 1024 * 1024,
        lazyDelayMs: opts.applyDelayMs ?? 100,
      },
      () => this.renewView(),
      () => void this.view,
    );
    this.applyFlushMs = opts.applyFlushMs ?? 1000;
    this.applyFlushRecords = opts.applyFlushRecords ?? 8192;
    this.applyFlushBytes = opts.applyFlushBytes ?? 16 * 1024 * 1024;
    this.overlayAccess = {
      maxValueBytes: this.maxValueBytes,
      keyBytes: (key) => this.keyBytes(key),
      read: (group, key, userKey) => this.readKvOf(group, key, userKey),
    };
  }

  static async open(opts: NodeStoreOptions): Promise<NodeStore> {
    checkOptions(opts);
    const root = open({
      path: opts.path,
      // A directory whatever its name: lmdb-js takes a path with an extension (`ringleader.d`)
      // for a file of its own, and then fails on the directory our caller made ("Is a directory").
      noSubdir: false,
      maxDbs: 8,
      encoding: "binary",
      overlappingSync: opts.overlappingSync ?? false,
      mapSize: opts.mapSizeBytes ?? DEFAULT_MAP_SIZE_BYTES,
    });
    const dbs: StoreDbs = {
      group: root.openDB<Buffer, Buffer>("group", BINARY),
      state: root.openDB<Buffer, Buffer>("state", BINARY),
      log: root.openDB<Buffer, Buffer>("entries", BINARY),
      // lmdb-js takes an encoder per database; its typings list the option for the root only.
      logPlaces: root.openDB<LogPlace, Buffer>("entries", {
        keyEncoding: "binary",
        encoder: LOG_PLACE_ENCODER,
      } as DatabaseOptions),
      kv: root.openDB<Buffer, Buffer>("kv", BINARY),
    };
    const nodeDb = root.openDB<Buffer, Buffer>("node", BINARY);
    const store = new NodeStore(root, nodeDb, dbs, opts);
    try {
      await store.init();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  private async init(): Promise<void> {
    const format = this.readNodeString("format");
    if (format === undefined) {
      if (this.readNodeString("nodeId") !== undefined)
        throw new StoreCorruptError("node id without a format");
      const nodeId = (this.opts.newNodeId ?? randomUUID)();
      if (nodeId.length === 0 || nodeId.length > 128)
        throw new RangeError("a node id must be 1..128 characters");
      await this.writer.submit((tx) => {
        tx.put(this.nodeDb, nodeKey("format"), Buffer.from(STORE_FORMAT));
        tx.put(this.nodeDb, nodeKey("nodeId"), Buffer.from(nodeId));
      }, true);
    } else if (format === "1") {
      await this.migrateFormat1();
    } else if (format !== STORE_FORMAT) {
      throw new StoreCorruptError(`store format ${format}, this agent reads ${STORE_FORMAT}`);
    }
    const nodeId = this.readNodeString("nodeId");
    if (nodeId === undefined) throw new StoreCorruptError("no node id");
    this.nodeIdValue = nodeId;
    this.clusterIdValue = this.readNodeString("clusterId") ?? null;

    const log = scanLog(this.dbs.logPlaces, this.view);
    this.nextSeq = log.lastSeq + 1;
    const groups = new Set<GroupId>(log.groups.keys());
    for (const db of [this.dbs.group, this.dbs.state, this.dbs.kv]) {
      for (const g of distinctGroups(db, this.view)) groups.add(g);
    }
    for (const g of groups) {
      const records = log.groups.get(g);
      const slot = this.slot(g);
      if (this.dbs.group.get(groupKey(g, GroupTag.Deleted), { transaction: this.view }) !== undefined) {
        // A deletion that a crash or shutdown interrupted: finish it.
        slot.logGarbage.push(...(records?.seqs ?? []));
        this.startGroupDelete(g);
        continue;
      }
      const loaded = loadGroup(this.dbs, this.view, g, records);
      slot.meta = loaded.meta;
      slot.maxGeneration = loaded.maxGeneration;
      slot.log = loaded.log;
      slot.logGarbage.push(...loaded.logGarbage);
      for (const range of loaded.garbage) this.startKvGc(range.start, range.end);
    }
    this.sweepLog();
  }

  /**
   * Moves a format-1 log (one key range per group) into the node-wide log, and the hard state and
   * applied records into `state`, in one durable write that also records the new format: a crash
   * leaves either the old store or the new one. Each group's entries go in index order, so they
   * keep the order `scanLog` expects.
   */
  private async migrateFormat1(): Promise<void> {
    const old = this.root.openDB<Buffer, Buffer>("log", BINARY);
    this.renewView(); // A read transaction begun before the database was opened cannot see it.
    await this.writer.submit((tx) => {
      let seq = 1;
      for (const { key, value } of old.getRange({ transaction: this.view })) {
        tx.put(this.dbs.log, seqKey(seq++), logRecordOf(keyGroup(key), logKeyIndex(key), value));
        tx.remove(old, Buffer.from(key));
      }
      for (const { key, value } of this.dbs.group.getRange({ transaction: this.view })) {
        const tag = groupKeyTag(key) as GroupTag;
        if (recordDb(this.dbs, tag) === this.dbs.group) continue;
        tx.put(this.dbs.state, Buffer.from(key), value);
        tx.remove(this.dbs.group, Buffer.from(key));
      }
      tx.put(this.nodeDb, nodeKey("format"), Buffer.from(STORE_FORMAT));
    }, true);
  }

  // --------------------------------------------------------------------------------------------
  // Identity

  /** Created on first open and kept for the life of the data directory. */
  get nodeId(): string {
    return this.nodeIdValue;
  }

  get clusterId(): string | null {
    return this.clusterIdValue;
  }

  /** Records the cluster this node joined; durable when it resolves. Joining another is refused. */
  async setClusterId(id: string): Promise<void> {
    this.checkOpen();
    if (id.length === 0 || id.length > 128) throw new RangeError("a cluster id must be 1..128 characters");
    await this.writer.submit((tx) => {
      const stored = tx.read("clusterId", () => this.clusterIdValue);
      if (stored !== null && stored !== id) throw new ClusterIdMismatchError(stored, id);
      tx.put(this.nodeDb, nodeKey("clusterId"), Buffer.from(id));
      tx.write("clusterId", id);
      tx.afterCommit(() => (this.clusterIdValue = id));
    }, true);
  }

  getMetadata(name: string): Uint8Array | undefined {
    this.checkOpen();
    checkMetadataName(name);
    const v = this.nodeDb.get(nodeKey(`meta/${name}`), { transaction: this.view });
    return v === undefined ? undefined : new Uint8Array(v);
  }

  /** Small named values (a few KiB) that must survive restarts; durable when it resolves. */
  async setMetadata(name: string, value: Uint8Array): Promise<void> {
    this.checkOpen();
    checkMetadataName(name);
    if (value.byteLength > MAX_METADATA_BYTES) {
      throw new StoreLimitError("metadata value", value.byteLength, MAX_METADATA_BYTES);
    }
    const copy = Buffer.from(value);
    await this.writer.submit((tx) => tx.put(this.nodeDb, nodeKey(`meta/${name}`), copy), true);
  }

  // --------------------------------------------------------------------------------------------
  // Groups and the Raft log

  /** Groups that have any state on this node, in ascending order. */
  groupIds(): GroupId[] {
    return [...this.slots.entries()]
      .filter(([, s]) => !isPristine(s.meta) && !s.deleting)
      .map(([g]) => g)
      .sort((a, b) => a - b);
  }

  hasGroup(group: GroupId): boolean {
    assertGroupId(group);
    const s = this.slots.get(group);
    return s !== undefined && !isPristine(s.meta) && !s.deleting;
  }

  /** The `Storage` the Raft core reads for `group` (one instance per group). */
  group(group: GroupId): LmdbGroupStorage {
    this.checkOpen();
    assertGroupId(group);
    const slot = this.slot(group);
    if (slot.deleting) throw new GroupDeletingError(group);
    slot.storage ??= new LmdbGroupStorage(group, this);
    return slot.storage;
  }

  /**
   * A brand-new group founded by `voters`, exactly as `MemoryStorage.bootstrap` (the founding
   * log and hard state of `bootstrapState`); refused if the group has any state here. Durable.
   */
  async bootstrap(
    group: GroupId,
    voters: readonly string[],
    learners: readonly string[] = [],
  ): Promise<void> {
    this.checkOpen();
    assertGroupId(group);
    if (this.slots.get(group)?.deleting) throw new GroupDeletingError(group);
    const boot = bootstrapState(voters, learners);
    this.checkEntries(boot.entries);
    await this.writer.submit((tx) => {
      if (!isPristine(this.metaIn(tx, group))) throw new GroupExistsError(group);
      this.planSave(tx, { group, hardState: boot.hardState, entries: boot.entries, snapshot: null });
    }, true);
  }

  /**
   * Persists the Readies of many groups: hard state, entries (truncating a conflicting suffix)
   * and snapshot point, in the order `MemoryStorage` applies them. All updates of one call are
   * all-or-nothing; every call made in the same event-loop turn shares one transaction and one
   * fsync. Resolves only when the data is on disk.
   */
  saveBatch(updates: readonly GroupUpdate[]): Promise<void> {
    this.checkOpen();
    for (const u of updates) {
      assertGroupId(u.group);
      this.checkEntries(u.entries);
      if (u.hardState) checkHardState(u.hardState);
    }
    return this.writer.submit((tx) => {
      for (const u of updates) this.planSave(tx, u);
    }, true);
  }

  /** Drops log entries up to and including `index`, which must be applied (as `MemoryStorage.compact`). */
  compact(group: GroupId, index: number): Promise<void> {
    this.checkOpen();
    assertGroupId(group);
    assertIndex("compact index", index);
    return this.writer.submit((tx) => {
      this.planFlush(tx, group); // Buffered applies count as applied.
      const meta = this.metaIn(tx, group);
      if (index <= meta.head.index) throw new CompactedError(index);
      if (index > meta.lastIndex) throw new UnavailableError(index);
      if (index > meta.applied.index) throw new SnapshotNotAppliedError(index, meta.applied.index);
      this.setMetaIn(tx, group, this.planCompact(tx, group, meta, index));
    }, false);
  }

  /**
   * Records the snapshot point `index` (already applied) with its membership and compacts the
   * log up to `index - retainEntries` (kept entries let a slow follower catch up without a
   * snapshot). The image itself is the live KV table, streamed by `snapshotChunks`.
   */
  createSnapshot(
    group: GroupId,
    index: number,
    confState: ConfState,
    opts: { retainEntries?: number } = {},
  ): Promise<Snapshot> {
    this.checkOpen();
    assertGroupId(group);
    assertIndex("snapshot index", index);
    const retain = opts.retainEntries ?? 0;
    assertIndex("retainEntries", retain);
    const cs: ConfState = { voters: [...confState.voters], learners: [...confState.learners] };
    return this.writer.submit((tx) => {
      // The log keeps every entry above the table's applied index (a crash replays them), so the
      // buffer goes to the table first.
      this.planFlush(tx, group);
      let meta = this.metaIn(tx, group);
      if (index <= meta.snapshot.index) throw new SnapshotOutOfDateError(index);
      if (index > meta.lastIndex) throw new UnavailableError(index);
      if (index > meta.applied.index) throw new SnapshotNotAppliedError(index, meta.applied.index);
      const metadata: SnapshotMetadata = { index, term: this.termIn(tx, group, meta, index), confState: cs };
      tx.put(this.dbs.group, groupKey(group, GroupTag.Snapshot), snapshotMetadataRecord(metadata));
      meta = { ...meta, snapshot: metadata };
      const compactTo = index - retain;
      if (compactTo > meta.head.index) meta = this.planCompact(tx, group, meta, compactTo);
      this.setMetaIn(tx, group, meta);
      return { metadata, data: EMPTY_BYTES };
    }, false);
  }

  // --------------------------------------------------------------------------------------------
  // State machine

  /** The applied index, including applies still buffered in memory (see kv-overlay.ts). */
  appliedIndex(group: GroupId): number {
    return this.appliedOf(group).index;
  }

  appliedState(group: GroupId): AppliedInfo {
    const { applied, confState } = this.appliedView(group);
    return { index: applied.index, term: applied.term, confState };
  }

  /**
   * Applies committed entries to the group's KV table and records the applied index in the same
   * transaction, so a crash never applies an entry twice or skips one. Entries at or below the
   * applied index are skipped (a replay after restart); a hole is an `ApplyOrderError`. `apply`
   * runs during this call and must be synchronous and deterministic; if it throws, nothing of
   * this call is applied. Resolves when committed.
   *
   * An apply starts from the applied state as committed, plus earlier applies: not from a write
   * still queued. After a save that carries a snapshot point, apply once that save resolved (as
   * the host does: it applies a Ready's entries after the Ready's save).
   */
  applyEntries<R>(
    group: GroupId,
    entries: readonly Entry[],
    apply: (entry: Entry, ctx: ApplyContext) => R,
  ): Promise<AppliedEntry<R>[]> {
    try {
      this.checkOpen();
      assertGroupId(group);
      const [results] = this.applyInMemory([{ group, entries, apply }]);
      return this.flushGroups([group], false).then(() => results!);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * `applyEntries` for many groups in one call: all or nothing (if any group's apply throws, no
   * group's writes of this call are applied), one commit.
   *
   * `lazy`: the writes are applied in memory only, readable at once (`kvGet`, `kvScan`,
   * `appliedIndex`), and go to LMDB with the next flush of the write-back buffer: after
   * `applyFlushMs`, or once the buffers hold `applyFlushRecords`, or before a snapshot. Resolves
   * at once. For a caller that answered the writers already: a crash loses only what the log
   * still holds and the node applies again after its restart.
   */
  applyGroups(
    items: readonly {
      group: GroupId;
      entries: readonly Entry[];
      apply: (entry: Entry, ctx: ApplyContext) => void;
    }[],
    opts: { lazy?: boolean } = {},
  ): Promise<void> {
    try {
      this.checkOpen();
      for (const it of items) assertGroupId(it.group);
      this.applyInMemory(items);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (!opts.lazy)
      return this.flushGroups(
        items.map((it) => it.group),
        false,
      );
    this.scheduleFlush();
    return Promise.resolve();
  }

  /** Applies to the groups' write-back buffers; nothing changes unless every entry applies. */
  private applyInMemory<R>(
    items: readonly {
      group: GroupId;
      entries: readonly Entry[];
      apply: (entry: Entry, ctx: ApplyContext) => R;
    }[],
  ): AppliedEntry<R>[][] {
    const plans = new Map<GroupId, ApplyPlan>();
    const results = items.map((it) => this.planApply(plans, it.group, it.entries, it.apply));
    for (const [group, plan] of plans) {
      if (plan.staged.size === 0 && plan.applied.index === this.appliedOf(group).index) continue;
      const slot = this.slot(group);
      const overlay = (slot.overlay ??= new KvOverlay(plan.applied, plan.confState));
      for (const [at, w] of plan.staged) overlay.set(at, w);
      overlay.applied = plan.applied;
      overlay.confState = plan.confState;
      overlay.confChanged ||= plan.confChanged;
    }
    return results;
  }

  private planApply<R>(
    plans: Map<GroupId, ApplyPlan>,
    group: GroupId,
    entries: readonly Entry[],
    apply: (entry: Entry, ctx: ApplyContext) => R,
  ): AppliedEntry<R>[] {
    let plan = plans.get(group);
    if (!plan) {
      plan = { staged: new Map(), ...this.appliedView(group), confChanged: false };
      plans.set(group, plan);
    }
    const p = plan;
    const results: AppliedEntry<R>[] = [];
    for (const entry of entries) {
      if (entry.index <= p.applied.index) continue;
      if (entry.index !== p.applied.index + 1) throw new ApplyOrderError(p.applied.index, entry.index);
      const ctx = new OverlayApply(this.overlayAccess, p.staged, group, p.applied.generation, entry.index);
      results.push({ index: entry.index, result: apply(entry, ctx) });
      p.applied = { index: entry.index, term: entry.term, generation: p.applied.generation };
      if (ctx.confState) {
        p.confState = ctx.confState;
        p.confChanged = true;
      }
    }
    return results;
  }

  /** Starts a flush when the buffers are full, else makes sure one comes within `applyFlushMs`. */
  private scheduleFlush(): void {
    const { records, bytes } = this.buffered();
    if (records >= this.applyFlushRecords || bytes >= this.applyFlushBytes) {
      this.flushSoon();
      return;
    }
    if (this.flushTimer !== null || this.closing) return;
    this.flushTimer = setTimeout(() => this.flushSoon(), this.applyFlushMs);
    this.flushTimer.unref();
  }

  /** One flush of every group's buffer at a time; a lazy job (it rides on the next save). */
  private flushSoon(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.flushing || this.closing) return;
    this.flushing = true;
    this.runBackground(() =>
      this.flushGroups(null, true).finally(() => {
        this.flushing = false;
        if (this.buffered().records > 0) this.scheduleFlush();
      }),
    );
  }

  /**
   * Writes the buffers of `groups` (null: all) to LMDB in one job, and bounds their logs if the
   * store does (`logRetainEntries`); resolves when committed.
   */
  private flushGroups(groups: readonly GroupId[] | null, lazy: boolean): Promise<void> {
    return this.writer.submit(
      (tx) => {
        for (const g of groups ?? [...this.slots.keys()]) {
          this.planFlush(tx, g);
          if (this.logRetainEntries !== null) this.planRetention(tx, g, this.logRetainEntries);
        }
      },
      false,
      lazy,
    );
  }

  /** Whether the store bounds the groups' logs itself (`NodeStoreOptions.logRetainEntries`). */
  get compactsOwnLog(): boolean {
    return this.logRetainEntries !== null;
  }

  /**
   * Compacts the group's log at a flush (see `NodeStoreOptions.logRetainEntries`): everything
   * applied to the table except its last `retain` entries, and of those the ones older than the
   * node's last `retain` x (groups) records. A snapshot at the table's applied index comes with it.
   *
   * Why at the flush, for every group at once: the table has just taken the buffer, so a snapshot
   * costs no flush of its own (one of a busy group's buffer rewrites most of its table's pages,
   * at any size), and the groups' compacted records, interleaved in the node-wide log, become
   * garbage together: whole pages of it, which `sweepLog` deletes once each, rather than a
   * group's records at a time, one or two per page, every page rewritten by each of its groups.
   * The window in records keeps an idle group's old entries (the meta group's, say) from holding
   * back the point behind which every record is garbage. With 64 partitions at c=64 puts, the
   * LMDB file held 11 MB against 28-29 MB with a snapshot every 1,000 entries per group, for 6 %
   * fewer bytes written per put (`WARMUP=40 DURATION=30 test/bench/put-cost.sh`, two rounds).
   */
  private planRetention(tx: JobTx, group: GroupId, retain: number): void {
    const slot = this.slots.get(group);
    if (!slot || slot.deleting) return;
    let meta = this.metaIn(tx, group);
    const { applied } = meta;
    // Committed entries only: an entry at or below the applied index is never overwritten, so the
    // committed view knows where each one is even while this batch appends.
    const outOfWindow = slot.log.lastIndexBefore(this.nextSeq - retain * this.slots.size);
    const compactTo = Math.min(applied.index, Math.max(applied.index - retain, outOfWindow));
    if (compactTo <= meta.head.index) return;
    if (applied.index > meta.snapshot.index) {
      const snapshot: SnapshotMetadata = {
        index: applied.index,
        term: applied.term,
        confState: meta.confState,
      };
      tx.put(this.dbs.group, groupKey(group, GroupTag.Snapshot), snapshotMetadataRecord(snapshot));
      meta = { ...meta, snapshot };
    }
    this.setMetaIn(tx, group, this.planCompact(tx, group, meta, compactTo));
  }

  /**
   * Plans writing a group's buffer: its records and its applied index (and membership) in the
   * same transaction. Once committed the table holds them, and the buffer forgets those not
   * written again meanwhile.
   */
  private planFlush(tx: JobTx, group: GroupId): void {
    const slot = this.slots.get(group);
    const overlay = slot?.overlay;
    if (!slot || !overlay || slot.deleting) return;
    const meta = this.metaIn(tx, group);
    // Planned already in this batch, or a snapshot swapped the table (the buffer goes with it).
    if (meta.applied.generation !== overlay.applied.generation || overlay.applied.index <= meta.applied.index)
      return;
    const flushed = new Map(overlay.writes);
    const { applied, confState } = overlay;
    for (const w of flushed.values()) {
      if (w.value) tx.put(this.dbs.kv, w.key, w.value);
      else tx.remove(this.dbs.kv, w.key);
    }
    tx.put(this.dbs.state, groupKey(group, GroupTag.Applied), appliedRecord(applied));
    if (overlay.confChanged) {
      tx.put(this.dbs.group, groupKey(group, GroupTag.ConfState), confStateRecord(confState));
    }
    this.setMetaIn(tx, group, { ...meta, applied, confState });
    tx.afterCommit(() => {
      overlay.forget(flushed);
      if (overlay.confState === confState) overlay.confChanged = false;
      if (slot.overlay === overlay && overlay.writes.size === 0 && overlay.applied.index === applied.index) {
        slot.overlay = null;
      }
    });
  }

  /** What the write-back buffers of all groups hold (a sum over some 65 groups: cheap). */
  private buffered(): { records: number; bytes: number } {
    let records = 0;
    let bytes = 0;
    for (const slot of this.slots.values()) {
      records += slot.overlay?.writes.size ?? 0;
      bytes += slot.overlay?.bytes ?? 0;
    }
    return { records, bytes };
  }

  kvGet(group: GroupId, key: KeyInput): KvRecord | undefined {
    this.checkOpen();
    assertGroupId(group);
    const userKey = this.keyBytes(key);
    return this.readKvOf(group, kvKey(group, this.metaOf(group).applied.generation, userKey), userKey);
  }

  /** Records in key order, at most `limit` (<= MAX_SCAN_LIMIT). */
  kvScan(group: GroupId, opts: KvScanOptions): KvRecord[] {
    this.checkOpen();
    assertGroupId(group);
    if (!Number.isInteger(opts.limit) || opts.limit < 1 || opts.limit > MAX_SCAN_LIMIT) {
      throw new RangeError(`scan limit must be in [1, ${MAX_SCAN_LIMIT}], got ${opts.limit}`);
    }
    const gen = this.metaOf(group).applied.generation;
    const prefix = opts.prefix === undefined ? EMPTY_KEY : toBytes(opts.prefix);
    let start = kvKey(group, gen, prefix);
    if (opts.after !== undefined) {
      const after = toBytes(opts.after);
      // The smallest key strictly greater than `after` is `after` followed by a zero byte.
      const afterStart = kvKey(group, gen, Buffer.concat([after, Buffer.of(0)]));
      if (Buffer.compare(afterStart, start) > 0) start = afterStart;
    }
    const next = prefixSuccessor(prefix);
    const end = next === null ? generationEndKey(group, gen) : kvKey(group, gen, next);
    const out: KvRecord[] = [];
    if (Buffer.compare(start, end) >= 0) return out;
    // The table's records, with the buffered writes of the range merged in (they win).
    const pending = this.slots.get(group)?.overlay?.range(start, end) ?? [];
    let i = 0;
    const takePending = (): void => {
      const record = overlayRecord(pending[i++]!);
      if (record) out.push(record);
    };
    for (const { key, value } of this.dbs.kv.getRange({
      start,
      end,
      ...(pending.length === 0 ? { limit: opts.limit } : {}),
      transaction: this.view,
    })) {
      while (i < pending.length && out.length < opts.limit && Buffer.compare(pending[i]!.key, key) < 0) {
        takePending();
      }
      if (out.length >= opts.limit) break;
      if (i < pending.length && Buffer.compare(pending[i]!.key, key) === 0) takePending();
      else out.push(decodeKvValue(new Uint8Array(kvUserKey(key)), value));
      if (out.length >= opts.limit) break;
    }
    while (i < pending.length && out.length < opts.limit) takePending();
    return out;
  }

  // --------------------------------------------------------------------------------------------
  // Snapshots

  /**
   * Streams the group's KV table from ONE read transaction, so the image is consistent while
   * writes go on. The first chunk is a header naming the applied index, term and membership of
   * the image (read it with `readSnapshotHeader`); it may be later than `snapshot().metadata`,
   * and it is the metadata a `snap` message to a follower should carry. Holding the transaction
   * keeps LMDB from reusing pages freed meanwhile, so consume the stream promptly.
   */
  async *snapshotChunks(
    group: GroupId,
    opts: SnapshotStreamOptions,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    this.checkOpen();
    assertGroupId(group);
    const maxChunkBytes = opts.maxChunkBytes;
    if (!Number.isInteger(maxChunkBytes) || maxChunkBytes < 1024 || maxChunkBytes > 64 * 1024 * 1024) {
      throw new RangeError("maxChunkBytes must be in [1 KiB, 64 MiB]");
    }
    yield* streamGroupImage(this.root, this.dbs, group, maxChunkBytes);
  }

  /**
   * Streams an image into a staging generation of the group's KV table beside the live one.
   * Nothing visible changes; the image is swapped in, atomically with the log reset, by the
   * `saveBatch` whose snapshot has the same index and term (the Ready that follows the core
   * accepting the snapshot), or at once by `installSnapshot`. If the process dies half way, the
   * staged records are garbage and are deleted on the next open.
   */
  async stageSnapshot(
    group: GroupId,
    metadata: SnapshotMetadata,
    chunks: AsyncIterable<Uint8Array>,
    opts: InstallOptions = {},
  ): Promise<void> {
    this.checkOpen();
    assertGroupId(group);
    const slot = this.slot(group);
    if (slot.deleting) throw new GroupDeletingError(group);
    if (slot.staging) throw new SnapshotInProgressError(group);
    if (slot.maxGeneration >= MAX_GENERATION)
      throw new StoreLimitError("KV generation", slot.maxGeneration, MAX_GENERATION);
    slot.staging = true;
    const generation = ++slot.maxGeneration;
    try {
      await this.stageInto(group, generation, metadata, chunks, opts);
      const previous = slot.staged;
      slot.staged = { metadata, generation };
      if (previous)
        this.startKvGc(
          kvKey(group, previous.generation, EMPTY_KEY),
          generationEndKey(group, previous.generation),
        );
    } catch (err) {
      this.startKvGc(kvKey(group, generation, EMPTY_KEY), generationEndKey(group, generation));
      throw err;
    } finally {
      slot.staging = false;
    }
  }

  /**
   * Replaces the group's KV table and log with a snapshot image in one durable transaction,
   * after staging it completely (the old state stays until the new one is whole). Refused with
   * `SnapshotOutOfDateError` when the node has already committed that far or its log already
   * holds the snapshot's entry (it should catch up from the log instead, as etcd's raft does).
   * The commit index is raised to the snapshot index, and the term when it is behind.
   */
  async installSnapshot(
    group: GroupId,
    metadata: SnapshotMetadata,
    chunks: AsyncIterable<Uint8Array>,
    opts: InstallOptions = {},
  ): Promise<void> {
    this.checkOpen();
    assertGroupId(group);
    this.checkInstallable(group, this.metaOf(group), metadata, null);
    await this.stageSnapshot(group, metadata, chunks, opts);
    try {
      await this.writer.submit((tx) => {
        this.planFlush(tx, group); // As in planSave.
        let meta = this.metaIn(tx, group);
        this.checkInstallable(group, meta, metadata, tx);
        meta = this.planSnapshotReset(tx, group, meta, metadata);
        const hs = meta.hardState;
        if (hs.commit < metadata.index || hs.term < metadata.term) {
          const raised: HardState =
            hs.term < metadata.term
              ? { term: metadata.term, vote: "", commit: Math.max(hs.commit, metadata.index) }
              : { ...hs, commit: Math.max(hs.commit, metadata.index) };
          tx.put(this.dbs.state, groupKey(group, GroupTag.HardState), hardStateRecord(raised));
          meta = { ...meta, hardState: raised };
        }
        this.setMetaIn(tx, group, meta);
      }, true);
    } catch (err) {
      this.discardStagedSnapshot(group);
      throw err;
    }
  }

  /**
   * Deletes everything the group has on this node (records, log, every KV generation): for a
   * replica that the group removed and the ring moved elsewhere. The caller must have stopped
   * running the group. A durable tombstone goes first, in the same write that drops the group's
   * records, so the group reads as absent at once and a crash half way resumes the deletion on
   * the next open; the log and the KV table then go in bounded batches. Until it resolves the
   * group cannot be created again (`GroupDeletingError`). Deleting an absent group does nothing.
   */
  deleteGroup(group: GroupId): Promise<void> {
    this.checkOpen();
    assertGroupId(group);
    const slot = this.slot(group);
    if (slot.deleting) return slot.deleting;
    if (slot.staging) return Promise.reject(new SnapshotInProgressError(group));
    slot.overlay = null; // The group no longer runs: nothing is applied to it any more.
    const first = this.writer.submit((tx) => {
      for (const tag of Object.values(GroupTag)) {
        if (tag !== GroupTag.Deleted) tx.remove(recordDb(this.dbs, tag), groupKey(group, tag));
      }
      tx.put(this.dbs.group, groupKey(group, GroupTag.Deleted), Buffer.of(1));
      this.setMetaIn(tx, group, EMPTY_GROUP_META);
      tx.afterCommit(() => {
        slot.storage = null;
        slot.staged = null;
        slot.cache.clear();
        slot.logGarbage.push(...slot.log.clear());
        // Its oldest records may have held back the other groups' clean-up.
        this.sweepLog();
      });
    }, true);
    return this.startGroupDelete(group, first);
  }

  /** Whether `deleteGroup` is still removing the group's data. */
  isDeleting(group: GroupId): boolean {
    return (this.slots.get(group)?.deleting ?? null) !== null;
  }

  private startGroupDelete(group: GroupId, first: Promise<void> = Promise.resolve()): Promise<void> {
    const slot = this.slot(group);
    const run = (async () => {
      await first;
      // The tombstone stays until the end: if closed half way, the next open finishes the job.
      await this.removeLogGarbage(slot);
      let removed = this.gcBatchRecords;
      while (removed === this.gcBatchRecords) {
        if (this.closing) return;
        removed = await this.writer.submit(
          (tx) => this.removeRange(tx, this.dbs.kv, groupStartKey(group), groupEndKey(group)),
          false,
        );
      }
      await this.writer.submit((tx) => {
        tx.remove(this.dbs.group, groupKey(group, GroupTag.Deleted));
        tx.afterCommit(() => (slot.maxGeneration = 0));
      }, true);
    })();
    slot.deleting = run;
    const done = run.finally(() => {
      if (slot.deleting === run) slot.deleting = null;
    });
    this.runBackground(() => done);
    return done;
  }

  /** Drops a staged image the core did not accept. */
  discardStagedSnapshot(group: GroupId): void {
    const slot = this.slots.get(group);
    const staged = slot?.staged;
    if (!slot || !staged) return;
    slot.staged = null;
    this.startKvGc(kvKey(group, staged.generation, EMPTY_KEY), generationEndKey(group, staged.generation));
  }

  // --------------------------------------------------------------------------------------------
  // Lifecycle

  stats(): Readonly<WriteBatcherStats & { bufferedApplies: number; logReads: number }> {
    return { ...this.writer.stats, bufferedApplies: this.buffered().records, logReads: this.logReads };
  }

  /** Resolves once queued writes and background clean-up (log compaction, old KV tables) are done. */
  async settle(): Promise<void> {
    await this.flushGroups(null, false);
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await this.writer.idle();
  }

  /** Waits for queued writes, stops background clean-up (it resumes on next open), closes LMDB. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    // Buffered applies go to disk (a restart would apply them again from the log otherwise).
    if (!this.writer.failed)
      await this.flushGroups(null, false).catch((err: unknown) => this.onBackgroundError(err));
    await this.writer.close();
    this.viewTxn?.done();
    this.viewTxn = null;
    await this.root.close();
  }

  // --------------------------------------------------------------------------------------------
  // GroupBackend: what LmdbGroupStorage reads through.

  metaOf(group: GroupId): GroupMeta {
    return this.slots.get(group)?.meta ?? EMPTY_GROUP_META;
  }

  readEntries(group: GroupId, lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkOpen();
    const cached = this.slots.get(group)?.cache.range(lo, hi);
    if (cached) return limitSize(cached, maxBytes);
    const out: Entry[] = [];
    let size = 0;
    for (let index = lo; index < hi; index++) {
      const e = decodeLogRecord(group, index, this.logRecord(group, index));
      size += entryBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    this.logReads += out.length;
    return out;
  }

  readTerm(group: GroupId, index: number): number {
    this.checkOpen();
    const cached = this.slots.get(group)?.cache.get(index);
    if (cached) return cached.term;
    this.logReads++;
    return logRecordTerm(group, index, this.logRecord(group, index));
  }

  private logRecord(group: GroupId, index: number): Buffer {
    const seq = this.slots.get(group)?.log.seqOf(index);
    const value = seq === undefined ? undefined : this.dbs.log.get(seqKey(seq), { transaction: this.view });
    if (value === undefined) throw new StoreCorruptError(`group ${group}: log entry ${index} is missing`);
    return value;
  }

  save(update: GroupUpdate): Promise<void> {
    return this.saveBatch([update]);
  }

  // --------------------------------------------------------------------------------------------
  // Planning (runs inside a batch; see write-batch.ts)

  private planSave(tx: JobTx, u: GroupUpdate): void {
    if (this.slots.get(u.group)?.deleting) throw new GroupDeletingError(u.group);
    // A snapshot point resets the log: buffered applies must not need it any more.
    if (u.snapshot) this.planFlush(tx, u.group);
    let meta = this.metaIn(tx, u.group);
    if (u.snapshot) {
      const s = u.snapshot.metadata;
      if (s.index < meta.snapshot.index) throw new SnapshotOutOfDateError(s.index);
      if (s.index === meta.snapshot.index) {
        // The same point again is what follows `installSnapshot`: the Ready of the accepted
        // snapshot. Anything else at that index is out of date, as in MemoryStorage.
        if (s.term !== meta.snapshot.term || s.index === 0) throw new SnapshotOutOfDateError(s.index);
      } else {
        meta = this.planSnapshotReset(tx, u.group, meta, s);
      }
    }
    if (u.entries.length > 0) meta = this.planAppend(tx, u.group, meta, u.entries);
    if (u.hardState) {
      tx.put(this.dbs.state, groupKey(u.group, GroupTag.HardState), hardStateRecord(u.hardState));
      meta = { ...meta, hardState: u.hardState };
    }
    this.setMetaIn(tx, u.group, meta);
  }

  private planAppend(tx: JobTx, group: GroupId, meta: GroupMeta, entries: readonly Entry[]): GroupMeta {
    const first = meta.head.index + 1;
    const firstNew = entries[0]!.index;
    const lastNew = firstNew + entries.length - 1;
    if (lastNew < first) return meta; // All of it is already compacted.
    const fresh = first > firstNew ? entries.slice(first - firstNew) : entries;
    const start = fresh[0]!.index;
    if (start > meta.lastIndex + 1) throw new LogGapError(meta.lastIndex, start);
    // The tail cache keeps the decoded view of exactly the bytes written (no second copy).
    const written: Entry[] = [];
    const seqs: number[] = [];
    for (const e of fresh) {
      // Taken while planning: a job that throws later only leaves a gap in the numbering.
      const seq = this.nextSeq++;
      const value = encodeLogRecord(group, e);
      tx.put(this.dbs.log, seqKey(seq), value);
      tx.write(termSlot(group, e.index), e.term);
      seqs.push(seq);
      written.push(decodeLogRecord(group, e.index, value));
    }
    // Whatever the log held from `start` on (a conflicting suffix, or the same entries written
    // again) is removed in this transaction.
    const cache = this.slot(group).cache;
    this.editLog(tx, group, (log) => log.edit(start, seqs), null);
    tx.afterCommit(() => cache.append(written));
    return { ...meta, lastIndex: lastNew };
  }

  /**
   * Plans an edit of the group's log (see log-seqs.ts): removes the records it drops in this
   * transaction and applies it to the in-memory view once committed. With `garbageThrough`, the
   * entries at or below that index become garbage then, for the background clean-up.
   */
  private editLog(
    tx: JobTx,
    group: GroupId,
    plan: (log: PlannedLog) => PlannedEdit,
    garbageThrough: number | null,
  ): void {
    const slot = this.slot(group);
    const { view, edit, dropped } = plan(tx.read(`l${group}`, () => PlannedLog.of(slot.log)));
    for (const seq of dropped) tx.remove(this.dbs.log, seqKey(seq));
    tx.write(`l${group}`, view);
    tx.afterCommit(() => {
      const oldest = slot.log.firstSeq;
      slot.log.apply(edit);
      if (garbageThrough !== null) this.dropLogThrough(group, garbageThrough);
      // A conflict that replaced the whole log moved its oldest record, and one that dropped
      // records shortened the live log, which bounds the garbage (see `sweepLog`).
      else if (slot.log.firstSeq !== oldest || dropped.length > 0) this.sweepLog();
    });
  }

  /** After a commit that moved the head to `index`: the entries up to it are garbage now. */
  private dropLogThrough(group: GroupId, index: number): void {
    const slot = this.slot(group);
    slot.cache.dropThrough(index);
    const dropped = slot.log.dropThrough(index);
    if (dropped.length === 0) return;
    slot.logGarbage.push(...dropped);
    this.sweepLog();
  }

  /**
   * Moves the log to a snapshot point: every entry goes, the head becomes the snapshot, and a
   * staged image with the same index and term becomes the live KV table in the same write.
   */
  private planSnapshotReset(tx: JobTx, group: GroupId, meta: GroupMeta, s: SnapshotMetadata): GroupMeta {
    if (s.index <= meta.head.index) {
      // The head only moves forward: below it, entries are being deleted in the background.
      throw new SnapshotOutOfDateError(s.index);
    }
    const confState: ConfState = { voters: [...s.confState.voters], learners: [...s.confState.learners] };
    const metadata: SnapshotMetadata = { index: s.index, term: s.term, confState };
    // Entries above the new head are deleted now; those below it with the rest of the compacted log.
    this.editLog(tx, group, (log) => log.edit(s.index + 1, []), s.index);
    const head = { index: s.index, term: s.term };
    tx.put(this.dbs.group, groupKey(group, GroupTag.LogHead), logHeadRecord(head));
    tx.put(this.dbs.group, groupKey(group, GroupTag.Snapshot), snapshotMetadataRecord(metadata));
    tx.put(this.dbs.group, groupKey(group, GroupTag.ConfState), confStateRecord(confState));
    let applied: AppliedState = meta.applied;
    const slot = this.slot(group);
    tx.afterCommit(() => slot.cache.clear());
    const staged = slot.staged;
    // Never swap in an image older than what is applied: that would undo applied entries.
    if (
      staged &&
      staged.metadata.index === s.index &&
      staged.metadata.term === s.term &&
      s.index > this.appliedIndexIn(meta, group)
    ) {
      const old = meta.applied.generation;
      applied = { index: s.index, term: s.term, generation: staged.generation };
      tx.put(this.dbs.state, groupKey(group, GroupTag.Applied), appliedRecord(applied));
      tx.afterCommit(() => {
        // Buffered writes were of entries below the image (at most the commit index, which the
        // image is past) and of the old table.
        slot.overlay = null;
        if (slot.staged === staged) slot.staged = null;
        this.startKvGc(kvKey(group, old, EMPTY_KEY), generationEndKey(group, old));
      });
    }
    return { ...meta, head, lastIndex: s.index, snapshot: metadata, confState, applied };
  }

  /** Moves the head to `index`; the entries below are deleted by a background task. */
  private planCompact(tx: JobTx, group: GroupId, meta: GroupMeta, index: number): GroupMeta {
    const head = { index, term: this.termIn(tx, group, meta, index) };
    tx.put(this.dbs.group, groupKey(group, GroupTag.LogHead), logHeadRecord(head));
    tx.afterCommit(() => this.dropLogThrough(group, index));
    return { ...meta, head };
  }

  private checkInstallable(group: GroupId, meta: GroupMeta, m: SnapshotMetadata, tx: JobTx | null): void {
    if (
      m.index <= meta.hardState.commit ||
      m.index <= this.appliedIndexIn(meta, group) ||
      m.index <= meta.head.index
    ) {
      throw new SnapshotOutOfDateError(m.index);
    }
    if (m.index <= meta.lastIndex) {
      const term = tx ? this.termIn(tx, group, meta, m.index) : this.readTerm(group, m.index);
      if (term === m.term) throw new SnapshotOutOfDateError(m.index);
    }
  }

  private async stageInto(
    group: GroupId,
    generation: number,
    metadata: SnapshotMetadata,
    chunks: AsyncIterable<Uint8Array>,
    opts: InstallOptions,
  ): Promise<void> {
    const reader = new SnapshotReader({
      maxChunkBytes: opts.maxChunkBytes ?? 2 * this.maxValueBytes + 64 * 1024,
      maxKeyBytes: this.maxKeyBytes,
      maxValueBytes: this.maxValueBytes,
    });
    let sawHeader = false;
    for await (const chunk of chunks) {
      opts.signal?.throwIfAborted();
      this.checkOpen();
      const records = reader.feed(chunk);
      if (!sawHeader) {
        sawHeader = true;
        const h = reader.metadata!;
        if (
          h.index !== metadata.index ||
          h.term !== metadata.term ||
          !sameConf(h.confState, metadata.confState)
        ) {
          throw new SnapshotCorruptError(
            `stream is of index ${h.index} term ${h.term}, expected index ${metadata.index} term ${metadata.term}`,
          );
        }
      }
      if (records.length === 0) continue;
      // One batch per chunk, awaited before the next is read: memory stays at one chunk.
      await this.writer.submit((tx) => {
        for (const r of records)
          tx.put(this.dbs.kv, kvKey(group, generation, r.key), encodeKvValue(r.version, r.value));
      }, false);
    }
    reader.finish();
  }

  // --------------------------------------------------------------------------------------------
  // Background clean-up: bounded steps, each in a batch of its own or the next one, stopped by close().

  /**
   * Deletes compacted log records, oldest first, in bounded steps. Which ones, and when:
   *
   * The 64 partitions' entries are interleaved in the one node-wide log, ~25 to a 4 KiB page. A
   * partition's compaction (every `snapshotEntries` of its entries) used to delete its records at
   * once: one or two per page across the whole live log, so every page was rewritten by each of
   * the ~25 partitions it holds records of before it was finally empty: ~10 KB of the cluster's
   * ~30 KB of disk writes per put at c=64 (`WARMUP=60 DURATION=30 test/bench/put-cost.sh`).
   *
   * So records are deleted in log order instead: those older than every group's oldest live record
   * as soon as there are any (that is a run of whole pages), and when the garbage above that point
   * outgrows the live log (an idle group's old records hold the point back), the oldest garbage,
   * as much as is over: a little after each compaction, by then mostly whole pages as well, rather
   * than a burst now and then that would hold up the writes sharing its batches. The log on disk
   * stays under about twice its live size.
   */
  private sweepLog(): void {
    if (this.logSweep) {
      this.logSweepAgain = true;
      return;
    }
    if (this.closing) return;
    const run = (async () => {
      do {
        this.logSweepAgain = false;
        for (;;) {
          if (this.closing) return;
          const seqs = this.logSweepStep();
          if (seqs.length === 0) break;
          // Lazy: a step rides on the next save's commit rather than making one of its own.
          await this.writer.submit(
            (tx) => {
              for (const seq of seqs) tx.remove(this.dbs.log, seqKey(seq));
            },
            false,
            true,
          );
        }
      } while (this.logSweepAgain);
    })();
    this.logSweep = run;
    this.runBackground(() =>
      run.finally(() => {
        this.logSweep = null;
        // Garbage that came after the last step looked, before this run was over.
        if (this.logSweepAgain) this.sweepLog();
      }),
    );
  }

  /** The records the next step of `sweepLog` deletes (taken out of the groups' garbage). */
  private logSweepStep(): number[] {
    let oldestLive = this.nextSeq;
    let live = 0;
    let garbage = 0;
    const queues: number[][] = [];
    for (const slot of this.slots.values()) {
      const first = slot.log.firstSeq;
      if (first !== undefined && first < oldestLive) oldestLive = first;
      live += slot.log.size;
      // A group being deleted removes its own records (`startGroupDelete`).
      if (slot.deleting !== null || slot.logGarbage.length === 0) continue;
      garbage += slot.logGarbage.length;
      queues.push(slot.logGarbage);
    }
    const step = Math.min(this.gcBatchRecords, LOG_SWEEP_STEP);
    const behind = takeOldestGarbage(queues, oldestLive, step);
    if (behind.length > 0) return behind;
    const bound = Math.max(step, live);
    return garbage > bound
      ? takeOldestGarbage(queues, Number.POSITIVE_INFINITY, Math.min(step, garbage - bound))
      : [];
  }

  private startKvGc(start: Buffer, end: Buffer): void {
    if (this.closing) return;
    this.runBackground(async () => {
      let removed = this.gcBatchRecords;
      while (removed === this.gcBatchRecords && !this.closing) {
        removed = await this.writer.submit((tx) => this.removeRange(tx, this.dbs.kv, start, end), false);
      }
    });
  }

  /** Removes a deleted group's log records, a bounded batch at a time, until none or closing. */
  private async removeLogGarbage(slot: GroupSlot): Promise<void> {
    while (slot.logGarbage.length > 0 && !this.closing) {
      await this.writer.submit((tx) => {
        // Taken off the list as the batch is planned: a later step never removes them again.
        for (const seq of slot.logGarbage.splice(0, this.gcBatchRecords))
          tx.remove(this.dbs.log, seqKey(seq));
      }, false);
    }
  }

  private removeRange(tx: JobTx, db: BinaryDb, start: Buffer, end: Buffer): number {
    let n = 0;
    for (const key of db.getKeys({ start, end, limit: this.gcBatchRecords, transaction: this.view })) {
      tx.remove(db, Buffer.from(key));
      n++;
    }
    return n;
  }

  private runBackground(task: () => Promise<void>): void {
    const run = task().catch((err: unknown) => {
      if (!this.closing) this.onBackgroundError(err);
    });
    this.background.add(run);
    void run.finally(() => this.background.delete(run));
  }

  // --------------------------------------------------------------------------------------------
  // Helpers

  private slot(group: GroupId): GroupSlot {
    let s = this.slots.get(group);
    if (!s) {
      s = {
        meta: EMPTY_GROUP_META,
        maxGeneration: 0,
        storage: null,
        staged: null,
        staging: false,
        log: new LogSeqs(),
        logGarbage: [],
        deleting: null,
        overlay: null,
        cache: new TailCache(
          this.opts.tailCacheEntries ?? DEFAULT_TAIL_CACHE_ENTRIES,
          this.opts.tailCacheBytes ?? DEFAULT_TAIL_CACHE_BYTES,
        ),
      };
      this.slots.set(group, s);
    }
    return s;
  }

  private metaIn(tx: JobTx, group: GroupId): GroupMeta {
    return tx.read(`m${group}`, () => this.metaOf(group));
  }

  private setMetaIn(tx: JobTx, group: GroupId, meta: GroupMeta): void {
    tx.write(`m${group}`, meta);
    tx.afterCommit(() => {
      this.slot(group).meta = meta;
    });
  }

  /** The term at `index` as planned so far in this batch. */
  private termIn(tx: JobTx, group: GroupId, meta: GroupMeta, index: number): number {
    if (index === meta.head.index) return meta.head.term;
    if (index < meta.head.index) throw new CompactedError(index);
    if (index > meta.lastIndex) throw new UnavailableError(index);
    return tx.read(termSlot(group, index), () => this.readTerm(group, index));
  }

  /** The group's applied state, buffered applies included. */
  private appliedOf(group: GroupId): AppliedState {
    return this.appliedView(group).applied;
  }

  /** The applied state and membership, buffered applies included. */
  private appliedView(group: GroupId): { applied: AppliedState; confState: ConfState } {
    const slot = this.slots.get(group);
    if (slot?.overlay) return { applied: slot.overlay.applied, confState: slot.overlay.confState };
    const meta = slot?.meta ?? EMPTY_GROUP_META;
    return { applied: meta.applied, confState: meta.confState };
  }

  /** The applied index as planned in a batch (`meta`) or buffered, whichever is further. */
  private appliedIndexIn(meta: GroupMeta, group: GroupId): number {
    return Math.max(meta.applied.index, this.appliedOf(group).index);
  }

  /** A record as the group's state machine sees it: the buffer first, then the table. */
  private readKvOf(group: GroupId, key: Buffer, userKey: Uint8Array): KvRecord | undefined {
    const w = this.slots.get(group)?.overlay?.get(key);
    if (w) return overlayRecord(w);
    return this.readKv(key, userKey);
  }

  private readKv(key: Buffer, userKey: Uint8Array): KvRecord | undefined {
    const value = this.dbs.kv.get(key, { transaction: this.view });
    return value === undefined ? undefined : decodeKvValue(userKey, value);
  }

  private keyBytes(key: KeyInput): Uint8Array {
    const bytes = toBytes(key);
    if (bytes.byteLength === 0 || bytes.byteLength > this.maxKeyBytes) {
      throw new StoreLimitError("key length", bytes.byteLength, this.maxKeyBytes);
    }
    return bytes;
  }

  private checkEntries(entries: readonly Entry[]): void {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      assertIndex("entry index", e.index);
      assertIndex("entry term", e.term);
      if (i > 0 && e.index !== entries[0]!.index + i)
        throw new RangeError("entries must have consecutive indexes");
      if (e.index === 0) throw new RangeError("entry index 0 is reserved");
      if (e.type !== "normal" && e.type !== "conf")
        throw new RangeError(`unknown entry type ${String(e.type)}`);
      if (e.data.byteLength > this.maxEntryBytes) {
        throw new StoreLimitError("entry data", e.data.byteLength, this.maxEntryBytes);
      }
    }
  }

  private readNodeString(name: string): string | undefined {
    const v = this.nodeDb.get(nodeKey(name), { transaction: this.view });
    return v === undefined ? undefined : Buffer.from(v).toString("utf8");
  }

  /**
   * What every read goes through: one read transaction, taken at the first read after a commit,
   * or at the latest just before the next batch goes to LMDB, and released once that batch has
   * committed. Reads are synchronous (none spans an await), so none can be using the snapshot
   * when a commit releases it. It must not be taken while a batch commits: LMDB's thread may
   * have committed already, and a snapshot taken then shows the batch while the in-memory state
   * (group metadata, which record holds each log entry) is still the previous one; a record an
   * overwrite removed would then read as missing. A snapshot costs lmdb-js some 14 us of CPU.
   */
  private get view(): Transaction {
    return (this.viewTxn ??= this.root.useReadTransaction());
  }

  private renewView(): void {
    const old = this.viewTxn;
    this.viewTxn = null;
    old?.done();
  }

  private checkOpen(): void {
    const failed = this.writer.failed;
    if (failed) throw failed;
    if (this.closing) throw new StoreClosedError();
  }
}

function nodeKey(name: string): Buffer {
  return Buffer.from(name, "utf8");
}

function termSlot(group: GroupId, index: number): string {
  return `t${group}:${index}`;
}

function checkHardState(hs: HardState): void {
  assertIndex("hard state term", hs.term);
  assertIndex("hard state commit", hs.commit);
  if (typeof hs.vote !== "string" || hs.vote.length > 128)
    throw new RangeError("hard state vote must be a node id");
}

function checkMetadataName(name: string): void {
  if (name.length === 0 || name.length > MAX_METADATA_NAME) {
    throw new RangeError(`metadata names must be 1..${MAX_METADATA_NAME} characters`);
  }
}

function sameConf(a: ConfState, b: ConfState): boolean {
  const eq = (x: readonly string[], y: readonly string[]): boolean =>
    x.length === y.length && [...x].sort().every((v, i) => v === [...y].sort()[i]);
  return eq(a.voters, b.voters) && eq(a.learners, b.learners);
}
