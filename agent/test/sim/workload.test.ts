import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ClientRequest } from "../../src/sim/node.js";
import { Random } from "../../src/sim/random.js";
import { Workload, WorkloadOptionsError, type WorkloadOptions } from "../../src/sim/workload.js";

const OPTS: WorkloadOptions = { clients: 1, keys: 3, timeoutUnits: 50, thinkUnits: 0, followerReadChance: 0 };

function harness(opts: Partial<WorkloadOptions> = {}) {
  let now = 0;
  const sent: { node: string; req: ClientRequest }[] = [];
  const w = new Workload(
    { ...OPTS, ...opts },
    {
      now: () => now,
      random: new Random(11),
      targets: () => ["n1", "n2", "n3"],
      send: (node, req) => sent.push({ node, req }),
    },
  );
  const at = (t: number): void => {
    now = t;
    w.step();
  };
  const last = (): { node: string; req: ClientRequest } => sent[sent.length - 1]!;
  return { w, sent, at, last };
}

describe("Workload: the client history", () => {
  it("records an answered operation with its call and return times", () => {
    const { w, at, last } = harness();
    at(10);
    const { req } = last();
    at(25);
    w.onResponse(1, { kind: "ok", opId: req.opId, output: answer(req) });
    assert.deepEqual(w.history, [
      { id: req.opId, clientId: 1, input: req.input, call: 10, ret: 25, output: answer(req) },
    ]);
  });

  it("leaves a definite failure out of the history and retries the same input as a new operation", () => {
    const { w, sent, at, last } = harness();
    at(0);
    const first = last().req;
    w.onResponse(1, { kind: "fail", opId: first.opId, leaderHint: "n3", reason: "not the leader" });
    assert.equal(w.history.length, 0);
    at(100);
    assert.equal(sent.length, 2);
    assert.deepEqual(last().req.input, first.input);
    assert.notEqual(last().req.opId, first.opId);
    assert.equal(last().node, "n3", "the client follows the leader hint");
  });

  it("times out: a write becomes unknown (ret Infinity, no output), a read is dropped", () => {
    const { w, sent, at } = harness({ clients: 1 });
    let t = 0;
    const kinds = new Set<string>();
    // Time out operations until both a read and a write have timed out.
    while (kinds.size < 2 && t < 10_000) {
      at(t);
      kinds.add(sent[sent.length - 1]!.req.input.kind === "get" ? "get" : "write");
      t += 50;
    }
    at(t);
    const timedOut = sent.slice(0, -1).map((s) => s.req);
    const writes = timedOut.filter((r) => r.input.kind !== "get");
    assert.ok(writes.length > 0 && writes.length < timedOut.length);
    assert.deepEqual(
      w.history.map((op) => op.id),
      writes.map((r) => r.opId),
    );
    for (const op of w.history) {
      assert.equal(op.ret, Infinity);
      assert.equal(op.output, null);
    }
  });

  it("ignores an answer that arrives after the timeout", () => {
    const { w, at, last } = harness();
    at(0);
    const req = last().req;
    at(60); // Timed out; a new operation is in flight.
    const before = w.history.length;
    w.onResponse(1, { kind: "ok", opId: req.opId, output: { kind: "ok" } });
    assert.equal(w.history.length, before);
  });

  it("in the liveness phase, counts only operations issued after it began, then rests", () => {
    const { w, sent, at, last } = harness({ clients: 1 });
    at(0);
    const old = last().req;
    w.startLiveness();
    w.onResponse(1, { kind: "ok", opId: old.opId, output: answer(old) });
    assert.equal(w.allCompleted(), false);
    at(1);
    const fresh = last().req;
    w.onResponse(1, { kind: "ok", opId: fresh.opId, output: answer(fresh) });
    assert.equal(w.allCompleted(), true);
    const count = sent.length;
    at(500);
    assert.equal(sent.length, count, "a client that completed rests");
    w.finish();
  });

  it("rejects absurd sizes", () => {
    assert.throws(() => harness({ clients: 0 }), WorkloadOptionsError);
  });
});

function answer(req: ClientRequest) {
  switch (req.input.kind) {
    case "get":
      return { kind: "get" as const, value: null };
    case "cas":
      return { kind: "cas" as const, ok: false };
    default:
      return { kind: "ok" as const };
  }
}
