/**
 * The node-wide log (format 2, see "Log, format 2" in src/storage/codec.ts): every group's entries
 * in one sequence of records, with the (group, index) -> record map kept in memory and rebuilt on
 * open. These tests drive many groups at once, with several writes planned into one batch, and
 * check three things the single-group conformance suite cannot: that each group still reads as
 * its `MemoryStorage` model does, after every reopen too; that no record is left behind (every
 * overwritten, compacted or deleted entry is removed from the file); and that a format-1 store
 * (one key range per group, every group record in one database) is moved to the new layout when
 * opened.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { open } from "lmdb";
import { MemoryStorage, type Entry, type Snapshot } from "../../src/raft/index.js";
import { NodeStore, type NodeStoreOptions } from "../../src/storage/index.js";
import {
  appliedRecord,
  GroupTag,
  groupKey,
  groupKeyTag,
  hardStateRecord,
  logHeadRecord,
  encodeLogRecord,
  LOG_PLACE_ENCODER,
  logKey,
  logRecordPlace,
  MAX_GROUP_ID,
  seqKey,
} from "../../src/storage/codec.js";
import { StoreCorruptError } from "../../src/storage/errors.js";
import { entry, observe } from "./conformance.js";
import { emptyImage, removeDir, tempDir } from "./lmdb-subject.js";

const BINARY = { keyEncoding: "binary", encoding: "binary" } as const;
const GROUPS = [1, 2, 3];

/** Where each record of the node-wide log belongs, in the file's (write) order (store closed). */
async function logRecords(dir: string): Promise<{ group: number; index: number }[]> {
  const root = open({ path: dir, maxDbs: 8 });
  try {
    const db = root.openDB<Buffer, Buffer>("entries", BINARY);
    return [...db.getRange()].map(({ value }) => logRecordPlace(value));
  } finally {
    await root.close();
  }
}

/** How many records each group has in the file's node-wide log. */
async function recordsPerGroup(dir: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const { group } of await logRecords(dir)) out.set(group, (out.get(group) ?? 0) + 1);
  return out;
}

/**
 * A store in a fresh directory, with what the compaction tests do to it: append entries to a
 * group, and read the file's log records in order (closing the store and opening it again).
 */
class LogFixture {
  private constructor(
    readonly opts: NodeStoreOptions,
    public store: NodeStore,
  ) {}

  static async open(opts: Omit<NodeStoreOptions, "path">): Promise<LogFixture> {
    const full = { ...opts, path: await tempDir() };
    return new LogFixture(full, await NodeStore.open(full));
  }

  append(group: number, from: number, n: number): Promise<void> {
    const entries = Array.from({ length: n }, (_, i) => entry(from + i, 1));
    return this.store.saveBatch([{ group, hardState: null, entries, snapshot: null }]);
  }

  /** `group:index` of every log record in the file, in its order. */
  async fileOrder(): Promise<string[]> {
    await this.store.close();
    const records = (await logRecords(this.opts.path)).map((r) => `${r.group}:${r.index}`);
    this.store = await NodeStore.open(this.opts);
    return records;
  }

  async remove(): Promise<void> {
    await this.store.close();
    await removeDir(this.opts.path);
  }
}

/** `group:from` .. `group:to`. */
const run = (group: number, from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `${group}:${from + i}`);

type Op =
  | { kind: "append"; group: number; back: number; terms: number[] }
  | { kind: "compact"; group: number; back: number }
  | { kind: "snapshot"; group: number; ahead: number }
  | { kind: "delete"; group: number }
  | { kind: "turn" }
  | { kind: "reopen" };

const groupArb = fc.constantFrom(...GROUPS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      group: groupArb,
      back: fc.integer({ min: 0, max: 4 }),
      terms: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("compact" as const),
      group: groupArb,
      back: fc.integer({ min: 0, max: 6 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("snapshot" as const),
      group: groupArb,
      ahead: fc.integer({ min: 1, max: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), group: groupArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("turn" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reopen" as const) }) },
);

/** A run the property once failed on (CI of 29b5508, seed -1164886599, shrunk). */
const SHORTENED_LIVE_LOG: Op[] = [
  { kind: "append", group: 1, back: 0, terms: [0] },
  { kind: "append", group: 3, back: 0, terms: [0] },
  { kind: "append", group: 3, back: 0, terms: [0, 0, 0] },
  { kind: "append", group: 1, back: 0, terms: [0, 0, 0] },
  { kind: "snapshot", group: 3, ahead: 4 },
  { kind: "append", group: 1, back: 0, terms: [0] },
  { kind: "snapshot", group: 3, ahead: 1 },
  { kind: "append", group: 1, back: 3, terms: [0] },
  { kind: "append", group: 1, back: 1, terms: [0] },
];

describe("the node-wide log", () => {
  it("many groups written in shared batches read as their models, across reopens, and leave no stray record", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
        const dir = await tempDir();
        // A small clean-up step, so that closing often interrupts it and the next open resumes it.
        const openStore = (): Promise<NodeStore> => NodeStore.open({ path: dir, gcBatchRecords: 3 });
        let store = await openStore();
        const models = new Map<number, MemoryStorage>(GROUPS.map((g) => [g, new MemoryStorage()]));
        const applied = new Map<number, number>(GROUPS.map((g) => [g, 0]));
        let term = 1;
        // Writes of one "turn" are submitted without waiting, so they are planned into one batch:
        // a later write must see an earlier one's appends (and remove them when it overwrites them).
        let turn: Promise<unknown>[] = [];
        // Groups whose snapshot save is in this turn: an apply reads the committed state (plus
        // earlier applies), so it waits for that save, as the host's apply waits for its Ready's.
        const snapshotIn = new Set<number>();
        const endTurn = async (): Promise<void> => {
          await Promise.all(turn);
          turn = [];
          snapshotIn.clear();
        };
        const check = (): void => {
          for (const g of GROUPS) {
            if (!store.hasGroup(g)) {
              assert.equal(models.get(g)!.lastIndex(), 0, `group ${g} lost its log`);
              continue;
            }
            assert.deepEqual(observe(store.group(g)), observe(models.get(g)!), `group ${g}`);
          }
        };
        try {
          for (const o of ops) {
            if (o.kind === "turn") {
              await endTurn();
              check();
            } else if (o.kind === "reopen") {
              await endTurn();
              await store.close();
              store = await openStore();
              check();
            } else if (o.kind === "delete") {
              await endTurn();
              await store.deleteGroup(o.group);
              models.set(o.group, new MemoryStorage());
              applied.set(o.group, 0);
            } else {
              const g = o.group;
              const model = models.get(g)!;
              if (o.kind === "append") {
                // Never below what is applied, as in Raft: a conflict is always uncommitted.
                const from = Math.max(
                  model.firstIndex(),
                  applied.get(g)! + 1,
                  model.lastIndex() + 1 - o.back,
                );
                const ents = o.terms.map((dt, i) =>
                  entry(from + i, (term += dt), `g${g}i${from + i}t${term}`),
                );
                model.append(ents);
                turn.push(store.saveBatch([{ group: g, hardState: null, entries: ents, snapshot: null }]));
              } else if (o.kind === "compact") {
                const at = model.lastIndex() - o.back;
                if (at < model.firstIndex()) continue;
                // The store compacts only what is applied; apply up to there first (same batch).
                const from = applied.get(g)! + 1;
                if (at >= from) {
                  if (snapshotIn.has(g)) await endTurn();
                  turn.push(store.applyEntries(g, model.entries(from, at + 1, Infinity), () => undefined));
                  applied.set(g, at);
                }
                model.compact(at);
                turn.push(store.compact(g, at));
              } else {
                // A leader's snapshot: inside the log (past what is applied) or beyond its end.
                const index = Math.max(applied.get(g)!, model.firstIndex() - 1) + o.ahead;
                const snap: Snapshot = {
                  metadata: { index, term: ++term, confState: { voters: ["a"], learners: [] } },
                  data: new Uint8Array(0),
                };
                model.applySnapshot(snap);
                model.setConfState(snap.metadata.confState);
                // Its image is staged first (as a follower does), and swapped in by the save.
                await endTurn();
                await store.stageSnapshot(g, snap.metadata, emptyImage(snap.metadata));
                turn.push(store.saveBatch([{ group: g, hardState: null, entries: [], snapshot: snap }]));
                snapshotIn.add(g);
                applied.set(g, index);
              }
            }
          }
          await endTurn();
          check();
          await store.settle();
          await store.close();
          // Every live entry once; compacted records only after the oldest live one (they go in
          // log order), and fewer than the live ones (or than one clean-up step).
          const records = await logRecords(dir);
          const isLive = (r: { group: number; index: number }): boolean =>
            r.index >= models.get(r.group)!.firstIndex() && r.index <= models.get(r.group)!.lastIndex();
          let liveCount = 0;
          for (const g of GROUPS) {
            const m = models.get(g)!;
            const live = m.lastIndex() - m.firstIndex() + 1;
            liveCount += live;
            const found = records.filter((r) => r.group === g && isLive(r)).length;
            assert.equal(found, live, `group ${g}: live records in the file vs live entries`);
          }
          const firstLive = records.findIndex(isLive);
          const garbage = records.length - liveCount;
          const beforeFirstLive = firstLive === -1 ? records.length : firstLive;
          assert.equal(beforeFirstLive, 0, `${beforeFirstLive} compacted records before the oldest live one`);
          assert.ok(garbage <= Math.max(3, liveCount), `${garbage} compacted records, ${liveCount} live`);
          store = await openStore();
          check();
        } finally {
          await store.close();
          await removeDir(dir);
        }
      }),
      {
        numRuns: 40,
        // Found by CI: conflicting appends shortened the live log below the garbage a snapshot had
        // left, and nothing swept it (4 compacted records, 3 live, at close).
        examples: [[SHORTENED_LIVE_LOG]],
      },
    );
  });

  it("deletes compacted records in log order: behind the oldest live record at once, the rest once they outgrow the live log", async () => {
    const f = await LogFixture.open({ gcBatchRecords: 4 });
    const applied = new Map<number, number>();
    const compact = async (group: number, through: number): Promise<void> => {
      const from = (applied.get(group) ?? 0) + 1;
      applied.set(group, through);
      await f.store.applyEntries(
        group,
        f.store.group(group).entries(from, through + 1, Infinity),
        () => undefined,
      );
      await f.store.compact(group, through);
      await f.store.settle();
    };
    try {
      await f.append(1, 1, 1); // group 1 writes once, then idles: its record is the oldest live one
      await f.append(2, 1, 20);
      // Group 2's ten compacted records sit behind group 1's live one, and are fewer than the
      // eleven live records: they stay.
      await compact(2, 10);
      assert.deepEqual(await f.fileOrder(), ["1:1", ...run(2, 1, 20)]);
      // Fifteen compacted against six live: the oldest nine go.
      await compact(2, 15);
      assert.deepEqual(await f.fileOrder(), ["1:1", ...run(2, 10, 20)]);
      // Group 1 moves on: everything behind group 2's oldest live record goes.
      await f.append(1, 2, 1);
      await compact(1, 1);
      assert.deepEqual(await f.fileOrder(), [...run(2, 16, 20), "1:2"]);
    } finally {
      await f.remove();
    }
  });

  it("with logRetainEntries, each flush keeps a group's last entries within the node's window, snapshots and compacts the rest", async () => {
    const f = await LogFixture.open({ gcBatchRecords: 4, logRetainEntries: 3 });
    // Lazily, as the agent applies: the flush (here `settle`'s) writes the table and compacts.
    const apply = async (group: number, from: number, through: number): Promise<void> => {
      const entries = f.store.group(group).entries(from, through + 1, Infinity);
      await f.store.applyGroups([{ group, entries, apply: () => undefined }], { lazy: true });
      await f.store.settle();
    };
    try {
      assert.equal(f.store.compactsOwnLog, true);
      await f.append(1, 1, 1);
      await f.append(2, 1, 1);
      await apply(1, 1, 1);
      await apply(2, 1, 1);
      // Two groups, three entries each: a window of six records, and neither group has more.
      assert.deepEqual(await f.fileOrder(), ["1:1", "2:1"]);
      assert.equal(f.store.group(1).firstIndex(), 1);
      // Group 2 writes ten more: it keeps its last three, and group 1's one record (sequence 1
      // of 12) is out of the window, so that group compacts all it applied though it is idle.
      await f.append(2, 2, 10);
      await apply(2, 2, 11);
      assert.deepEqual(await f.fileOrder(), run(2, 9, 11));
      assert.equal(f.store.group(2).firstIndex(), 9);
      assert.equal(f.store.group(2).snapshot().metadata.index, 11);
      assert.equal(f.store.group(1).firstIndex(), 2);
      assert.equal(f.store.group(1).lastIndex(), 1);
      assert.equal(f.store.group(1).snapshot().metadata.index, 1);
      // Entries not applied yet stay whatever their age; of the applied ones, the window keeps
      // fewer than three here (sequences 10 and 11 of 17 are out of it).
      await f.append(2, 12, 5);
      await f.store.settle();
      assert.deepEqual(await f.fileOrder(), run(2, 11, 16));
      assert.equal(f.store.group(2).firstIndex(), 11);
      assert.equal(f.store.group(2).snapshot().metadata.index, 11);
      const kept = f.store.group(2).entries(11, 17, Infinity);
      assert.deepEqual(
        kept.map((e) => e.index),
        [11, 12, 13, 14, 15, 16],
      );
      // Without the option the store leaves its log to `compact` and `createSnapshot`.
      await f.store.close();
      f.store = await NodeStore.open({ path: f.opts.path, gcBatchRecords: 4 });
      assert.equal(f.store.compactsOwnLog, false);
      await apply(2, 12, 16);
      assert.equal(f.store.group(2).firstIndex(), 11);
      assert.equal(f.store.appliedIndex(2), 16);
    } finally {
      await f.remove();
    }
  });

  it("a read while a batch commits sees the state before it, never a record the batch removed", async () => {
    // A follower overwrites a suffix again and again (a conflict), and the log is read at varying
    // moments while each overwrite commits. A read snapshot taken once LMDB's thread had
    // committed, but before the store's in-memory map had moved on, found the overwritten
    // records gone: "log entry 41 is missing" in some 2 % of these rounds before the fix.
    const dir = await tempDir();
    const store = await NodeStore.open({ path: dir, tailCacheEntries: 0 });
    try {
      const g = store.group(1);
      await store.saveBatch([
        {
          group: 1,
          hardState: null,
          entries: Array.from({ length: 50 }, (_, i) => entry(i + 1, 1)),
          snapshot: null,
        },
      ]);
      const errors: string[] = [];
      for (let term = 2; term <= 1000; term++) {
        const saved = store.saveBatch([
          {
            group: 1,
            hardState: null,
            entries: Array.from({ length: 10 }, (_, i) => entry(41 + i, term)),
            snapshot: null,
          },
        ]);
        await new Promise<void>((resolve) =>
          setTimeout(
            () => {
              try {
                for (let i = 40; i <= g.lastIndex(); i++) assert.ok(g.term(i) <= term);
              } catch (err) {
                errors.push(String(err));
              }
              resolve();
            },
            (term % 7) * 0.25,
          ),
        );
        await saved;
      }
      assert.deepEqual(errors.slice(0, 3), [], `${errors.length} reads failed`);
    } finally {
      await store.close();
      await removeDir(dir);
    }
  });

  it("a format-1 store (one log key range per group) opens with its log moved into the node-wide log", async () => {
    const dir = await tempDir();
    try {
      // A format-1 data directory as the previous agent left it: group 5 compacted through 2,
      // group 9 with two entries, and one compacted entry of group 5 not yet deleted.
      const root = open({ path: dir, maxDbs: 8 });
      const node = root.openDB<Buffer, Buffer>("node", BINARY);
      const group = root.openDB<Buffer, Buffer>("group", BINARY);
      const log = root.openDB<Buffer, Buffer>("log", BINARY);
      const oldValue = (e: Entry): Buffer => {
        const v = Buffer.alloc(9 + e.data.byteLength);
        v.writeUInt32BE(Math.floor(e.term / 2 ** 32), 0);
        v.writeUInt32BE(e.term % 2 ** 32, 4);
        v.set(e.data, 9);
        return v;
      };
      await root.transaction(() => {
        void node.put(Buffer.from("format"), Buffer.from("1"));
        void node.put(Buffer.from("nodeId"), Buffer.from("n1"));
        void group.put(groupKey(5, GroupTag.HardState), hardStateRecord({ term: 3, vote: "n1", commit: 4 }));
        void group.put(groupKey(5, GroupTag.LogHead), logHeadRecord({ index: 2, term: 1 }));
        void group.put(groupKey(5, GroupTag.Applied), appliedRecord({ index: 3, term: 2, generation: 0 }));
        for (const e of [entry(2, 1), entry(3, 2), entry(4, 3), entry(5, 3)])
          void log.put(logKey(5, e.index), oldValue(e));
        for (const e of [entry(1, 1), entry(2, 1)]) void log.put(logKey(9, e.index), oldValue(e));
      });
      await root.close();

      let store = await NodeStore.open({ path: dir });
      const expect5 = [entry(3, 2), entry(4, 3), entry(5, 3)];
      const plain = (es: Entry[]): unknown => es.map((e) => ({ ...e, data: [...e.data] }));
      assert.equal(store.nodeId, "n1");
      assert.deepEqual(store.group(5).initialState().hardState, { term: 3, vote: "n1", commit: 4 });
      assert.equal(store.group(5).firstIndex(), 3);
      assert.equal(store.group(5).term(2), 1, "the head keeps its term");
      assert.equal(store.appliedIndex(5), 3);
      assert.deepEqual(plain(store.group(5).entries(3, 6, Infinity)), plain(expect5));
      assert.deepEqual(plain(store.group(9).entries(1, 3, Infinity)), plain([entry(1, 1), entry(2, 1)]));
      // The moved log takes new appends and truncations like any other.
      await store.saveBatch([
        { group: 5, hardState: null, entries: [entry(5, 4), entry(6, 4)], snapshot: null },
      ]);
      await store.settle();
      await store.close();

      const check = open({ path: dir, maxDbs: 8 });
      try {
        assert.equal(
          check.openDB<Buffer, Buffer>("node", BINARY).get(Buffer.from("format"))?.toString(),
          "2",
        );
        assert.equal(
          [...check.openDB<Buffer, Buffer>("log", BINARY).getKeys()].length,
          0,
          "the old log is empty",
        );
        const tags = (name: string): number[] =>
          [...check.openDB<Buffer, Buffer>(name, BINARY).getKeys()].map((k) => groupKeyTag(k));
        assert.deepEqual(tags("group"), [GroupTag.LogHead], "group keeps the log head");
        assert.deepEqual(
          tags("state"),
          [GroupTag.HardState, GroupTag.Applied],
          "state has the per-turn records",
        );
      } finally {
        await check.close();
      }
      assert.deepEqual(
        Object.fromEntries(await recordsPerGroup(dir)),
        { 5: 4, 9: 2 },
        "compacted entry 2 deleted",
      );
      store = await NodeStore.open({ path: dir });
      assert.deepEqual(
        plain(store.group(5).entries(3, 7, Infinity)),
        plain([entry(3, 2), entry(4, 3), entry(5, 4), entry(6, 4)]),
      );
      await store.close();
    } finally {
      await removeDir(dir);
    }
  });

  it("the open reads where each record belongs without copying it, as the full decoder does", () => {
    for (const [group, index] of [
      [1, 1],
      [MAX_GROUP_ID, 2 ** 40 + 3],
      [0x8000_0001, Number.MAX_SAFE_INTEGER],
    ] as const) {
      const record = encodeLogRecord(group, { ...entry(index, 7), index });
      assert.deepEqual(LOG_PLACE_ENCODER.decode(record, record.byteLength), { group, index });
      assert.deepEqual(LOG_PLACE_ENCODER.decode(record), logRecordPlace(record));
    }
    assert.throws(() => LOG_PLACE_ENCODER.decode(Buffer.alloc(64), 20), /log record of 20 bytes/);
  });

  it("a log record too short to say where it belongs stops the open with a clear error", async () => {
    const dir = await tempDir();
    try {
      const store = await NodeStore.open({ path: dir });
      await store.saveBatch([{ group: 1, hardState: null, entries: [entry(1, 1)], snapshot: null }]);
      await store.close();
      const root = open({ path: dir, maxDbs: 8 });
      await root.openDB<Buffer, Buffer>("entries", BINARY).put(seqKey(1_000), Buffer.alloc(5));
      await root.close();
      await assert.rejects(NodeStore.open({ path: dir }), (err: Error) => {
        assert.ok(err instanceof StoreCorruptError, String(err));
        assert.match(err.message, /log record of 5 bytes/);
        return true;
      });
    } finally {
      await removeDir(dir);
    }
  });
});
