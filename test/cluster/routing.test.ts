/**
 * Partition routing with real processes: every node's `/v1/routing` names the leaders it follows,
 * the client's merged table sends each key to the node that leads its partition, and after that
 * leader is killed the table follows the new leader.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { partitionForKey } from "../../agent/src/ring/keys.js";
import { PartitionRouter } from "../../agent/src/routing/router.js";
import { LocalCluster } from "../support/local-cluster.js";

interface StatusPartition {
  partition: number;
  role: string;
}

/** Partition → API of the node whose own status says it leads it. */
async function leadersByStatus(c: LocalCluster): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const api of c.endpoints()) {
    try {
      const res = await fetch(`${api}/v1/status`, {
        headers: { authorization: `Bearer ${c.token}` },
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) continue;
      const body = (await res.json()) as { partitions: StatusPartition[] };
      for (const p of body.partitions) if (p.role === "leader") out.set(p.partition, api);
    } catch {
      // A node being killed: its partitions are led elsewhere.
    }
  }
  return out;
}

describe("partition routing between real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("sends each key to its partition leader and follows a failover", async () => {
    const router = new PartitionRouter({ endpoints: cluster.endpoints(), token: cluster.token });
    const keys = Array.from({ length: 64 }, (_, i) => `route/${i}`);
    const agree = async (): Promise<boolean> => {
      await router.refresh();
      const leaders = await leadersByStatus(cluster);
      return keys.every((k) => {
        const leader = leaders.get(partitionForKey(64, k));
        return leader !== undefined && router.endpointFor(k) === leader;
      });
    };
    await cluster.waitFor("the routing table to name every key's leader", 30_000, agree);
    assert.equal(router.known(), 64);

    // Kill the node leading the first key's partition: the table moves to a live leader.
    const victimApi = router.endpointFor(keys[0]!)!;
    const victim = [...cluster.nodes.values()].find((n) => n.api === victimApi)!;
    cluster.kill9(victim.id);
    await cluster.waitFor("the routing table to follow the new leader", 30_000, async () => {
      await router.refresh();
      const now = router.endpointFor(keys[0]!);
      return now !== undefined && now !== victimApi;
    });
    const res = await fetch(`${router.endpointFor(keys[0]!)!}/v1/kv/${encodeURIComponent(keys[0]!)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${cluster.token}` },
      body: "after failover",
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(res.status, 200, await res.text());
    router.stop();
  });
});
