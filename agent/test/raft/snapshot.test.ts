import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage, RawNode } from "../../src/raft/index.js";
import { Cluster, enc, seeded, userData } from "./harness.js";

describe("snapshots and log compaction (Raft §7)", () => {
  it("a follower behind the compacted log receives the leader's snapshot and catches up", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => m.to !== "c" && m.from !== "c";
    for (let i = 0; i < 10; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    const applied = a.raw.status().applied;
    a.storage.createSnapshot(applied, a.raw.confStateAt(applied), enc("state-at-" + applied));
    a.storage.compact(applied);
    assert.ok(a.raw.status().firstIndex > 1 || a.storage.firstIndex() > 1);
    c.heal();
    c.tickAll(3);
    const cNode = c.node("c");
    assert.equal(cNode.storage.snapshot().metadata.index, applied, "c installed the snapshot");
    assert.equal(new TextDecoder().decode(cNode.storage.snapshot().data), "state-at-" + applied);
    a.raw.propose(enc("after"));
    c.settle();
    c.tickAll(1);
    assert.deepEqual(userData(cNode), ["after"], "c applies entries after the snapshot");
    assert.equal(cNode.raw.status().commit, a.raw.status().commit);
  });

  it("a lost snapshot message is sent again after a bounded wait", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => m.to !== "c" && m.from !== "c";
    for (let i = 0; i < 5; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    const applied = a.raw.status().applied;
    a.storage.createSnapshot(applied, a.raw.confStateAt(applied), enc("s"));
    a.storage.compact(applied);
    let snaps = 0;
    c.filter = (m) => {
      if (m.type === "snap") return ++snaps > 1; // lose the first one
      return true;
    };
    c.tickAll(40);
    assert.ok(snaps >= 2, `snapshot re-sent (sent ${snaps})`);
    assert.equal(c.node("c").storage.snapshot().metadata.index, applied);
  });
});

describe("restart from stable storage (Raft §5.1 persistent state)", () => {
  it("a restarted node keeps its term, vote and log, and does not vote twice in a term", () => {
    const c = new Cluster(["a", "b", "c"], { preVote: false, checkQuorum: false });
    c.filter = (m) => m.to !== "c" || m.type === "vote";
    c.node("a").raw.campaign();
    c.settle();
    const bStorage = c.node("b").storage;
    const { hardState } = bStorage.initialState();
    assert.equal(hardState.vote, "a");
    const term = hardState.term;
    // b restarts from its storage; c asks for b's vote in the same term: it must be refused.
    const b2 = new RawNode({
      id: "b",
      group: 1,
      storage: bStorage,
      random: seeded(2),
      preVote: false,
      checkQuorum: false,
    });
    assert.equal(b2.status().term, term);
    assert.equal(b2.status().vote, "a");
    b2.step({
      type: "vote",
      group: 1,
      from: "c",
      to: "b",
      term,
      logTerm: 10,
      index: 100,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      rejectTerm: 0,
      context: new Uint8Array(0),
      snapshot: null,
    });
    const rd = b2.ready();
    const resp = rd.messages.find((m) => m.type === "voteResp");
    assert.ok(resp && resp.reject, "the second vote in the same term is refused");
  });

  it("a restarted node recovers its membership from the log after the snapshot point", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.add("d", new MemoryStorage());
    a.raw.proposeConfChange({ type: "addLearner", nodeId: "d" });
    c.settle();
    const restarted = new RawNode({ id: "a", group: 1, storage: a.storage, random: seeded(1) });
    assert.deepEqual(restarted.status().confState, { voters: ["a", "b", "c"], learners: ["d"] });
  });
});
