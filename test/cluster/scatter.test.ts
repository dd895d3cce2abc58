/**
 * Scatter-gather with real processes: a scan under a prefix spread over all 64 partitions comes
 * back merged in key order across pages, a hash-tagged prefix touches one partition, and
 * aggregates combine every partition's part. Bucketed aggregates of sensor readings (bare numbers
 * and the bridge's JSON documents) equal the buckets of the raw readings, and so does the
 * dashboard's `/v1/series`, also from a board that joined and holds no replica of the readings, so
 * every partition's part is computed on another board.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const WINDOW_MS = 60_000;
const BUCKET_MS = 10_000;

interface Reading {
  key: string;
  series: string;
  t: number;
  value: number | null;
  stored: string;
}

interface BucketDoc {
  t: number;
  count: number;
  sum?: number;
  min: number;
  max: number;
  avg: number;
}

/** Buckets of [T0, T0 + WINDOW_MS) computed here from the raw readings. */
function rawBuckets(
  readings: readonly Reading[],
): Map<number, { count: number; sum: number; min: number; max: number }> {
  const out = new Map<number, { count: number; sum: number; min: number; max: number }>();
  for (const r of readings) {
    if (r.value === null || r.t < T0 || r.t >= T0 + WINDOW_MS) continue;
    const b = T0 + Math.floor((r.t - T0) / BUCKET_MS) * BUCKET_MS;
    const a = out.get(b) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
    out.set(b, {
      count: a.count + 1,
      sum: a.sum + r.value,
      min: Math.min(a.min, r.value),
      max: Math.max(a.max, r.value),
    });
  }
  return new Map([...out].sort((x, y) => x[0] - y[0]));
}

function assertBuckets(got: readonly BucketDoc[], want: ReturnType<typeof rawBuckets>, what: string): void {
  assert.deepEqual(
    got.map((b) => [b.t, b.count, b.min, b.max]),
    [...want].map(([t, b]) => [t, b.count, b.min, b.max]),
    what,
  );
  for (const [i, [, b]] of [...want].entries()) {
    assert.ok(Math.abs(got[i]!.avg - b.sum / b.count) < 1e-9, `${what}: avg of bucket ${i}`);
  }
}

/** Requests served per route on one node, from its `/metrics`. */
async function served(api: string, route: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  let n = 0;
  for (const m of text.matchAll(/^ringleader_api_requests_total\{route="([^"]+)",[^}]*\} (\d+)/gm)) {
    if (m[1] === route) n += Number(m[2]);
  }
  return n;
}

async function call(c: LocalCluster, base: string, method: string, path: string, body?: string) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${c.token}` },
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status !== 503 || attempt >= 30) return { status: res.status, text };
    await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 10)));
  }
}

/** GET `path`, which must answer 200, and its JSON body. */
async function getJson<T>(c: LocalCluster, base: string, path: string): Promise<T> {
  const r = await call(c, base, "GET", path);
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text) as T;
}

describe("scatter-gather between real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("scans and aggregates across partitions, and within one hash-tagged partition", async () => {
    const [a, b, c] = cluster.endpoints() as [string, string, string];
    // 150 readings spread by key hash over the partitions, 40 in one device's partition.
    const spread = Array.from({ length: 150 }, (_, i) => ({
      key: `t/${String(i).padStart(3, "0")}`,
      value: i,
    }));
    const device = Array.from({ length: 40 }, (_, i) => ({
      key: `s/{kitchen}/${String(i).padStart(3, "0")}`,
      value: i / 2,
    }));
    for (const [i, { key, value }] of [...spread, ...device].entries()) {
      const r = await call(
        cluster,
        [a, b, c][i % 3]!,
        "PUT",
        `/v1/kv/${encodeURIComponent(key)}`,
        String(value),
      );
      assert.equal(r.status, 200, r.text);
    }
    await call(cluster, a, "PUT", "/v1/kv/t%2Fnot-a-number", "warm");

    // Page through the spread prefix 25 at a time: every key once, in order.
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 20; page++) {
      const q: URLSearchParams = new URLSearchParams({
        prefix: "t/",
        limit: "25",
        ...(after ? { after } : {}),
      });
      const body: { items: { key: string }[]; next: string | null } = await getJson(
        cluster,
        b,
        `/v1/kv?${q}`,
      );
      seen.push(...body.items.map((i) => i.key));
      after = body.next;
      if (!after) break;
    }
    const expected = [...spread.map((s) => s.key), "t/not-a-number"].sort();
    assert.deepEqual(seen, expected);

    const agg = (fn: string, prefix: string, extra = "") =>
      getJson<{ value: number | null; count: number; skipped: number; partitions: number }>(
        cluster,
        c,
        `/v1/aggregate?fn=${fn}&prefix=${encodeURIComponent(prefix)}${extra}`,
      );
    const sum = await agg("sum", "t/");
    assert.equal(sum.value, (149 * 150) / 2);
    assert.equal(sum.count, 150);
    assert.equal(sum.skipped, 1, "the non-numeric value is skipped and counted");
    assert.equal(sum.partitions, 64);
    assert.equal((await agg("min", "t/")).value, 0);
    assert.equal((await agg("max", "t/")).value, 149);
    const kitchen = await agg("avg", "s/{kitchen}/");
    assert.equal(kitchen.partitions, 1, "a hash-tagged prefix asks one partition");
    assert.equal(kitchen.value, 39 / 4);
    const range = await agg(
      "count",
      "s/{kitchen}/",
      `&from=${encodeURIComponent("s/{kitchen}/010")}&to=${encodeURIComponent("s/{kitchen}/020")}`,
    );
    assert.equal(range.value, 10);
  });

  /** Set by the first sensor test: checks bucketed aggregates and series through one entry node. */
  let checkThrough: ((base: string, who: string) => Promise<void>) | null = null;

  it("buckets sensor readings on the partitions' nodes, equal to the raw readings, and /v1/series with it", async () => {
    const [a, b, c] = cluster.endpoints() as [string, string, string];
    // Six devices (six hash tags, so several partitions), half written as the bridge writes them.
    const readings: Reading[] = [];
    for (let d = 0; d < 6; d++) {
      for (let i = 0; i < 22; i++) {
        const t = T0 - 4000 + i * 3000 + d * 7; // the first two and the last fall outside the window
        const v = Math.round(Math.sin(i + d) * 1000) / 100;
        const series = `sensors/{dev${d}}/temp/`;
        const time = new Date(t).toISOString();
        const stored =
          d % 2 === 0
            ? JSON.stringify({ device: `dev${d}`, sensor: "temp", value: v, time, seq: i })
            : String(v);
        readings.push({ key: series + time, series, t, value: v, stored });
      }
    }
    readings.push({
      key: `sensors/{dev1}/temp/${new Date(T0 + 500).toISOString()}`,
      series: "sensors/{dev1}/temp/",
      t: T0 + 500,
      value: null,
      stored: "warm",
    });
    for (let i = 0; i < readings.length; i += 12) {
      await Promise.all(
        readings.slice(i, i + 12).map(async (r, j) => {
          const res = await call(
            cluster,
            [a, b, c][j % 3]!,
            "PUT",
            `/v1/kv/${encodeURIComponent(r.key)}`,
            r.stored,
          );
          assert.equal(res.status, 200, res.text);
        }),
      );
    }
    const window = `&bucket=${BUCKET_MS}&from=${T0}&to=${encodeURIComponent(new Date(T0 + WINDOW_MS).toISOString())}`;
    const bucketed = (base: string, prefix: string) =>
      getJson<{
        value: number;
        count: number;
        skipped: number;
        partitions: number;
        truncated: boolean;
        bucketMs: number;
        buckets: BucketDoc[];
      }>(cluster, base, `/v1/aggregate?fn=avg&prefix=${encodeURIComponent(prefix)}${window}`);
    const series = async (base: string, prefix: string) => {
      const q = new URLSearchParams({
        prefix,
        from: new Date(T0).toISOString(),
        to: new Date(T0 + WINDOW_MS).toISOString(),
        buckets: String(WINDOW_MS / BUCKET_MS),
      });
      return getJson<{
        bucketMs: number;
        readings: number;
        skipped: number;
        truncated: boolean;
        buckets: BucketDoc[];
      }>(cluster, base, `/v1/series?${q}`);
    };
    const check = async (base: string, who: string) => {
      const all = await bucketed(base, "sensors/");
      const want = rawBuckets(readings);
      assert.equal(all.partitions, 64);
      assert.equal(all.bucketMs, BUCKET_MS);
      assert.equal(
        all.count,
        [...want.values()].reduce((n, x) => n + x.count, 0),
        `${who}: readings in the window`,
      );
      assert.equal(all.skipped, 1, `${who}: the one non-numeric reading in the window`);
      assert.equal(all.truncated, false);
      assertBuckets(all.buckets, want, `${who}: all devices`);
      for (const d of [0, 1]) {
        const prefix = `sensors/{dev${d}}/temp/`;
        const mine = rawBuckets(readings.filter((r) => r.series === prefix));
        const one = await bucketed(base, prefix);
        assert.equal(one.partitions, 1);
        assertBuckets(one.buckets, mine, `${who}: aggregate of ${prefix}`);
        const chart = await series(base, prefix);
        assert.equal(chart.bucketMs, BUCKET_MS);
        assert.equal(chart.readings, one.count);
        assert.equal(chart.skipped, d === 1 ? 1 : 0);
        assertBuckets(chart.buckets, mine, `${who}: /v1/series of ${prefix}`);
      }
    };
    await check(c, "n3");
    checkThrough = check;
    const tooMany = await call(
      cluster,
      a,
      "GET",
      `/v1/aggregate?fn=avg&prefix=sensors%2F&bucket=1&from=${T0}&to=${T0 + 5000}`,
    );
    assert.equal(tooMany.status, 400, tooMany.text);
    assert.match(tooMany.text, /"bad_request".*at most 1000/);
  });

  it("answers the same through a board that holds none of the readings: parts computed elsewhere", async () => {
    const check = checkThrough;
    assert.ok(check, "the previous test wrote the readings");
    const [a, b, c] = cluster.endpoints() as [string, string, string];
    // A fourth board holds no replica when it joins: every partition's part is asked of another
    // board, and no raw reading is read from them through the API.
    const n4 = await cluster.join("n4", "n1");
    await cluster.waitFor("n4 to learn the ring", 90_000, async () => {
      const res = await fetch(`${n4.api}/v1/ring`, {
        headers: { authorization: `Bearer ${cluster.token}` },
        signal: AbortSignal.timeout(5000),
      }).catch(() => null);
      await res?.body?.cancel();
      return res?.status === 200;
    });
    const olds = [a, b, c];
    const before = await Promise.all(
      olds.map(async (api) => [await served(api, "GET /v1/aggregate"), await served(api, "GET /v1/kv")]),
    );
    await check(n4.api, "n4");
    const afterward = await Promise.all(
      olds.map(async (api) => [await served(api, "GET /v1/aggregate"), await served(api, "GET /v1/kv")]),
    );
    const parts = afterward.reduce((n, x, i) => n + x[0]! - before[i]![0]!, 0);
    assert.ok(parts > 0, `the other boards answered ${parts} partition parts for n4`);
    assert.deepEqual(
      afterward.map((x) => x[1]),
      before.map((x) => x[1]),
      "no scan of raw readings",
    );
  });
});
