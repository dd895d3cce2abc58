/**
 * The client commands end to end: `node dist/agent/src/cli/main.js ...` as a child process
 * against an API server with a fake service, checking stdout, stderr and the exit status.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startTestServer, TEST_TOKEN, type TestServer } from "../api/fake-service.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const RUN_TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd: string; input?: Uint8Array },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    // Only what the test gives: no RINGLEADER_* from the developer's shell.
    const env = { PATH: process.env["PATH"] ?? "", ...options.env };
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: options.cwd,
      env,
      timeout: RUN_TIMEOUT_MS,
    });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(options.input ?? new Uint8Array(0));
  });
}

describe("cli: client commands", () => {
  let t: TestServer;
  let cwd: string;
  let env: Record<string, string>;
  const cli = (args: string[], input?: Uint8Array) => runCli(args, { env, cwd, ...(input ? { input } : {}) });
  const json = (run: Run): Record<string, unknown> =>
    JSON.parse(run.stdout.toString("utf8")) as Record<string, unknown>;

  before(async () => {
    t = await startTestServer();
    cwd = mkdtempSync(join(tmpdir(), "ringleader-cli-"));
    env = { RINGLEADER_ENDPOINTS: t.url, RINGLEADER_TOKEN: TEST_TOKEN };
  });
  after(async () => {
    await t.stop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it("put writes a value and get prints it; --json gives key, version and base64 value", async () => {
    const put = await cli(["put", "sensors/kitchen/temp", "007"]);
    assert.equal(put.code, 0, put.stderr);
    const version = t.service.data.get("sensors/kitchen/temp")?.version ?? "missing";
    assert.equal(put.stdout.toString(), `OK version ${version}\n`);
    assert.equal(Buffer.from(t.service.data.get("sensors/kitchen/temp")?.value ?? []).toString(), "007");

    const get = await cli(["get", "sensors/kitchen/temp"]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.toString(), "007\n");

    const getJson = await cli(["get", "sensors/kitchen/temp", "--json", "--consistency", "weak"]);
    assert.deepEqual(json(getJson), { key: "sensors/kitchen/temp", found: true, version, value: "MDA3" });
    assert.equal(t.service.calls.at(-1)?.consistency, "weak");

    const eventual = await cli([
      "get",
      "sensors/kitchen/temp",
      "--consistency",
      "eventual",
      "--replica-strategy",
      "ip-hash",
    ]);
    assert.equal(eventual.code, 0, eventual.stderr);
    assert.equal(t.service.calls.at(-1)?.strategy, "ip-hash", "the replica strategy reaches the agent");

    const putJson = await cli(["put", "other", "x", "--json"]);
    assert.deepEqual(Object.keys(json(putJson)), ["key", "version"]);
  });

  it("put reads the value from stdin with - and from --file, and get --raw writes exact bytes", async () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
    const fromStdin = await cli(["put", "bin/stdin", "-"], bytes);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.deepEqual(new Uint8Array(t.service.data.get("bin/stdin")?.value ?? []), bytes);

    const file = join(cwd, "value.bin");
    writeFileSync(file, bytes);
    const fromFile = await cli(["put", "bin/file", "--file", file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(new Uint8Array(t.service.data.get("bin/file")?.value ?? []), bytes);

    const empty = await cli(["put", "empty", ""], bytes);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(
      t.service.data.get("empty")?.value.length,
      0,
      'an empty argument is an empty value, not "read stdin"',
    );

    const raw = await cli(["get", "bin/file", "--raw"]);
    assert.deepEqual(new Uint8Array(raw.stdout), bytes);
    const text = await cli(["get", "bin/file"]);
    assert.equal(text.code, 1, "binary values are not printed as text");
    assert.match(text.stderr, /--raw/);
  });

  it("get exits 1 for a missing key, saying so (and found:false with --json)", async () => {
    const human = await cli(["get", "nope"]);
    assert.equal(human.code, 1);
    assert.match(human.stderr, /not found/);
    const machine = await cli(["get", "nope", "--json"]);
    assert.equal(machine.code, 1);
    assert.deepEqual(json(machine), { key: "nope", found: false });
  });

  it("cas writes at the expected version, 0 meaning absent, and exits 1 on a mismatch", async () => {
    const first = await cli(["cas", "lock", "0", "a", "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const version = String(json(first)["version"]);
    const clash = await cli(["cas", "lock", "0", "b"]);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /cas mismatch/);
    const next = await cli(["cas", "lock", version, "c"]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(Buffer.from(t.service.data.get("lock")?.value ?? []).toString(), "c");
    const bad = await cli(["cas", "lock", "v1", "d"]);
    assert.equal(bad.code, 2, "a non-numeric version is a usage error");
  });

  it("del deletes, and reports an absent key without failing", async () => {
    await cli(["put", "doomed", "x"]);
    const del = await cli(["del", "doomed", "--json"]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(json(del)["deleted"], true);
    assert.ok(!t.service.data.has("doomed"));
    const again = await cli(["del", "doomed"]);
    assert.equal(again.code, 0);
    assert.match(again.stdout.toString(), /not found/);
  });

  it("scan prints a table, and --all --json follows every cursor", async () => {
    for (let i = 0; i < 7; i++)
      t.service.data.set(`scan/${i}`, { value: Buffer.from(`v${i}`), version: String(100 + i) });
    const table = await cli(["scan", "--prefix", "scan/", "--limit", "3"]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.toString().trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^KEY\s+VERSION\s+VALUE$/);
    assert.deepEqual(
      lines.slice(1).map((l) => l.split(/\s+/)),
      [
        ["scan/0", "100", "v0"],
        ["scan/1", "101", "v1"],
        ["scan/2", "102", "v2"],
      ],
    );
    assert.match(table.stderr, /--after/);

    const all = await cli(["scan", "--prefix", "scan/", "--limit", "3", "--all", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    const doc = json(all) as { items: { key: string; value: string; version: string }[]; next: null };
    assert.equal(doc.next, null);
    assert.deepEqual(
      doc.items.map((i) => [i.key, Buffer.from(i.value, "base64").toString(), i.version]),
      Array.from({ length: 7 }, (_, i) => [`scan/${i}`, `v${i}`, String(100 + i)]),
    );
  });

  it("status prints a row per node, and the raw documents with --json", async () => {
    t.service.statusView = {
      id: "n1",
      cluster: "home",
      role: "leader",
      leader: "n1",
      term: 4,
      commit: 17,
      applied: 16,
      health: { ok: true },
      members: [{ id: "n1", lag: 0 }],
    };
    const human = await cli(["status"]);
    assert.equal(human.code, 0, human.stderr);
    const out = human.stdout.toString();
    assert.match(
      out,
      /^ID\s+API\s+ROLE\s+LEADER\s+TERM\s+COMMIT\s+APPLIED\s+LAG\s+REPLICAS\s+LEADS\s+HEALTH$/m,
    );
    const row = out
      .split("\n")
      .find((l) => l.startsWith("n1"))
      ?.split(/\s+/);
    assert.deepEqual(row, ["n1", t.url, "leader", "n1", "4", "17", "16", "0", "-", "-", "ok"]);
    const machine = await cli(["status", "--json"]);
    assert.deepEqual(json(machine), { nodes: [{ api: t.url, status: t.service.statusView, error: null }] });
  });

  it("finds the cluster through the cluster file when no flags or variables are set", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ringleader-cluster-"));
    try {
      mkdirSync(join(dir, ".data/cluster"), { recursive: true });
      const node = { id: "n1", pid: process.pid, api: t.url, command: ["node"], cwd: dir };
      writeFileSync(
        join(dir, ".data/cluster/cluster.json"),
        JSON.stringify({ token: TEST_TOKEN, nodes: [node] }),
      );
      const run = await runCli(["put", "via-file", "yes"], { cwd: dir });
      assert.equal(run.code, 0, run.stderr);
      assert.ok(t.service.data.has("via-file"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("explains how to start a cluster when it finds none (exit 2)", async () => {
    const run = await runCli(["get", "k"], { cwd });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /make run/);
    assert.match(run.stderr, /ringleader cluster up/);
  });

  it("reports a refused token as a usage error (exit 2)", async () => {
    const run = await runCli(["get", "k"], { cwd, env: { ...env, RINGLEADER_TOKEN: "wrong" } });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /refused the token/);
  });

  it("reports an unreachable cluster with a hint (exit 1)", async () => {
    const dead = await startTestServer();
    await dead.stop();
    const run = await runCli(["get", "k", "--endpoints", dead.url], {
      cwd,
      env: { RINGLEADER_TOKEN: TEST_TOKEN },
    });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /could not reach/);
    assert.match(run.stderr, /Is the cluster running/);
  });

  it("bench runs a short closed loop and prints a JSON summary", async () => {
    const run = await cli([
      "bench",
      "--ops",
      "200",
      "--warmup",
      "0",
      "--concurrency",
      "4",
      "--keys",
      "50",
      "--json",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const summary = json(run) as { totalOps: number; totalErrors: number; ops: { put?: { count: number } } };
    assert.equal(summary.totalOps, 200);
    assert.equal(summary.totalErrors, 0);
    assert.equal(summary.ops.put?.count, 200);
  });

  it("bench --on-measure runs a shell command before measuring, its output on stderr, and fails if it fails", async () => {
    const marker = join(cwd, "measure-started");
    const base = ["bench", "--ops", "20", "--warmup", "0.2", "--concurrency", "2", "--keys", "10", "--json"];
    const run = await cli([...base, "--on-measure", `echo hook says hello; echo started > '${marker}'`]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(readFileSync(marker, "utf8"), "started\n");
    assert.match(run.stderr, /hook says hello/);
    assert.equal((json(run) as { totalOps: number }).totalOps, 20, "stdout holds only the summary");

    const failed = await cli([...base, "--on-measure", "exit 3"]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /--on-measure command failed \(exit status 3\)/);
  });

  it("every command has --help with examples", async () => {
    for (const command of ["put", "get", "del", "scan", "cas", "status", "bench"]) {
      const run = await cli([command, "--help"]);
      assert.equal(run.code, 0, command);
      assert.match(run.stdout.toString(), /Examples:/, command);
    }
  });
});
