/**
 * Log compaction and snapshot streaming between real processes: a follower that was down while
 * the others compacted their logs comes back and catches up from a chunked LMDB snapshot.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";

async function api(
  c: LocalCluster,
  base: string,
  method: string,
  path: string,
  body?: string,
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${c.token}` },
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(5000),
  });
}

describe("snapshots between real agents", { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50, snapshotEntries: 100 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("a follower restarted after the others compacted catches up from a streamed snapshot", async () => {
    const leader = await cluster.waitFor("a leader", 20_000, () => cluster.leader());
    const follower = [...cluster.nodes.keys()].find((id) => id !== leader)!;
    cluster.kill9(follower);
    await cluster.waitExit(follower);
    const base = cluster.nodes.get(leader)!.api;
    const value = "x".repeat(2000);
    for (let i = 0; i < 600; i++) {
      const res = await api(
        cluster,
        base,
        "PUT",
        `/v1/kv/snap/${String(i).padStart(4, "0")}`,
        `${i}:${value}`,
      );
      assert.equal(res.status, 200, await res.text());
    }
    cluster.restart(follower);
    const fbase = cluster.nodes.get(follower)!.api;
    // Eventual reads are served from the follower's own state: all keys there means it caught up.
    await cluster.waitFor("the follower to hold every key", 60_000, async () => {
      const res = await api(cluster, fbase, "GET", "/v1/kv/snap/0599?consistency=eventual").catch(() => null);
      return res?.status === 200 ? true : null;
    });
    for (const i of [0, 1, 299, 598]) {
      const res = await api(
        cluster,
        fbase,
        "GET",
        `/v1/kv/snap/${String(i).padStart(4, "0")}?consistency=eventual`,
      );
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
