import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage, type Message } from "../../src/raft/index.js";
import { SafetyChecker } from "../../src/sim/checkers.js";
import { SimNode, type NodeEnv, type NodeTuning } from "../../src/sim/node.js";
import { Random } from "../../src/sim/random.js";

const TUNING: NodeTuning = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: false,
  checkQuorum: true,
  readOnly: "safe",
  maxSizePerMsg: 1 << 20,
  maxInflightMsgs: 256,
  fsyncMin: 5,
  fsyncMax: 5,
  snapshotEvery: 1000,
  keepEntries: 0,
};

/** One node of a three-node group, with the world around it reduced to lists. */
function lone() {
  const sent: Message[] = [];
  const fsyncs: { incarnation: number; time: number }[] = [];
  const env: NodeEnv = {
    checker: new SafetyChecker({ now: () => 0 }),
    random: new Random(1),
    bugs: new Set(),
    now: () => 0,
    sendPeer: (m) => sent.push(m),
    reply: () => {},
    scheduleFsync: (_node, incarnation, time) => fsyncs.push({ incarnation, time }),
    confApplied: () => {},
    afterFsync: () => {},
    afterVote: () => {},
    trace: () => {},
    note: () => {},
  };
  const storage = MemoryStorage.bootstrap(["n1", "n2", "n3"]);
  /** Bootstrap may start a group in a term of its own (founding entries in the log). */
  const bootTerm = storage.initialState().hardState.term;
  const lastIndex = storage.lastIndex();
  const lastTerm = storage.term(lastIndex);
  const node = new SimNode("n1", storage, TUNING, env, new Random(2));
  /** Ticks until the node campaigns: its Ready (new term, own vote, vote requests) waits for a fsync. */
  const campaign = (): void => {
    for (let i = 0; i < 40 && fsyncs.length === 0; i++) node.tick();
    assert.equal(fsyncs.length, 1, "the campaign's Ready waits for a fsync");
  };
  return { node, storage, sent, fsyncs, campaign, checker: env.checker, bootTerm, lastIndex, lastTerm };
}

describe("SimNode: the ready loop over a slow disk", () => {
  it("sends nothing until the fsync of the Ready that holds it completes", () => {
    const { node, storage, sent, fsyncs, campaign, bootTerm } = lone();
    node.start();
    campaign();
    assert.equal(fsyncs[0]!.time, 5, "the fsync takes the configured latency");
    assert.equal(sent.length, 0);
    assert.equal(storage.initialState().hardState.term, bootTerm, "nothing is on disk yet");
    node.tick(); // Time passes: still no second Ready while the first is in flight.
    assert.equal(fsyncs.length, 1);
    node.fsyncDone(fsyncs[0]!.incarnation);
    const hs = storage.initialState().hardState;
    assert.deepEqual({ term: hs.term, vote: hs.vote }, { term: bootTerm + 1, vote: "n1" });
    assert.deepEqual(sent.map((m) => `${m.type}>${m.to}`).sort(), ["vote>n2", "vote>n3"]);
  });

  it("loses the unsynced writes and the unsent messages of a crash", () => {
    const { node, storage, sent, fsyncs, campaign, bootTerm } = lone();
    node.start();
    campaign();
    node.crash();
    node.fsyncDone(fsyncs[0]!.incarnation); // The fsync event of the dead incarnation arrives.
    assert.equal(node.up, false);
    assert.equal(sent.length, 0);
    assert.equal(storage.initialState().hardState.term, bootTerm);
    node.start();
    assert.equal(node.freshStatus()?.term, bootTerm, "the rebooted node starts from its disk");
    fsyncs.length = 0;
    campaign();
    node.fsyncDone(fsyncs[0]!.incarnation);
    assert.equal(storage.initialState().hardState.term, bootTerm + 1);
    assert.equal(sent.length, 2);
  });

  it("checks that a granted vote is on disk when it leaves (and is on disk here)", () => {
    const { node, sent, fsyncs, checker, bootTerm, lastIndex, lastTerm } = lone();
    node.start();
    node.deliver({
      type: "vote",
      group: 1,
      from: "n2",
      to: "n1",
      term: bootTerm + 1,
      logTerm: lastTerm,
      index: lastIndex,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      rejectTerm: 0,
      context: new Uint8Array(0),
      snapshot: null,
    });
    assert.equal(sent.length, 0, "the vote waits for its fsync");
    node.fsyncDone(fsyncs[0]!.incarnation);
    assert.deepEqual(
      sent.map((m) => `${m.type}>${m.to}${m.reject ? " reject" : ""}`),
      ["voteResp>n2"],
    );
    assert.deepEqual(checker.violations, []);
  });
});
