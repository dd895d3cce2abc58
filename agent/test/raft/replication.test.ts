import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProposalDroppedError, committedOnDisk, type Entry, type Ready } from "../../src/raft/index.js";
import { Cluster, dec, enc, userData, type TestNode } from "./harness.js";

describe("log replication (Raft §5.3)", () => {
  it("a committed entry is applied on every node in the same order", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    for (let i = 0; i < 20; i++) a.raw.propose(enc(`v${i}`));
    c.settle();
    c.tickAll(2);
    const want = Array.from({ length: 20 }, (_, i) => `v${i}`);
    for (const n of c.nodes.values()) assert.deepEqual(userData(n), want);
  });

  it("a follower proposal is dropped with the leader's id as a hint", () => {
    const c = new Cluster(["a", "b", "c"]);
    c.elect("a");
    assert.throws(
      () => c.node("b").raw.propose(enc("x")),
      (e: unknown) => e instanceof ProposalDroppedError && /leader is a/.test(e.message),
    );
  });

  it("an entry is committed only once a majority stores it", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    const before = a.raw.status().commit;
    c.filter = (m) => (m.from === "a" ? false : true); // nothing leaves the leader
    a.raw.propose(enc("x"));
    c.settle();
    assert.equal(a.raw.status().commit, before);
    c.heal();
    c.tickAll(2);
    assert.equal(a.raw.status().commit, before + 1);
  });

  it("a follower with a conflicting log is repaired by the leader (fast back-tracking, §5.3)", () => {
    // Without check-quorum, b and c grant votes at once instead of waiting out a's lease.
    const c = new Cluster(["a", "b", "c"], { preVote: false, checkQuorum: false });
    const a = c.elect("a");
    // a appends entries that reach nobody, then loses leadership.
    c.isolate("a");
    for (let i = 0; i < 30; i++) a.raw.propose(enc(`lost${i}`));
    c.settle();
    c.filter = (m) => m.from !== "a" && m.to !== "a";
    c.elect("b");
    for (let i = 0; i < 5; i++) c.node("b").raw.propose(enc(`kept${i}`));
    c.settle();
    c.heal();
    c.tickAll(3);
    const want = Array.from({ length: 5 }, (_, i) => `kept${i}`);
    assert.deepEqual(userData(c.node("a")), want);
    // Back-tracking by term takes a handful of round trips, not one per conflicting entry.
    const rejects = c.delivered.filter((m) => m.type === "appResp" && m.reject && m.from === "a");
    assert.ok(rejects.length <= 3, `expected few rejections, got ${rejects.length}`);
  });

  it("flow control bounds the appends in flight to a silent follower", () => {
    const c = new Cluster(["a", "b", "c"], { maxInflightMsgs: 4, maxSizePerMsg: 1 });
    const a = c.elect("a");
    c.tickAll(1);
    let toC = 0;
    c.filter = (m) => {
      if (m.to === "c" && m.type === "app") {
        toC++;
        return false;
      }
      return !(m.from === "c");
    };
    for (let i = 0; i < 50; i++) a.raw.propose(enc(`x${i}`));
    c.settle();
    assert.ok(toC <= 4, `at most 4 appends in flight, saw ${toC}`);
    assert.equal(a.raw.status().commit >= 50, true, "b alone forms the majority with a");
  });
});

describe("proposal forwarding (forwardProposals)", () => {
  it("a follower forwards its proposal to the leader and applies it once committed", () => {
    const c = new Cluster(["a", "b", "c"], { forwardProposals: true });
    c.elect("a");
    c.node("b").raw.propose(enc("via-b"));
    c.settle();
    c.tickAll(1);
    for (const n of c.nodes.values()) assert.deepEqual(userData(n), ["via-b"]);
  });

  it("a follower that knows no leader still refuses", () => {
    const c = new Cluster(["a", "b", "c"], { forwardProposals: true });
    assert.throws(() => c.node("b").raw.propose(enc("x")), ProposalDroppedError);
  });
});

describe("commit propagation", () => {
  it("a new commit index is not broadcast on its own; followers learn it at the next heartbeat", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    c.tickAll(1);
    const from = c.delivered.length;
    a.raw.propose(enc("x"));
    c.settle();
    const sent = c.delivered.slice(from).filter((m) => m.from === "a");
    // One append per follower, carrying the entry; no second, empty one for the new commit.
    assert.deepEqual(
      sent.map((m) => `${m.type}>${m.to}:${m.entries.length}`),
      ["app>b:1", "app>c:1"],
    );
    assert.deepEqual(userData(a), ["x"]);
    assert.deepEqual(userData(c.node("b")), [], "b holds x but has not heard it is committed");
    c.tickAll(1);
    for (const n of c.nodes.values()) assert.deepEqual(userData(n), ["x"]);
  });

  it("the next append carries the commit index of the writes before it", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    a.raw.propose(enc("x"));
    c.settle();
    a.raw.propose(enc("y"));
    c.settle();
    assert.deepEqual(userData(c.node("b")), ["x"], "y's append told b that x committed");
  });

  it("a follower that forwarded a write hears at once that it committed; the others wait", () => {
    const c = new Cluster(["a", "b", "c"], { forwardProposals: true });
    c.elect("a");
    c.tickAll(1);
    c.node("b").raw.propose(enc("via-b"));
    c.settle();
    assert.deepEqual(userData(c.node("b")), ["via-b"], "b answers its writer without waiting a tick");
    assert.deepEqual(userData(c.node("c")), []);
    c.tickAll(1);
    assert.deepEqual(userData(c.node("c")), ["via-b"]);
  });
});

describe("committedOnDisk: what a Ready may answer before its own write is synced", () => {
  /** Records every Ready `n` hands out. */
  const record = (n: TestNode): Ready[] => {
    const seen: Ready[] = [];
    const ready = n.raw.ready.bind(n.raw);
    n.raw.ready = () => {
      const rd = ready();
      seen.push(rd);
      return rd;
    };
    return seen;
  };
  const data = (es: readonly Entry[]) => es.filter((e) => e.data.length > 0).map((e) => dec(e.data));
  const holding = (seen: Ready[], value: string) => seen.find((rd) => data(rd.entries).includes(value))!;

  it("a leader's earlier entries, committed while it writes new ones, are on its disk", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    const seen = record(a);
    a.raw.propose(enc("x"));
    // y arrives as the followers' acknowledgements of x do, before the leader's next Ready.
    let proposed = false;
    c.filter = (m) => {
      if (!proposed && m.to === "a" && m.type === "appResp") {
        a.raw.propose(enc("y"));
        proposed = true;
      }
      return true;
    };
    c.settle();
    const rd = holding(seen, "y");
    assert.deepEqual(data(rd.committedEntries), ["x"]);
    assert.deepEqual(data(committedOnDisk(rd)), ["x"]);
  });

  it("a lone voter's entry, committed in the Ready that writes it, is not", () => {
    const c = new Cluster(["a"]);
    const a = c.elect("a");
    const seen = record(a);
    a.raw.propose(enc("x"));
    c.settle();
    const rd = holding(seen, "x");
    assert.deepEqual(data(rd.committedEntries), ["x"]);
    assert.deepEqual(data(committedOnDisk(rd)), []);
  });

  it("nor is a follower's entry that arrives with the news that it committed", () => {
    const c = new Cluster(["a", "b", "c"]);
    const a = c.elect("a");
    const seen = record(c.node("b"));
    c.isolate("b");
    a.raw.propose(enc("x"));
    c.settle();
    c.heal();
    c.tickAll(3);
    const rd = holding(seen, "x");
    assert.deepEqual(data(rd.committedEntries), ["x"]);
    assert.deepEqual(data(committedOnDisk(rd)), []);
  });
});
