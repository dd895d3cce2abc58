/**
 * The Raft `Storage` of one group, backed by the node's LMDB store. Reads are synchronous, as
 * the core needs them: bounds and hard state come from memory, entries and terms from the
 * store's pinned read transaction. The write side is asynchronous (`save`) and resolves only
 * when the data is on disk; saves of many groups in one event-loop turn share one fsync.
 *
 * Error behaviour matches `MemoryStorage` exactly (the shared conformance suite checks it).
 */
import { CompactedError, UnavailableError } from "../raft/errors.js";
import { EMPTY_BYTES, type Entry, type GroupId, type HardState, type Snapshot } from "../raft/types.js";
import type { InitialState, Storage } from "../raft/storage.js";
import type { GroupMeta } from "./group-meta.js";

export interface GroupUpdateOf {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

/** What the group storage needs from the node store (kept narrow to avoid an import cycle). */
export interface GroupBackend {
  metaOf(group: GroupId): GroupMeta;
  /** The applied index, including applies not flushed to LMDB yet. */
  appliedIndex(group: GroupId): number;
  readEntries(group: GroupId, lo: number, hi: number, maxBytes: number): Entry[];
  readTerm(group: GroupId, index: number): number;
  save(update: GroupUpdateOf & { readonly group: GroupId }): Promise<void>;
}

export class LmdbGroupStorage implements Storage {
  constructor(
    readonly group: GroupId,
    private readonly backend: GroupBackend,
  ) {}

  initialState(): InitialState {
    const m = this.backend.metaOf(this.group);
    return { hardState: m.hardState, confState: m.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const m = this.backend.metaOf(this.group);
    if (lo <= m.head.index) throw new CompactedError(lo);
    if (hi > m.lastIndex + 1) throw new UnavailableError(hi - 1);
    if (lo >= hi) return [];
    return this.backend.readEntries(this.group, lo, hi, maxBytes);
  }

  term(index: number): number {
    const m = this.backend.metaOf(this.group);
    if (index < m.head.index) throw new CompactedError(index);
    if (index > m.lastIndex) throw new UnavailableError(index);
    if (index === m.head.index) return m.head.term;
    return this.backend.readTerm(this.group, index);
  }

  firstIndex(): number {
    return this.backend.metaOf(this.group).head.index + 1;
  }

  lastIndex(): number {
    return this.backend.metaOf(this.group).lastIndex;
  }

  /**
   * The snapshot point. `data` is empty: the image is the live KV table, streamed with
   * `NodeStore.snapshotChunks`.
   */
  snapshot(): Snapshot {
    return { metadata: this.backend.metaOf(this.group).snapshot, data: EMPTY_BYTES };
  }

  /** The applied index of this group's state machine. */
  appliedIndex(): number {
    return this.backend.appliedIndex(this.group);
  }

  /** Persists one Ready of this group; resolves when it is durable (see `NodeStore.saveBatch`). */
  save(update: GroupUpdateOf): Promise<void> {
    return this.backend.save({ group: this.group, ...update });
  }
}
