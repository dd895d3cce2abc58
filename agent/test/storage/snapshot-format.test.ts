/** The snapshot chunk format on its own: round trips, and every kind of damage is a clean error. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { SnapshotMetadata } from "../../src/raft/index.js";
import { SnapshotCorruptError } from "../../src/storage/index.js";
import {
  encodeSnapshotHeader,
  encodeSnapshotTrailer,
  RecordChunkBuilder,
  SnapshotReader,
} from "../../src/storage/snapshot-format.js";

const limits = { maxChunkBytes: 64 * 1024, maxKeyBytes: 64, maxValueBytes: 1024 };
const meta: SnapshotMetadata = { index: 500, term: 3, confState: { voters: ["a", "b"], learners: ["c"] } };

interface Rec {
  key: Uint8Array;
  value: Uint8Array;
  version: number;
}

const recordsArb = fc
  .uniqueArray(fc.uint8Array({ minLength: 1, maxLength: 64 }), {
    maxLength: 60,
    selector: (k) => Buffer.from(k).toString("hex"),
  })
  .chain((keys) =>
    fc.tuple(
      fc.constant([...keys].sort(Buffer.compare)),
      fc.array(fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 500 })), {
        minLength: keys.length,
        maxLength: keys.length,
      }),
      fc.integer({ min: 1, max: 12 }),
    ),
  )
  .map(([keys, vals, perChunk]) => ({
    records: keys.map((key, i): Rec => ({ key, value: vals[i]![0], version: vals[i]![1] })),
    perChunk,
  }));

function encodeStream(records: readonly Rec[], perChunk: number): Uint8Array[] {
  const chunks = [encodeSnapshotHeader(meta)];
  const b = new RecordChunkBuilder();
  let bytes = 0;
  for (const r of records) {
    b.add(r.key, r.version, r.value);
    bytes += r.key.byteLength + r.value.byteLength;
    if (b.count === perChunk) chunks.push(b.take());
  }
  if (b.count > 0) chunks.push(b.take());
  chunks.push(encodeSnapshotTrailer(records.length, bytes));
  return chunks;
}

function read(chunks: readonly Uint8Array[]): Rec[] {
  const reader = new SnapshotReader(limits);
  const out: Rec[] = [];
  for (const c of chunks)
    out.push(...reader.feed(c).map((r) => ({ key: r.key, value: r.value, version: r.version })));
  assert.deepEqual(reader.finish(), meta);
  return out;
}

describe("snapshot chunk format", () => {
  it("round-trips any sorted set of records in any chunking", () => {
    fc.assert(
      fc.property(recordsArb, ({ records, perChunk }) => {
        const got = read(encodeStream(records, perChunk));
        assert.deepEqual(
          got.map((r) => [[...r.key], [...r.value], r.version]),
          records.map((r) => [[...r.key], [...r.value], r.version]),
        );
      }),
      { numRuns: 200 },
    );
  });

  it("rejects every damaged stream with SnapshotCorruptError and nothing else", () => {
    const damage = fc.oneof(
      fc.record({
        kind: fc.constant("flip" as const),
        chunk: fc.nat(),
        byte: fc.nat(),
        bit: fc.integer({ min: 0, max: 7 }),
      }),
      fc.record({ kind: fc.constant("cut" as const), chunk: fc.nat(), keep: fc.nat() }),
      fc.record({ kind: fc.constant("drop" as const), chunk: fc.nat() }),
      fc.record({
        kind: fc.constant("junk" as const),
        chunk: fc.nat(),
        bytes: fc.uint8Array({ maxLength: 40 }),
      }),
      fc.record({ kind: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
    );
    fc.assert(
      fc.property(recordsArb, damage, ({ records, perChunk }, d) => {
        const chunks = encodeStream(records, perChunk);
        const at = (n: number): number => n % chunks.length;
        const bad = [...chunks];
        if (d.kind === "flip") {
          const c = Uint8Array.from(bad[at(d.chunk)]!);
          c[d.byte % c.length]! ^= 1 << d.bit;
          bad[at(d.chunk)] = c;
        } else if (d.kind === "cut") {
          const c = bad[at(d.chunk)]!;
          bad[at(d.chunk)] = c.subarray(0, d.keep % c.length);
        } else if (d.kind === "drop") {
          bad.splice(at(d.chunk), 1);
        } else if (d.kind === "junk") {
          bad.splice(at(d.chunk), 0, d.bytes);
        } else {
          if (at(d.a) === at(d.b)) return;
          [bad[at(d.a)], bad[at(d.b)]] = [bad[at(d.b)]!, bad[at(d.a)]!];
          if (Buffer.compare(Buffer.from(bad[at(d.a)]!), Buffer.from(bad[at(d.b)]!)) === 0) return;
        }
        assert.throws(() => read(bad), SnapshotCorruptError);
      }),
      { numRuns: 500 },
    );
  });

  it("bounds chunk, key and value sizes", () => {
    const reader = new SnapshotReader({ ...limits, maxChunkBytes: 100 });
    assert.throws(() => reader.feed(new Uint8Array(101)), SnapshotCorruptError);
    const b = new RecordChunkBuilder();
    b.add(new Uint8Array(65), 1, new Uint8Array(1));
    const r2 = new SnapshotReader(limits);
    r2.feed(encodeSnapshotHeader(meta));
    assert.throws(() => r2.feed(b.take()), /key of 65 bytes/);
    b.add(Uint8Array.of(1), 501, new Uint8Array(1));
    assert.throws(() => r2.feed(b.take()), /past the snapshot index/);
  });
});
