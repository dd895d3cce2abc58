import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SafetyChecker, type LogView, type ViolationKind } from "../../src/sim/checkers.js";

function checker(ruleChecks = true): SafetyChecker {
  let tick = 0;
  return new SafetyChecker({ now: () => ++tick, ruleChecks });
}

/** A log given as the terms of indexes first..first+terms.length-1. */
function log(id: string, first: number, terms: number[], conf?: (i: number) => string[]): LogView {
  return {
    id,
    firstIndex: first,
    lastIndex: first + terms.length - 1,
    termAt: (i) => (i >= first && i < first + terms.length ? terms[i - first]! : null),
    ...(conf ? { confAt: (i: number) => ({ voters: conf(i), learners: [] }), snapshotIndex: first - 1 } : {}),
  };
}

function kinds(c: SafetyChecker): ViolationKind[] {
  return c.violations.map((v) => v.kind);
}

describe("SafetyChecker: the properties of Raft's Figure 3", () => {
  it("election safety: one leader per term (§5.2)", () => {
    const c = checker();
    c.leader("n1", 3);
    c.leader("n1", 3); // Seen again: fine.
    c.leader("n2", 4);
    assert.deepEqual(kinds(c), []);
    c.leader("n3", 3);
    assert.deepEqual(kinds(c), ["election-safety"]);
    assert.match(c.violations[0]!.description, /term 3: n1 and n3/);
    assert.equal(c.electedTerms, 2);
  });

  it("log matching: same index and term means the same prefix (§5.3)", () => {
    const c = checker();
    c.logsMatch(log("a", 1, [1, 1, 2, 2]), log("b", 1, [1, 1, 2, 3, 3]));
    assert.deepEqual(kinds(c), [], "logs that diverge only after the last agreement are fine");
    c.logsMatch(log("a", 1, [1, 1, 2, 2]), log("b", 1, [1, 2, 2, 2]));
    assert.deepEqual(kinds(c), ["log-matching"]);
    assert.match(c.violations[0]!.description, /agree at index 4 .* differ at 2/);
  });

  it("log matching: one (index, term) names one payload everywhere", () => {
    const c = checker();
    c.entryPersisted("a", 5, 2, 111);
    c.entryPersisted("b", 5, 2, 111);
    c.entryPersisted("b", 5, 3, 222);
    assert.deepEqual(kinds(c), []);
    c.entryPersisted("c", 5, 2, 333);
    assert.deepEqual(kinds(c), ["log-matching"]);
  });

  it("leader completeness: a new leader holds every committed entry (§5.4)", () => {
    const c = checker();
    c.committed("n1", 1, 1);
    c.committed("n1", 2, 1);
    c.committed("n1", 3, 2);
    c.newLeader(log("n2", 1, [1, 1, 2, 3]), 3);
    assert.deepEqual(kinds(c), []);
    c.newLeader(log("n3", 1, [1, 1]), 3);
    assert.deepEqual(kinds(c), ["leader-completeness"]);
    c.newLeader(log("n4", 1, [1, 1, 3]), 4);
    assert.deepEqual(kinds(c), ["leader-completeness", "leader-completeness"]);
    assert.match(c.violations[1]!.description, /holds term 3 there/);
  });

  it("state machine safety: a committed index never changes its entry", () => {
    const c = checker();
    c.committed("n1", 7, 2);
    c.committed("n2", 7, 2);
    assert.deepEqual(kinds(c), []);
    c.committed("n3", 7, 3);
    assert.deepEqual(kinds(c), ["state-machine-safety"]);
    assert.equal(c.maxCommitted, 7);
  });

  it("state machine safety: every node applies the same entry, reaching the same state (§5.4.3)", () => {
    const c = checker();
    c.entryApplied("n1", 1, 1, 10, 100);
    c.entryApplied("n2", 1, 1, 10, 100);
    assert.deepEqual(kinds(c), []);
    c.entryApplied("n3", 1, 2, 10, 100);
    c.entryApplied("n3", 1, 1, 11, 100);
    c.entryApplied("n3", 1, 1, 10, 999);
    assert.deepEqual(kinds(c), ["state-machine-safety", "state-machine-safety", "state-machine-safety"]);
  });

  it("state machine safety: snapshots agree with the states applied at their index", () => {
    const c = checker();
    c.snapshotState("n1", 4, 40);
    c.entryApplied("n2", 4, 1, 1, 40);
    c.snapshotState("n3", 4, 40);
    assert.deepEqual(kinds(c), []);
    c.snapshotState("n3", 4, 41);
    c.snapshotState("n4", 9, 90);
    c.entryApplied("n1", 9, 1, 1, 91);
    assert.deepEqual(kinds(c), ["state-machine-safety", "state-machine-safety"]);
  });

  it("membership agreement: equal logs derive equal memberships", () => {
    const c = checker();
    const full = (): string[] => ["n1", "n2", "n3"];
    c.logsMatch(log("a", 1, [1, 1, 1], full), log("b", 1, [1, 1, 1], full));
    assert.deepEqual(kinds(c), []);
    c.logsMatch(
      log("a", 1, [1, 1, 1], full),
      log("b", 1, [1, 1, 1], () => ["n2"]),
    );
    assert.deepEqual(kinds(c), ["membership-agreement"]);
  });

  it("stops recording at its bound", () => {
    let tick = 0;
    const c = new SafetyChecker({ now: () => tick++, maxViolations: 2 });
    for (let t = 1; t <= 5; t++) {
      c.leader("a", t);
      c.leader("b", t);
    }
    assert.equal(c.violations.length, 2);
    assert.equal(c.saturated, true);
  });
});

describe("SafetyChecker: rule checks", () => {
  it("a node votes once per term (§5.2) and only with the vote on disk (Figure 2)", () => {
    const c = checker();
    c.voteSent("n3", "n1", 4, 4, "n1");
    c.voteSent("n3", "n1", 4, 4, "n1");
    c.voteSent("n3", "n2", 5, 6, ""); // A later term on disk makes the old vote moot.
    assert.deepEqual(kinds(c), []);
    c.voteSent("n3", "n2", 4, 4, "n2");
    assert.deepEqual(kinds(c), ["vote-once"]);
    c.voteSent("n4", "n1", 7, 7, "");
    c.voteSent("n5", "n1", 7, 6, "n1");
    assert.deepEqual(kinds(c), ["vote-once", "vote-durability", "vote-durability"]);
  });

  it("votes go only to candidates at least as up to date (§5.4.1)", () => {
    const c = checker();
    c.voteGrantedFor("n1", "n2", "vote", 3, { index: 10, term: 2 }, { index: 10, term: 2 });
    c.voteGrantedFor("n1", "n2", "vote", 3, { index: 10, term: 2 }, { index: 4, term: 3 });
    assert.deepEqual(kinds(c), []);
    c.voteGrantedFor("n1", "n2", "vote", 3, { index: 10, term: 2 }, { index: 9, term: 2 });
    c.voteGrantedFor("n1", "n2", "pre-vote", 3, { index: 1, term: 3 }, { index: 50, term: 2 });
    assert.deepEqual(kinds(c), ["vote-up-to-date", "vote-up-to-date"]);
  });

  it("a leader commits by counting only entries of its own term (§5.4.2)", () => {
    const c = checker();
    c.leaderCommitted("n1", 5, 12, 5);
    assert.deepEqual(kinds(c), []);
    c.leaderCommitted("n1", 5, 11, 4);
    assert.deepEqual(kinds(c), ["commit-rule"]);
  });

  it("a read index covers what was committed before the read began (§6.4)", () => {
    const c = checker();
    c.readIndexServed("n1", 9, 9);
    assert.deepEqual(kinds(c), []);
    c.readIndexServed("n1", 8, 9);
    assert.deepEqual(kinds(c), ["stale-read-index"]);
  });

  it("can be switched off, leaving the Figure 3 properties", () => {
    const c = checker(false);
    c.voteSent("n3", "n1", 4, 0, "");
    c.voteSent("n3", "n2", 4, 0, "");
    c.voteGrantedFor("n1", "n2", "vote", 3, { index: 10, term: 2 }, { index: 1, term: 1 });
    c.leaderCommitted("n1", 5, 11, 4);
    c.readIndexServed("n1", 1, 9);
    assert.deepEqual(kinds(c), []);
    c.leader("a", 1);
    c.leader("b", 1);
    assert.deepEqual(kinds(c), ["election-safety"]);
  });
});
