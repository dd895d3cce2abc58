import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TailCache } from "../../src/storage/tail-cache.js";
import type { Entry } from "../../src/raft/types.js";

function entry(index: number, term: number, size = 10): Entry {
  return { index, term, type: "normal", data: new Uint8Array(size) };
}

/** The cache's contract, written the obvious way: every entry appended, the newest kept. */
class Model {
  ents: Entry[] = [];
  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}
  append(fresh: Entry[]): void {
    if (fresh.length === 0 || this.maxEntries === 0) return;
    const first = this.ents[0]?.index;
    const from = fresh[0]!.index;
    if (first === undefined || from < first || from > first + this.ents.length) this.ents = [];
    else this.ents = this.ents.slice(0, from - first);
    this.ents.push(...fresh);
    const bytes = () => this.ents.reduce((n, e) => n + e.data.byteLength, 0);
    while (this.ents.length > 1 && (this.ents.length > this.maxEntries || bytes() > this.maxBytes))
      this.ents.shift();
  }
  dropThrough(index: number): void {
    this.ents = this.ents.filter((e) => e.index > index);
  }
}

describe("tail cache", () => {
  it("agrees with a plain model through appends, overwrites, drops and trims", () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (const [maxEntries, maxBytes] of [
      [8, 1 << 20],
      [50, 300],
      [1, 1 << 20],
    ] as const) {
      const cache = new TailCache(maxEntries, maxBytes);
      const model = new Model(maxEntries, maxBytes);
      let last = 0;
      let term = 1;
      for (let step = 0; step < 3000; step++) {
        const op = rand(10);
        if (op < 7) {
          // Mostly the next entries; sometimes a new leader overwrites a suffix.
          const from = op === 0 && last > 3 ? last - rand(3) : last + 1;
          if (op === 0) term++;
          const fresh = Array.from({ length: 1 + rand(4) }, (_, i) => entry(from + i, term, 1 + rand(40)));
          cache.append(fresh);
          model.append(fresh);
          last = from + fresh.length - 1;
        } else if (op === 7) {
          const upTo = last - rand(20);
          cache.dropThrough(upTo);
          model.dropThrough(upTo);
        } else {
          const lo = last - rand(60);
          const hi = lo + rand(10);
          const first = model.ents[0]?.index;
          const held = first !== undefined && lo >= first && hi <= first + model.ents.length;
          const want = held ? model.ents.filter((e) => e.index >= lo && e.index < hi) : null;
          assert.deepEqual(cache.range(lo, hi), want, `range ${lo}..${hi} at step ${step}`);
        }
        for (let i = last - 70; i <= last + 1; i++) {
          assert.equal(
            cache.get(i),
            model.ents.find((e) => e.index === i),
            `get ${i} at step ${step}`,
          );
        }
      }
    }
  });
});
