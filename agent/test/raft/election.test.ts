import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cluster } from "./harness.js";

describe("leader election (Raft §5.2)", () => {
  it("a candidate that wins votes from a majority becomes leader of a new term", () => {
    const c = new Cluster(["a", "b", "c"]);
    const before = c.node("a").raw.status().term;
    const a = c.elect("a");
    assert.equal(a.raw.status().term, before + 1);
    for (const id of ["b", "c"]) {
      assert.equal(c.node(id).raw.status().leader, "a");
      assert.equal(c.node(id).raw.status().term, before + 1);
    }
  });

  it("followers time out and elect exactly one leader on their own", () => {
    const c = new Cluster(["a", "b", "c", "d", "e"]);
    c.tickAll(40);
    const leaders = [...c.nodes.values()].filter((n) => n.raw.status().role === "leader");
    assert.equal(leaders.length, 1);
    const term = leaders[0]!.raw.status().term;
    for (const n of c.nodes.values()) assert.equal(n.raw.status().leader, leaders[0]!.id);
    assert.ok(term >= 1);
  });

  it("each server votes for at most one candidate per term (§5.2)", () => {
    const c = new Cluster(["a", "b", "c"], { preVote: false });
    c.filter = (m) => !(m.to === "c" && m.from === "b"); // c hears only a
    c.node("a").raw.campaign();
    c.node("b").raw.campaign();
    c.settle();
    const leaders = [...c.nodes.values()].filter((n) => n.raw.status().role === "leader");
    assert.equal(leaders.length, 1);
  });

  it("a voter denies its vote to a candidate whose log is less up to date (§5.4.1)", () => {
    const c = new Cluster(["a", "b", "c"], { preVote: false });
    c.elect("a");
    c.isolate("c");
    c.node("a").raw.propose(new TextEncoder().encode("x"));
    c.settle();
    c.heal();
    // c missed an entry: b must refuse it.
    c.filter = (m) => m.from !== "a" && m.to !== "a";
    c.node("c").raw.campaign();
    c.settle();
    assert.notEqual(c.node("c").raw.status().role, "leader");
  });

  it("pre-vote: a partitioned node rejoining does not bump the term or depose the leader (§9.6)", () => {
    const c = new Cluster(["a", "b", "c"]);
    c.elect("a");
    const term = c.node("a").raw.status().term;
    c.isolate("c");
    c.tickAll(100);
    assert.equal(c.node("c").raw.status().term, term, "isolated node's term did not grow");
    c.heal();
    c.tickAll(5);
    assert.equal(c.leader()?.id, "a");
    assert.equal(c.node("a").raw.status().term, term);
  });

  it("check-quorum: a leader cut off from a majority steps down", () => {
    const c = new Cluster(["a", "b", "c"]);
    c.elect("a");
    c.isolate("a");
    c.tickAll(30);
    assert.notEqual(c.node("a").raw.status().role, "leader");
    const newLeader = c.leader();
    assert.ok(newLeader && newLeader.id !== "a");
  });
});
