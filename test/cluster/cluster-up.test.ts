/**
 * `ringleader cluster up` (what `make run` runs) beyond the first start: run again on the same
 * folder it brings the same cluster back with its data; when a node cannot start, the command
 * fails at once with the node's own error and stops the others, instead of printing the tour over
 * a cluster that never forms.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePorts } from "../../agent/src/cli/free-ports.js";
import { runCli } from "../support/cli.js";
import { CLI, isAlive } from "../support/local-cluster.js";

interface Up {
  readonly child: ChildProcess;
  readonly nodes: { id: string; api: string; peer: string }[];
  readonly token: string;
  readonly stdout: string;
  /** The last 20,000 characters of the run's log (the agents log to it too), as of now. */
  readonly log: () => string;
}

/** `cluster up --json` on `dir`, until it prints the cluster (it waits for every node to be ready). */
async function up(dir: string): Promise<Up> {
  const child = spawn(process.execPath, [CLI, "cluster", "up", "--dir", dir, "--json", "--tick-ms", "50"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (b: Buffer) => {
      stdout += b.toString();
      if (stdout.includes("\n")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`cluster up exited (${code}): ${stderr}`)));
  });
  const body = JSON.parse(stdout) as { nodes: Up["nodes"]; token: string };
  return { child, nodes: body.nodes, token: body.token, stdout: stdout + stderr, log: () => stderr };
}

async function stop(u: Up): Promise<void> {
  u.child.kill("SIGINT");
  if (u.child.exitCode === null) await once(u.child, "exit");
}

describe("cluster up", { timeout: 180_000 }, () => {
  it("Ctrl-C stops every node without running into the leadership hand-over deadline", async () => {
    // Each stopping agent hands its partitions over, and used to wait until it led none. With
    // every node stopping at once they handed them to each other, so each waited out its 2 s
    // deadline. Now an agent waits only for the hand-overs it started.
    const dir = await mkdtemp(join(tmpdir(), "ringleader-up-"));
    try {
      const u = await up(dir);
      await stop(u);
      assert.equal(u.child.exitCode, 0, u.log());
      assert.equal(u.log().match(/agent stopped/g)?.length, 3, u.log());
      assert.doesNotMatch(u.log(), /stopping at the hand-over deadline/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("run again on the same folder, brings the same cluster back, data and all", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ringleader-up-"));
    try {
      const first = await up(dir);
      const put = await fetch(`${first.nodes[0]!.api}/v1/kv/greeting`, {
        method: "PUT",
        headers: { authorization: `Bearer ${first.token}` },
        body: "hello",
      });
      assert.equal(put.status, 200);
      await stop(first);
      const again = await up(dir);
      try {
        // Ready means every partition led: the nodes found each other again.
        assert.doesNotMatch(again.stdout, /not ready/);
        assert.deepEqual(
          again.nodes.map((n) => [n.id, n.api, n.peer]),
          first.nodes.map((n) => [n.id, n.api, n.peer]),
          "the same addresses as the last run",
        );
        const get = await fetch(`${again.nodes[1]!.api}/v1/kv/greeting`, {
          headers: { authorization: `Bearer ${again.token}` },
        });
        assert.equal(get.status, 200);
        assert.equal(await get.text(), "hello");
      } finally {
        await stop(again);
      }
      const other = await runCli(["cluster", "up", "--dir", dir, "--nodes", "5"]);
      assert.equal(other.code, 2, other.stderr);
      assert.match(
        other.stderr,
        /holds the data of a 3-node cluster \(n1, n2, n3\); start it again with --nodes 3/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

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
