/**
 * Where one group's log entries sit in the node's single log (see "Log, format 2" in codec.ts).
 *
 * `LogSeqs` is the committed view: the record sequence of every live index, `[first, last]`, and
 * nothing else; readers use it between commits. `PlannedLog` is a batch's view of it while jobs
 * are planned (a later job of the batch sees an earlier one's appends): the committed entries
 * below `cut`, then `added` from `cut` on. Each plan step is a `LogEdit` that the store applies to
 * the committed view once its batch has committed, in planning order.
 *
 * Invariant kept by the store, and relied on when the log is read back at open: a group's records
 * on disk, in sequence order, have increasing indexes. Appends take new, higher sequences; an
 * append that overwrites a suffix removes that suffix's records in the same transaction; entries
 * at or below the head (compacted) are garbage, deleted in the background.
 */

/** "Cut the log at `from` (drop every entry from there on), then append `seqs` from `from`." */
export interface LogEdit {
  readonly from: number;
  readonly seqs: readonly number[];
}

export class LogSeqs {
  /** `seqs[i]` holds index `firstIndex + i`. */
  constructor(
    private firstIndex = 1,
    private seqs: number[] = [],
  ) {}

  get last(): number {
    return this.firstIndex + this.seqs.length - 1;
  }

  seqOf(index: number): number | undefined {
    return index < this.firstIndex ? undefined : this.seqs[index - this.firstIndex];
  }

  /** The sequences of `[lo, hi]` (clipped to what is live). */
  seqsIn(lo: number, hi: number): number[] {
    const a = Math.max(lo, this.firstIndex) - this.firstIndex;
    const b = Math.min(hi, this.last) - this.firstIndex + 1;
    return a < b ? this.seqs.slice(a, b) : [];
  }

  apply(edit: LogEdit): void {
    if (edit.seqs.length > 0 && this.seqs.length > 0 && edit.from > this.last + 1) {
      throw new RangeError(`log edit at ${edit.from} leaves a hole after ${this.last}`);
    }
    const keep = Math.max(0, edit.from - this.firstIndex);
    if (keep < this.seqs.length) this.seqs.length = keep;
    if (this.seqs.length === 0) this.firstIndex = edit.from;
    for (const s of edit.seqs) this.seqs.push(s);
  }

  /** The highest live index whose record comes before sequence `seq`; `first - 1` if none. */
  lastIndexBefore(seq: number): number {
    let lo = 0;
    let hi = this.seqs.length;
    // Sequences increase with the index: find the first at or after `seq`.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return this.firstIndex + lo - 1;
  }

  /** The sequence of the oldest live record, if any. */
  get firstSeq(): number | undefined {
    return this.seqs[0];
  }

  get size(): number {
    return this.seqs.length;
  }

  /** Drops the entries at or below `index` (compaction); returns their sequences. */
  dropThrough(index: number): number[] {
    const n = Math.min(Math.max(0, index - this.firstIndex + 1), this.seqs.length);
    const dropped = this.seqs.splice(0, n);
    if (index + 1 > this.firstIndex) this.firstIndex = index + 1;
    return dropped;
  }

  /** Drops everything (the group is being deleted); returns the sequences. */
  clear(): number[] {
    const all = this.seqs;
    this.seqs = [];
    this.firstIndex = 1;
    return all;
  }
}

export class PlannedLog {
  private constructor(
    private readonly committed: LogSeqs,
    /** Committed entries are kept below `cut`; `added[i]` holds index `cut + i`. */
    private readonly cut: number,
    private readonly added: readonly number[],
  ) {}

  static of(committed: LogSeqs): PlannedLog {
    return new PlannedLog(committed, committed.last + 1, []);
  }

  private get last(): number {
    return this.cut + this.added.length - 1;
  }

  /**
   * Plans "cut the log at `from`, then append `seqs` from there": returns the new view (this one
   * is left as it was, so a job that throws later leaves the batch's view untouched), the edit to
   * apply once committed, and the sequences of the records the cut drops (to remove in the same
   * batch). An append starts at most one past the end (the store refuses a hole before this); a
   * move to a snapshot point `s` is `edit(s + 1, [])`, however far past the end that is.
   */
  edit(from: number, seqs: readonly number[]): PlannedEdit {
    const dropped = from < this.cut ? this.committed.seqsIn(from, this.cut - 1) : [];
    const keep = Math.max(0, from - this.cut);
    dropped.push(...this.added.slice(keep));
    const view =
      from > this.last + 1
        ? new PlannedLog(this.committed, from, [...seqs])
        : from >= this.cut
          ? new PlannedLog(this.committed, this.cut, [...this.added.slice(0, keep), ...seqs])
          : new PlannedLog(this.committed, from, [...seqs]);
    return { view, edit: { from, seqs }, dropped };
  }
}

export interface PlannedEdit {
  readonly view: PlannedLog;
  readonly edit: LogEdit;
  readonly dropped: number[];
}

/**
 * Takes up to `max` of the oldest garbage records below `limit` out of `queues` (one per group,
 * each in increasing sequence order, as compaction makes them) and returns them in sequence order.
 * Taken oldest first across every group, a step deletes one run of the node-wide log rather than
 * records scattered through it (see `NodeStore.sweepLog`).
 */
export function takeOldestGarbage(queues: readonly number[][], limit: number, max: number): number[] {
  // A merge of the queues' heads: `max` steps over a few dozen queues, no sort.
  const heads = queues.map(() => 0);
  const taken: number[] = [];
  while (taken.length < max) {
    let best = -1;
    for (let q = 0; q < queues.length; q++) {
      const seq = queues[q]![heads[q]!];
      if (seq !== undefined && seq < limit && (best === -1 || seq < queues[best]![heads[best]!]!)) best = q;
    }
    if (best === -1) break;
    taken.push(queues[best]![heads[best]!++]!);
  }
  queues.forEach((q, i) => {
    if (heads[i]! > 0) q.splice(0, heads[i]);
  });
  return taken;
}
