import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NoLeaderError } from "../../src/raft/index.js";
import { Cluster, enc, userData } from "./harness.js";

describe("ReadIndex linearizable reads (thesis §6.4)", () => {
  it("the leader answers at its commit index after a quorum confirms its leadership", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    a.raw.propose(enc("x"));
    c.settle();
    const commit = a.raw.status().commit;
    let confirmations = 0;
    c.filter = (m) => {
      if (m.type === "heartbeatResp" && m.context.length > 0) confirmations++;
      return true;
    };
    a.raw.readIndex(enc("r1"));
    c.settle();
    assert.deepEqual(a.reads, [{ index: commit, context: "r1" }]);
    assert.ok(confirmations >= 1, "leadership was confirmed by a heartbeat round");
  });

  it("a leader cut off from the quorum never answers a read", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.isolate("a");
    a.raw.readIndex(enc("r1"));
    c.settle();
    assert.deepEqual(a.reads, []);
  });

  it("a follower's read is forwarded to the leader and answered with the leader's commit index", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    for (let i = 0; i < 3; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    c.node("b").raw.readIndex(enc("rb"));
    c.settle();
    assert.deepEqual(c.node("b").reads, [{ index: a.raw.status().commit, context: "rb" }]);
  });

  it("a node that knows no leader refuses a read with NoLeaderError", () => {
    const c = new Cluster(["a", "b", "c"]);
    assert.throws(() => c.node("a").raw.readIndex(enc("r")), NoLeaderError);
  });

  it("a new leader defers reads until it has committed an entry of its own term", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.node("a");
    // Deliver votes but no appends: a leads, but its no-op cannot commit.
    c.filter = (m) => m.type !== "app";
    a.raw.campaign();
    c.settle();
    assert.equal(a.raw.status().role, "leader");
    a.raw.readIndex(enc("early"));
    c.settle();
    assert.equal(a.reads.length, 0, "no answer before an entry of the term commits");
    c.heal();
    c.tickAll(2);
    assert.equal(a.reads.length, 1);
    assert.equal(a.reads[0]!.context, "early");
    assert.ok(a.reads[0]!.index >= 1, "answered at or after the no-op's index");
  });

  it("lease-based reads answer without a heartbeat round while a quorum's acks are fresh", () => {
    const c = new Cluster(["a", "b", "c"], { readOnly: "lease" });
    // Fresh nodes in lease mode refuse votes for one election timeout; let them elect on their own.
    c.tickAll(40);
    const a = c.leader()!;
    c.filter = () => false;
    a.raw.readIndex(enc("lease"));
    c.settle();
    assert.deepEqual(a.reads, [{ index: a.raw.status().commit, context: "lease" }]);
  });

  it("a follower's lease read learns the commit index from the answer, not the next heartbeat", () => {
    const c = new Cluster(["a", "b", "c"], { readOnly: "lease" });
    c.tickAll(40);
    const a = c.leader()!;
    const b = [...c.nodes.values()].find((n) => n !== a)!;
    a.raw.propose(enc("x"));
    c.settle();
    assert.ok(b.raw.status().commit < a.raw.status().commit, "b has not heard of the commit yet");
    b.raw.readIndex(enc("rb"));
    c.settle();
    assert.deepEqual(b.reads, [{ index: a.raw.status().commit, context: "rb" }]);
    // b can serve the read at once: it has applied up to the index it was given.
    assert.deepEqual(userData(b), ["x"]);
  });

  it("fresh nodes in lease mode refuse votes for one election timeout", () => {
    const c = new Cluster(["a", "b", "c"], { readOnly: "lease" });
    c.node("a").raw.campaign();
    c.settle();
    assert.notEqual(c.node("a").raw.status().role, "leader");
  });

  it("a leader cut off for an election timeout loses its lease and answers no read", () => {
    const c = new Cluster(["a", "b", "c"], { readOnly: "lease", electionTicks: 10 });
    c.tickAll(40);
    const a = c.leader()!;
    c.isolate(a.id);
    // Tick only a: it still believes it leads (check-quorum fires at the end of the interval).
    for (let i = 0; i < 9; i++) a.raw.tick();
    c.settle();
    assert.equal(a.raw.status().role, "leader");
    a.raw.readIndex(enc("late"));
    c.settle();
    assert.equal(a.reads.length, 0, "no lease read after the lease ran out");
  });

  it("a leader that started a transfer stops serving lease reads", () => {
    const c = new Cluster(["a", "b", "c"], { readOnly: "lease" });
    c.tickAll(40);
    const a = c.leader()!;
    const target = a.id === "b" ? "c" : "b";
    c.filter = (m) => m.type !== "timeoutNow" && m.to !== a.id;
    a.raw.transferLeadership(target);
    c.settle();
    a.raw.readIndex(enc("after-transfer"));
    c.settle();
    assert.equal(a.reads.length, 0);
  });
});

describe("weak reads (leader's commit index, no quorum round)", () => {
  it("a follower learns the leader's commit index without a heartbeat round", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    a.raw.propose(enc("x"));
    c.settle();
    let confirmations = 0;
    c.filter = (m) => {
      if (m.type === "heartbeat" && m.context.length > 0) confirmations++;
      return true;
    };
    c.node("c").raw.readIndex(enc("weak"), { quorum: false });
    c.settle();
    assert.deepEqual(c.node("c").reads, [{ index: a.raw.status().commit, context: "weak" }]);
    assert.equal(confirmations, 0);
  });
});
