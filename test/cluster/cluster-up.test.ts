/**
 * `ringleader cluster up` (what `make run` runs) beyond the first start: run again on the same
 * folder it brings the same cluster back with its data; when a node cannot start, the command
 * fails at once with the node's own error and stops the others, instead of printing the tour over
 * a cluster that never forms.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { freePorts } from "../../agent/src/cli/free-ports.js";
import { runCli } from "../support/cli.js";
import { CLI } from "../support/local-cluster.js";

interface Up {
  readonly child: ChildProcess;
  readonly nodes: { id: string; api: string; peer: string }[];
  readonly token: string;
  readonly stdout: string;
  /** The last 20,000 characters of the run's log (the agents log to it too), as of now. */
  readonly log: () => string;
}

/**
 * `cluster up --json` on `dir`, until it prints the cluster (it waits for every node to be ready);
 * `nodeFlags` go to Node, before the CLI.
 */
async function up(dir: string, nodeFlags: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<Up> {
  const child = spawn(
    process.execPath,
    [...nodeFlags, CLI, "cluster", "up", "--dir", dir, "--json", "--tick-ms", "50"],
    { stdio: ["ignore", "pipe", "pipe"], env },
  );
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

/** The pids of agent processes whose data is under `dir`, from /proc. */
async function agentsIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = await readFile(`/proc/${name}/cmdline`, "utf8").then(
      (text) => text.split("\0"),
      (): string[] => [], // the process ended meanwhile
    );
    if (argv.includes("agent") && argv.some((a) => a.startsWith(dir + "/"))) pids.push(Number(name));
  }
  return pids;
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
      assert.match(r.stderr, /node n1 exited \(75\) while the cluster was starting; its error is above/);
      assert.doesNotMatch(r.stdout, /Local cluster is up/);
      // Its ports were given (--base-port): it is not started again on others.
      assert.doesNotMatch(r.stderr, /starting the new cluster again/);
      // No client is pointed at a cluster that never formed.
      assert.equal(existsSync(join(dir, "cluster.json")), false);
      assert.deepEqual(await agentsIn(dir), [], "every node of the cluster is stopped");
    } finally {
      taken.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("starts a new cluster again on other ports when another program takes one before its node binds it", async () => {
    // The preloaded hook binds n2's peer port inside n2's process before the agent's own listen:
    // the agent meets the same EADDRINUSE as when another program takes the port in between.
    const dir = await mkdtemp(join(tmpdir(), "ringleader-up-"));
    const marker = join(dir, "taken-port");
    const hook = fileURLToPath(new URL("../support/take-port-once.js", import.meta.url));
    try {
      const u = await up(dir, ["--import", hook], {
        ...process.env,
        TAKE_PORT_NODE: "n2",
        TAKE_PORT_MARKER: marker,
      });
      try {
        const taken = await readFile(marker, "utf8");
        const log = u.log();
        assert.match(log, new RegExp(`the peer address ${taken.replace(/\./g, "\\.")} is already in use`));
        assert.match(log, /starting the new cluster again on other ports \(attempt 2 of 3\)/);
        assert.doesNotMatch(u.stdout, /not ready/);
        assert.notEqual(u.nodes.find((n) => n.id === "n2")!.peer, taken);
        const file = JSON.parse(await readFile(join(dir, "cluster.json"), "utf8")) as { nodes: Up["nodes"] };
        assert.deepEqual(file.nodes, u.nodes, "cluster.json names the nodes that run");
        const put = await fetch(`${u.nodes[1]!.api}/v1/kv/greeting`, {
          method: "PUT",
          headers: { authorization: `Bearer ${u.token}` },
          body: "hello",
        });
        assert.equal(put.status, 200, await put.text());
        const get = await fetch(`${u.nodes[2]!.api}/v1/kv/greeting`, {
          headers: { authorization: `Bearer ${u.token}` },
        });
        assert.equal(await get.text(), "hello");
      } finally {
        await stop(u);
      }
      assert.equal(u.child.exitCode, 0, u.log());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
