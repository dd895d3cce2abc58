import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ABSENT_VERSION, RaftHost, UnavailableError, type HostObserver } from "../../src/node/host.js";
import { MemoryDurableStore } from "../../src/node/memory-store.js";
import type { Message } from "../../src/raft/index.js";
import type { GroupUpdate } from "../../src/node/ports.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** Three hosts wired by an in-process network that delivers on the next turn. */
function cluster(
  ids = ["a", "b", "c"],
  extra: {
    snapshotEntries?: number;
    snapshotChunkBytes?: number;
    heartbeatTicks?: number;
    observer?: HostObserver;
    /** Sees every message sent, before the network delivers or drops it. */
    tap?: (m: Message) => void;
    /** Messages for which this returns true are lost. */
    drop?: (m: Message) => boolean;
    /** Makes each node's store (default: a `MemoryDurableStore`). */
    store?: () => MemoryDurableStore;
  } = {},
) {
  const hosts = new Map<string, RaftHost>();
  const stores = new Map<string, MemoryDurableStore>();
  let cut = new Set<string>();
  let seed = 1;
  for (const id of ids) {
    const store = extra.store?.() ?? new MemoryDurableStore();
    void store.bootstrap(1, ids);
    stores.set(id, store);
    const s = seed++;
    let x = s * 7919;
    const { tap, drop, store: _store, ...options } = extra;
    const host = new RaftHost({
      nodeId: id,
      store,
      random: () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648,
      logger: quiet,
      ...options,
      send: (msgs: readonly Message[]) => {
        for (const m of msgs) {
          tap?.(m);
          if (cut.has(m.from) || cut.has(m.to) || drop?.(m)) continue;
          setImmediate(() => hosts.get(m.to)?.receive([m]));
        }
      },
    });
    hosts.set(id, host);
  }
  for (const h of hosts.values()) h.addGroup(1);
  return {
    hosts,
    stores,
    isolate: (id: string) => (cut = new Set([id])),
    heal: () => (cut = new Set()),
  };
}

async function until(cond: () => boolean, what: string, ticks: () => void, max = 2000): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    ticks();
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("RaftHost: the ready loop over a durable store", () => {
  it("elects a leader, commits a write, and answers the writer with its version", async () => {
    const c = cluster();
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const leader = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    const res = await leader[1].propose(1, { op: "put", key: "k", value: new Uint8Array([1, 2]), cas: null });
    assert.equal(res.ok, true);
    // Every replica applies it.
    await until(() => [...c.stores.values()].every((s) => s.get(1, "k") !== null), "replication", tickAll);
    for (const s of c.stores.values()) assert.deepEqual([...s.get(1, "k")!.value], [1, 2]);
  });

  it("a follower forwards a write and answers when it applies it; cas decides the same everywhere", async () => {
    const c = cluster();
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const follower = [...c.hosts.values()].find((h) => h.status(1).role === "follower")!;
    await until(() => follower.status(1).leader !== "", "follower to learn the leader", tickAll);
    const r1 = await follower.propose(1, {
      op: "put",
      key: "x",
      value: new Uint8Array([7]),
      cas: ABSENT_VERSION,
    });
    assert.equal(r1.ok, true);
    const r2 = await follower.propose(1, {
      op: "put",
      key: "x",
      value: new Uint8Array([8]),
      cas: ABSENT_VERSION,
    });
    assert.deepEqual(r2.ok, false);
  });

  it("a write forwarded during a leadership hand-over comes back refused and is proposed again", async () => {
    let refused = 0;
    const c = cluster(["a", "b", "c"], {
      observer: { onProposal: (_g, outcome) => void (outcome === "refused" && refused++) },
    });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    const [target, other] = [...c.hosts.keys()].filter((id) => id !== leaderId) as [string, string];
    const follower = c.hosts.get(other)!;
    await until(() => follower.status(1).leader === leaderId, "the follower to learn the leader", tickAll);
    // The target never hears the hand-over; without ticks the transfer does not time out.
    c.isolate(target);
    leader.transferLeadership(1, target);
    const last = leader.status(1).lastIndex;
    let outcome: unknown = "pending";
    void follower.propose(1, { op: "put", key: "w", value: new Uint8Array([1]), cas: null }).then(
      (r) => (outcome = r),
      (err: unknown) => (outcome = err),
    );
    // Without a refusal the forward would vanish and the writer would wait for its timeout.
    await until(
      () => refused > 0,
      "the leader to refuse the forwarded write",
      () => {},
    );
    assert.equal(leader.status(1).lastIndex, last, "the refused write was not appended");
    assert.equal(outcome, "pending", "the writer is still waiting, for the next attempt");
    // Once the transfer is abandoned (an election timeout of ticks) the same write is taken.
    await until(() => outcome !== "pending", "the write to be decided", tickAll);
    assert.equal((outcome as { ok?: unknown }).ok, true, String(outcome));
    for (const id of [leaderId, other]) assert.deepEqual([...c.stores.get(id)!.get(1, "w")!.value], [1]);
  });

  it("hands leadership over to a voter the caller does not avoid (a board that stepped down)", async () => {
    // Run twice, avoiding each follower in turn: the other one must take over each time.
    for (const avoided of [0, 1]) {
      const c = cluster();
      const tickAll = () => c.hosts.forEach((h) => h.tick());
      await until(
        () => [...c.hosts.values()].some((h) => h.status(1).role === "leader"),
        "a leader",
        tickAll,
      );
      const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
      const followers = [...c.hosts.keys()].filter((id) => id !== leaderId);
      const avoid = followers[avoided]!;
      const expected = followers[1 - avoided]!;
      await until(
        () => leader.status(1).progress.get(avoid)?.match === leader.status(1).lastIndex,
        "catch-up",
        tickAll,
      );
      assert.deepEqual(
        leader.transferAllLeadership((id) => id === avoid),
        [1],
      );
      await until(() => c.hosts.get(expected)!.status(1).role === "leader", `${expected} to lead`, tickAll);
    }
  });

  it("a node that stepped down declines a hand-over, counted; the leader gives it up and leads on", async () => {
    const declined: number[] = [];
    const c = cluster(["a", "b", "c"], { observer: { onDeclinedHandOver: (g) => declined.push(g) } });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    const targetId = [...c.hosts.keys()].find((id) => id !== leaderId)!;
    const target = c.hosts.get(targetId)!;
    await until(
      () => leader.status(1).progress.get(targetId)?.match === leader.status(1).lastIndex,
      "catch-up",
      tickAll,
    );
    target.declineLeadership(Date.now() + 60_000);
    const term = leader.status(1).term;
    leader.transferLeadership(1, targetId);
    await until(() => declined.length > 0, "the hand-over to arrive", tickAll);
    assert.deepEqual(declined, [1]);
    // The transfer is abandoned after an election timeout; the leader takes writes again, same term.
    assert.equal(leader.status(1).leadTransferee, targetId);
    await until(() => leader.status(1).leadTransferee === "", "the transfer to be abandoned", tickAll);
    const res = await leader.propose(1, { op: "put", key: "after", value: new Uint8Array([1]), cas: null });
    assert.equal(res.ok, true);
    assert.equal(leader.status(1).role, "leader");
    assert.equal(leader.status(1).term, term, "no election happened");
    assert.equal(target.status(1).role, "follower");
    // Once it no longer declines, the same hand-over goes through.
    target.declineLeadership(0);
    leader.transferLeadership(1, targetId);
    await until(() => target.status(1).role === "leader", `${targetId} to lead`, tickAll);
    assert.equal(declined.length, 1);
  });

  it("a strong read whose request was lost is asked again after half an election timeout", async () => {
    let asked = 0;
    let lose = false;
    const c = cluster(["a", "b", "c"], {
      tap: (m) => void (m.type === "readIndex" && asked++),
      drop: (m) => lose && m.type === "readIndex",
    });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const leaderId = [...c.hosts.values()].find((h) => h.status(1).role === "leader")!.status(1).leader;
    const follower = [...c.hosts.values()].find((h) => h.status(1).role === "follower")!;
    await until(() => follower.status(1).leader === leaderId, "the follower to learn the leader", tickAll);
    lose = true;
    let done = false;
    const read = follower.readBarrier(1, "strong").then(() => (done = true));
    await until(
      () => asked === 1,
      "the read index request",
      () => {},
    );
    lose = false;
    // Four ticks (under half of the default ten-tick election timeout): not asked again yet.
    for (let i = 0; i < 4; i++) {
      follower.tick();
      for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
    }
    assert.equal(asked, 1);
    assert.equal(done, false, "a lost request is not answered");
    await until(() => done, "the read to be answered", tickAll, 20);
    await read;
    assert.equal(asked, 2, "asked once more");
  });

  it("a read the old leader dropped during a hand-over is asked of the new leader at once", async () => {
    let lose = false;
    const c = cluster(["a", "b", "c"], { drop: (m) => lose && m.type === "readIndex" });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    const [readerId, targetId] = [...c.hosts.keys()].filter((id) => id !== leaderId) as [string, string];
    const reader = c.hosts.get(readerId)!;
    await until(() => reader.status(1).leader === leaderId, "the reader to learn the leader", tickAll);
    lose = true; // The old leader never sees the request (as when it arrives just after it stepped down).
    let done = false;
    const read = reader.readBarrier(1, "strong").then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    lose = false;
    leader.transferLeadership(1, targetId);
    // No ticks: the hand-over, the new leader's first entry and the read need only messages.
    await until(
      () => done,
      "the read to be answered by the new leader",
      () => {},
    );
    await read;
    assert.equal(reader.status(1).leader, targetId);
  });

  it("a strong read on an isolated node does not complete, and gives up when aborted", async () => {
    const c = cluster();
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [id, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    c.isolate(id);
    const ac = new AbortController();
    const read = leader.readBarrier(1, "strong", ac.signal);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    ac.abort();
    await assert.rejects(read, UnavailableError);
  });
});

/** A store whose saves, once `hold` is set, wait until the test releases them one by one. */
class GatedStore extends MemoryDurableStore {
  hold = false;
  readonly held: (() => void)[] = [];
  override async saveBatch(updates: Parameters<MemoryDurableStore["saveBatch"]>[0]): Promise<void> {
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    return super.saveBatch(updates);
  }
}

/** Records every group update the host saves. */
class RecordingStore extends MemoryDurableStore {
  readonly saved: GroupUpdate[] = [];
  override async saveBatch(updates: readonly GroupUpdate[]): Promise<void> {
    this.saved.push(...updates);
    return super.saveBatch(updates);
  }
}

describe("RaftHost: the hard state on disk", () => {
  it("is written when its term or vote changes, not for a commit index alone; a restart commits through the applied index", async () => {
    const c = cluster(["a", "b", "c"], { store: () => new RecordingStore() });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    for (let i = 0; i < 5; i++) {
      await leader.propose(1, { op: "put", key: `k${i}`, value: new Uint8Array([i]), cas: null });
    }
    await until(() => [...c.stores.values()].every((s) => s.get(1, "k4") !== null), "replication", tickAll);
    for (const [id, store] of c.stores) {
      const saved = (store as RecordingStore).saved;
      let last = { term: 0, vote: "" };
      for (const u of saved) {
        if (!u.hardState) continue;
        const { term, vote } = u.hardState;
        assert.ok(
          term !== last.term || vote !== last.vote,
          `${id} wrote term ${term} and vote '${vote}' again`,
        );
        last = { term, vote };
      }
      assert.ok(
        saved.some((u) => u.entries.length > 0 && u.hardState === null),
        `${id} appended entries without writing the hard state`,
      );
    }
    // The leader's store, opened by a new host: its commit index is not the (older) one on disk.
    const store = c.stores.get(leaderId)!;
    assert.ok(store.storage(1).initialState().hardState.commit < store.appliedIndex(1));
    const restarted = new RaftHost({
      nodeId: leaderId,
      store,
      logger: quiet,
      random: () => 0.5,
      send: () => {},
    });
    restarted.addGroup(1);
    assert.equal(restarted.status(1).commit, store.appliedIndex(1));
  });
});

describe("RaftHost: when a writer hears", () => {
  it("answers a committed write while the next turn's fsync (of other entries) is under way, not before its own", async () => {
    const c = cluster(["a", "b", "c"], { store: () => new GatedStore() });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    const noTicks = () => {};
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    await until(() => leader.status(1).commit === leader.status(1).lastIndex, "the leader's entry", noTicks);
    const store = c.stores.get(leaderId) as GatedStore;
    store.hold = true;
    const answered: string[] = [];
    const write = (key: string) =>
      void leader.propose(1, { op: "put", key, value: new Uint8Array([1]), cas: null }).then(
        () => answered.push(key),
        (err: unknown) => answered.push(`${key}: ${String(err)}`),
      );

    // A's turn: its fsync is held, but the appends left early and the followers acknowledge.
    write("A");
    await until(() => store.held.length === 1, "A's save", noTicks);
    const indexA = leader.status(1).lastIndex;
    await until(() => leader.status(1).commit >= indexA, "A to commit on the followers' disks", noTicks);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(answered, [], "A is answered before the leader's own fsync of it");

    // B arrives meanwhile; the next turn holds A's commit and B's entry, and B's fsync is held.
    write("B");
    store.held.shift()!();
    await until(() => store.held.length === 1, "B's save", noTicks);
    await until(() => answered.length > 0, "A's answer while B's fsync is under way", noTicks, 50);
    assert.deepEqual(answered, ["A"]);

    store.hold = false;
    store.held.shift()!();
    await until(() => answered.length === 2, "B's answer", tickAll);
    assert.deepEqual(answered, ["A", "B"]);
  });
});

describe("RaftHost: heartbeats", () => {
  it("every group a node leads heartbeats on the same ticks, one it starts hosting later too", async () => {
    // A heartbeat carries its sender's tick count (the lease stamp), so it tells on which of the
    // host's ticks it left.
    const sentAt = new Map<number, Set<number>>();
    const c = cluster(["a", "b", "c"], {
      heartbeatTicks: 2,
      tap: (m) => {
        if (m.type !== "heartbeat" || m.from !== "a") return;
        if (!sentAt.has(m.group)) sentAt.set(m.group, new Set());
        sentAt.get(m.group)!.add(m.index);
      },
    });
    const a = c.hosts.get("a")!;
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    a.campaign(1);
    await until(() => a.status(1).role === "leader", "a to lead group 1", tickAll);
    // An odd number of ticks later, every node starts hosting group 2 and a leads it too.
    for (const h of c.hosts.values()) h.tick();
    for (const [id, h] of c.hosts) {
      await c.stores.get(id)!.bootstrap(2, ["a", "b", "c"]);
      h.addGroup(2);
    }
    a.campaign(2);
    await until(() => a.status(2).role === "leader", "a to lead group 2", tickAll);
    sentAt.clear();
    let ticks = 0;
    await until(() => ++ticks > 20, "20 ticks", tickAll);
    const one = [...(sentAt.get(1) ?? [])].sort((x, y) => x - y);
    const two = [...(sentAt.get(2) ?? [])].sort((x, y) => x - y);
    assert.ok(one.length >= 8, `group 1 heartbeats on ticks ${one.join(", ")}`);
    assert.ok(
      one.every((t) => t % 2 === 0),
      `every second tick of the host: ${one.join(", ")}`,
    );
    assert.deepEqual(two, one, "group 2 heartbeats on the same ticks as group 1");
  });
});

describe("RaftHost: snapshots", () => {
  it("compacts its log and streams a snapshot to a follower that fell behind the compaction", async () => {
    const c = cluster(["a", "b", "c"], { snapshotEntries: 20 });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const [leaderId, leader] = [...c.hosts.entries()].find(([, h]) => h.status(1).role === "leader")!;
    const laggard = ["a", "b", "c"].find((id) => id !== leaderId)!;
    c.isolate(laggard);
    for (let i = 0; i < 100; i++) {
      const res = await leader.propose(1, { op: "put", key: `k${i}`, value: new Uint8Array([i]), cas: null });
      assert.equal(res.ok, true);
    }
    // The leader compacted below what the laggard has.
    await until(() => c.stores.get(leaderId)!.storage(1).firstIndex() > 50, "compaction", tickAll);
    c.heal();
    const lagStore = c.stores.get(laggard)!;
    await until(() => lagStore.get(1, "k99") !== null, "the laggard to catch up", tickAll, 5000);
    assert.ok(c.hosts.get(laggard)!.snapshots.receiver.received >= 1, "caught up through a snapshot");
    await until(
      () => leader.snapshots.sender.sent >= 1,
      "the sender to see the last acknowledgement",
      tickAll,
    );
    for (let i = 0; i < 100; i++) assert.deepEqual([...lagStore.get(1, `k${i}`)!.value], [i]);
  });

  it("takes no snapshots when the store bounds its log itself", async () => {
    let snapshots = 0;
    class SelfCompactingStore extends MemoryDurableStore {
      readonly compactsOwnLog = true;
      override createSnapshot(...args: Parameters<MemoryDurableStore["createSnapshot"]>): Promise<void> {
        snapshots++;
        return super.createSnapshot(...args);
      }
    }
    const c = cluster(["a", "b", "c"], { snapshotEntries: 20, store: () => new SelfCompactingStore() });
    const tickAll = () => c.hosts.forEach((h) => h.tick());
    await until(() => [...c.hosts.values()].some((h) => h.status(1).role === "leader"), "a leader", tickAll);
    const leader = [...c.hosts.values()].find((h) => h.status(1).role === "leader")!;
    for (let i = 0; i < 60; i++) {
      const res = await leader.propose(1, { op: "put", key: `k${i}`, value: new Uint8Array([i]), cas: null });
      assert.equal(res.ok, true);
    }
    await until(
      () => [...c.stores.values()].every((s) => s.get(1, "k59") !== null),
      "every node to apply",
      tickAll,
    );
    assert.equal(snapshots, 0);
    for (const s of c.stores.values()) assert.equal(s.storage(1).firstIndex(), 1);
  });
});
