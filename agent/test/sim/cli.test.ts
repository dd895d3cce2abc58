import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

/** dist/agent/test/sim/cli.test.js → dist/agent/src/cli/main.js */
const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

function sim(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "sim", ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("ringleader sim", () => {
  it("replays a seed with the same output, ending with the summary line", () => {
    const a = sim("--seed", "3", "--no-membership", "--ticks", "1000");
    const b = sim("--seed", "3", "--no-membership", "--ticks", "1000");
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stdout, /digest [0-9a-f]{16}/);
    assert.match(a.stdout, /\nSIM: 1 seeds, 0 violations\n$/);
  });

  it("prints a failing seed with its replay command and exits 1", () => {
    const r = sim("--seed", "1", "--bug", "stale-read", "--no-membership");
    assert.equal(r.status, 1);
    assert.match(r.stdout, /FAIL seed 1 \(3 nodes\)/);
    assert.match(r.stdout, /replay: ringleader sim --seed 1 --nodes 3 --bug stale-read --no-membership/);
    assert.match(r.stdout, /SIM: 1 seeds, 1 violations\n$/);
  });

  it("rejects an unknown bug name with the list of known ones", () => {
    const r = sim("--bug", "no-such-bug");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown bug "no-such-bug"; choose one of: commit-previous-term/);
  });
});
