/**
 * The Raft log as the core sees it: the stable part read through `Storage`, plus the unstable
 * tail (entries and possibly a snapshot) that the application has not persisted yet.
 */
import { CompactedError, UnavailableError } from "./errors.js";
import { limitSize, type Storage } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";

/** Entries (and a snapshot) handed to the application in a Ready but not yet known durable. */
class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  /** The index of `entries[0]`, even while `entries` is empty. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | null {
    return this.snapshot ? this.snapshot.metadata.index + 1 : null;
  }

  maybeLastIndex(): number | null {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : null;
  }

  maybeTerm(index: number): number | null {
    if (index < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === index) return this.snapshot.metadata.term;
      return null;
    }
    const last = this.maybeLastIndex();
    if (last === null || index > last) return null;
    return this.entries[index - this.offset]!.term;
  }

  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    // Only drop what the application persisted: if the tail was replaced meanwhile (a new
    // leader overwrote it), the persisted entry has another term and must stay unstable.
    if (t === null || t !== term || index < this.offset) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) this.snapshot = null;
  }

  restore(snap: Snapshot): void {
    this.offset = snap.metadata.index + 1;
    this.entries = [];
    this.snapshot = snap;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      this.entries.push(...ents);
    } else if (after <= this.offset) {
      // The new entries replace the whole unstable tail (and, once persisted, the stable
      // entries from `after` on).
      this.offset = after;
      this.entries = [...ents];
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** The highest index known committed on a quorum. */
  committed: number;
  /** The highest index handed to the application to apply (and acknowledged by `advance`). */
  applied: number;

  constructor(storage: Storage) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // The snapshot point is committed by definition.
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === null) throw new Error(`raft log: term of last index ${this.lastIndex()} unavailable`);
    return t;
  }

  /** The term of the entry at `index`, or null when it is compacted or not there. */
  term(index: number): number | null {
    const dummy = this.firstIndex() - 1;
    if (index < dummy || index > this.lastIndex()) return null;
    const t = this.unstable.maybeTerm(index);
    if (t !== null) return t;
    try {
      return this.storage.term(index);
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return null;
      throw err;
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a log is at least as up to date if its last term is greater, or equal with a longer log. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends the leader's entries after `(prevIndex, prevTerm)` if the logs match there (the
   * AppendEntries consistency check, Raft §5.3). Returns the index of the last new entry, or
   * null on mismatch. `onAppend` is told the first index that changed and the entries that are
   * new to this log (any conflicting suffix from that index on was replaced).
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    ents: readonly Entry[],
    onAppend: (from: number, appended: readonly Entry[]) => void,
  ): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(
          `raft log: entry ${conflict} conflicts with committed entry (committed ${this.committed})`,
        );
      }
      const appended = ents.slice(conflict - (prevIndex + 1));
      this.append(appended);
      onAppend(conflict, appended);
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** The first index where `ents` disagree with the log (or extend it), or 0 if all match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`: where a follower's log could match a
   * leader whose entry at `index` has `term`. Skips whole terms at once (fast back-tracking).
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === null || t <= term) break;
    }
    return i;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) {
      throw new Error(`raft log: append after ${after} is below committed ${this.committed}`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Entries in `[lo, hi)` of at most `maxBytes` (but at least one). Throws CompactedError below the log. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new UnavailableError(hi - 1);
    const out: Entry[] = [];
    const uOff = this.unstable.offset;
    if (lo < uOff) {
      const stored = this.storage.entries(lo, Math.min(hi, uOff), maxBytes);
      out.push(...stored);
      if (stored.length < Math.min(hi, uOff) - lo) return out; // Limited by maxBytes.
    }
    if (hi > uOff) {
      const from = Math.max(lo, uOff);
      out.push(...this.unstable.entries.slice(from - uOff, hi - uOff));
    }
    return limitSize(out, maxBytes);
  }

  entriesFrom(lo: number, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new Error(`raft log: commit ${index} is past last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /** Raft §5.4.2: only an entry of the leader's own term is committed by counting replicas. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied) {
      throw new Error(`raft log: applied ${index} out of range [${this.applied}, ${this.committed}]`);
    }
    this.applied = index;
  }

  hasNextCommittedEnts(): boolean {
    return this.committed > this.applied && this.applied + 1 >= this.firstIndex();
  }

  nextCommittedEnts(maxBytes: number): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    return this.slice(this.applied + 1, this.committed + 1, maxBytes);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Replaces the log with a snapshot from the leader; everything before it is gone. */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.restore(snap);
  }

  /** After a snapshot is applied, the application has applied everything up to it. */
  appliedSnapshot(index: number): void {
    if (index > this.applied) this.applied = index;
  }
}
