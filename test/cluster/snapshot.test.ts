/**
 * Log compaction and snapshot streaming between real processes: a follower that was down while
 * the others compacted their logs comes back and catches up from a chunked LMDB snapshot.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { partitionForKey } from "../../agent/src/ring/keys.js";
import { LocalCluster } from "../support/local-cluster.js";

/** One request, retried on 503 and on a connection the server closed, as any client does. */
async function api(
  c: LocalCluster,
  base: string,
  method: string,
  path: string,
  body?: string,
): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${c.token}` },
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status !== 503 || attempt >= 30) return res;
      await res.arrayBuffer();
    } catch (err) {
      if (attempt >= 5) throw err;
    }
    await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 10)));
  }
}

/** Every key carries the hash tag {snap}, so all of them land in one partition and fill its log. */
const key = (i: number): string => `snap/{snap}/${String(i).padStart(4, "0")}`;

describe("snapshots between real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50, snapshotEntries: 100 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("a follower restarted after the others compacted catches up from a streamed snapshot", async () => {
    const partition = partitionForKey(64, key(0));
    const leader = await cluster.waitFor("the partition's leader", 20_000, async () => {
      const st = (await (await api(cluster, cluster.endpoints()[0]!, "GET", "/v1/status")).json()) as {
        partitions: { partition: number; leader: string | null }[];
      };
      return st.partitions.find((p) => p.partition === partition)?.leader ?? null;
    });
    const follower = [...cluster.nodes.keys()].find((id) => id !== leader)!;
    cluster.kill9(follower);
    await cluster.waitExit(follower);
    const base = cluster.nodes.get(leader)!.api;
    const value = "x".repeat(2000);
    for (let i = 0; i < 600; i++) {
      const res = await api(cluster, base, "PUT", `/v1/kv/${encodeURIComponent(key(i))}`, `${i}:${value}`);
      assert.equal(res.status, 200, await res.text());
    }
    cluster.restart(follower);
    const fbase = cluster.nodes.get(follower)!.api;
    // An eventual read the follower's own replica served (round-robin over the replicas picks it
    // every third time; `x-ringleader-served-by` says which one did) shows what its state holds.
    const ownRead = async (i: number): Promise<Response | null> => {
      for (let attempt = 0; attempt < 12; attempt++) {
        const res = await api(
          cluster,
          fbase,
          "GET",
          `/v1/kv/${encodeURIComponent(key(i))}?consistency=eventual`,
        );
        if (res.headers.get("x-ringleader-served-by") === follower) return res;
        await res.arrayBuffer();
      }
      return null;
    };
    await cluster.waitFor("the follower to hold every key", 60_000, async () => {
      const res = await ownRead(599).catch(() => null);
      return res?.status === 200 ? true : null;
    });
    for (const i of [0, 1, 299, 598]) {
      const res = await ownRead(i);
      assert.ok(res !== null, `the follower's own replica never served key ${i}`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), `${i}:${value}`);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const sent = /ringleader_snapshots_sent_total\{[^}]*\} (\d+)/.exec(metrics);
    assert.ok(
      sent && Number(sent[1]) >= 1,
      `the leader streamed at least one snapshot:\n${metrics
        .split("\n")
        .filter((l) => l.includes("snapshot"))
        .join("\n")}`,
    );
  });
});
