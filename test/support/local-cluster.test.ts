/**
 * The test cluster's own safety net: a test file that starts a cluster and never stops it fails,
 * with the reason, and exits with the cluster stopped, instead of hanging on its processes until
 * the suite's time limit.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { isAlive } from "./local-cluster.js";

const LEAKY = fileURLToPath(new URL("./fixtures/leaky-cluster.js", import.meta.url));

describe("LocalCluster under the test runner", { timeout: 120_000 }, () => {
  it("fails a file that leaves a cluster running, and stops it", async () => {
    // A runner of its own: with this runner's context in its environment it would run nothing.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ["--test", "--test-reporter=spec", LEAKY], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // a group of its own, so that a hang is killed with its cluster
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const killer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 90_000);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(killer);
    assert.equal(code, 1, out);
    assert.match(out, /✔ starts a cluster and forgets it/);
    assert.match(out, /1 local cluster\(s\) were started and never stopped \(now stopped\)/);
    const dir = /# cluster dir (\S+)/.exec(out)?.[1];
    const pids = /# pids (\S+)/.exec(out)?.[1]?.split(",").map(Number);
    assert.ok(dir && pids && pids.length === 1, out);
    for (const pid of pids) assert.equal(isAlive(pid), false, `node ${pid} still runs`);
    assert.equal(existsSync(dir), false, `${dir} is left behind`);
  });
});
