/**
 * The node store beyond the Raft `Storage` contract: identity, group commit across groups, the
 * state machine table (atomic apply, versions, scans), compaction in the background, restarts.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { open } from "lmdb";
import { SnapshotOutOfDateError, UnavailableError, type Entry } from "../../src/raft/index.js";
import {
  ApplyOrderError,
  ClusterIdMismatchError,
  GroupExistsError,
  NodeStore,
  SnapshotNotAppliedError,
  StoreClosedError,
  StoreLimitError,
  type ApplyContext,
  type NodeStoreOptions,
} from "../../src/storage/index.js";
import { entriesOf, entry } from "./conformance.js";
import { removeDir, tempDir } from "./lmdb-subject.js";

const te = new TextEncoder();
const td = new TextDecoder();

/** Runs `body` on a store in a fresh directory (opened with `opts`; `reopen` uses the defaults). */
async function withStore(
  body: (store: NodeStore, dir: string, reopen: () => Promise<NodeStore>) => Promise<void>,
  opts: Omit<NodeStoreOptions, "path" | "newNodeId"> = {},
): Promise<void> {
  const dir = await tempDir();
  let store = await NodeStore.open({ path: dir, newNodeId: () => "node-a", ...opts });
  const reopen = async (): Promise<NodeStore> => {
    await store.close();
    store = await NodeStore.open({ path: dir, newNodeId: () => "must-not-be-used" });
    return store;
  };
  try {
    await body(store, dir, reopen);
  } finally {
    await store.close();
    await removeDir(dir);
  }
}

/**
 * Counts the records a group has in one of the store's LMDB databases, straight from the file:
 * "group", "state" and "kv" keys start with the group id; the node-wide log, "entries", holds it at the
 * start of each value.
 */
async function countKeys(
  dir: string,
  dbName: "group" | "state" | "entries" | "kv",
  group: number,
): Promise<number> {
  const root = open({ path: dir, maxDbs: 8 });
  try {
    const db = root.openDB<Buffer, Buffer>(dbName, { keyEncoding: "binary", encoding: "binary" });
    let n = 0;
    if (dbName === "entries") {
      for (const { value } of db.getRange()) if (value.readUInt32BE(0) === group) n++;
    } else {
      for (const key of db.getKeys()) if (key.readUInt32BE(0) === group) n++;
    }
    return n;
  } finally {
    await root.close();
  }
}

/** A state machine for tests: "put k v", "del k", or "cas k version v" (version 0 = absent). */
function kvCommand(e: Entry, ctx: ApplyContext): string {
  const [op, key, a, b] = td.decode(e.data).split(" ");
  if (op === "put") {
    ctx.put(key!, te.encode(a!));
    return "ok";
  }
  if (op === "del") return ctx.delete(key!) ? "deleted" : "absent";
  if (op === "cas") {
    const current = ctx.get(key!)?.version ?? 0;
    if (current !== Number(a)) return `mismatch:${current}`;
    ctx.put(key!, te.encode(b!));
    return "ok";
  }
  throw new Error(`bad command ${td.decode(e.data)}`);
}

const cmd = (index: number, text: string): Entry => entry(index, 1, text);

describe("node identity", () => {
  it("creates the node id once and keeps it; the cluster id is set once", async () => {
    await withStore(async (store, _dir, reopen) => {
      assert.equal(store.nodeId, "node-a");
      assert.equal(store.clusterId, null);
      await store.setClusterId("cluster-1");
      await store.setClusterId("cluster-1");
      await assert.rejects(store.setClusterId("cluster-2"), ClusterIdMismatchError);
      await store.setMetadata("labels", te.encode("rack=shelf"));
      const again = await reopen();
      assert.equal(again.nodeId, "node-a", "the id generator is not called again");
      assert.equal(again.clusterId, "cluster-1");
      assert.equal(td.decode(again.getMetadata("labels")!), "rack=shelf");
      assert.equal(again.getMetadata("missing"), undefined);
      await assert.rejects(again.setMetadata("big", new Uint8Array(65 * 1024)), StoreLimitError);
    });
  });

  it("keeps its files inside its directory when the directory's name has a dot (ringleader.d)", async () => {
    const parent = await tempDir();
    const dir = join(parent, "ringleader.d");
    try {
      // The agent makes its data directory before it opens the store.
      mkdirSync(dir);
      const store = await NodeStore.open({ path: dir, newNodeId: () => "node-dot" });
      await store.setClusterId("c");
      await store.close();
      assert.ok(statSync(join(dir, "data.mdb")).isFile());
      const again = await NodeStore.open({ path: dir });
      assert.equal(again.nodeId, "node-dot", "reopened from the same files");
      await again.close();
    } finally {
      await removeDir(parent);
    }
  });

  it("a closed store refuses work with StoreClosedError", async () => {
    const dir = await tempDir();
    const store = await NodeStore.open({ path: dir });
    await store.close();
    try {
      assert.throws(() => store.group(1), StoreClosedError);
      assert.throws(() => store.saveBatch([]), StoreClosedError);
    } finally {
      await removeDir(dir);
    }
  });
});

describe("group commit", () => {
  it("saves of 64 groups issued in one event-loop turn share one transaction and one fsync", async () => {
    await withStore(async (store) => {
      const before = store.stats();
      await Promise.all(
        Array.from({ length: 64 }, (_, g) =>
          store.group(g).save({
            hardState: { term: 1, vote: "", commit: 0 },
            entries: entriesOf(1, [1, 1]),
            snapshot: null,
          }),
        ),
      );
      const after = store.stats();
      assert.equal(after.batches - before.batches, 1);
      assert.equal(after.durableBatches - before.durableBatches, 1);
      assert.equal(after.jobs - before.jobs, 64);
      for (let g = 0; g < 64; g++) assert.equal(store.group(g).lastIndex(), 2);
      assert.deepEqual(
        store.groupIds(),
        Array.from({ length: 64 }, (_, g) => g),
      );
    });
  });

  it("saveBatch is all-or-nothing: one bad update leaves every group untouched", async () => {
    await withStore(async (store) => {
      await store.saveBatch([{ group: 1, hardState: null, entries: entriesOf(1, [1]), snapshot: null }]);
      await assert.rejects(
        store.saveBatch([
          { group: 1, hardState: null, entries: entriesOf(2, [1]), snapshot: null },
          { group: 2, hardState: null, entries: [entry(5, 1)], snapshot: null }, // a hole
        ]),
        (err: unknown) => (err as Error).name === "LogGapError",
      );
      assert.equal(store.group(1).lastIndex(), 1);
      assert.equal(store.group(2).lastIndex(), 0);
    });
  });

  it("a failing job in a shared batch does not stop the others", async () => {
    await withStore(async (store) => {
      const results = await Promise.allSettled([
        store.group(1).save({ hardState: null, entries: entriesOf(1, [1]), snapshot: null }),
        store.group(2).save({ hardState: null, entries: [entry(9, 1)], snapshot: null }),
        store.group(3).save({ hardState: null, entries: entriesOf(1, [1, 1]), snapshot: null }),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ["fulfilled", "rejected", "fulfilled"],
      );
      assert.equal(store.group(3).lastIndex(), 2);
    });
  });

  it("a lazy apply is readable at once, writes nothing, and a full buffer rides on the next save's commit", async () => {
    await withStore(
      async (store, _dir, reopen) => {
        const ents = [cmd(1, "put a 1"), cmd(2, "put b 2"), cmd(3, "del a"), cmd(4, "put c 4")];
        await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
        const before = store.stats();
        await store.applyGroups([{ group: 1, entries: ents.slice(0, 3), apply: kvCommand }], { lazy: true });
        assert.equal(store.appliedIndex(1), 3);
        assert.equal(store.kvGet(1, "a"), undefined, "the buffered delete hides the buffered put");
        assert.equal(td.decode(store.kvGet(1, "b")!.value), "2");
        assert.deepEqual(
          store.kvScan(1, { limit: 10 }).map((r) => td.decode(r.key)),
          ["b"],
        );
        assert.equal(store.stats().jobs, before.jobs, "two buffered records: nothing written yet");
        assert.equal(store.stats().bufferedApplies, 2);
        // The third record fills the buffer: its flush waits for the next save and shares its commit.
        await store.applyGroups([{ group: 1, entries: [ents[3]!], apply: kvCommand }], { lazy: true });
        await store.saveBatch([{ group: 1, hardState: null, entries: [cmd(5, "put d 5")], snapshot: null }]);
        await store.settle();
        const after = store.stats();
        assert.equal(after.batches - before.batches, 1, "the flush rode on the save's commit");
        assert.equal(after.jobs - before.jobs, 3, "the save, the flush, and settle's (empty) flush");
        assert.equal(after.bufferedApplies, 0);
        store = await reopen();
        assert.equal(store.appliedIndex(1), 4);
        assert.deepEqual(
          store.kvScan(1, { limit: 10 }).map((r) => [td.decode(r.key), r.version]),
          [
            ["b", 2],
            ["c", 4],
          ],
        );
      },
      { applyFlushRecords: 3, applyFlushMs: 60_000 },
    );
  });

  it("a lazy apply alone reaches LMDB after applyFlushMs", async () => {
    await withStore(
      async (store) => {
        await store.saveBatch([{ group: 1, hardState: null, entries: [cmd(1, "put a 1")], snapshot: null }]);
        const before = store.stats().batches;
        const t0 = performance.now();
        await store.applyGroups([{ group: 1, entries: [cmd(1, "put a 1")], apply: kvCommand }], {
          lazy: true,
        });
        assert.equal(store.stats().batches, before);
        // Polls the store's own counter: the flush is what moves it.
        while (store.stats().batches === before) await new Promise((r) => setTimeout(r, 2));
        assert.ok(performance.now() - t0 >= 25, "it waited for applyFlushMs");
      },
      { applyFlushMs: 30, applyDelayMs: 0 },
    );
  });

  it("a buffer holding applyFlushBytes is flushed without waiting for applyFlushMs", async () => {
    await withStore(
      async (store) => {
        const big = cmd(1, `put a ${"x".repeat(3000)}`);
        await store.saveBatch([{ group: 1, hardState: null, entries: [big], snapshot: null }]);
        await store.applyGroups([{ group: 1, entries: [big], apply: kvCommand }], { lazy: true });
        const deadline = Date.now() + 10_000;
        while (store.stats().bufferedApplies > 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.equal(store.stats().bufferedApplies, 0, "flushed for its bytes, not after a minute");
      },
      { applyFlushBytes: 2000, applyFlushMs: 60_000 },
    );
  });

  it("counts the log entries and terms it reads from LMDB because the tail cache no longer holds them", async () => {
    await withStore(
      async (store) => {
        const ents = Array.from({ length: 5 }, (_, i) => cmd(i + 1, `put k ${i + 1}`));
        await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
        const g = store.group(1);
        assert.deepEqual(
          g.entries(4, 6, Infinity).map((e) => e.index),
          [4, 5],
        );
        assert.equal(g.term(5), 1);
        assert.equal(store.stats().logReads, 0, "the newest two come from the cache");
        assert.deepEqual(
          g.entries(1, 4, Infinity).map((e) => e.index),
          [1, 2, 3],
        );
        assert.equal(g.term(2), 1);
        assert.equal(store.stats().logReads, 4);
      },
      { tailCacheEntries: 2 },
    );
  });

  it("maps its file once while the file grows to megabytes (no earlier maps left in RSS)", async () => {
    await withStore(async (store, dir) => {
      const value = "v".repeat(32 * 1024);
      for (let batch = 0; batch < 8; batch++) {
        const ents = Array.from({ length: 32 }, (_, i) => cmd(batch * 32 + i + 1, `put k${i} ${value}`));
        await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
      }
      const file = `${dir}/data.mdb`;
      assert.ok(statSync(file).size > 8 * 1024 * 1024, "the file grew past several doublings of a small map");
      const maps = readFileSync("/proc/self/maps", "utf8")
        .split("\n")
        .filter((line) => line.endsWith(` ${file}`));
      assert.equal(maps.length, 1, `one map of the file, not one per growth: ${maps.join("; ")}`);
    });
  });

  it("close() writes the buffered applies", async () => {
    await withStore(
      async (store, _dir, reopen) => {
        await store.saveBatch([{ group: 1, hardState: null, entries: [cmd(1, "put a 1")], snapshot: null }]);
        await store.applyGroups([{ group: 1, entries: [cmd(1, "put a 1")], apply: kvCommand }], {
          lazy: true,
        });
        store = await reopen();
        assert.equal(store.appliedIndex(1), 1);
        assert.equal(td.decode(store.kvGet(1, "a")!.value), "1");
      },
      { applyFlushMs: 60_000 },
    );
  });

  it("createSnapshot and compact write the buffer first: the log is never compacted past the table", async () => {
    await withStore(
      async (store, _dir, reopen) => {
        const ents = Array.from({ length: 6 }, (_, i) => cmd(i + 1, `put k${i % 2} ${i + 1}`));
        await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
        await store.applyGroups([{ group: 1, entries: ents.slice(0, 4), apply: kvCommand }], { lazy: true });
        await store.createSnapshot(1, 3, { voters: ["a"], learners: [] });
        await store.applyGroups([{ group: 1, entries: ents.slice(4), apply: kvCommand }], { lazy: true });
        await store.compact(1, 6);
        store = await reopen();
        assert.equal(store.appliedIndex(1), 6);
        assert.equal(store.group(1).firstIndex(), 7);
        assert.deepEqual(
          store.kvScan(1, { limit: 10 }).map((r) => [td.decode(r.key), r.version]),
          [
            ["k0", 5],
            ["k1", 6],
          ],
        );
      },
      { applyFlushMs: 60_000 },
    );
  });

  it("scans merge buffered writes with the table's records: prefix, after and limit (random)", async () => {
    await withStore(
      async (store) => {
        let seed = 11;
        const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
        const model = new Map<string, { value: string; version: number }>();
        const keys = Array.from({ length: 40 }, (_, i) => `${"abc"[i % 3]}/${String(i).padStart(2, "0")}`);
        let index = 0;
        for (let round = 0; round < 30; round++) {
          const ents: Entry[] = [];
          for (let i = 0; i < 1 + rand(8); i++) {
            const key = keys[rand(keys.length)]!;
            index++;
            if (rand(4) === 0) {
              ents.push(cmd(index, `del ${key}`));
              model.delete(key);
            } else {
              ents.push(cmd(index, `put ${key} v${index}`));
              model.set(key, { value: `v${index}`, version: index });
            }
          }
          await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
          await store.applyGroups([{ group: 1, entries: ents, apply: kvCommand }], { lazy: true });
          // Now and then the buffer goes to the table, so scans meet both, in every mix.
          if (rand(3) === 0) await store.settle();
          for (let q = 0; q < 5; q++) {
            const prefix = ["", "a", "b/", "c/1", "z"][rand(5)]!;
            const after = rand(2) === 0 ? keys[rand(keys.length)] : undefined;
            const limit = 1 + rand(12);
            const want = [...model.keys()]
              .filter((k) => k.startsWith(prefix) && (after === undefined || k > after))
              .sort()
              .slice(0, limit)
              .map((k) => [k, model.get(k)!.value, model.get(k)!.version]);
            const got = store
              .kvScan(1, { prefix, limit, ...(after !== undefined ? { after } : {}) })
              .map((r) => [td.decode(r.key), td.decode(r.value), r.version]);
            assert.deepEqual(got, want, `round ${round}: prefix ${prefix} after ${after} limit ${limit}`);
          }
          for (const key of keys) assert.equal(store.kvGet(1, key)?.version, model.get(key)?.version, key);
        }
      },
      { applyFlushMs: 60_000 },
    );
  });

  it("bootstrap refuses a group that already has state", async () => {
    await withStore(async (store) => {
      await store.bootstrap(5, ["a", "b", "c"]);
      assert.ok(store.hasGroup(5));
      assert.ok(!store.hasGroup(6));
      await assert.rejects(store.bootstrap(5, ["a"]), GroupExistsError);
    });
  });
});

describe("the state machine table", () => {
  it("applies entries and the applied index in one transaction, with versions for compare-and-set", async () => {
    await withStore(async (store, _dir, reopen) => {
      const ents = [
        cmd(1, "put a 1"),
        cmd(2, "put b 2"),
        cmd(3, "cas a 1 3"), // a was written by entry 1: succeeds
        cmd(4, "cas a 1 4"), // a is now at version 3: fails
        cmd(5, "del b"),
        cmd(6, "cas c 0 6"), // c absent: succeeds
      ];
      await store.saveBatch([{ group: 1, hardState: null, entries: ents, snapshot: null }]);
      const results = await store.applyEntries(1, ents, kvCommand);
      assert.deepEqual(
        results.map((r) => [r.index, r.result]),
        [
          [1, "ok"],
          [2, "ok"],
          [3, "ok"],
          [4, "mismatch:3"],
          [5, "deleted"],
          [6, "ok"],
        ],
      );
      const check = (s: NodeStore): void => {
        assert.equal(s.appliedIndex(1), 6);
        const a = s.kvGet(1, "a")!;
        assert.deepEqual([td.decode(a.value), a.version], ["3", 3]);
        assert.equal(s.kvGet(1, "b"), undefined);
        assert.equal(s.kvGet(1, "c")!.version, 6);
      };
      check(store);
      check(await reopen());
    });
  });

  it("skips entries already applied, refuses holes, and writes nothing when the state machine throws", async () => {
    await withStore(async (store) => {
      await store.applyEntries(1, [cmd(1, "put a 1"), cmd(2, "put a 2")], kvCommand);
      const replay = await store.applyEntries(
        1,
        [cmd(1, "put a 1"), cmd(2, "put a 2"), cmd(3, "put z 3")],
        kvCommand,
      );
      assert.deepEqual(
        replay.map((r) => r.index),
        [3],
        "a replay after restart applies only what is new",
      );
      assert.equal(store.kvGet(1, "a")!.version, 2);
      await assert.rejects(store.applyEntries(1, [cmd(5, "put a 5")], kvCommand), ApplyOrderError);
      await assert.rejects(
        store.applyEntries(1, [cmd(4, "put q 4"), cmd(5, "bogus")], kvCommand),
        /bad command/,
      );
      assert.equal(store.appliedIndex(1), 3);
      assert.equal(store.kvGet(1, "q"), undefined, "the first entry of the failed call was rolled back");
    });
  });

  it("records the membership a conf entry produced with the applied index", async () => {
    await withStore(async (store, _dir, reopen) => {
      const cs = { voters: ["a", "b"], learners: ["c"] };
      await store.applyEntries(1, [{ ...entry(1, 2), type: "conf" }], (_e, ctx) => ctx.setConfState(cs));
      assert.deepEqual(store.appliedState(1), { index: 1, term: 2, confState: cs });
      const again = await reopen();
      assert.deepEqual(again.appliedState(1), { index: 1, term: 2, confState: cs });
      assert.deepEqual(again.group(1).initialState().confState, cs);
    });
  });

  it("scans in key order with prefix, after and limit, one group at a time", async () => {
    await withStore(async (store) => {
      const keys = [
        "sensors/{kitchen}/t",
        "sensors/{kitchen}/h",
        "sensors/{attic}/t",
        "sensorz",
        "a",
        "sensors/",
      ];
      await store.applyEntries(
        1,
        keys.map((k, i) => cmd(i + 1, `put ${k} v${i}`)),
        kvCommand,
      );
      await store.applyEntries(2, [cmd(1, "put sensors/{kitchen}/x other-group")], kvCommand);
      const scan = (opts: Parameters<NodeStore["kvScan"]>[1]): string[] =>
        store.kvScan(1, opts).map((r) => td.decode(r.key));
      const sorted = [...keys].sort();
      assert.deepEqual(scan({ limit: 100 }), sorted);
      assert.deepEqual(
        scan({ prefix: "sensors/", limit: 100 }),
        sorted.filter((k) => k.startsWith("sensors/")),
      );
      assert.deepEqual(scan({ prefix: "sensors/{kitchen}/", limit: 1 }), ["sensors/{kitchen}/h"]);
      assert.deepEqual(scan({ prefix: "sensors/{kitchen}/", after: "sensors/{kitchen}/h", limit: 10 }), [
        "sensors/{kitchen}/t",
      ]);
      assert.deepEqual(scan({ after: "sensors/{kitchen}/t", limit: 10 }), ["sensorz"]);
      assert.deepEqual(scan({ prefix: "nothing", limit: 10 }), []);
      assert.throws(() => store.kvScan(1, { limit: 0 }), RangeError);
      assert.throws(() => store.kvGet(1, ""), StoreLimitError);
      assert.equal(store.kvScan(2, { limit: 10 }).length, 1);
    });
  });

  it("scans byte prefixes that end in 0xff", async () => {
    await withStore(async (store) => {
      const k1 = Uint8Array.of(1, 0xff);
      const k2 = Uint8Array.of(1, 0xff, 0);
      const k3 = Uint8Array.of(2);
      await store.applyEntries(3, [entry(1, 1)], (_e, ctx) => {
        for (const k of [k3, k2, k1]) ctx.put(k, k);
      });
      const got = store.kvScan(3, { prefix: Uint8Array.of(1, 0xff), limit: 10 }).map((r) => [...r.key]);
      assert.deepEqual(got, [
        [1, 0xff],
        [1, 0xff, 0],
      ]);
    });
  });
});

describe("snapshot points and compaction", () => {
  it("createSnapshot compacts what is applied and keeps retained entries; the rest goes in the background", async () => {
    await withStore(async (store, dir, reopen) => {
      const g = store.group(1);
      const ents = Array.from({ length: 50 }, (_, i) => cmd(i + 1, `put k${i % 7} ${i}`));
      await store.saveBatch([
        { group: 1, hardState: { term: 1, vote: "", commit: 50 }, entries: ents, snapshot: null },
      ]);
      await store.applyEntries(1, ents.slice(0, 30), kvCommand);
      await assert.rejects(
        store.createSnapshot(1, 40, { voters: ["a"], learners: [] }),
        SnapshotNotAppliedError,
      );
      await assert.rejects(store.createSnapshot(1, 60, { voters: ["a"], learners: [] }), UnavailableError);
      const snap = await store.createSnapshot(1, 30, { voters: ["a"], learners: [] }, { retainEntries: 5 });
      assert.deepEqual(snap.metadata, { index: 30, term: 1, confState: { voters: ["a"], learners: [] } });
      assert.equal(g.firstIndex(), 26, "five entries before the snapshot point are kept");
      assert.equal(g.term(25), 1);
      await assert.rejects(store.createSnapshot(1, 30, { voters: [], learners: [] }), SnapshotOutOfDateError);
      await store.settle();
      await store.close();
      assert.equal(await countKeys(dir, "entries", 1), 25, "entries 1..25 are physically gone");
      const again = await reopen();
      assert.equal(again.group(1).firstIndex(), 26);
      assert.equal(again.group(1).lastIndex(), 50);
      assert.deepEqual(again.group(1).snapshot().metadata, snap.metadata);
    });
  });

  it("compacted entries left behind by a crash are deleted on the next open", async () => {
    const dir = await tempDir();
    try {
      let store = await NodeStore.open({ path: dir, gcBatchRecords: 10 });
      await store.saveBatch([
        { group: 4, hardState: null, entries: entriesOf(1, new Array(100).fill(1)), snapshot: null },
      ]);
      await store.applyEntries(4, store.group(4).entries(1, 81, Infinity), () => undefined);
      await store.compact(4, 80);
      // Closing stops the background deletion after at most one step of 10 records.
      await store.close();
      const left = await countKeys(dir, "entries", 4);
      assert.ok(left > 20 && left <= 100, `${left} entries on disk after an interrupted clean-up`);
      store = await NodeStore.open({ path: dir, gcBatchRecords: 10 });
      assert.equal(store.group(4).firstIndex(), 81);
      await store.settle();
      await store.close();
      assert.equal(await countKeys(dir, "entries", 4), 20);
    } finally {
      await removeDir(dir);
    }
  });
  it("deleteGroup removes a group's records, log and KV table; it can be created again afterwards", async () => {
    const dir = await tempDir();
    try {
      let store = await NodeStore.open({ path: dir, gcBatchRecords: 10 });
      const ents = Array.from({ length: 60 }, (_, i) => cmd(i + 1, `put k${i} v${i}`));
      await store.saveBatch([
        { group: 7, hardState: { term: 1, vote: "a", commit: 60 }, entries: ents, snapshot: null },
        { group: 8, hardState: null, entries: [cmd(1, "put other 1")], snapshot: null },
      ]);
      await store.applyEntries(7, ents, kvCommand);
      await store.applyEntries(8, [cmd(1, "put other 1")], kvCommand);
      // Closing stops the deletion after its first steps; the tombstone makes the next open finish it.
      const deleting = store.deleteGroup(7);
      assert.equal(store.hasGroup(7), false, "absent as soon as the tombstone is written");
      assert.throws(() => store.group(7), /being deleted/);
      await assert.rejects(store.bootstrap(7, ["a"]), /being deleted/);
      await store.close();
      await deleting;
      store = await NodeStore.open({ path: dir, gcBatchRecords: 10 });
      assert.equal(store.hasGroup(7), false);
      assert.deepEqual(store.groupIds(), [8]);
      await store.settle();
      assert.equal(store.isDeleting(7), false);
      await store.close();
      for (const db of ["group", "state", "entries", "kv"] as const)
        assert.equal(await countKeys(dir, db, 7), 0, `${db} keys left`);
      assert.ok((await countKeys(dir, "kv", 8)) > 0, "the other group keeps its data");
      store = await NodeStore.open({ path: dir });
      await store.bootstrap(7, ["a", "b"]);
      assert.equal(store.hasGroup(7), true);
      assert.equal(store.kvGet(7, "k1"), undefined);
      assert.equal(td.decode(store.kvGet(8, "other")!.value), "1");
      await store.close();
    } finally {
      await removeDir(dir);
    }
  });
});
