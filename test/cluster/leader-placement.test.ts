/**
 * Where partition leaders settle when the agents share one machine, as `cluster up`'s do by
 * default: every agent registers this kernel's boot id as its machine, and one agent, the lowest
 * id, leads all 64 partitions instead of each leading a third (they would split the leader work
 * over the same cores). When that agent dies, the next one takes every partition; when it is
 * back, it takes them back. (`cluster up --spread-leaders`, the test clusters' default, spreads
 * them evenly: `cli-ops.test.ts`.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { machineId } from "../../agent/src/node/machine.js";
import { LocalCluster } from "../support/local-cluster.js";

const PARTITIONS = 64;

describe("partition leaders of agents on one machine", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  before(async () => {
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50, spreadLeaders: false });
  });
  after(() => cluster?.stop());

  /** Waits until `id` leads every partition, by its own status, and the others lead none. */
  async function waitLeadsAll(id: string, among: string[], what: string): Promise<void> {
    await cluster.waitFor(what, 90_000, async () => {
      const counts = await Promise.all(among.map(async (n) => (await cluster.status(n))?.leaderOf ?? -1));
      return among.every((n, i) => counts[i] === (n === id ? PARTITIONS : 0));
    });
  }

  it("register the same machine, this kernel's boot id", async () => {
    const machines = await cluster.waitFor("every member record to name its machine", 30_000, async () => {
      const res = await fetch(`${cluster.nodes.get("n1")!.api}/v1/members`, {
        headers: { authorization: `Bearer ${cluster.token}` },
      });
      const { members } = (await res.json()) as { members: { id: string; machine?: string }[] };
      return members.length === 3 && members.every((m) => m.machine) ? members.map((m) => m.machine) : null;
    });
    assert.deepEqual(machines, [machineId(), machineId(), machineId()]);
  });

  it("a join that names a malformed machine is refused with a 400 that says why", async () => {
    const res = await fetch(`${cluster.nodes.get("n2")!.api}/v1/members`, {
      method: "POST",
      headers: { authorization: `Bearer ${cluster.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        id: "n9",
        peer: "127.0.0.1:1",
        api: "http://127.0.0.1:2",
        machine: "two words",
      }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.match(body.error.message, /machine must be 1-128 printable characters without spaces/);
  });

  it("settle on the lowest id: n1 leads all 64 partitions", async () => {
    await waitLeadsAll("n1", ["n1", "n2", "n3"], "n1 to lead every partition");
  });

  it("move to the next agent when it is killed, and come back when it returns", async () => {
    cluster.kill9("n1");
    await cluster.waitExit("n1");
    await waitLeadsAll("n2", ["n2", "n3"], "n2 to lead every partition while n1 is down");
    cluster.restart("n1");
    await waitLeadsAll("n1", ["n1", "n2", "n3"], "n1 to lead every partition again");
  });
});
