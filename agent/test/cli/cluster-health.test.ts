/**
 * The rolling upgrade's health gate (`ringleader health`): from the members' own status
 * documents it must find every way a partition can be short of a healthy quorum.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assessCluster, describeHealth, membersOf, type MemberStatus } from "../../src/cli/cluster-health.js";

const IDS = ["n1", "n2", "n3"];

function partition(
  p: number,
  role: string,
  leader: string,
  opts: { applied?: number; voters?: string[]; learners?: string[] } = {},
) {
  return {
    partition: p,
    role,
    leader,
    term: 2,
    commit: 100,
    applied: opts.applied ?? 100,
    voters: opts.voters ?? IDS,
    learners: opts.learners ?? [],
  };
}

/** A healthy 3-node cluster with 4 partitions, partition p led by IDS[p % 3]. */
function statuses(tweak: (id: string, parts: ReturnType<typeof partition>[]) => void = () => {}) {
  return IDS.map((id) => {
    const parts = [0, 1, 2, 3].map((p) =>
      partition(p, IDS[p % 3] === id ? "leader" : "follower", IDS[p % 3]!),
    );
    tweak(id, parts);
    return {
      id,
      cluster: "shelf",
      health: { ok: true },
      ring: { partitions: 4, replication: 3, nodes: IDS },
      partitions: parts,
    };
  });
}

function members(docs: unknown[], state: (id: string) => string = () => "up"): MemberStatus[] {
  return IDS.map((id, i) => ({ id, api: `http://${id}:7000`, state: state(id), status: docs[i] ?? null }));
}

describe("cluster health gate", () => {
  it("a healthy cluster passes", () => {
    const docs = statuses();
    const h = assessCluster(docs[0], members(docs), 10);
    assert.equal(h.healthy, true, h.problems.join("; "));
    assert.match(describeHealth(h), /cluster shelf is healthy: 3 of 3 members answer; 4 partitions/);
  });

  it("a member that does not answer fails it", () => {
    const docs: unknown[] = statuses();
    docs[2] = null;
    const h = assessCluster(docs[0], members(docs), 10);
    assert.equal(h.healthy, false);
    assert.ok(h.problems.some((p) => p.startsWith("n3 (http://n3:7000) does not answer")));
    assert.ok(h.problems.includes("partition 2 has no leader"), h.problems.join("; "));
  });

  it("a partition short of replicas, with a learner, or with a lagging voter fails it", () => {
    const docs = statuses((id, parts) => {
      if (id === "n1") parts[0] = partition(0, "leader", "n1", { voters: ["n1", "n2"], learners: ["n3"] });
      if (id === "n3") parts[1] = partition(1, "follower", "n2", { applied: 20 });
    });
    const h = assessCluster(docs[0], members(docs), 10);
    assert.ok(h.problems.includes("partition 0 has 2 of 3 replicas"));
    assert.ok(h.problems.includes("partition 0 is still catching up n3"));
    assert.ok(h.problems.includes("partition 1: n3 is 80 entries behind"));
  });

  it("a voter following someone else, a draining member and an unhealthy node fail it", () => {
    const docs = statuses((id, parts) => {
      if (id === "n2") parts[0] = partition(0, "follower", "n3");
    });
    (docs[1] as { health: unknown }).health = { ok: false, reason: "storage failed" };
    const h = assessCluster(
      docs[0],
      members(docs, (id) => (id === "n3" ? "draining" : "up")),
      10,
    );
    assert.ok(h.problems.includes("partition 0: n2 follows n3, not n1"));
    assert.ok(h.problems.some((p) => p.startsWith("n3 is draining")));
    assert.ok(h.problems.includes("n2 is unhealthy: storage failed"));
  });

  it("a joining member fails it: its replicas are still moving onto it", () => {
    const docs = statuses(() => {});
    const h = assessCluster(
      docs[0],
      members(docs, (id) => (id === "n3" ? "joining" : "up")),
      10,
    );
    assert.equal(h.healthy, false);
    assert.deepEqual(h.problems, ["n3 is joining (its replicas are still moving onto it)"]);
  });

  it("no ring means not formed; removed members are not counted", () => {
    const h = assessCluster({ members: [] }, [], 10);
    assert.equal(h.healthy, false);
    assert.match(h.problems[0]!, /ring is not known/);
    const listed = membersOf({
      members: [
        { id: "n1", api: "http://a", state: "up" },
        { id: "n9", api: "http://b", state: "removed" },
      ],
    });
    assert.deepEqual(
      listed.map((m) => m.id),
      ["n1"],
    );
  });
});
