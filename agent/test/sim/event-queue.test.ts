import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { EventQueue, EventQueueOverflowError, EventQueueTimeError } from "../../src/sim/event-queue.js";

describe("EventQueue", () => {
  it("pops in (time, insertion order), like a stable sort by time", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), (times) => {
        const q = new EventQueue<number>();
        times.forEach((t, i) => q.push(t, i));
        const expected = times.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t || a.i - b.i);
        const got: { t: number; i: number }[] = [];
        for (let e = q.pop(); e !== undefined; e = q.pop()) got.push({ t: e.time, i: e.value });
        assert.deepEqual(got, expected);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps order when pushes and pops interleave", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 5 })), { maxLength: 200 }),
        (script) => {
          const q = new EventQueue<number>();
          let now = 0;
          let seq = 0;
          const model: { t: number; s: number }[] = [];
          for (const [push, dt] of script) {
            if (push || model.length === 0) {
              q.push(now + dt, seq);
              model.push({ t: now + dt, s: seq++ });
            } else {
              model.sort((a, b) => a.t - b.t || a.s - b.s);
              const want = model.shift()!;
              const got = q.pop()!;
              assert.deepEqual({ t: got.time, s: got.value }, want);
              now = got.time;
            }
          }
          assert.equal(q.size, model.length);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("reports the earliest time, and Infinity when empty", () => {
    const q = new EventQueue<string>();
    assert.equal(q.peekTime(), Infinity);
    assert.equal(q.pop(), undefined);
    q.push(7, "b");
    q.push(3, "a");
    assert.equal(q.peekTime(), 3);
  });

  it("is bounded and rejects bad times", () => {
    const q = new EventQueue<number>(2);
    q.push(1, 1);
    q.push(1, 2);
    assert.throws(() => q.push(1, 3), EventQueueOverflowError);
    assert.throws(() => new EventQueue<number>().push(NaN, 1), EventQueueTimeError);
    assert.throws(() => new EventQueue<number>().push(-1, 1), EventQueueTimeError);
  });
});
