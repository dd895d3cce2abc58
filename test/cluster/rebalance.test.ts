/**
 * Horizontal scale with real processes: three agents hold 10,000 keys in 64 partitions; a fourth
 * and a fifth board join and the ring moves exactly the replicas it predicts onto them; every key
 * still reads back linearizably; a drained and removed board leaves every partition at three.
 * Each new board is a `joining` member until it votes in every partition the ring gives it, then
 * `up`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { foundingRing } from "../../agent/src/cluster/meta.js";
import { diffPlacement, placement } from "../../agent/src/ring/placement.js";
import { addNode } from "../../agent/src/ring/ring.js";
import { LocalCluster } from "../support/local-cluster.js";

const KEYS = 10_000;

interface PartitionView {
  partition: number;
  role: string;
  voters: string[];
  learners: string[];
}

/**
 * One request, retried on 503 as every client must: while leadership moves between boards a
 * partition is briefly without a leader. The retries are bounded; the PUTs here are idempotent.
 */
async function call(c: LocalCluster, base: string, method: string, path: string, body?: string) {
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${c.token}` },
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      // A kept-alive connection the server closed at the same moment: retry like any client.
      if (attempt >= 5) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(`${method} ${base}${path}: ${cause?.code ?? ""} ${cause?.message ?? String(err)}`);
      }
      continue;
    }
    const text = await res.text();
    if (res.status !== 503 || attempt >= 50) return { status: res.status, text };
    await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 10)));
  }
}

/** Each partition's membership as its leader reports it (null until every partition has one). */
async function leaderViews(c: LocalCluster, ids: string[]): Promise<Map<number, PartitionView> | null> {
  const views = new Map<number, PartitionView>();
  for (const id of ids) {
    const res = await call(c, c.nodes.get(id)!.api, "GET", "/v1/status").catch(() => null);
    if (!res || res.status !== 200) continue;
    const st = JSON.parse(res.text) as { partitions: PartitionView[] };
    for (const p of st.partitions) if (p.role === "leader") views.set(p.partition, p);
  }
  return views.size === 64 ? views : null;
}

function pairs(views: Map<number, PartitionView>): Set<string> {
  const out = new Set<string>();
  for (const [p, v] of views) for (const id of v.voters) out.add(`${p}/${id}`);
  return out;
}

/**
 * The member states `id` goes through, as n1's `/v1/status` (status, members list, inventory)
 * and `/v1/health` (the dashboard) report them, polled until both say `up`.
 */
async function watchJoin(c: LocalCluster, id: string): Promise<{ status: string[]; health: string[] }> {
  const seen = { status: [] as string[], health: [] as string[] };
  const note = (list: string[], state: string | undefined) => {
    if (state !== undefined && list[list.length - 1] !== state) list.push(state);
  };
  await c.waitFor(`${id} to be up`, 240_000, async () => {
    const api = c.nodes.get("n1")!.api;
    const [st, health] = await Promise.all([
      call(c, api, "GET", "/v1/status"),
      call(c, api, "GET", "/v1/health"),
    ]);
    const members = (JSON.parse(st.text) as { members: { id: string; state: string }[] }).members;
    const nodes = (JSON.parse(health.text) as { nodes: { id: string; state: string }[] }).nodes;
    note(seen.status, members.find((m) => m.id === id)?.state);
    note(seen.health, nodes.find((n) => n.id === id)?.state);
    return seen.status.at(-1) === "up" && seen.health.at(-1) === "up";
  });
  return seen;
}

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe("rebalancing between real agents", { timeout: 600_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 100 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("moves exactly the predicted replicas onto new boards, keeps every key, and drains one away", async () => {
    const founders = ["n1", "n2", "n3"];
    const before = await cluster.waitFor("every partition to have a leader", 60_000, () =>
      leaderViews(cluster, founders),
    );
    const keys = Array.from({ length: KEYS }, (_, i) => `k/${i}`);
    await inParallel(keys, 32, async (k) => {
      const base = cluster.endpoints()[Number(k.slice(2)) % 3]!;
      const r = await call(cluster, base, "PUT", `/v1/kv/${k}`, `v${k}`);
      assert.equal(r.status, 200, r.text);
    });

    // What the ring predicts: only replicas onto n4 and n5 move.
    const ring3 = foundingRing(founders, { partitions: 64, replicationFactor: 3 });
    const ring5 = addNode(addNode(ring3, { id: "n4" }), { id: "n5" });
    const predicted = diffPlacement(placement(ring3), placement(ring5));
    assert.ok(predicted.every((m) => m.to === "n4" || m.to === "n5"));

    // Boards join one after another, each once the previous one is up: it is `joining` until it
    // votes in every partition the ring gives it.
    let ring = ring3;
    const members = [...founders];
    for (const [id, via] of [
      ["n4", "n1"],
      ["n5", "n2"],
    ] as const) {
      await cluster.join(id, via);
      const seen = await watchJoin(cluster, id);
      members.push(id);
      ring = addNode(ring, { id });
      assert.deepEqual(seen.status, ["joining", "up"], `${id}'s states in /v1/status`);
      assert.deepEqual(seen.health, ["joining", "up"], `${id}'s states in /v1/health`);
      // Nothing moves its replicas away before the next board joins: up means it votes in each.
      const views = await cluster.waitFor("every partition to have a leader", 60_000, () =>
        leaderViews(cluster, members),
      );
      const missing = placement(ring)
        .partitions.filter((p) => p.replicas.includes(id) && !views.get(p.partition)!.voters.includes(id))
        .map((p) => p.partition);
      assert.deepEqual(missing, [], `${id} is up but does not vote in these partitions`);
    }
    const all = ["n1", "n2", "n3", "n4", "n5"];
    const target = placement(ring5);
    const settled = await cluster.waitFor("the partitions to reach the new placement", 300_000, async () => {
      const views = await leaderViews(cluster, all);
      if (!views) return null;
      for (const p of target.partitions) {
        const v = views.get(p.partition);
        if (!v || v.learners.length > 0 || [...v.voters].sort().join() !== [...p.replicas].sort().join())
          return null;
      }
      return views;
    });
    const added = [...pairs(settled)].filter((x) => !pairs(before).has(x));
    assert.equal(added.length, predicted.length, "moved replicas match the ring's prediction");

    const wrong: string[] = [];
    await inParallel(keys, 32, async (k) => {
      const base = cluster.endpoints()[Number(k.slice(2)) % 5]!;
      const r = await call(cluster, base, "GET", `/v1/kv/${k}?consistency=strong`);
      if (r.status !== 200 || r.text !== `v${k}`) wrong.push(`${k}: ${r.status} ${r.text.slice(0, 80)}`);
    });
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} keys wrong after the joins`);

    // Drain n2, then remove it: every partition is back at three replicas, none on n2.
    assert.equal(
      (await call(cluster, cluster.nodes.get("n1")!.api, "POST", "/v1/members/n2/drain")).status,
      200,
    );
    const rest = all.filter((id) => id !== "n2");
    await cluster.waitFor("n2 to hold no replica", 300_000, async () => {
      const views = await leaderViews(cluster, rest);
      if (!views) return null;
      for (const v of views.values())
        if (v.voters.includes("n2") || v.voters.length !== 3 || v.learners.length) return null;
      return true;
    });
    // n2 lets go of its replicas and, once their leaders confirm it is out, deletes their data.
    await cluster.waitFor("n2 to delete the replicas it released", 120_000, async () => {
      const s = (await cluster.status("n2")) as unknown as {
        replicaOf: number;
        controller: { released: number; purged: number };
      } | null;
      const c = s?.controller;
      return s && s.replicaOf === 0 && c && c.released > 0 && c.purged === c.released ? s : null;
    });
    const removed = await call(cluster, cluster.nodes.get("n1")!.api, "DELETE", "/v1/members/n2");
    assert.equal(removed.status, 200, removed.text);
    const r = await call(cluster, cluster.nodes.get("n3")!.api, "GET", `/v1/kv/k/42?consistency=strong`);
    assert.equal(r.text, "vk/42");
  });
});
