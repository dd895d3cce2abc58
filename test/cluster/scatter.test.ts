/**
 * Scatter-gather with real processes: a scan under a prefix spread over all 64 partitions comes
 * back merged in key order across pages, a hash-tagged prefix touches one partition, and
 * aggregates combine every partition's part.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";

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
      const q = new URLSearchParams({ prefix: "t/", limit: "25", ...(after ? { after } : {}) });
      const r = await call(cluster, b, "GET", `/v1/kv?${q}`);
      assert.equal(r.status, 200, r.text);
      const body = JSON.parse(r.text) as { items: { key: string }[]; next: string | null };
      seen.push(...body.items.map((i) => i.key));
      after = body.next;
      if (!after) break;
    }
    const expected = [...spread.map((s) => s.key), "t/not-a-number"].sort();
    assert.deepEqual(seen, expected);

    const agg = async (fn: string, prefix: string, extra = "") => {
      const r = await call(
        cluster,
        c,
        "GET",
        `/v1/aggregate?fn=${fn}&prefix=${encodeURIComponent(prefix)}${extra}`,
      );
      assert.equal(r.status, 200, r.text);
      return JSON.parse(r.text) as {
        value: number | null;
        count: number;
        skipped: number;
        partitions: number;
      };
    };
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
});
