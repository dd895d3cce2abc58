import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Random, RandomRangeError } from "../../src/sim/random.js";

function take(r: Random, n: number): number[] {
  return Array.from({ length: n }, () => r.nextUint32());
}

describe("Random (sfc32 seeded by splitmix32)", () => {
  it("gives the same sequence for the same seed and stream", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.nat(1000), (seed, stream) => {
        assert.deepEqual(take(new Random(seed, stream), 50), take(new Random(seed, stream), 50));
      }),
      { numRuns: 200 },
    );
  });

  it("gives different sequences for neighbouring seeds and for different streams", () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      for (let stream = 0; stream < 3; stream++) seen.add(take(new Random(seed, stream), 4).join(","));
    }
    assert.equal(seen.size, 600);
  });

  it("tells seeds apart above 2^32 (both halves of the seed are used)", () => {
    const a = take(new Random(7), 8);
    const b = take(new Random(7 + 2 ** 32), 8);
    assert.notDeepEqual(a, b);
  });

  it("keeps int() within its inclusive bounds and reaches both ends", () => {
    const r = new Random(42);
    const counts = new Map<number, number>();
    for (let i = 0; i < 6000; i++) {
      const v = r.int(-2, 3);
      assert.ok(v >= -2 && v <= 3 && Number.isInteger(v));
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    assert.equal(counts.size, 6);
    // Uniform within loose bounds: each of 6 values expects 1000 hits.
    for (const c of counts.values()) assert.ok(c > 800 && c < 1200, `count ${c}`);
  });

  it("keeps next() in [0, 1) with a mean near one half", () => {
    const r = new Random(1);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const x = r.next();
      assert.ok(x >= 0 && x < 1);
      sum += x;
    }
    assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01);
  });

  it("shuffles into a permutation, deterministically", () => {
    const items = Array.from({ length: 30 }, (_, i) => i);
    const a = new Random(5).shuffled(items);
    const b = new Random(5).shuffled(items);
    assert.deepEqual(a, b);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      items,
    );
    assert.notDeepEqual(a, items);
  });

  it("forks independent but reproducible streams", () => {
    const f1 = new Random(9).fork(3);
    const f2 = new Random(9).fork(3);
    assert.deepEqual(take(f1, 10), take(f2, 10));
    assert.notDeepEqual(take(new Random(9).fork(3), 10), take(new Random(9).fork(4), 10));
  });

  it("honours chance() at its ends and rejects empty ranges", () => {
    const r = new Random(3);
    for (let i = 0; i < 100; i++) {
      assert.equal(r.chance(0), false);
      assert.equal(r.chance(1), true);
    }
    assert.throws(() => r.int(5, 4), RandomRangeError);
    assert.throws(() => r.pick([]), RandomRangeError);
    assert.throws(() => new Random(1.5), RandomRangeError);
  });
});
