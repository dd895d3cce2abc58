/**
 * A dead board is replaced: once the meta leader has not heard from it for the replace-after
 * time, its tokens leave the ring and every partition rebuilds its third replica on the others.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";

interface Status {
  leader: string | null;
  members: { id: string; state: string }[];
  partitions: { partition: number; role: string; voters: string[]; learners: string[] }[];
}

async function status(c: LocalCluster, id: string): Promise<Status | null> {
  try {
    const res = await fetch(`${c.nodes.get(id)!.api}/v1/status`, {
      headers: { authorization: `Bearer ${c.token}` },
      signal: AbortSignal.timeout(5000),
    });
    return res.ok ? ((await res.json()) as Status) : null;
  } catch {
    return null;
  }
}

describe("replacing a dead board", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 100, replaceAfterSec: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("rebuilds every replica of a board killed for good on the remaining boards", async () => {
    await cluster.join("n4", "n1");
    const all = ["n1", "n2", "n3", "n4"];
    const settled = async (live: string[]) => {
      const leaders = new Map<number, Status["partitions"][number]>();
      for (const id of live)
        for (const p of (await status(cluster, id))?.partitions ?? [])
          if (p.role === "leader") leaders.set(p.partition, p);
      if (leaders.size !== 64) return null;
      for (const p of leaders.values())
        if (p.voters.length !== 3 || p.learners.length > 0 || p.voters.some((v) => !live.includes(v)))
          return null;
      return leaders;
    };
    const spread = await cluster.waitFor("n4 to take its share", 120_000, async () => {
      const l = await settled(all);
      return l && [...l.values()].some((p) => p.voters.includes("n4")) ? l : null;
    });
    const metaLeader = (await status(cluster, "n1"))!.leader!;
    const victim = all.find((id) => id !== metaLeader && id !== "n4")!;
    const held = [...spread.values()].filter((p) => p.voters.includes(victim)).length;
    assert.ok(held > 0, `${victim} held replicas before it died`);
    cluster.kill9(victim);
    const live = all.filter((id) => id !== victim);
    await cluster.waitFor(`${victim}'s replicas to be rebuilt`, 180_000, () => settled(live));
    const st = (await status(cluster, live[0]!))!;
    assert.equal(st.members.find((m) => m.id === victim)?.state, "down");
  });
});
