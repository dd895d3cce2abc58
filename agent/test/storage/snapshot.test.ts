/**
 * Streaming a group's KV table out of one node and installing it into another: consistent
 * images, bounded chunks, atomic replacement, and safety when the stream or the process dies.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { open } from "lmdb";
import { SnapshotOutOfDateError, type SnapshotMetadata } from "../../src/raft/index.js";
import {
  NodeStore,
  readSnapshotHeader,
  SnapshotCorruptError,
  SnapshotInProgressError,
} from "../../src/storage/index.js";
import { entriesOf, entry } from "./conformance.js";
import { removeDir, tempDir } from "./lmdb-subject.js";
import { INSTALL_GROUP, installMetadata, installOldState } from "./install-workload.js";

const te = new TextEncoder();
const td = new TextDecoder();
const CHILD = fileURLToPath(new URL("./install-child.js", import.meta.url));

type Row = [string, string, number];

function dump(store: NodeStore, group: number): Row[] {
  const rows: Row[] = [];
  let after: Uint8Array | undefined;
  for (;;) {
    const page = store.kvScan(group, { limit: 1000, ...(after ? { after } : {}) });
    for (const r of page) rows.push([td.decode(r.key), td.decode(r.value), r.version]);
    if (page.length < 1000) return rows;
    after = page[page.length - 1]!.key;
  }
}

/** Leader-side state: `n` keys written by `n` applied entries, then a snapshot point. */
async function leaderWith(store: NodeStore, group: number, n: number): Promise<void> {
  const ents = Array.from({ length: n }, (_, i) =>
    entry(i + 1, 2, `key${String(i).padStart(5, "0")}=${"v".repeat(i % 300)}`),
  );
  await store.saveBatch([
    { group, hardState: { term: 2, vote: "", commit: n }, entries: ents, snapshot: null },
  ]);
  await store.applyEntries(group, ents, (e, ctx) => {
    // The first entry stands for the founding membership (a conf entry in a real group).
    if (e.index === 1) ctx.setConfState({ voters: ["a", "b", "c"], learners: [] });
    const [k, v] = td.decode(e.data).split("=");
    ctx.put(k!, te.encode(v!));
  });
  await store.createSnapshot(group, n, { voters: ["a", "b", "c"], learners: [] });
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function* fromArray(chunks: readonly Uint8Array[], failAt = -1): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < chunks.length; i++) {
    if (i === failAt) throw new Error("connection reset");
    yield chunks[i]!;
  }
}

async function kvKeysOutsideLive(dir: string, group: number, live: Set<string>): Promise<number> {
  const root = open({ path: dir, maxDbs: 8 });
  try {
    const db = root.openDB<Buffer, Buffer>("kv", { keyEncoding: "binary", encoding: "binary" });
    let n = 0;
    for (const key of db.getKeys()) {
      if (key.readUInt32BE(0) === group && !live.has(key.subarray(8).toString())) n++;
    }
    return n;
  } finally {
    await root.close();
  }
}

describe("snapshot streaming and installation", () => {
  it("a follower installs a leader's image: same table, log reset, commit raised, old data gone", async () => {
    const [da, db] = [await tempDir(), await tempDir()];
    const a = await NodeStore.open({ path: da });
    let b = await NodeStore.open({ path: db });
    try {
      await leaderWith(a, 1, 700);
      // The follower has an older, diverging history of the same group.
      await b.saveBatch([
        {
          group: 1,
          hardState: { term: 1, vote: "x", commit: 2 },
          entries: entriesOf(1, [1, 1, 1]),
          snapshot: null,
        },
      ]);
      await b.applyEntries(1, b.group(1).entries(1, 3, Infinity), (e, ctx) =>
        ctx.put(`stale${e.index}`, e.data),
      );

      const chunks = await collect(a.snapshotChunks(1, { maxChunkBytes: 4096 }));
      assert.ok(chunks.length > 10, `${chunks.length} chunks`);
      for (const c of chunks) assert.ok(c.byteLength <= 4096, `chunk of ${c.byteLength} bytes`);
      const meta = readSnapshotHeader(chunks[0]!);
      assert.deepEqual(meta, { index: 700, term: 2, confState: { voters: ["a", "b", "c"], learners: [] } });

      await b.installSnapshot(1, meta, fromArray(chunks));
      const check = (s: NodeStore): void => {
        assert.deepEqual(dump(s, 1), dump(a, 1));
        assert.equal(s.appliedIndex(1), 700);
        const g = s.group(1);
        assert.equal(g.firstIndex(), 701);
        assert.equal(g.lastIndex(), 700);
        assert.equal(g.term(700), 2);
        assert.deepEqual(g.snapshot().metadata, meta);
        assert.deepEqual(g.initialState().hardState, { term: 2, vote: "", commit: 700 });
        assert.deepEqual(g.initialState().confState, meta.confState);
      };
      check(b);
      await b.settle();
      await b.close();
      const live = new Set(dump(a, 1).map((r) => r[0]));
      assert.equal(await kvKeysOutsideLive(db, 1, live), 0, "the old table was deleted");
      b = await NodeStore.open({ path: db });
      check(b);
      // The installed group goes on from the snapshot.
      await b.group(1).save({ hardState: null, entries: entriesOf(701, [3]), snapshot: null });
      assert.equal(b.group(1).lastIndex(), 701);
    } finally {
      await a.close();
      await b.close();
      await removeDir(da);
      await removeDir(db);
    }
  });

  it("the stream is one consistent image even while writes go on", async () => {
    const dir = await tempDir();
    const a = await NodeStore.open({ path: dir });
    try {
      await leaderWith(a, 1, 300);
      const before = dump(a, 1);
      const it = a.snapshotChunks(1, { maxChunkBytes: 2048 })[Symbol.asyncIterator]();
      const first = await it.next();
      const second = await it.next();
      assert.ok(!first.done && !second.done);
      // Overwrite keys that come later in the stream, delete some, add new ones.
      const more = [entry(301, 2, "x"), entry(302, 2, "y")];
      await a.saveBatch([{ group: 1, hardState: null, entries: more, snapshot: null }]);
      await a.applyEntries(1, more, (e, ctx) => {
        ctx.put("key00299", e.data);
        ctx.delete("key00250");
        ctx.put("zzz", e.data);
      });
      assert.notDeepEqual(dump(a, 1), before);
      const rest: Uint8Array[] = [first.value, second.value];
      for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);

      const dir2 = await tempDir();
      const b = await NodeStore.open({ path: dir2 });
      try {
        const meta = readSnapshotHeader(rest[0]!);
        assert.equal(meta.index, 300, "the header names the applied index of the image");
        await b.installSnapshot(1, meta, fromArray(rest));
        assert.deepEqual(dump(b, 1), before);
      } finally {
        await b.close();
        await removeDir(dir2);
      }
    } finally {
      await a.close();
      await removeDir(dir);
    }
  });

  it("a broken stream leaves the old state untouched and its staged records are deleted", async () => {
    const [da, db] = [await tempDir(), await tempDir()];
    const a = await NodeStore.open({ path: da });
    const b = await NodeStore.open({ path: db });
    try {
      await leaderWith(a, 1, 400);
      await b.applyEntries(1, [entry(1, 1)], (_e, ctx) => ctx.put("old", te.encode("value")));
      const chunks = await collect(a.snapshotChunks(1, { maxChunkBytes: 4096 }));
      const meta = readSnapshotHeader(chunks[0]!);
      const flipped = chunks.map((c, i) =>
        i === 3 ? Uint8Array.from(c, (x, j) => (j === 40 ? x ^ 0xff : x)) : c,
      );
      const wrongMeta: SnapshotMetadata = { ...meta, term: 9 };
      const cases: [string, () => Promise<void>, (err: unknown) => boolean][] = [
        ["cut short", () => b.installSnapshot(1, meta, fromArray(chunks.slice(0, -1))), isCorrupt],
        [
          "a chunk dropped",
          () => b.installSnapshot(1, meta, fromArray([...chunks.slice(0, 4), ...chunks.slice(5)])),
          isCorrupt,
        ],
        ["a flipped byte", () => b.installSnapshot(1, meta, fromArray(flipped)), isCorrupt],
        ["another snapshot's stream", () => b.installSnapshot(1, wrongMeta, fromArray(chunks)), isCorrupt],
        [
          "connection reset",
          () => b.installSnapshot(1, meta, fromArray(chunks, 6)),
          (e) => /reset/.test(String(e)),
        ],
      ];
      for (const [what, run, ok] of cases) {
        await assert.rejects(run, ok, what);
        assert.deepEqual(dump(b, 1), [["old", "value", 1]], what);
        assert.equal(b.appliedIndex(1), 1, what);
        assert.equal(b.group(1).lastIndex(), 0, what);
      }
      await b.settle();
      await b.close();
      assert.equal(await kvKeysOutsideLive(db, 1, new Set(["old"])), 0, "staged records deleted");
    } finally {
      await a.close();
      await b.close();
      await removeDir(da);
      await removeDir(db);
    }
  });

  it("refuses a snapshot the node has already committed past or holds in its log, and a second install at once", async () => {
    const [da, db] = [await tempDir(), await tempDir()];
    const a = await NodeStore.open({ path: da });
    const b = await NodeStore.open({ path: db });
    try {
      await leaderWith(a, 1, 50);
      const chunks = await collect(a.snapshotChunks(1, { maxChunkBytes: 4096 }));
      const meta = readSnapshotHeader(chunks[0]!);
      await b.saveBatch([
        { group: 1, hardState: { term: 2, vote: "", commit: 50 }, entries: [], snapshot: null },
      ]);
      await assert.rejects(b.installSnapshot(1, meta, fromArray(chunks)), SnapshotOutOfDateError);
      const same = Array.from({ length: 50 }, (_, i) => entry(i + 1, 2));
      await b.saveBatch([
        { group: 2, hardState: { term: 2, vote: "", commit: 10 }, entries: same, snapshot: null },
      ]);
      await assert.rejects(b.installSnapshot(2, meta, fromArray(chunks)), SnapshotOutOfDateError);

      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      async function* slow(): AsyncGenerator<Uint8Array> {
        yield chunks[0]!;
        await gate;
        yield* chunks.slice(1);
      }
      const first = b.installSnapshot(3, meta, slow());
      await assert.rejects(b.installSnapshot(3, meta, fromArray(chunks)), SnapshotInProgressError);
      release();
      await first;
      assert.equal(b.appliedIndex(3), 50);
    } finally {
      await a.close();
      await b.close();
      await removeDir(da);
      await removeDir(db);
    }
  });

  it("a staged image is swapped in by the save of the Ready that accepts the snapshot", async () => {
    const [da, db] = [await tempDir(), await tempDir()];
    const a = await NodeStore.open({ path: da });
    const b = await NodeStore.open({ path: db });
    try {
      await leaderWith(a, 1, 80);
      const chunks = await collect(a.snapshotChunks(1, { maxChunkBytes: 4096 }));
      const meta = readSnapshotHeader(chunks[0]!);
      await b.stageSnapshot(1, meta, fromArray(chunks));
      assert.deepEqual(dump(b, 1), [], "staging changes nothing visible");
      assert.equal(b.appliedIndex(1), 0);
      await b.saveBatch([
        {
          group: 1,
          hardState: { term: 2, vote: "", commit: 80 },
          entries: [],
          snapshot: { metadata: meta, data: new Uint8Array(0) },
        },
      ]);
      assert.equal(b.appliedIndex(1), 80);
      assert.deepEqual(dump(b, 1), dump(a, 1));
      assert.equal(b.group(1).firstIndex(), 81);
    } finally {
      await a.close();
      await b.close();
      await removeDir(da);
      await removeDir(db);
    }
  });

  it("a process killed in the middle of an install restarts with its old state intact", async () => {
    const dir = await tempDir();
    try {
      let store = await NodeStore.open({ path: dir });
      await installOldState(store);
      const old = dump(store, INSTALL_GROUP);
      const oldLast = store.group(INSTALL_GROUP).lastIndex();
      await store.close();

      const child = spawn(process.execPath, [CHILD, dir], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      const lines = createInterface({ input: child.stdout });
      let staged = 0;
      for await (const line of lines) {
        if (line.startsWith("chunk ")) staged = Number(line.slice(6));
        if (staged >= 20) {
          child.kill("SIGKILL");
          break;
        }
      }
      lines.close();
      await exited;
      assert.ok(staged >= 20, `child staged ${staged} chunks: ${stderr}`);

      store = await NodeStore.open({ path: dir });
      try {
        assert.deepEqual(dump(store, INSTALL_GROUP), old);
        assert.equal(store.group(INSTALL_GROUP).lastIndex(), oldLast);
        assert.equal(store.appliedIndex(INSTALL_GROUP), oldLast);
        await store.settle();
      } finally {
        await store.close();
      }
      assert.equal(await kvKeysOutsideLive(dir, INSTALL_GROUP, new Set(old.map((r) => r[0]))), 0);
      assert.ok(installMetadata().index > oldLast);
    } finally {
      await removeDir(dir);
    }
  });
});

function isCorrupt(err: unknown): boolean {
  return err instanceof SnapshotCorruptError;
}
