/**
 * `ringleader cluster up` when a node cannot start: the command fails at once with the node's
 * own error and stops the others, instead of printing the tour over a cluster that never forms.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePorts } from "../../agent/src/cli/free-ports.js";
import { runCli } from "../support/cli.js";
import { isAlive } from "../support/local-cluster.js";

describe("cluster up", { timeout: 120_000 }, () => {
  it("fails, and stops every node, when one cannot start because its API port is taken", async () => {
    const [base] = (await freePorts(1)) as [number];
    // Another program holds the first node's API port (--base-port gives n1 exactly that one).
    const taken = createServer().listen(base, "127.0.0.1");
    await once(taken, "listening");
    const dir = await mkdtemp(join(tmpdir(), "ringleader-up-"));
    try {
      const r = await runCli(
        ["cluster", "up", "--nodes", "3", "--dir", dir, "--base-port", String(base)],
        60_000,
      );
      assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr.slice(-3000)}`);
      assert.match(
        r.stderr,
        new RegExp(`the API address 127\\.0\\.0\\.1:${base} is already in use by another program; .* --api`),
      );
      assert.match(r.stderr, /node n1 exited \(1\) while the cluster was starting; its error is above/);
      assert.doesNotMatch(r.stdout, /Local cluster is up/);
      const file = JSON.parse(await readFile(join(dir, "cluster.json"), "utf8")) as {
        nodes: { pid: number }[];
      };
      assert.equal(file.nodes.length, 3);
      for (const n of file.nodes) assert.equal(isAlive(n.pid), false, `node pid ${n.pid} still runs`);
    } finally {
      taken.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
