import { encodeConfChange } from "./confchange.js";
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from "./errors.js";
import type { ConfState, Entry, HardState, Snapshot } from "./types.js";

export interface InitialState {
  readonly hardState: HardState;
  /** The membership as of the newest configuration the application applied or snapshotted. */
  readonly confState: ConfState;
}

/**
 * The core reads the stable log through this interface; it never writes through it. Writes
 * happen outside the core, driven by `Ready` (hashicorp/raft's LogStore + StableStore seam).
 *
 * Index rules, as in etcd-io/raft: entries live in `[firstIndex(), lastIndex()]`; the entry at
 * `firstIndex() - 1` is the one the snapshot covers, and its term is still answered by `term()`.
 */
export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in `[lo, hi)`, at most `maxBytes` of payload (but always at least one entry when any
   * is in range). Throws `CompactedError` when `lo` is compacted, `UnavailableError` past the end.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of the entry at `index`; `index` may be `firstIndex() - 1`. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot; the application may take a new one at any applied index. */
  snapshot(): Snapshot;
}

/**
 * The first state of every founding member of a group: one committed `addVoter` entry per
 * founder, in term 1. The membership lives in the log, not only in a snapshot, so a node that
 * joins later and replicates from index 1 derives the same membership as the founders (as etcd
 * does). Every founder must be given the same voters, in any order.
 */
export function bootstrapState(
  voters: readonly string[],
  learners: readonly string[] = [],
): { hardState: HardState; entries: Entry[] } {
  if (voters.length === 0) throw new Error("bootstrap needs at least one voter");
  const v = [...new Set(voters)].sort();
  const l = [...new Set(learners)].filter((id) => !v.includes(id)).sort();
  const changes = [
    ...v.map((nodeId) => ({ type: "addVoter" as const, nodeId })),
    ...l.map((nodeId) => ({ type: "addLearner" as const, nodeId })),
  ];
  const entries: Entry[] = changes.map((cc, i) => ({
    term: 1,
    index: i + 1,
    type: "conf",
    data: encodeConfChange(cc),
  }));
  return { hardState: { term: 1, vote: "", commit: entries.length }, entries };
}

export const EMPTY_CONF_STATE: ConfState = { voters: [], learners: [] };

export const EMPTY_SNAPSHOT: Snapshot = {
  metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
  data: new Uint8Array(0),
};

export function entryBytes(e: Entry): number {
  // A fixed overhead per entry keeps empty entries (leader no-ops) from counting as free.
  return e.data.byteLength + 24;
}

/** Returns the longest prefix of `entries` within `maxBytes` (never fewer than one entry). */
export function limitSize<T extends Entry>(entries: readonly T[], maxBytes: number): T[] {
  if (entries.length === 0) return [];
  let size = entryBytes(entries[0]!);
  let n = 1;
  while (n < entries.length) {
    size += entryBytes(entries[n]!);
    if (size > maxBytes) break;
    n++;
  }
  return entries.slice(0, n);
}

/**
 * An in-memory `Storage` for unit tests and the simulator. It also offers the write side that
 * the application drives from `Ready` (`append`, `setHardState`, `applySnapshot`) and that a real
 * store implements on disk.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: "", commit: 0 };
  private snap: Snapshot = EMPTY_SNAPSHOT;
  /** `ents[0]` is a dummy entry standing for the snapshot point (index and term only). */
  private ents: Entry[] = [{ term: 0, index: 0, type: "normal", data: new Uint8Array(0) }];
  private confState: ConfState = EMPTY_CONF_STATE;

  /** A brand-new group: see `bootstrapState`. */
  static bootstrap(voters: readonly string[], learners: readonly string[] = []): MemoryStorage {
    const s = new MemoryStorage();
    const boot = bootstrapState(voters, learners);
    s.append(boot.entries);
    s.setHardState(boot.hardState);
    return s;
  }

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  /** Records the membership the application applied (from a conf entry or a snapshot). */
  setConfState(cs: ConfState): void {
    this.confState = cs;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  term(index: number): number {
    const offset = this.ents[0]!.index;
    if (index < offset) throw new CompactedError(index);
    if (index - offset >= this.ents.length) throw new UnavailableError(index);
    return this.ents[index - offset]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Appends entries, truncating any conflicting suffix first. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // All of it is already compacted.
    const fresh = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const offset = fresh[0]!.index - this.ents[0]!.index;
    if (offset > this.ents.length) {
      throw new Error(`missing log entry: last index ${this.lastIndex()}, appending at ${fresh[0]!.index}`);
    }
    this.ents = this.ents.slice(0, offset).concat(fresh);
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index)
      throw new SnapshotOutOfDateError(snap.metadata.index);
    this.snap = snap;
    this.confState = snap.metadata.confState;
    this.ents = [
      { term: snap.metadata.term, index: snap.metadata.index, type: "normal", data: new Uint8Array(0) },
    ];
  }

  /** Records a snapshot the application took of its own state at `index` (already applied). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index);
    if (index > this.lastIndex()) throw new UnavailableError(index);
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Drops log entries up to and including `index`; they must be covered by a snapshot. */
  compact(index: number): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) throw new CompactedError(index);
    if (index > this.lastIndex()) throw new UnavailableError(index);
    const head = this.ents[index - offset]!;
    const dummy: Entry = { term: head.term, index: head.index, type: "normal", data: new Uint8Array(0) };
    this.ents = [dummy, ...this.ents.slice(index - offset + 1)];
  }
}
