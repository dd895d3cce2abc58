/**
 * Seeing the cluster with real processes: every agent knows every board's health (pulled from
 * its peers, not written to Raft), `status` prints the one-screen overview and `--json`, `top`
 * redraws in place in a real pseudo-terminal (util-linux `script`), follows a resize and restores
 * the terminal on Ctrl-C, `/metrics` carries board, peer and API figures, and a killed board
 * turns into "unreachable" and "under-replicated" warnings on the others.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ClusterHealth } from "../../agent/src/health/view.js";
import { agentNodeFlags } from "../../agent/src/node/runtime-flags.js";
import { CLI, LocalCluster } from "../support/local-cluster.js";
import { freshModuleRecords, moduleWatchEnv, type ModuleRecord } from "../support/fixtures/module-watch.js";

async function health(c: LocalCluster, id: string): Promise<ClusterHealth | null> {
  try {
    const res = await fetch(`${c.nodes.get(id)!.api}/v1/health`, {
      headers: { authorization: `Bearer ${c.token}` },
      signal: AbortSignal.timeout(5000),
    });
    return res.ok ? ((await res.json()) as ClusterHealth) : null;
  } catch {
    return null;
  }
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return once(child, "exit").then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

/** Visible width of a line with ANSI escapes removed. */
function visible(line: string): number {
  // eslint-disable-next-line no-control-regex -- stripping ANSI escapes is the point.
  return line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "").length;
}

describe("observing a real cluster", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  let clusterFile = "";
  const membersAtStart = new Map<string, string[]>();
  /** Where the cluster's processes report the undici modules they loaded (module-watch.ts). */
  let moduleDir = "";
  before(async () => {
    moduleDir = await mkdtemp(join(tmpdir(), "ringleader-modules-"));
    cluster = await LocalCluster.start({
      nodes: 3,
      tickMs: 50,
      env: moduleWatchEnv(moduleDir),
    });
    // What each node's member table holds the moment `cluster up` says the cluster is up.
    for (const [id, n] of cluster.nodes) {
      const res = await fetch(`${n.api}/v1/members`, {
        headers: { authorization: `Bearer ${cluster.token}` },
      });
      const body = (await res.json()) as { members: { id: string }[] };
      membersAtStart.set(id, body.members.map((m) => m.id).sort());
    }
    clusterFile = join(cluster.dir, "cluster.json");
    // Each test may run alone (--test-name-pattern); none should start on a cluster still forming.
    await cluster.waitHealthy();
  });
  after(async () => {
    await cluster?.stop();
    if (moduleDir) await rm(moduleDir, { recursive: true, force: true });
  });

  it("cluster up answers once every node's member table lists every node", () => {
    // Else `members step-down n2` right after start fails through n1 with "no member n2".
    const all = ["n1", "n2", "n3"];
    assert.deepEqual(
      [...membersAtStart],
      all.map((id) => [id, all]),
    );
  });

  it("agents start with glibc's malloc arenas capped (AGENT_ENV in runtime-flags.ts)", async () => {
    const want = `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? "2"}`;
    for (const id of ["n1", "n2", "n3"]) {
      const env = (await readFile(`/proc/${cluster.pid(id)}/environ`, "utf8")).split("\0");
      assert.ok(env.includes(want), `${id} runs without ${want}`);
    }
  });

  it("agents start with Node's flags from runtime-flags.ts (the heap cap over 4 GiB of memory)", async () => {
    const want = agentNodeFlags();
    for (const id of ["n1", "n2", "n3"]) {
      const argv = (await readFile(`/proc/${cluster.pid(id)}/cmdline`, "utf8")).split("\0");
      for (const flag of want)
        assert.ok(argv.includes(flag), `${id} runs without ${flag}: ${argv.join(" ")}`);
    }
  });

  it("every node sees every board's health and every partition's leader", async () => {
    const view = await cluster.waitFor("n2 to see a healthy cluster", 60_000, async () => {
      const h = await health(cluster, "n2");
      const ok =
        h &&
        h.nodes.length === 3 &&
        h.nodes.every((n) => n.reachable && n.board !== null) &&
        h.partitions.length === 64 &&
        h.partitions.every((p) => p.leader !== null) &&
        // Records arrive every few seconds, so during a hand-over two may claim one partition.
        h.nodes.reduce((s, n) => s + n.leads, 0) === 64 &&
        h.warnings.length === 0;
      return ok ? h : null;
    });
    assert.equal(view.observer, "n2");
    for (const n of view.nodes) {
      assert.ok(n.board!.memTotalBytes > 0 && n.board!.diskFreeBytes! > 0, n.id);
      assert.equal(n.replicas, 64);
      assert.ok(n.load !== null && n.load >= 0);
      // Same machine, same clock: the measured skew is small.
      assert.ok(Math.abs(n.skewMs ?? 0) < 1000, `${n.id} skew ${n.skewMs}`);
    }
    assert.equal(
      view.nodes.reduce((s, n) => s + n.leads, 0),
      64,
      "each partition is led by exactly one node",
    );
  });

  it("agents and cluster up make their HTTP requests without loading undici (the global fetch)", async () => {
    // Each agent pulls its peers' health records, scrapes its board's bridge for /metrics and
    // forwards writes; `cluster up` polls the agents it started. Through undici each process
    // would malloc ~30 MB to compile its parser and keep much of it (agent/src/net/http-fetch.ts).
    const auth = { authorization: `Bearer ${cluster.token}` };
    for (const [id, n] of cluster.nodes) {
      await cluster.waitFor(`${id} to have pulled every peer's health record`, 60_000, async () => {
        const h = await health(cluster, id);
        return h !== null && h.nodes.length === 3 && h.nodes.every((x) => x.reachable && x.board !== null);
      });
      assert.equal((await fetch(`${n.api}/metrics`)).status, 200);
      const put = await fetch(`${n.api}/v1/kv/undici-${id}`, { method: "PUT", headers: auth, body: "x" });
      assert.equal(put.status, 200, await put.text());
    }
    const since = Date.now();
    const records = await cluster.waitFor("every process to report its modules again", 10_000, async () => {
      const fresh = await freshModuleRecords(moduleDir, since);
      const agents = [...cluster.nodes.keys()]
        .map((id) => fresh.get(cluster.pid(id)))
        .filter((r): r is ModuleRecord => r !== undefined);
      const up = [...fresh.values()].filter((r) => r.command === "cluster");
      return agents.length === cluster.nodes.size && up.length === 1 ? [...agents, ...up] : null;
    });
    for (const r of records) assert.deepEqual([r.command, r.undici], [r.command, []]);
  });

  it("status prints the overview, and the health document with --json", async () => {
    // `status` asks the first node, which may not have heard the others' latest records yet.
    let human = await run(["status", "--cluster-file", clusterFile]);
    await cluster
      .waitFor("status to show a settled cluster", 60_000, async () => {
        human = await run(["status", "--cluster-file", clusterFile]);
        return human.stdout.includes("no warnings");
      })
      .catch(() => assert.fail(`status never settled:\n${human.stdout}\n${human.stderr}`));
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^NODE\s+ADDRESS\s+STATE\s+META\s+TEMP\s+CPU/m);
    for (const id of ["n1", "n2", "n3"])
      assert.match(human.stdout, new RegExp(`^${id}\\s+127\\.0\\.0\\.1:\\d+\\s+up\\s`, "m"));
    assert.match(human.stdout, /partitions\s+64\/64 have a leader/);
    assert.match(human.stdout, /every partition fully replicated/);
    const machine = await run(["status", "--json", "--cluster-file", clusterFile]);
    assert.equal(machine.code, 0, machine.stderr);
    const doc = JSON.parse(machine.stdout) as { nodes: unknown[]; health: ClusterHealth };
    assert.equal(doc.nodes.length, 3);
    assert.equal(doc.health.nodes.length, 3);
    assert.equal(doc.health.partitions.length, 64);

    // `dashboard` prints a link that signs in with the read-only token, and the page is there.
    const link = await run(["dashboard", "--json", "--cluster-file", clusterFile]);
    assert.equal(link.code, 0, link.stderr);
    const { urls, readOnly } = JSON.parse(link.stdout) as { urls: string[]; readOnly: boolean };
    assert.equal(readOnly, true);
    const url = new URL(urls[0]!);
    const token = new URLSearchParams(url.hash.slice(1)).get("token")!;
    assert.notEqual(token, cluster.token);
    const page = await fetch(url.href.split("#")[0]!);
    assert.ok(page.status === 200 || page.status === 503, `GET /ui/: ${page.status}`);
    const read = await fetch(new URL("/v1/health", url), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(read.status, 200);
  });

  it("top redraws in place in a terminal, follows a resize and restores the screen on Ctrl-C", async () => {
    const go = join(cluster.dir, "resize-now");
    // Inside the pty: start 100 columns wide; when the test says so, become 50 wide and tell top.
    const inner =
      `stty cols 100 rows 40; (while [ ! -e '${go}' ]; do sleep 0.1; done; stty cols 50 < /dev/tty; kill -WINCH $$) & ` +
      `exec '${process.execPath}' '${CLI}' top --interval 60 --cluster-file '${clusterFile}'`;
    // `script` runs its command through $SHELL; `exec` leaves node the only process in the pty's
    // foreground group that Ctrl-C can stop (dash, unlike bash, would otherwise die of the SIGINT
    // itself and `script` would report 130). The background resizer ignores SIGINT as sh's
    // asynchronous lists do.
    const child = spawn("script", ["-qfec", `exec sh -c "${inner.replace(/"/g, '\\"')}"`, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, SHELL: "/bin/sh" },
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      await cluster
        .waitFor("the first frame", 30_000, async () => out.includes("n3") && out.includes("Ctrl-C quits"))
        .catch((err: Error) => assert.fail(`${err.message}; top wrote:\n${out}`));
      assert.ok(out.includes("\x1b[?1049h"), "enters the alternate screen");
      const first = out;
      await writeFile(go, "");
      // The resize alone makes a second frame (the refresh interval is a minute).
      await cluster
        .waitFor("a frame after the resize", 30_000, async () =>
          out.slice(first.length).includes("Ctrl-C quits"),
        )
        .catch((err: Error) => assert.fail(`${err.message}; top wrote:\n${out}`));
      const frames = out.split("\x1b[H");
      const firstLines = frames[1]!.split("\n").map(visible);
      const lastLines = frames[frames.length - 1]!.split("\n").map(visible);
      assert.ok(
        Math.max(...firstLines) > 50 && Math.max(...firstLines) <= 100,
        `first frame ${Math.max(...firstLines)} wide`,
      );
      assert.ok(Math.max(...lastLines) <= 50, `frame after resize ${Math.max(...lastLines)} wide`);
      child.stdin.write("\x03");
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
      assert.ok(
        out.endsWith("\x1b[?25h\x1b[?1049l") || out.includes("\x1b[?25h\x1b[?1049l"),
        "restores the screen",
      );
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("top --json prints one health document per frame, a line each, for scripts", async () => {
    // Each frame asks every node the health view lists as reachable for its own status.
    await cluster.waitFor("n1 to see every node reachable", 60_000, async () => {
      const h = await health(cluster, "n1");
      return h && h.nodes.length === 3 && h.nodes.every((n) => n.reachable && n.api) ? true : null;
    });
    const r = await run([
      "top",
      "--json",
      "--count",
      "2",
      "--interval",
      "0.5",
      "--cluster-file",
      clusterFile,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes("\x1b["), "no terminal escapes");
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 2, r.stdout);
    for (const line of lines) {
      const doc = JSON.parse(line) as { at: string; health: ClusterHealth; nodes: { id: string }[] };
      assert.ok(Number.isFinite(Date.parse(doc.at)), doc.at);
      assert.equal(doc.health.nodes.length, 3);
      assert.deepEqual(doc.nodes.map((n) => n.id).sort(), ["n1", "n2", "n3"]);
    }
  });

  it("/metrics carries board health, peers, raft groups and API routes", async () => {
    const api = cluster.nodes.get("n1")!.api;
    await fetch(`${api}/v1/ring`, { headers: { authorization: `Bearer ${cluster.token}` } });
    const text = await (await fetch(`${api}/metrics`)).text();
    for (const pattern of [
      /^ringleader_board_memory_total_bytes\{node="n1"\} [1-9]/m,
      /^ringleader_board_disk_free_bytes\{node="n1"\} [1-9]/m,
      /^ringleader_storage_data_dir_bytes\{node="n1"\} [1-9]/m,
      /^ringleader_storage_lmdb_bytes\{node="n1"\} [1-9]/m,
      /^ringleader_storage_written_bytes_total\{node="n1"\} [1-9]/m,
      /^ringleader_peer_up\{peer="n3",node="n1"\} 1$/m,
      /^ringleader_raft_term\{group="1",node="n1"\} [1-9]/m,
      /^ringleader_storage_fsync_ms_bucket\{le="\+Inf",node="n1"\} [1-9]/m,
      /^ringleader_api_requests_total\{route="GET \/v1\/ring",status="200",node="n1"\} [1-9]/m,
      /^ringleader_health_sample_cpu_seconds\{node="n1"\} /m,
      /^ringleader_transport_bytes_sent\{node="n1"\} [1-9]/m,
      /^ringleader_storage_buffered_applies\{node="n1"\} \d+$/m,
      /^ringleader_storage_log_reads_total\{node="n1"\} \d+$/m,
      /^ringleader_raft_read_index_retries_total\{node="n1"\} \d+$/m,
    ]) {
      assert.match(text, pattern);
    }
    // This x86 machine has no Pi firmware: no throttle flags rather than "all clear".
    assert.doesNotMatch(text, /^ringleader_board_throttle_flag\{/m);
  });

  it("a killed board becomes unreachable and its partitions under-replicated on the others", async () => {
    cluster.kill9("n3");
    await cluster.waitExit("n3");
    const view = await cluster.waitFor("n1 to warn about n3", 90_000, async () => {
      const h = await health(cluster, "n1");
      if (!h) return null;
      const unreachable = h.warnings.some((w) => w.kind === "unreachable" && w.node === "n3");
      const under = h.warnings.filter((w) => w.kind === "under-replicated").length;
      return unreachable && under > 0 ? h : null;
    });
    assert.equal(view.nodes.find((n) => n.id === "n3")!.reachable, false);
    const status = await run(["status", "--cluster-file", clusterFile]);
    assert.match(status.stdout, /^n3\s+127\.0\.0\.1:\d+\s+unreachable/m);
    assert.match(status.stdout, /n3 unreachable for \d+ s/);
    assert.match(status.stdout, /under-replicated/);
  });
});
