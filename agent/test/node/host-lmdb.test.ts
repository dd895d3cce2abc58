/**
 * The ready loop over the real LMDB store: applies ride on the next save's commit (lazy), and a
 * reader that needs the applied state does not wait for that.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RaftHost, type HostLogger } from "../../src/node/host.js";
import { LmdbDurableStore } from "../../src/node/lmdb-adapter.js";
import type { Message } from "../../src/raft/index.js";
import { NodeStore } from "../../src/storage/index.js";
import { removeDir, tempDir } from "../storage/lmdb-subject.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

async function until(cond: () => boolean, what: string, ticks: () => void, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    ticks();
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Three hosts over real LMDB stores, wired in-process, with applies held back for a minute. */
async function lmdbCluster(extra: { eagerApplyGroups?: number[]; logger?: HostLogger } = {}) {
  const ids = ["a", "b", "c"];
  const dirs: string[] = [];
  const nodes: NodeStore[] = [];
  const hosts = new Map<string, RaftHost>();
  let closed = false;
  const close = async (): Promise<void> => {
    closed = true; // Messages still on their way must not reach a host whose store is closed.
    for (const h of hosts.values()) h.stop();
    for (const n of nodes) await n.close();
    for (const d of dirs) await removeDir(d);
  };
  try {
    for (const id of ids) {
      const dir = await tempDir();
      dirs.push(dir);
      // A minute: anything that waited for the delay would time out first.
      const node = await NodeStore.open({ path: dir, newNodeId: () => id, applyDelayMs: 60_000 });
      nodes.push(node);
      const store = new LmdbDurableStore(node);
      await store.bootstrap(1, ids);
      const host = new RaftHost({
        nodeId: id,
        store,
        random: Math.random,
        logger: quiet,
        ...extra,
        send: (msgs: readonly Message[]) => {
          for (const m of msgs) setImmediate(() => closed || hosts.get(m.to)?.receive([m]));
        },
      });
      hosts.set(id, host);
      host.addGroup(1);
    }
    const tickAll = (): void => hosts.forEach((h) => h.tick());
    await until(() => [...hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
  } catch (err) {
    await close();
    throw err;
  }
  const leaderId = [...hosts.keys()].find((id) => hosts.get(id)!.status(1).role === "leader")!;
  const leader = hosts.get(leaderId)!;
  const put = (key: string, v: number) =>
    leader.propose(1, { op: "put", key, value: new Uint8Array([v]), cas: null }, AbortSignal.timeout(10_000));
  return { leader, node: nodes[ids.indexOf(leaderId)]!, put, close };
}

describe("RaftHost over LMDB: lazy applies", () => {
  it("a strong read does not wait for a held-back apply, which the next write carries", async () => {
    const c = await lmdbCluster();
    try {
      const { leader, node, put } = c;
      assert.equal((await put("k", 1)).ok, true);
      await leader.readBarrier(1, "strong", AbortSignal.timeout(10_000));
      assert.deepEqual([...node.kvGet(1, "k")!.value], [1], "the read saw the write");

      // With no reader waiting, an apply is held back (for the whole delay here) and commits
      // with the next save.
      assert.equal((await put("k2", 2)).ok, true);
      const applied = leader.status(1).applied;
      assert.equal((await put("k3", 3)).ok, true);
      await until(
        () => leader.status(1).applied > applied,
        "the held-back apply",
        () => {},
      );
      assert.ok(node.kvGet(1, "k2"), "k2 applied by the time k3 was saved");
    } finally {
      await c.close();
    }
  });

  it("a group named in eagerApplyGroups is applied without waiting for another write", async () => {
    const c = await lmdbCluster({ eagerApplyGroups: [1] });
    try {
      assert.equal((await c.put("k", 1)).ok, true);
      await until(
        () => c.node.kvGet(1, "k") !== undefined,
        "the apply",
        () => {},
        10_000,
      );
    } finally {
      await c.close();
    }
  });
});

describe("RaftHost over LMDB: stopping", () => {
  it("starts no store work once stopped, so the store closes without a storage failure", async () => {
    const errors: string[] = [];
    const logger = {
      ...quiet,
      error: (msg: string, f?: object) => errors.push(`${msg} ${JSON.stringify(f)}`),
    };
    const c = await lmdbCluster({ logger });
    try {
      // The write schedules a turn of the ready loop; the agent stops the host, then closes the
      // store, before that turn runs.
      const outcome = c.put("k", 1).then(
        () => "written",
        (err: Error) => err.message,
      );
      await c.leader.stop();
      await c.node.close();
      assert.match(await outcome, /shutting down/, "the writer is answered, not left waiting");
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(errors, [], "nothing reached the closed store");
      assert.equal(c.leader.fatal, null);
    } finally {
      await c.close();
    }
  });
});
