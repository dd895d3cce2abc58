import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage, ProposalDroppedError } from "../../src/raft/index.js";
import { Cluster, enc, userData } from "./harness.js";

describe("membership changes, one server at a time (thesis §4.1)", () => {
  it("a learner receives the log but does not vote or count toward commit", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.add("d", new MemoryStorage());
    a.raw.proposeConfChange({ type: "addLearner", nodeId: "d" });
    c.settle();
    for (let i = 0; i < 5; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    c.tickAll(2);
    assert.deepEqual(userData(c.node("d")), ["v0", "v1", "v2", "v3", "v4"]);
    assert.deepEqual(a.raw.status().confState, { voters: ["a", "b", "c"], learners: ["d"] });
    // With b and c silent, a learner's acknowledgement must not commit anything.
    c.filter = (m) => m.from !== "b" && m.from !== "c";
    const commit = a.raw.status().commit;
    a.raw.propose(enc("needs-a-voter"));
    c.settle();
    assert.equal(a.raw.status().commit, commit);
    // A learner never campaigns.
    c.node("d").raw.campaign();
    c.settle();
    assert.equal(c.node("d").raw.status().role, "follower");
  });

  it("a learner promoted to voter then counts, and a removed voter stops counting", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.add("d", new MemoryStorage());
    a.raw.proposeConfChange({ type: "addLearner", nodeId: "d" });
    c.settle();
    c.tickAll(1);
    a.raw.proposeConfChange({ type: "addVoter", nodeId: "d" });
    c.settle();
    c.tickAll(1);
    a.raw.proposeConfChange({ type: "removeNode", nodeId: "c" });
    c.settle();
    c.tickAll(1);
    assert.deepEqual(a.raw.status().confState, { voters: ["a", "b", "d"], learners: [] });
    // Now a, b, d form the group: c's silence does not matter, d's does.
    c.filter = (m) => m.from !== "c" && m.from !== "d";
    const commit = a.raw.status().commit;
    a.raw.propose(enc("x"));
    c.settle();
    assert.equal(a.raw.status().commit, commit + 1, "a and b are a majority of three");
  });

  it("only one configuration change may be in flight", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => (m.from === "a" ? m.type !== "app" : true);
    a.raw.proposeConfChange({ type: "addLearner", nodeId: "d" });
    assert.throws(() => a.raw.proposeConfChange({ type: "addLearner", nodeId: "e" }), ProposalDroppedError);
  });

  it("the leader cannot remove itself; it must transfer leadership first", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    assert.throws(
      () => a.raw.proposeConfChange({ type: "removeNode", nodeId: "a" }),
      /transfer leadership first/,
    );
  });

  it("an uncommitted configuration is rolled back when a new leader overwrites it", () => {
    const c = new Cluster(["a", "b", "c"], { checkQuorum: false, preVote: false });
    const a = c.elect("a");
    c.tickAll(1);
    // The conf entry reaches b only in a's log; then b and c elect c, whose log lacks it.
    c.filter = () => false;
    a.raw.proposeConfChange({ type: "removeNode", nodeId: "b" });
    c.settle();
    assert.deepEqual(a.raw.status().confState.voters, ["a", "c"]);
    c.filter = (m) => m.from !== "a" && m.to !== "a";
    c.elect("c");
    c.node("c").raw.propose(enc("from-c"));
    c.settle();
    c.heal();
    c.tickAll(3);
    assert.deepEqual(a.raw.status().confState.voters, ["a", "b", "c"], "a's membership followed its log");
  });
});

describe("bootstrap membership lives in the log", () => {
  it("a node that joins with an empty log derives the founders' membership from replication", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.add("d", new MemoryStorage());
    a.raw.proposeConfChange({ type: "addLearner", nodeId: "d" });
    c.settle();
    c.tickAll(2);
    assert.deepEqual(c.node("d").raw.status().confState, { voters: ["a", "b", "c"], learners: ["d"] });
  });
});
