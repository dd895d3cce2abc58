import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Message, MessageType } from "../../src/raft/types.js";
import { backoffDelayMs } from "../../src/transport/backoff.js";
import { isEssential, PeerQueue } from "../../src/transport/peer-queue.js";
import { heartbeat, msg, WIRE_TYPES } from "./helpers.js";

const terms = (msgs: readonly Message[]): number[] => msgs.map((m) => m.term);

describe("per-peer queue: bounds and drop policy", () => {
  it("holds at most maxMessages, dropping the oldest and reporting how many", () => {
    const q = new PeerQueue(4, 1_000_000);
    let dropped = 0;
    for (let t = 1; t <= 10; t++) dropped += q.push(heartbeat("a", "b", t), 100);
    assert.equal(dropped, 6);
    assert.equal(q.length, 4);
    assert.equal(q.bytes, 400);
    assert.deepEqual(terms(q.takeBatch(100, 1_000_000)), [7, 8, 9, 10]);
  });

  it("holds at most maxBytes", () => {
    const q = new PeerQueue(1000, 1000);
    let dropped = 0;
    for (let t = 1; t <= 10; t++) dropped += q.push(heartbeat("a", "b", t), 300);
    assert.equal(q.length, 3);
    assert.equal(q.bytes, 900);
    assert.equal(dropped, 7);
  });

  it("keeps essential messages (votes) while non-essential ones can go, and keeps order", () => {
    const q = new PeerQueue(3, 1_000_000);
    q.push(msg("vote", "a", "b", { term: 100 }), 10);
    for (let t = 1; t <= 5; t++) q.push(heartbeat("a", "b", t), 10);
    const left = q.takeBatch(10, 1_000_000);
    assert.deepEqual(
      left.map((m) => m.type),
      ["vote", "heartbeat", "heartbeat"],
    );
    assert.deepEqual(terms(left), [100, 4, 5]);
  });

  it("drops the oldest essential message only when nothing else is left", () => {
    const q = new PeerQueue(2, 1_000_000);
    for (let t = 1; t <= 3; t++) q.push(msg("voteResp", "a", "b", { term: t }), 10);
    assert.deepEqual(terms(q.takeBatch(10, 1_000_000)), [2, 3]);
  });

  it("drops a message bigger than the byte bound on arrival and keeps the rest", () => {
    const q = new PeerQueue(10, 1000);
    q.push(heartbeat("a", "b", 1), 10);
    assert.equal(q.push(heartbeat("a", "b", 2), 1001), 1);
    assert.deepEqual(terms(q.takeBatch(10, 1_000_000)), [1]);
  });

  it("takeBatch returns at least one message and stops at the count or byte budget", () => {
    const q = new PeerQueue(100, 1_000_000);
    for (let t = 1; t <= 10; t++) q.push(heartbeat("a", "b", t), 100);
    assert.deepEqual(terms(q.takeBatch(3, 1_000_000)), [1, 2, 3]);
    assert.deepEqual(terms(q.takeBatch(100, 250)), [4, 5]);
    assert.deepEqual(terms(q.takeBatch(100, 1)), [6]);
    assert.equal(q.length, 4);
    assert.equal(q.clear(), 4);
    assert.deepEqual(q.takeBatch(100, 1000), []);
  });

  it("the essential set is the election and transfer messages plus snapshots", () => {
    const essential = WIRE_TYPES.filter((t) => isEssential(t));
    assert.deepEqual(essential.sort(), [
      "preVote",
      "preVoteResp",
      "snap",
      "timeoutNow",
      "transferLeader",
      "vote",
      "voteResp",
    ]);
  });

  it("under any sequence of pushes and takes the bounds hold, byte accounting is exact and order is kept", () => {
    const op = fc.oneof(
      fc.record({ push: fc.constantFrom(...WIRE_TYPES), bytes: fc.integer({ min: 1, max: 400 }) }),
      fc.record({ take: fc.integer({ min: 1, max: 5 }), budget: fc.integer({ min: 1, max: 1000 }) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 1500 }),
        fc.array(op, { maxLength: 200 }),
        (maxN, maxB, ops) => {
          const q = new PeerQueue(maxN, maxB);
          const sizes = new Map<number, number>();
          let seq = 0;
          let lastOut = 0;
          let pushed = 0;
          let out = 0;
          let dropped = 0;
          for (const o of ops) {
            if ("push" in o) {
              seq += 1;
              sizes.set(seq, o.bytes);
              dropped += q.push(msg(o.push as MessageType, "a", "b", { index: seq }), o.bytes);
              pushed += 1;
            } else {
              const batch = q.takeBatch(o.take, o.budget);
              out += batch.length;
              assert.ok(batch.length <= o.take);
              if (batch.length > 1) {
                assert.ok(batch.reduce((s, m) => s + sizes.get(m.index)!, 0) <= o.budget);
              }
              for (const m of batch) {
                assert.ok(m.index > lastOut, "messages leave in the order they were queued");
                lastOut = m.index;
              }
            }
            assert.ok(q.length <= maxN);
            assert.ok(q.bytes <= maxB);
            assert.equal(
              pushed,
              out + dropped + q.length,
              "every message is queued, sent or counted as dropped",
            );
          }
          const queued = q.bytes;
          const rest = q.takeBatch(1000, Number.MAX_SAFE_INTEGER);
          assert.equal(
            rest.reduce((s, m) => s + sizes.get(m.index)!, 0),
            queued,
            "byte accounting is exact",
          );
          assert.equal(q.bytes, 0);
          assert.equal(q.length, 0);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("reconnect backoff", () => {
  it("doubles from the base, stays within [ceiling/2, ceiling] and stops at the cap", () => {
    const lows = [1, 2, 3, 4, 5, 6, 30, 1000].map((n) => backoffDelayMs(n, 100, 5000, () => 0));
    const highs = [1, 2, 3, 4, 5, 6, 30, 1000].map((n) => backoffDelayMs(n, 100, 5000, () => 0.999999));
    assert.deepEqual(lows, [50, 100, 200, 400, 800, 1600, 2500, 2500]);
    assert.deepEqual(highs, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });

  it("jitter spreads the delays of peers that failed together", () => {
    let state = 12345;
    const random = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const delays = new Set(Array.from({ length: 20 }, () => backoffDelayMs(5, 100, 5000, random)));
    assert.ok(delays.size > 10, `only ${delays.size} distinct delays`);
  });
});
