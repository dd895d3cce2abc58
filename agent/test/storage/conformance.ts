/**
 * The shared conformance suite for Raft log storage (hashicorp/raft's habit: every store passes
 * the same tests). `MemoryStorage` is the reference; `LmdbGroupStorage` must behave the same,
 * including which error class it throws and the index the error carries.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  CompactedError,
  MemoryStorage,
  SnapshotOutOfDateError,
  UnavailableError,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  type Storage,
} from "../../src/raft/index.js";

export interface SaveInput {
  readonly hardState?: HardState;
  readonly entries?: readonly Entry[];
  readonly snapshot?: Snapshot;
}

export interface StorageUnderTest {
  readonly storage: Storage;
  /** Persists like one Ready: snapshot, then entries (truncating a conflicting suffix), then hard state. */
  save(update: SaveInput): Promise<void>;
  /** Drops entries up to and including `index` (as `MemoryStorage.compact`). */
  compact(index: number): Promise<void>;
  /** Records a snapshot at `index` without compacting (as `MemoryStorage.createSnapshot`). */
  createSnapshot(index: number, confState: ConfState): Promise<Snapshot>;
  /** The same storage after a process restart (a durable store reopens its files). */
  reopen(): Promise<StorageUnderTest>;
  close(): Promise<void>;
}

export type StorageFactory = (voters: readonly string[] | null) => Promise<StorageUnderTest>;

const te = new TextEncoder();

export function entry(index: number, term: number, data: string | Uint8Array = `e${index}`): Entry {
  return { index, term, type: "normal", data: typeof data === "string" ? te.encode(data) : data };
}

export function entriesOf(from: number, terms: readonly number[]): Entry[] {
  return terms.map((t, i) => entry(from + i, t));
}

/** Everything a Raft core can observe through `Storage`, as plain data for deep comparison. */
export function observe(s: Storage): unknown {
  const first = s.firstIndex();
  const last = s.lastIndex();
  const terms: number[] = [];
  for (let i = first - 1; i <= last; i++) terms.push(s.term(i));
  return {
    first,
    last,
    terms,
    entries: last >= first ? s.entries(first, last + 1, Number.MAX_SAFE_INTEGER).map(plainEntry) : [],
    snapshot: s.snapshot().metadata,
    initial: s.initialState(),
  };
}

function plainEntry(e: Entry): unknown {
  return { index: e.index, term: e.term, type: e.type, data: [...e.data] };
}

function throwsWith<E extends Error>(fn: () => unknown, cls: new (...a: never[]) => E, index: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as unknown as { index: number }).index, index);
    return true;
  });
}

async function rejectsWith<E extends Error>(
  p: Promise<unknown>,
  cls: new (...a: never[]) => E,
  index: number,
): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as unknown as { index: number }).index, index);
    return true;
  });
}

async function withSubject(
  factory: StorageFactory,
  voters: readonly string[] | null,
  body: (s: StorageUnderTest) => Promise<StorageUnderTest | void>,
): Promise<void> {
  let s = await factory(voters);
  try {
    s = (await body(s)) ?? s;
  } finally {
    await s.close();
  }
}

export function storageConformance(name: string, factory: StorageFactory): void {
  describe(`Storage conformance: ${name}`, () => {
    it("an empty log answers term 0 at index 0 and nothing else", async () => {
      await withSubject(factory, null, async (s) => {
        const st = s.storage;
        assert.equal(st.firstIndex(), 1);
        assert.equal(st.lastIndex(), 0);
        assert.equal(st.term(0), 0);
        throwsWith(() => st.term(1), UnavailableError, 1);
        assert.deepEqual(st.entries(1, 1, 100), []);
        throwsWith(() => st.entries(0, 1, 100), CompactedError, 0);
        throwsWith(() => st.entries(1, 2, 100), UnavailableError, 1);
        assert.deepEqual(st.initialState().hardState, { term: 0, vote: "", commit: 0 });
        assert.equal(st.snapshot().metadata.index, 0);
      });
    });

    it("a bootstrapped group starts exactly as MemoryStorage.bootstrap", async () => {
      await withSubject(factory, ["c", "a", "b"], async (s) => {
        assert.deepEqual(observe(s.storage), observe(MemoryStorage.bootstrap(["c", "a", "b"])));
        assert.ok(s.storage.lastIndex() > 0 || s.storage.initialState().confState.voters.length === 3);
      });
    });

    it("appended entries read back with their terms, types and payloads", async () => {
      await withSubject(factory, null, async (s) => {
        const ents = [...entriesOf(1, [1, 1, 2]), { ...entry(4, 2), type: "conf" as const }, entry(5, 3, "")];
        await s.save({ entries: ents });
        const st = s.storage;
        assert.equal(st.firstIndex(), 1);
        assert.equal(st.lastIndex(), 5);
        assert.deepEqual(st.entries(1, 6, Infinity).map(plainEntry), ents.map(plainEntry));
        assert.deepEqual(
          [1, 2, 3, 4, 5].map((i) => st.term(i)),
          [1, 1, 2, 2, 3],
        );
        assert.deepEqual(st.entries(2, 4, Infinity).map(plainEntry), ents.slice(1, 3).map(plainEntry));
        assert.deepEqual(st.entries(3, 3, Infinity), []);
        throwsWith(() => st.entries(4, 7, Infinity), UnavailableError, 6);
        throwsWith(() => st.term(6), UnavailableError, 6);
      });
    });

    it("maxBytes returns the longest prefix within the limit, never fewer than one entry", async () => {
      await withSubject(factory, null, async (s) => {
        const sizes = [10, 200, 0, 50, 1000, 3, 70];
        await s.save({ entries: sizes.map((n, i) => entry(i + 1, 1, new Uint8Array(n).fill(i))) });
        await fc.assert(
          fc.property(
            fc.integer({ min: 1, max: 7 }),
            fc.integer({ min: 0, max: 7 }),
            fc.integer({ min: 0, max: 2000 }),
            (lo, span, maxBytes) => {
              const hi = Math.min(8, lo + span);
              const got = s.storage.entries(lo, hi, maxBytes).map((e) => e.index);
              // The rule written out independently of limitSize: 24 bytes of overhead per entry.
              const want: number[] = [];
              let total = 0;
              for (let i = lo; i < hi; i++) {
                total += sizes[i - 1]! + 24;
                if (want.length > 0 && total > maxBytes) break;
                want.push(i);
              }
              assert.deepEqual(got, want);
            },
          ),
          { numRuns: 300 },
        );
      });
    });

    it("appending over a conflicting suffix truncates it", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 1, 1, 1]) });
        await s.save({ entries: [entry(3, 2, "new3"), entry(4, 2, "new4")] });
        const st = s.storage;
        assert.equal(st.lastIndex(), 4);
        assert.deepEqual(
          [1, 2, 3, 4].map((i) => st.term(i)),
          [1, 1, 2, 2],
        );
        assert.equal(new TextDecoder().decode(st.entries(3, 4, Infinity)[0]!.data), "new3");
        throwsWith(() => st.term(5), UnavailableError, 5);
        // A longer replacement extends the log again.
        await s.save({ entries: entriesOf(2, [3, 3, 3, 3, 3, 3]) });
        assert.equal(st.lastIndex(), 7);
        assert.deepEqual(
          [1, 2, 7].map((i) => st.term(i)),
          [1, 3, 3],
        );
      });
    });

    it("appending past the end with a hole is refused and changes nothing", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 1]) });
        await assert.rejects(s.save({ entries: [entry(5, 1)] }));
        assert.equal(s.storage.lastIndex(), 3);
        await s.save({ entries: [entry(4, 1)] });
        assert.equal(s.storage.lastIndex(), 4);
      });
    });

    it("compaction keeps the term of the compaction point and refuses reads below it", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 2, 2, 3]) });
        await s.compact(3);
        const st = s.storage;
        assert.equal(st.firstIndex(), 4);
        assert.equal(st.lastIndex(), 5);
        assert.equal(st.term(3), 2);
        throwsWith(() => st.term(2), CompactedError, 2);
        throwsWith(() => st.entries(3, 5, Infinity), CompactedError, 3);
        assert.deepEqual(
          st.entries(4, 6, Infinity).map((e) => e.index),
          [4, 5],
        );
        await rejectsWith(s.compact(3), CompactedError, 3);
        await rejectsWith(s.compact(2), CompactedError, 2);
        await rejectsWith(s.compact(6), UnavailableError, 6);
        await s.compact(5);
        assert.equal(st.firstIndex(), 6);
        assert.equal(st.lastIndex(), 5);
        assert.equal(st.term(5), 3);
        assert.deepEqual(st.entries(6, 6, Infinity), []);
      });
    });

    it("appends that start in the compacted prefix skip it", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 1, 1, 1]) });
        await s.compact(3);
        await s.save({ entries: entriesOf(1, [1, 1]) });
        assert.equal(s.storage.lastIndex(), 5, "an append wholly below the first index changes nothing");
        await s.save({ entries: entriesOf(2, [1, 1, 2, 2, 2]) });
        assert.equal(s.storage.firstIndex(), 4);
        assert.equal(s.storage.lastIndex(), 6);
        assert.deepEqual(
          [3, 4, 5, 6].map((i) => s.storage.term(i)),
          [1, 2, 2, 2],
        );
      });
    });

    it("createSnapshot records the point with its term and refuses stale or future points", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 2, 2, 3]) });
        const cs = { voters: ["x", "y"], learners: ["z"] };
        const snap = await s.createSnapshot(4, cs);
        assert.deepEqual(snap.metadata, { index: 4, term: 2, confState: cs });
        assert.deepEqual(s.storage.snapshot().metadata, snap.metadata);
        await rejectsWith(s.createSnapshot(4, cs), SnapshotOutOfDateError, 4);
        await rejectsWith(s.createSnapshot(2, cs), SnapshotOutOfDateError, 2);
        await rejectsWith(s.createSnapshot(6, cs), UnavailableError, 6);
      });
    });

    it("a snapshot from the leader replaces the log and sets the membership", async () => {
      await withSubject(factory, ["a"], async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 1]) });
        const cs = { voters: ["a", "b"], learners: [] };
        const snapshot: Snapshot = {
          metadata: { index: 10, term: 4, confState: cs },
          data: new Uint8Array(0),
        };
        await s.save({ snapshot, hardState: { term: 4, vote: "", commit: 10 } });
        const st = s.storage;
        assert.equal(st.firstIndex(), 11);
        assert.equal(st.lastIndex(), 10);
        assert.equal(st.term(10), 4);
        throwsWith(() => st.term(9), CompactedError, 9);
        throwsWith(() => st.entries(10, 11, Infinity), CompactedError, 10);
        assert.deepEqual(st.snapshot().metadata, snapshot.metadata);
        assert.deepEqual(st.initialState().confState, cs);
        const older: Snapshot = { metadata: { index: 5, term: 4, confState: cs }, data: new Uint8Array(0) };
        await rejectsWith(s.save({ snapshot: older }), SnapshotOutOfDateError, 5);
        await s.save({ entries: entriesOf(11, [4, 5]) });
        assert.equal(st.lastIndex(), 12);
        assert.equal(st.term(12), 5);
      });
    });

    it("a snapshot inside the log drops the entries after it too", async () => {
      await withSubject(factory, null, async (s) => {
        await s.save({ entries: entriesOf(1, [1, 1, 1, 1, 1]) });
        const cs = { voters: ["a"], learners: [] };
        await s.save({
          snapshot: { metadata: { index: 3, term: 2, confState: cs }, data: new Uint8Array(0) },
        });
        assert.equal(s.storage.firstIndex(), 4);
        assert.equal(s.storage.lastIndex(), 3);
        assert.equal(s.storage.term(3), 2);
        throwsWith(() => s.storage.term(4), UnavailableError, 4);
      });
    });

    it("hard state, membership, snapshot point and log survive a restart", async () => {
      await withSubject(factory, ["a", "b"], async (s0) => {
        await s0.save({ entries: entriesOf(1, [1, 2, 2, 3]), hardState: { term: 3, vote: "b", commit: 3 } });
        await s0.compact(1);
        await s0.createSnapshot(2, { voters: ["a", "b"], learners: [] });
        const before = observe(s0.storage);
        const s1 = await s0.reopen();
        assert.deepEqual(observe(s1.storage), before);
        assert.deepEqual(s1.storage.initialState().hardState, { term: 3, vote: "b", commit: 3 });
        return s1;
      });
    });

    it("behaves as MemoryStorage under random appends, truncations, compactions and snapshots", async () => {
      const op = fc.oneof(
        fc.record({
          kind: fc.constant("append" as const),
          back: fc.integer({ min: 0, max: 4 }),
          terms: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 5 }),
        }),
        fc.record({ kind: fc.constant("compact" as const), back: fc.integer({ min: 0, max: 6 }) }),
        fc.record({ kind: fc.constant("snapshot" as const), ahead: fc.integer({ min: 1, max: 4 }) }),
        fc.record({
          kind: fc.constant("hardState" as const),
          term: fc.integer({ min: 0, max: 9 }),
          commit: fc.integer({ min: 0, max: 9 }),
        }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
          const model = new MemoryStorage();
          await withSubject(factory, null, async (s) => {
            let term = 1;
            for (const o of ops) {
              if (o.kind === "append") {
                // Start somewhere in the last few entries (a conflict) or right after the end.
                const from = Math.max(model.firstIndex(), model.lastIndex() + 1 - o.back);
                const ents = o.terms.map((dt, i) => entry(from + i, (term += dt)));
                model.append(ents);
                await s.save({ entries: ents });
              } else if (o.kind === "compact") {
                const at = model.lastIndex() - o.back;
                if (at < model.firstIndex() || at > model.lastIndex()) continue;
                model.compact(at);
                await s.compact(at);
              } else if (o.kind === "snapshot") {
                const snap: Snapshot = {
                  metadata: {
                    index: model.lastIndex() + o.ahead,
                    term: ++term,
                    confState: { voters: ["a"], learners: [] },
                  },
                  data: new Uint8Array(0),
                };
                model.applySnapshot(snap);
                model.setConfState(snap.metadata.confState);
                await s.save({ snapshot: snap });
              } else {
                const hs = { term: o.term, vote: o.term % 2 === 0 ? "" : "a", commit: o.commit };
                model.setHardState(hs);
                await s.save({ hardState: hs });
              }
              assert.deepEqual(observe(s.storage), observe(model));
            }
            const reopened = await s.reopen();
            assert.deepEqual(observe(reopened.storage), observe(model));
            return reopened;
          });
        }),
        { numRuns: 25 },
      );
    });
  });
}
