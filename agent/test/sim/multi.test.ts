import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { runMultiSimulation, type MultiSimResult } from "../../src/sim/multi/index.js";

const SEEDS = [1, 2, 3, 4, 5, 6];

describe("multi-Raft simulator", () => {
  const results: MultiSimResult[] = [];

  it("runs seeds of a sharded cluster under faults with no violation", async () => {
    for (const seed of SEEDS) {
      const r = await runMultiSimulation({ seed });
      assert.deepEqual(r.violations, [], `seed ${seed}: ${JSON.stringify(r.violations.slice(0, 3))}`);
      assert.equal(r.stats.linearizability, "ok", `seed ${seed}`);
      assert.ok(r.stats.groups >= 5, `seed ${seed} runs a meta group and at least 4 partitions`);
      results.push(r);
    }
    const sum = (k: keyof MultiSimResult["stats"]): number =>
      results.reduce((n, r) => n + (r.stats[k] as number), 0);
    // The seeds must have exercised what the simulator is for, or passing means little.
    for (const k of [
      "crashes",
      "partitions",
      "messagesLost",
      "joins",
      "drains",
      "ringChanges",
      "replicaChanges",
      "removalsConfirmed",
      "joinsConfirmed",
    ] as const) {
      assert.ok(sum(k) > 0, `no ${k} over seeds ${SEEDS.join(",")}`);
    }
    assert.ok(sum("historyOps") > 500, "clients completed operations");
  });

  it("replays a seed exactly", async () => {
    const a = await runMultiSimulation({ seed: 3, ticks: 800 });
    const b = await runMultiSimulation({ seed: 3, ticks: 800 });
    assert.equal(a.digest, b.digest);
    assert.deepEqual(a.stats, b.stats);
  });

  it("routes every key to its partition's group: a history spans several partitions", async () => {
    const r = await runMultiSimulation({ seed: 4, ticks: 600, keepHistory: true, membership: false });
    const { partitionForKey } = await import("../../src/ring/keys.js");
    const parts = new Set(r.history!.map((op) => partitionForKey(r.partitions, op.input.key)));
    assert.ok(parts.size >= 3, `operations touched only partitions ${[...parts].join(",")}`);
  });

  it("catches a deliberate Raft defect in some partition group", async () => {
    let caught: MultiSimResult | null = null;
    for (let seed = 1; seed <= 20 && caught === null; seed++) {
      const r = await runMultiSimulation({
        seed,
        bug: "stale-read",
        ticks: 1500,
        stopAtFirstViolation: true,
      });
      if (r.violations.length > 0) caught = r;
    }
    assert.ok(caught !== null, "stale-read went unnoticed in 20 multi-Raft seeds");
  });

  it("shows the controller hang it fixes: without the propose timeout some seed never converges", async () => {
    // The first such seed moves whenever the controller changes, so it is searched for.
    let broken: MultiSimResult | null = null;
    for (let seed = 1; seed <= 80 && broken === null; seed++) {
      const r = await runMultiSimulation({ seed, proposeTimeout: false });
      if (r.violations.some((v) => v.kind === "liveness")) broken = r;
    }
    assert.ok(broken !== null, "no seed in 1..80 hangs without the propose timeout");
    const fixed = await runMultiSimulation({ seed: broken.seed });
    assert.deepEqual(fixed.violations, [], `seed ${broken.seed} with the timeout`);
  });

  it("rejects bad options", async () => {
    await assert.rejects(runMultiSimulation({ seed: 1, partitions: 0 }), /partitions must be/);
    await assert.rejects(runMultiSimulation({ seed: 1, nodes: 9 }), /nodes must be/);
  });
});

/** dist/agent/test/sim/multi.test.js → dist/agent/src/cli/main.js */
const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function sim(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "sim", ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("ringleader sim --multi", () => {
  it("replays a seed with the same output, ending with the summary line", () => {
    const a = sim("--multi", "--seed", "2", "--ticks", "500");
    const b = sim("--multi", "--seed", "2", "--ticks", "500");
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stdout, /^seed 2 multi \(\d founders, \d+ partitions\): .* digest [0-9a-f]{16}\n/);
    assert.match(a.stdout, /\nSIM: 1 seeds, 0 violations\n$/);
    assert.match(a.stderr, /seeds\/s/);
  });

  it("prints what a range of seeds exercised", () => {
    const r = sim("--partitions", "4", "--seeds", "2", "--ticks", "400");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^exercised: \d+ crashes, \d+ partitions, \d+ messagesLost/m);
  });

  it("rejects a bad partition count with a usage error", () => {
    const r = sim("--multi", "--partitions", "99");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--partitions must be a whole number from 1 to 16/);
  });
});
