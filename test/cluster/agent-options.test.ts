/**
 * `ringleader agent` refuses options that could not run a node with a usage error (exit 2), before
 * it reads its config or creates anything.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLI } from "../support/local-cluster.js";

describe("ringleader agent: options", () => {
  it("refuses an election timeout no longer than the heartbeat interval, and says why", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl-agent-options-"));
    try {
      for (const ticks of ["2", "1.5", "0"]) {
        const data = join(dir, `data-${ticks}`);
        const run = spawnSync(
          process.execPath,
          [
            CLI,
            "agent",
            "--data",
            data,
            "--peers",
            "n1=127.0.0.1:1",
            "--id",
            "n1",
            "--election-ticks",
            ticks,
          ],
          { encoding: "utf8", timeout: 30_000 },
        );
        assert.equal(run.status, 2, run.stderr);
        assert.match(
          run.stderr,
          /--election-ticks must be an integer from 3 to 1000 \(a leader heartbeats every 2 ticks\)/,
        );
        assert.equal(existsSync(data), false, "nothing was created");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a --machine that a member record cannot carry, and says what it may be", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl-agent-options-"));
    try {
      for (const machine of ["two words", "", "x".repeat(129)]) {
        const data = join(dir, `data-${machine.length}`);
        const run = spawnSync(
          process.execPath,
          [CLI, "agent", "--data", data, "--peers", "n1=127.0.0.1:1", "--id", "n1", "--machine", machine],
          { encoding: "utf8", timeout: 30_000 },
        );
        assert.equal(run.status, 2, run.stderr);
        assert.match(run.stderr, /--machine must be 1-128 printable characters without spaces, got "/);
        assert.equal(existsSync(data), false, "nothing was created");
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
