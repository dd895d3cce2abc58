import { test } from "node:test";
import assert from "node:assert/strict";
import { runBootstrapSim } from "./sim.js";

const SEEDS = Number(process.env["BOOTSTRAP_SIM_SEEDS"] ?? 400);

test("bootstrap agreement: founders agree, one cluster per component, everyone ends in a cluster", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runBootstrapSim(seed);
    assert.deepEqual(
      r.violations,
      [],
      `seed ${seed} (nodes ${r.nodes}, expect ${r.expect}); replay with runBootstrapSim(${seed})`,
    );
    assert.equal(r.clusters.length, 1, `seed ${seed}: ${r.clusters.length} clusters`);
  }
});

test("bootstrap agreement with three boards that see each other only partly (expect 3)", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runBootstrapSim(seed, { nodes: 3, expect: 3 });
    assert.deepEqual(r.violations, [], `seed ${seed}`);
    assert.equal(r.clusters.length, 1);
  }
});

test("more boards than 2 × expect: founders still agree and no board is in two clusters", () => {
  let split = 0;
  for (let seed = 1; seed <= SEEDS / 4; seed++) {
    const r = runBootstrapSim(seed, { nodes: 7, expect: 3 });
    assert.deepEqual(r.violations, [], `seed ${seed}`);
    if (r.clusters.length > 1) split++;
  }
  // More than one cluster is possible here when groups reach expect apart (the split-brain case,
  // caught by the alarm): reported, not asserted.
  process.stderr.write(
    `# ${split} of ${SEEDS / 4} runs with 7 boards (expect 3) ended in more than one cluster\n`,
  );
});
