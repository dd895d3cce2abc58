/**
 * The last few hundred committed entries of one group's log, kept decoded in memory. A leader
 * reads exactly these (to send appends, to check terms when followers answer) many times per
 * entry; serving them from here skips an LMDB lookup and a decode each time (see the read
 * figures in test/bench/storage-bench.ts). It is bounded by entries and bytes, and is updated
 * only after a commit, in the same step as the rest of the group's in-memory state.
 */
import type { Entry } from "../raft/types.js";

export class TailCache {
  /** Contiguous: `ents[i].index === ents[0].index + i`. */
  private ents: Entry[] = [];
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  /** Records entries just written from `fresh[0].index` on; whatever was cached after that went. */
  append(fresh: readonly Entry[]): void {
    if (fresh.length === 0 || this.maxEntries === 0) return;
    const from = fresh[0]!.index;
    const first = this.ents[0]?.index;
    if (first === undefined || from < first || from > first + this.ents.length) {
      this.clear();
    } else {
      for (const e of this.ents.splice(from - first)) this.bytes -= e.data.byteLength;
    }
    for (const e of fresh) {
      this.ents.push(e);
      this.bytes += e.data.byteLength;
    }
    let drop = 0;
    while (
      drop < this.ents.length - 1 &&
      (this.ents.length - drop > this.maxEntries || this.bytes > this.maxBytes)
    ) {
      this.bytes -= this.ents[drop]!.data.byteLength;
      drop++;
    }
    if (drop > 0) this.ents.splice(0, drop);
  }

  /** Forgets entries up to and including `index` (they were compacted). */
  dropThrough(index: number): void {
    const first = this.ents[0]?.index;
    if (first === undefined || index < first) return;
    for (const e of this.ents.splice(0, index - first + 1)) this.bytes -= e.data.byteLength;
  }

  clear(): void {
    this.ents = [];
    this.bytes = 0;
  }

  get(index: number): Entry | undefined {
    const first = this.ents[0]?.index;
    if (first === undefined || index < first) return undefined;
    return this.ents[index - first];
  }

  /** Entries `[lo, hi)` if all of them are cached, else null. */
  range(lo: number, hi: number): readonly Entry[] | null {
    const first = this.ents[0]?.index;
    if (first === undefined || lo < first || hi > first + this.ents.length) return null;
    return this.ents.slice(lo - first, hi - first);
  }
}
