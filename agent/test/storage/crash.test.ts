/**
 * Crash safety with a real process: a child saves entries and reports each index once `save`
 * resolved; the parent `kill -9`s it mid-stream, reopens the store, and checks that every
 * reported index is there with its term and data, and that the KV table is exactly the replay
 * of the entries up to the applied index (nothing applied twice, nothing skipped).
 *
 * What this does not show: SIGKILL keeps the kernel's page cache, so it proves the ordering
 * "committed before reported", not the fsync itself (that needs a power cut; see the bench for
 * the fsync counts and latency).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { NodeStore, type ApplyContext, type KvRecord } from "../../src/storage/index.js";
import type { Entry } from "../../src/raft/index.js";
import { applyCrashEntry, CRASH_GROUPS, crashEntry } from "./crash-workload.js";
import { removeDir, tempDir } from "./lmdb-subject.js";

const CHILD = fileURLToPath(new URL("./crash-child.js", import.meta.url));

/** Runs the child until it has reported `reports` durable saves, then SIGKILLs it. */
async function runAndKill(dir: string, reports: number): Promise<Map<number, number>> {
  const child = spawn(process.execPath, [CHILD, dir], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const durable = new Map<number, number>();
  let seen = 0;
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const m = /^durable (\d+) (\d+)$/.exec(line);
    if (!m) continue;
    const g = Number(m[1]);
    durable.set(g, Math.max(durable.get(g) ?? 0, Number(m[2])));
    if (++seen >= reports) {
      child.kill("SIGKILL");
      break;
    }
  }
  lines.close();
  const code = await exited;
  assert.equal(code, null, `the child was killed, not exited (stderr: ${stderr})`);
  assert.ok(seen >= reports, `child reported ${seen} saves before dying: ${stderr}`);
  return durable;
}

/** What the KV table must hold after applying entries 1..applied, computed without the store. */
function replay(group: number, applied: number): Map<string, { value: string; version: number }> {
  const kv = new Map<string, { value: string; version: number }>();
  const ctx = (index: number): ApplyContext => ({
    index,
    get: () => undefined,
    put: (key, value) => void kv.set(String(key), { value: new TextDecoder().decode(value), version: index }),
    delete: (key) => kv.delete(String(key)),
    setConfState: () => {},
  });
  for (let i = 1; i <= applied; i++) applyCrashEntry(crashEntry(group, i), ctx(i));
  return kv;
}

function plain(e: Entry): unknown {
  return { index: e.index, term: e.term, type: e.type, data: new TextDecoder().decode(e.data) };
}

async function verify(dir: string, reported: Map<number, number>): Promise<void> {
  const store = await NodeStore.open({ path: dir });
  try {
    for (const g of CRASH_GROUPS) {
      const s = store.group(g);
      const want = reported.get(g) ?? 0;
      assert.ok(s.lastIndex() >= want, `group ${g}: last index ${s.lastIndex()} < reported ${want}`);
      const got = s.entries(1, s.lastIndex() + 1, Infinity);
      assert.deepEqual(
        got.map(plain),
        got.map((e) => plain(crashEntry(g, e.index))),
        `group ${g} log`,
      );
      assert.equal(got.length, s.lastIndex());
      const hs = s.initialState().hardState;
      assert.ok(hs.commit >= want && hs.commit <= s.lastIndex(), `group ${g}: commit ${hs.commit}`);
      const applied = store.appliedIndex(g);
      assert.ok(applied <= s.lastIndex(), `group ${g}: applied ${applied} past the log`);
      const rows: KvRecord[] = store.kvScan(g, { limit: 1000 });
      const actual = new Map(
        rows.map((r) => [
          new TextDecoder().decode(r.key),
          { value: new TextDecoder().decode(r.value), version: r.version },
        ]),
      );
      assert.deepEqual(actual, replay(g, applied), `group ${g}: KV table is the replay of 1..${applied}`);
    }
  } finally {
    await store.close();
  }
}

describe("crash safety (kill -9 of a writing process)", () => {
  it("every index reported durable survives, and apply is exactly-once, over three kills", async () => {
    const dir = await tempDir();
    try {
      let nodeId: string | null = null;
      for (const reports of [120, 333, 71]) {
        const reported = await runAndKill(dir, reports);
        const before = new Map(reported);
        await verify(dir, before);
        const store = await NodeStore.open({ path: dir });
        nodeId ??= store.nodeId;
        assert.equal(store.nodeId, nodeId, "the node id is kept across crashes");
        await store.close();
      }
    } finally {
      await removeDir(dir);
    }
  });
});
