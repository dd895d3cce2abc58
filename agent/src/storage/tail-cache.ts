/**
 * The newest committed entries of one group's log (64 by default, see node-store.ts), kept
 * decoded in memory. A leader reads exactly these (to send appends, to check terms when followers
 * answer) many times per entry; serving them from here skips an LMDB lookup and a decode each
 * time (see the read figures in test/bench/storage-bench.ts). It is bounded by entries and bytes,
 * and is updated only after a commit, in the same step as the rest of the group's in-memory state.
 */
import type { Entry } from "../raft/types.js";

export class TailCache {
  /**
   * The cached entries are `ents[head..]`, contiguous: `ents[head + i].index === first + i`. Entries
   * that fall off the front only move `head`; the array is compacted once the dead prefix is as
   * long as the live part, so a leader appending one entry per write does not shift the whole
   * cache each time.
   */
  private ents: Entry[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  private get size(): number {
    return this.ents.length - this.head;
  }

  private get first(): number | undefined {
    return this.ents[this.head]?.index;
  }

  /** Records entries just written from `fresh[0].index` on; whatever was cached after that went. */
  append(fresh: readonly Entry[]): void {
    if (fresh.length === 0 || this.maxEntries === 0) return;
    const from = fresh[0]!.index;
    const first = this.first;
    if (first === undefined || from < first || from > first + this.size) {
      this.clear();
    } else {
      // A new leader's entries replace what this log held from `from` on.
      const keep = this.head + (from - first);
      for (let i = keep; i < this.ents.length; i++) this.bytes -= this.ents[i]!.data.byteLength;
      this.ents.length = keep;
    }
    for (const e of fresh) {
      this.ents.push(e);
      this.bytes += e.data.byteLength;
    }
    while (this.size > 1 && (this.size > this.maxEntries || this.bytes > this.maxBytes)) {
      this.bytes -= this.ents[this.head]!.data.byteLength;
      this.head++;
    }
    this.compact();
  }

  /** Forgets entries up to and including `index` (they were compacted). */
  dropThrough(index: number): void {
    const first = this.first;
    if (first === undefined || index < first) return;
    const end = Math.min(this.ents.length, this.head + (index - first + 1));
    for (let i = this.head; i < end; i++) this.bytes -= this.ents[i]!.data.byteLength;
    this.head = end;
    this.compact();
  }

  clear(): void {
    this.ents = [];
    this.head = 0;
    this.bytes = 0;
  }

  get(index: number): Entry | undefined {
    const first = this.first;
    if (first === undefined || index < first) return undefined;
    return this.ents[this.head + index - first];
  }

  /** Entries `[lo, hi)` if all of them are cached, else null. */
  range(lo: number, hi: number): readonly Entry[] | null {
    const first = this.first;
    if (first === undefined || lo < first || hi > first + this.size) return null;
    return this.ents.slice(this.head + lo - first, this.head + hi - first);
  }

  private compact(): void {
    if (this.head === 0) return;
    if (this.head === this.ents.length) this.clear();
    else if (this.head >= this.size) {
      this.ents = this.ents.slice(this.head);
      this.head = 0;
    }
  }
}
