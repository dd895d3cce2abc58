/**
 * Aggregates computed per partition and merged: whatever way readings are spread over partitions
 * and in whatever order the parts arrive, the merged buckets are those of the raw readings; a
 * partition reads only its series' window, skips what is not a reading, stops at its bound, and
 * the query parameters refuse a window with too many buckets.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  MAX_BUCKETS,
  emptyPart,
  finishAggregate,
  mergeParts,
  parseAggregateParams,
  partOfResult,
  partitionQuery,
  type AggregatePart,
  type BucketWindow,
} from "../../src/api/aggregate.js";
import { BadRequestError } from "../../src/api/errors.js";
import { aggregatePartition, type PartitionRows } from "../../src/node/partition-aggregate.js";
import { mapRows } from "./memory-rows.js";

const enc = new TextEncoder();
const T0 = Date.parse("2026-03-01T00:00:00.000Z");

type Table = Map<string, { value: Uint8Array; version: string }>;

interface Raw {
  series: string;
  t: number;
  /** What is stored: a bare number, the bridge's JSON document, or something else. */
  stored: { kind: "bare"; v: number } | { kind: "json"; v: number } | { kind: "junk" };
}

function encodeRaw(r: Raw): Uint8Array {
  const s = r.stored;
  if (s.kind === "bare") return enc.encode(String(s.v));
  if (s.kind === "json") return enc.encode(JSON.stringify({ device: "d", value: s.v, seq: 1 }));
  return enc.encode("warm");
}

function table(raws: readonly Raw[]): Table {
  const t: Table = new Map();
  for (const r of raws)
    t.set(`${r.series}${new Date(r.t).toISOString()}`, { value: encodeRaw(r), version: "1" });
  return t;
}

/** The buckets straight from the raw readings, as the old entry-node code computed them. */
function expected(raws: readonly Raw[], w: BucketWindow) {
  const buckets = new Map<number, { count: number; sum: number; min: number; max: number }>();
  let skipped = 0;
  const unique = new Map(raws.map((r) => [`${r.series}${r.t}`, r])); // a later write replaces an earlier one
  for (const r of unique.values()) {
    if (r.t < w.fromMs || r.t >= w.toMs) continue;
    if (r.stored.kind === "junk") {
      skipped++;
      continue;
    }
    const v = r.stored.v;
    const b = w.fromMs + Math.floor((r.t - w.fromMs) / w.bucketMs) * w.bucketMs;
    const a = buckets.get(b);
    if (a)
      Object.assign(a, {
        count: a.count + 1,
        sum: a.sum + v,
        min: Math.min(a.min, v),
        max: Math.max(a.max, v),
      });
    else buckets.set(b, { count: 1, sum: v, min: v, max: v });
  }
  return { buckets: [...buckets].sort((x, y) => x[0] - y[0]), skipped };
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

const rawArb = fc.record({
  series: fc.constantFrom(
    "sensors/{a}/temp/",
    "sensors/{a}/hum/",
    "sensors/{b}/temp/",
    "sensors/{b}/temp/x/",
  ),
  t: fc.integer({ min: T0 - 5000, max: T0 + 65_000 }),
  stored: fc.oneof(
    fc.record({ kind: fc.constant("bare" as const), v: fc.integer({ min: -1000, max: 1000 }) }),
    fc.record({
      kind: fc.constant("json" as const),
      // JSON has no negative zero: a reading written as -0 is stored, and read back, as 0.
      v: fc.double({ min: -1e3, max: 1e3, noNaN: true }).map((v) => v + 0),
    }),
    fc.constant({ kind: "junk" as const }),
  ),
});

describe("bucketed aggregates", () => {
  it("merged per-partition buckets equal the raw readings' buckets, in any split and order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rawArb, { maxLength: 120 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.func(fc.nat()),
        async (raws, partitions, bucketMs, placeOf) => {
          const w: BucketWindow = { fromMs: T0, toMs: T0 + 60_000, bucketMs };
          // Spread the readings over partitions, as the ring would by key hash.
          const tables = Array.from({ length: partitions }, (): Raw[] => []);
          raws.forEach((r, i) => tables[placeOf(i) % partitions]!.push(r));
          // One key lives in one partition: the last write of a key wins in every table.
          const owner = new Map<string, number>();
          tables.forEach((rs, p) => rs.forEach((r) => owner.set(`${r.series}${r.t}`, p)));
          const parts = await Promise.all(
            tables.map((rs, p) =>
              aggregatePartition(mapRows(table(rs.filter((r) => owner.get(`${r.series}${r.t}`) === p))), {
                prefix: "sensors/",
                window: w,
                maxRows: 1e6,
              }),
            ),
          );
          const merged = parts.reverse().reduce(mergeParts, emptyPart(true));
          const result = finishAggregate("avg", merged, partitions, w);
          const want = expected(
            raws.filter((r, i) => owner.get(`${r.series}${r.t}`) === placeOf(i) % partitions),
            w,
          );
          assert.equal(result.skipped, want.skipped);
          assert.deepEqual(
            result.buckets!.map((b) => [b.t, b.count, b.min, b.max]),
            want.buckets.map(([t, b]) => [t, b.count, b.min, b.max]),
          );
          for (const [i, [, b]] of want.buckets.entries()) {
            assert.ok(close(result.buckets![i]!.sum, b.sum), `sum of bucket ${i}`);
            assert.ok(close(result.buckets![i]!.avg, b.sum / b.count), `avg of bucket ${i}`);
          }
          assert.equal(
            result.count,
            result.buckets!.reduce((n, b) => n + b.count, 0),
          );
          assert.ok(result.buckets!.length <= Math.ceil(60_000 / bucketMs));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("merging is associative and commutative, with the empty part as identity", () => {
    const partArb = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: -50, max: 50 })), { maxLength: 20 })
      .map((vs) => {
        const p = emptyPart(true);
        for (const [b, v] of vs) {
          p.count++;
          p.sum += v;
          p.min = p.min === null ? v : Math.min(p.min, v);
          p.max = p.max === null ? v : Math.max(p.max, v);
          const x = p.buckets!.get(b * 1000);
          p.buckets!.set(
            b * 1000,
            x
              ? { count: x.count + 1, sum: x.sum + v, min: Math.min(x.min, v), max: Math.max(x.max, v) }
              : { count: 1, sum: v, min: v, max: v },
          );
        }
        return p;
      });
    const w: BucketWindow = { fromMs: 0, toMs: 10_000, bucketMs: 1000 };
    const view = (p: AggregatePart) => finishAggregate("sum", p, 1, w);
    fc.assert(
      fc.property(partArb, partArb, partArb, (a, b, c) => {
        assert.deepEqual(view(mergeParts(mergeParts(a, b), c)), view(mergeParts(a, mergeParts(b, c))));
        assert.deepEqual(view(mergeParts(a, b)), view(mergeParts(b, a)));
        assert.deepEqual(view(mergeParts(a, emptyPart(true))), view(a));
        // What one agent answers, another reads back as the same part.
        const wire = JSON.parse(JSON.stringify(view(a))) as ReturnType<typeof view>;
        assert.deepEqual(view(partOfResult(wire)), view(a));
      }),
    );
  });

  it("reads only each series' window: seeks, not a scan of its history", async () => {
    const data: Table = new Map();
    for (let i = 0; i < 5000; i++) {
      data.set(`sensors/{k}/temp/${new Date(T0 - 10_000_000 + i * 1000).toISOString()}`, {
        value: enc.encode(String(i)),
        version: "1",
      });
    }
    for (let i = 0; i < 10; i++) {
      data.set(`sensors/{k}/temp/${new Date(T0 + i * 1000).toISOString()}`, {
        value: enc.encode(JSON.stringify({ value: i })),
        version: "1",
      });
    }
    data.set("sensors/{k}/temp/latest", { value: enc.encode("99"), version: "1" });
    data.set("sensors/{k}/temp/x/" + new Date(T0).toISOString(), { value: enc.encode("1000"), version: "1" });
    let rowsRead = 0;
    const base = mapRows(data);
    const counting: PartitionRows = {
      scan: (o) => {
        const rows = base.scan(o);
        rowsRead += rows.length;
        return rows;
      },
      get: base.get,
    };
    const w: BucketWindow = { fromMs: T0, toMs: T0 + 10_000, bucketMs: 5000 };
    const part = await aggregatePartition(counting, { prefix: "sensors/{k}/", window: w, maxRows: 1e6 });
    const r = finishAggregate("max", part, 1, w);
    assert.deepEqual(
      r.buckets!.map((b) => [b.t - T0, b.count, b.sum, b.min, b.max]),
      [
        [0, 6, 1000 + 0 + 1 + 2 + 3 + 4, 0, 1000],
        [5000, 5, 5 + 6 + 7 + 8 + 9, 5, 9],
      ],
      "the deeper series x/ counts too; `latest` is not a reading",
    );
    assert.ok(rowsRead < 100, `read ${rowsRead} rows for 11 readings in the window`);

    const bounded = await aggregatePartition(mapRows(data), {
      prefix: "sensors/{k}/",
      window: w,
      maxRows: 5,
    });
    assert.equal(bounded.truncated, true);
    assert.ok(bounded.count <= 5);
  });

  it("without a bucket, aggregates keys in [from, to) and reads the bridge's JSON values", async () => {
    const data: Table = new Map();
    for (let i = 0; i < 2500; i++) {
      const v = i % 2 === 0 ? String(i) : JSON.stringify({ value: i, time: "x" });
      data.set(`t/${String(i).padStart(4, "0")}`, { value: enc.encode(v), version: "1" });
    }
    data.set("t/2000x", { value: enc.encode('{"value":"1"}'), version: "1" });
    const all = await aggregatePartition(mapRows(data), { prefix: "t/", maxRows: 1e6 });
    assert.equal(all.count, 2500);
    assert.equal(all.sum, (2499 * 2500) / 2);
    assert.equal(all.skipped, 1, "a JSON value that is not a number is skipped");
    const range = await aggregatePartition(mapRows(data), {
      prefix: "t/",
      from: "t/1000",
      to: "t/2000",
      maxRows: 1e6,
    });
    assert.deepEqual([range.count, range.min, range.max], [1000, 1000, 1999]);
    const bounded = await aggregatePartition(mapRows(data), { prefix: "t/", maxRows: 1200 });
    assert.deepEqual([bounded.count, bounded.truncated], [1200, true]);
  });

  it("parses bucket windows and refuses too many buckets with a 400", () => {
    const q = (o: Record<string, string>) => parseAggregateParams(new Map(Object.entries(o)), 1024);
    const ok = q({
      fn: "avg",
      prefix: "sensors/",
      bucket: "60000",
      from: "2026-03-01T00:00:00Z",
      to: String(T0 + 3_600_000),
    });
    assert.deepEqual(ok.window, { fromMs: T0, toMs: T0 + 3_600_000, bucketMs: 60_000 });
    // The query another agent gets for one partition names the same window.
    const again = q(Object.fromEntries(new URLSearchParams(partitionQuery({ ...ok }, 3))));
    assert.deepEqual([again.window, again.partition], [ok.window, 3]);
    const tooMany = { fn: "avg", bucket: "1", from: String(T0), to: String(T0 + MAX_BUCKETS + 1) };
    assert.throws(
      () => q(tooMany),
      (e: unknown) => e instanceof BadRequestError && /at most 1000/.test(e.message),
    );
    assert.doesNotThrow(() => q({ ...tooMany, to: String(T0 + MAX_BUCKETS) }));
    const bads: Record<string, string>[] = [
      { fn: "avg", bucket: "1000" },
      { fn: "avg", bucket: "0", from: "0", to: "10" },
      { fn: "avg", bucket: "-5", from: "0", to: "10" },
      { fn: "avg", bucket: "10", from: "20", to: "10" },
      { fn: "avg", bucket: "10", from: "yesterday", to: "10" },
      { fn: "median" },
      { fn: "avg", partition: "x" },
    ];
    for (const bad of bads) {
      assert.throws(() => q(bad), BadRequestError, JSON.stringify(bad));
    }
  });
});
