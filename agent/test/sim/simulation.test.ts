import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkKvHistory } from "../../src/check/linearizability.js";
import { BUG_NAMES, runSimulation, SimOptionsError } from "../../src/sim/index.js";

describe("runSimulation", () => {
  it("replays a seed exactly: same violations, statistics, digest and trace", () => {
    const traceA: string[] = [];
    const traceB: string[] = [];
    const a = runSimulation({ seed: 12, ticks: 1500, trace: (l) => traceA.push(l) });
    const b = runSimulation({ seed: 12, ticks: 1500, trace: (l) => traceB.push(l) });
    assert.deepEqual(a, b);
    assert.deepEqual(traceA, traceB);
    assert.ok(traceA.length > 10);
  });

  it("gives different seeds different runs", () => {
    const digests = new Set<string>();
    for (let seed = 1; seed <= 6; seed++)
      digests.add(runSimulation({ seed, ticks: 800, membership: false }).digest);
    assert.equal(digests.size, 6);
  });

  it("runs the correct core clean through faults, converges, and records a linearizable history", () => {
    let added = 0;
    let snapshotsInstalled = 0;
    for (const seed of [1, 2, 3, 6]) {
      const r = runSimulation({ seed, keepHistory: true });
      assert.deepEqual(r.violations, [], `seed ${seed}`);
      assert.equal(r.nodes, seed % 2 === 1 ? 3 : 5);
      assert.ok(r.stats.confChanges > 0 || seed !== 6, "seed 6 changes membership");
      const s = r.stats;
      assert.ok(s.crashes + s.partitions > 0, `seed ${seed} injected no faults`);
      assert.ok(s.elections > 1 && s.maxCommitIndex > 100 && s.opsOk > 100, JSON.stringify(s));
      assert.ok(s.livenessTicks > 0 && s.livenessTicks < 1500, `liveness took ${s.livenessTicks}`);
      assert.equal(s.linearizability, "ok");
      assert.equal(r.history?.length, s.historyOps);
      assert.deepEqual(checkKvHistory(r.history ?? []), { kind: "ok" });
      added += s.nodesAdded;
      snapshotsInstalled += s.snapshotsInstalled;
    }
    assert.ok(added > 0, "no node joined the group");
    assert.ok(snapshotsInstalled > 0, "no follower needed a snapshot");
  });

  it("catches every deliberate core defect within a few seeds", () => {
    for (const bug of BUG_NAMES) {
      let caughtAt = 0;
      for (let seed = 1; seed <= 20 && caughtAt === 0; seed++) {
        const r = runSimulation({ seed, bug, membership: false, stopAtFirstViolation: true });
        if (r.violations.length > 0) caughtAt = seed;
      }
      assert.ok(caughtAt > 0, `${bug} was not caught`);
    }
  });

  it("reports a violation with its tick and kind, and stops at the first when asked", () => {
    const r = runSimulation({ seed: 1, bug: "stale-read", membership: false, stopAtFirstViolation: true });
    assert.equal(r.violations.length, 1);
    const v = r.violations[0]!;
    assert.ok(v.tick > 0 && v.tick <= r.stats.ticks);
    assert.equal(r.bug, "stale-read");
    assert.equal(r.stats.linearizability, "skipped");
  });

  it("rejects bad options", () => {
    assert.throws(() => runSimulation({ seed: 1.5 }), SimOptionsError);
    assert.throws(() => runSimulation({ seed: 1, ticks: 0 }), SimOptionsError);
    assert.throws(() => runSimulation({ seed: 1, nodes: 4 as 3 }), SimOptionsError);
  });
});
