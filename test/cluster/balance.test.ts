/**
 * Load balancing of eventual reads between real agents: with `?strategy=ip-hash`, one client's
 * reads land on one replica whichever agent they enter by (the entry agents forward with the
 * client's address); with round-robin they spread over the replicas. The serving node shows in
 * the `x-ringleader-served-by` header.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";

const KEYS = Array.from({ length: 8 }, (_, i) => `balance/${i}`);

async function request(c: LocalCluster, url: string, init: { method?: string; body?: string } = {}) {
  const res = await fetch(url, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${c.token}` },
    ...(init.body !== undefined ? { body: init.body } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, text: await res.text(), servedBy: res.headers.get("x-ringleader-served-by") };
}

/** Retries 503 (an election) and, for eventual reads, 404 (a replica still catching up). */
async function until200(c: LocalCluster, url: string, init: { method?: string; body?: string } = {}) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await request(c, url, init);
    if (r.status === 200 || Date.now() > deadline) return r;
    if (r.status !== 503 && r.status !== 404) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("eventual read balancing between real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
    // ip-hash hashes over the replicas an agent knows an address for: wait until every agent's
    // member table has all three (each board registers itself once the meta group has a leader).
    await cluster.waitHealthy();
    await cluster.waitFor("every agent to know every member's address", 60_000, async () => {
      const views = await Promise.all([...cluster.nodes.keys()].map((id) => cluster.status(id)));
      return views.every((s) => {
        const members = (s as { members?: { api?: string }[] } | null)?.members ?? [];
        return members.length === 3 && members.every((m) => typeof m.api === "string");
      });
    });
    const [a] = cluster.endpoints() as [string];
    for (const key of KEYS) {
      const r = await until200(cluster, `${a}/v1/kv/${encodeURIComponent(key)}`, {
        method: "PUT",
        body: key,
      });
      assert.equal(r.status, 200, r.text);
    }
  });
  after(async () => {
    await cluster?.stop();
  });

  it("ip-hash sends one client's reads to one replica, through every entry agent", async () => {
    const served = new Set<string>();
    for (const entry of cluster.endpoints()) {
      for (const key of KEYS) {
        const r = await until200(
          cluster,
          `${entry}/v1/kv/${encodeURIComponent(key)}?consistency=eventual&strategy=ip-hash`,
        );
        assert.equal(r.status, 200, r.text);
        assert.equal(r.text, key);
        assert.ok(r.servedBy, "no x-ringleader-served-by header");
        served.add(r.servedBy);
      }
    }
    assert.equal(served.size, 1, `one client was served by ${[...served].join(", ")}`);
  });

  it("round-robin spreads the same reads over several replicas", async () => {
    const [entry] = cluster.endpoints() as [string];
    const served = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const key = KEYS[i % KEYS.length]!;
      const r = await until200(
        cluster,
        `${entry}/v1/kv/${encodeURIComponent(key)}?consistency=eventual&strategy=round-robin`,
      );
      assert.equal(r.status, 200, r.text);
      served.add(r.servedBy ?? "?");
    }
    assert.ok(served.size >= 2, `round-robin used only ${[...served].join(", ")}`);
  });

  it("a strong read names the leader that served it; an unknown strategy is a 400", async () => {
    const [entry] = cluster.endpoints() as [string];
    const strong = await until200(cluster, `${entry}/v1/kv/${encodeURIComponent(KEYS[0]!)}`);
    assert.equal(strong.status, 200);
    assert.match(strong.servedBy ?? "", /^n\d+$/);
    const bad = await request(
      cluster,
      `${entry}/v1/kv/${encodeURIComponent(KEYS[0]!)}?consistency=eventual&strategy=nearest`,
    );
    assert.equal(bad.status, 400);
    assert.match(bad.text, /strategy must be one of/);
  });
});
