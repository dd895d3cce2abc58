import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProposalDroppedError, TransferRejectedError } from "../../src/raft/index.js";
import { emptyMessage } from "../../src/raft/types.js";
import { Cluster, dec, enc, userData } from "./harness.js";

describe("leadership transfer (thesis §3.10)", () => {
  it("the leader hands over to an up-to-date follower, which wins the next term at once", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    const term = a.raw.status().term;
    a.raw.transferLeadership("b");
    c.settle();
    assert.equal(c.node("b").raw.status().role, "leader");
    assert.equal(c.node("b").raw.status().term, term + 1);
    assert.equal(a.raw.status().role, "follower");
  });

  it("the leader first catches a lagging target up, then hands over", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => m.to !== "c";
    for (let i = 0; i < 10; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    c.heal();
    a.raw.transferLeadership("c");
    c.settle();
    c.tickAll(2);
    assert.equal(c.leader()?.id, "c");
    assert.equal(c.node("c").raw.status().commit, a.raw.status().commit);
  });

  it("proposals are refused while a transfer is under way", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => m.to !== "b";
    a.raw.transferLeadership("b");
    c.settle();
    assert.throws(() => a.raw.propose(enc("x")), ProposalDroppedError);
  });

  it("a proposal forwarded during a transfer comes back refused, and is never appended", () => {
    const c = new Cluster(["a", "b", "c"], { forwardProposals: true });
    const a = c.elect("a");
    const last = a.raw.status().lastIndex;
    c.filter = (m) => m.to !== "b" || m.type === "prop"; // b cannot catch up: the transfer waits.
    a.raw.transferLeadership("b");
    c.settle();
    c.node("c").raw.propose(enc("during"));
    c.settle();
    const back = c.delivered.filter((m) => m.type === "prop" && m.from === "a" && m.to === "c");
    assert.equal(back.length, 1, "the leader answers the forward");
    assert.equal(back[0]!.reject, true);
    assert.deepEqual(
      back[0]!.entries.map((e) => dec(e.data)),
      ["during"],
    );
    assert.equal(a.raw.status().lastIndex, last, "nothing was appended");
    // The refusal is for c's application: c's core neither proposes nor forwards it again.
    assert.equal(c.delivered.filter((m) => m.type === "prop" && m.from === "c").length, 1);
  });

  it("a node that does not lead refuses a forwarded proposal at once", () => {
    const c = new Cluster(["a", "b", "c"], { forwardProposals: true });
    c.elect("a");
    // c still believes b leads (a stale view) and forwards there.
    const b = c.node("b");
    b.raw.step({
      ...emptyMessage("prop", 1, "c", "b"),
      entries: [{ term: 0, index: 0, type: "normal", data: enc("x") }],
    });
    c.settle();
    const back = c.delivered.filter((m) => m.type === "prop" && m.from === "b" && m.to === "c");
    assert.equal(back.length, 1);
    assert.equal(back[0]!.reject, true);
    assert.deepEqual(userData(c.node("a")), []);
  });

  it("a transfer that cannot finish within an election timeout is abandoned", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.filter = (m) => m.to !== "b" && m.from !== "b";
    a.raw.transferLeadership("b");
    c.tickAll(a.raw.status().term + 12);
    assert.equal(a.raw.status().role, "leader");
    assert.equal(a.raw.status().leadTransferee, "");
    a.raw.propose(enc("after"));
  });

  it("a transfer to a non-voter is rejected", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    assert.throws(() => a.raw.transferLeadership("zz"), TransferRejectedError);
  });
});
