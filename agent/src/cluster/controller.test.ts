/**
 * The controller's release rule and the joining → up step, over a scripted host and meta store:
 * a replica that may still vote is never released on silence alone, however long, and is
 * released once a leader confirms the removal; a joining member becomes `up` only once the
 * leaders confirm it votes in every partition the ring gives it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KvCommandInput, KvResult } from "../kv/commands.js";
import type { KvRecord } from "../node/ports.js";
import type { ConfChange, ConfState, GroupId, NodeId, ProgressStatus, RaftStatus } from "../raft/index.js";
import { ClusterController, type ControllerHost, type LeaderQuestions } from "./controller.js";
import {
  MEMBER_PREFIX,
  META_GROUP,
  MetaView,
  RING_KEY,
  foundingRing,
  partitionGroup,
  preferredLeader,
  type MemberRecord,
  type MemberState,
} from "./meta.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const SELF = "n4";
const RELEASE_AFTER_MS = 10_000;

/** The meta group's key-value table, as a node's replica holds it. */
class MetaTable {
  private readonly records = new Map<string, KvRecord>();
  private version = 0;
  put(key: string, value: unknown): void {
    this.records.set(key, { value: enc.encode(JSON.stringify(value)), version: String(++this.version) });
  }
  store() {
    return {
      hasGroup: (g: GroupId) => g === META_GROUP,
      appliedIndex: () => this.version,
      get: (_g: GroupId, key: string) => this.records.get(key) ?? null,
      scan: (_g: GroupId, o: { prefix: string; limit: number }) =>
        [...this.records]
          .filter(([k]) => k.startsWith(o.prefix))
          .slice(0, o.limit)
          .map(([key, record]) => ({ key, record })),
    };
  }
  member(id: NodeId): MemberRecord {
    return JSON.parse(dec.decode(this.records.get(MEMBER_PREFIX + id)!.value)) as MemberRecord;
  }
}

interface GroupState {
  role: RaftStatus["role"];
  conf: ConfState;
  committed: ConfState;
  /** When a leader last reached this replica (ms). */
  contactAt: number;
  /** What a leader here knows of its followers. */
  progress?: RaftStatus["progress"];
}

/** A host whose replicas' Raft state each test scripts. */
class ScriptedHost implements ControllerHost {
  readonly groupState = new Map<GroupId, GroupState>();
  readonly released: GroupId[] = [];
  readonly metaWrites: { key: string; value: unknown }[] = [];
  metaRole: RaftStatus["role"] = "follower";

  constructor(
    private readonly clock: { now: number },
    private readonly table: MetaTable,
  ) {}

  status(group: GroupId): RaftStatus {
    const s = group === META_GROUP ? undefined : this.groupState.get(group);
    if (group !== META_GROUP && !s) throw new Error(`group ${group} is not hosted`);
    const role = s?.role ?? this.metaRole;
    return {
      id: SELF,
      group,
      term: 1,
      vote: "",
      commit: 10,
      applied: 10,
      firstIndex: 1,
      lastIndex: 10,
      role,
      leader: role === "leader" ? SELF : group === META_GROUP ? "" : "n1",
      confState: s?.conf ?? { voters: ["n1", "n2", "n3", SELF], learners: [] },
      leadTransferee: "",
      progress: s?.progress ?? new Map(),
    };
  }
  groups(): GroupId[] {
    return [...this.groupState.keys()];
  }
  hosts(group: GroupId): boolean {
    return this.groupState.has(group);
  }
  addGroup(group: GroupId): void {
    const conf = { voters: [], learners: [] };
    this.groupState.set(group, { role: "follower", conf, committed: conf, contactAt: this.clock.now });
  }
  removeGroup(group: GroupId): void {
    this.groupState.delete(group);
    this.released.push(group);
  }
  sinceLeaderContactMs(group: GroupId): number {
    return this.clock.now - this.groupState.get(group)!.contactAt;
  }
  committedConfState(group: GroupId): ConfState {
    return this.groupState.get(group)!.committed;
  }
  proposeConfChange(_group: GroupId, _cc: ConfChange): void {}
  readonly transfers: { group: GroupId; to: NodeId }[] = [];
  transferLeadership(group: GroupId, to: NodeId): void {
    this.transfers.push({ group, to });
  }
  propose(_group: GroupId, cmd: KvCommandInput): Promise<KvResult> {
    assert.equal(cmd.op, "put");
    const value = JSON.parse(dec.decode(cmd.value)) as unknown;
    this.metaWrites.push({ key: cmd.key, value });
    this.table.put(cmd.key, value);
    return Promise.resolve({ ok: true, version: "1" });
  }
}

/** Leaders that answer as a test says, counting the questions. */
class ScriptedLeaders implements LeaderQuestions {
  excludesAnswer = false;
  holdsAnswer = false;
  excludesAsked = 0;
  holdsAsked: { node: NodeId; partitions: readonly number[] }[] = [];
  excludes(): Promise<boolean> {
    this.excludesAsked++;
    return Promise.resolve(this.excludesAnswer);
  }
  holdsAsVoter(node: NodeId, partitions: readonly number[]): Promise<boolean> {
    this.holdsAsked.push({ node, partitions });
    return Promise.resolve(this.holdsAnswer);
  }
}

function memberRecord(id: NodeId, state: MemberState): MemberRecord {
  return { id, peer: `${id}:7100`, api: `http://${id}:7000`, weight: 1, state, since: 0 };
}

/** A `MetaView` over `table` that counts the store reads it makes. */
function countingView(table: MetaTable): { meta: MetaView; reads: { get: number; scan: number } } {
  const store = table.store();
  const reads = { get: 0, scan: 0 };
  const meta = new MetaView({
    ...store,
    get: (g, key) => {
      reads.get++;
      return store.get(g, key);
    },
    scan: (g, o) => {
      reads.scan++;
      return store.scan(g, o);
    },
  });
  return { meta, reads };
}

function setup(states: Record<NodeId, MemberState> = { n1: "up", n2: "up", n3: "up", n4: "up" }) {
  const clock = { now: 1_000_000 };
  const table = new MetaTable();
  const ring = foundingRing(["n1", "n2", "n3", "n4"], { partitions: 8, replicationFactor: 3 });
  table.put(RING_KEY, ring);
  for (const [id, state] of Object.entries(states)) table.put(MEMBER_PREFIX + id, memberRecord(id, state));
  const meta = new MetaView(table.store());
  const host = new ScriptedHost(clock, table);
  const leaders = new ScriptedLeaders();
  const deleted: GroupId[] = [];
  const controller = new ClusterController({
    nodeId: SELF,
    host,
    meta,
    self: () => ({ id: SELF, peer: `${SELF}:7100`, api: `http://${SELF}:7000`, weight: 1 }),
    logger: { info: () => {}, warn: () => {} },
    foundingRing: null,
    releaseAfterMs: RELEASE_AFTER_MS,
    askEveryMs: 5000,
    now: () => clock.now,
    leaders,
    purge: {
      deleteGroup: (g) => {
        deleted.push(g);
        return Promise.resolve();
      },
      canHost: () => true,
    },
  });
  // The replicas the ring gives n4, hosted and in touch with their leaders.
  for (let p = 0; p < ring.partitions; p++)
    if (meta.replicas(p).includes(SELF)) host.addGroup(partitionGroup(p));
  const away = [...Array(ring.partitions).keys()].find((p) => !meta.replicas(p).includes(SELF))!;
  assert.ok(away !== undefined, "some partition is not placed on n4");
  return { clock, table, meta, host, leaders, controller, deleted, awayGroup: partitionGroup(away), away };
}

/** Runs controller rounds every 500 ms of the scripted clock for `ms`, letting answers arrive. */
async function runFor(s: ReturnType<typeof setup>, ms: number): Promise<void> {
  const end = s.clock.now + ms;
  while (s.clock.now < end) {
    s.clock.now += 500;
    await s.controller.round();
    await new Promise((r) => setImmediate(r));
  }
}

/** n4 still hosts a replica of a partition the ring moved away, and no leader has talked to it since. */
function strandedReplica(s: ReturnType<typeof setup>, conf: ConfState, committed: ConfState = conf): void {
  s.host.groupState.set(s.awayGroup, { role: "follower", conf, committed, contactAt: s.clock.now });
}

const WITH_ME: ConfState = { voters: ["n1", "n2", SELF], learners: [] };
const WITHOUT_ME: ConfState = { voters: ["n1", "n2", "n3"], learners: [] };

describe("releasing a replica the ring moved away", () => {
  it("keeps a voter cut off from every leader for longer than the old 100 s limit, and reports it", async () => {
    const s = setup();
    strandedReplica(s, WITH_ME);
    await runFor(s, 200_000);
    assert.deepEqual(s.host.released, [], "a voter with no confirmation must not be released");
    assert.ok(s.host.hosts(s.awayGroup));
    // Asked every 5 s once silent for 10 s, never more often.
    assert.ok(
      s.leaders.excludesAsked >= 30 && s.leaders.excludesAsked <= 39,
      `${s.leaders.excludesAsked} asks`,
    );
    const held = s.controller.heldReplicas();
    assert.equal(held.length, 1);
    assert.equal(held[0]!.partition, s.away);
    assert.ok(held[0]!.waitingMs >= 189_000, `held for ${held[0]!.waitingMs} ms`);
  });

  it("releases a voter, and deletes its data, once a leader confirms its removal", async () => {
    const s = setup();
    strandedReplica(s, WITH_ME);
    await runFor(s, 30_000);
    assert.deepEqual(s.host.released, []);
    s.leaders.excludesAnswer = true;
    await runFor(s, 6_000);
    assert.deepEqual(s.host.released, [s.awayGroup]);
    assert.deepEqual(s.deleted, [s.awayGroup]);
    assert.deepEqual(s.controller.heldReplicas(), []);
  });

  it("does not trust its own log's removal until that removal is committed", async () => {
    const s = setup();
    // The removal of n4 is appended here but not committed: it may still be undone.
    strandedReplica(s, WITHOUT_ME, WITH_ME);
    await runFor(s, 60_000);
    assert.deepEqual(s.host.released, []);
    assert.equal(s.controller.heldReplicas().length, 1);
  });

  it("does not release a voter its leader still talks to, even when asked about it", async () => {
    const s = setup();
    strandedReplica(s, WITH_ME);
    s.leaders.excludesAnswer = true;
    for (let i = 0; i < 60; i++) {
      s.host.groupState.get(s.awayGroup)!.contactAt = s.clock.now;
      await runFor(s, 1000);
    }
    assert.deepEqual(s.host.released, []);
    assert.equal(s.leaders.excludesAsked, 0, "nobody is asked while the leader is in touch");
  });

  it("forgets a confirmation once a leader talks to it again", async () => {
    const s = setup();
    strandedReplica(s, WITH_ME);
    s.leaders.excludesAnswer = true;
    // Silent past the limit at the last of these rounds: asked, and confirmed out...
    await runFor(s, RELEASE_AFTER_MS + 500);
    assert.equal(s.leaders.excludesAsked, 1);
    assert.deepEqual(s.host.released, []);
    // ...but before the next round a leader reaches it again (it was added back).
    s.host.groupState.get(s.awayGroup)!.contactAt = s.clock.now;
    s.leaders.excludesAnswer = false;
    await runFor(s, 1000);
    await runFor(s, 60_000);
    assert.deepEqual(s.host.released, [], "the earlier confirmation was dropped with the contact");
  });

  it("releases a learner after the silence alone", async () => {
    const s = setup();
    strandedReplica(s, { voters: ["n1", "n2", "n3"], learners: [SELF] });
    await runFor(s, RELEASE_AFTER_MS + 1000);
    assert.deepEqual(s.host.released, [s.awayGroup]);
    // Its data waits for a confirmation all the same.
    assert.deepEqual(s.deleted, []);
  });
});

describe("a joining member", () => {
  it("is marked up by the meta leader only once the leaders confirm it votes where the ring puts it", async () => {
    // n4 (this node) leads the meta group; n3 joined and the ring already has it.
    const s = setup({ n1: "up", n2: "up", n3: "joining", n4: "up" });
    s.host.metaRole = "leader";
    await runFor(s, 20_000);
    assert.equal(s.table.member("n3").state, "joining");
    assert.ok(s.leaders.holdsAsked.length >= 3, "the leaders were asked");
    const asked = s.leaders.holdsAsked[0]!;
    assert.equal(asked.node, "n3");
    const placed = [...Array(8).keys()].filter((p) => s.meta.replicas(p).includes("n3"));
    assert.deepEqual(asked.partitions, placed);
    s.leaders.holdsAnswer = true;
    await runFor(s, 6_000);
    assert.equal(s.table.member("n3").state, "up");
  });

  it("is registered joining when it is not in the ring yet, and founders up", async () => {
    const s = setup({ n1: "up", n2: "up", n3: "up" });
    s.host.metaRole = "leader";
    await runFor(s, 1000);
    // n4 is in the founders' ring of this setup: it registers up.
    assert.equal(s.table.member(SELF).state, "up");
    const t = setup({ n1: "up", n2: "up", n3: "up" });
    t.table.put(RING_KEY, foundingRing(["n1", "n2", "n3"], { partitions: 8, replicationFactor: 3 }));
    t.host.metaRole = "leader";
    await runFor(t, 1000);
    assert.equal(t.table.member(SELF).state, "joining");
  });
});

/** Makes n4 the leader of a partition it replicates where `preferred` says who the ring prefers. */
function leadPartition(s: ReturnType<typeof setup>, preferred: (first: NodeId) => boolean) {
  const p = [...Array(8).keys()].find(
    (q) => s.meta.replicas(q).includes(SELF) && preferred(s.meta.replicas(q)[0]!),
  )!;
  assert.ok(p !== undefined);
  const voters = [...s.meta.replicas(p)];
  const progress = new Map<NodeId, ProgressStatus>(
    voters.map((id) => [id, { match: 10, next: 11, state: "replicate", learner: false, recentActive: true }]),
  );
  const conf = { voters, learners: [] };
  s.host.groupState.set(partitionGroup(p), {
    role: "leader",
    conf,
    committed: conf,
    contactAt: s.clock.now,
    progress,
  });
  return { group: partitionGroup(p), voters, progress };
}

/** Records `members step-down` of `id` in the meta table, as the stepping-down board does. */
function stepDown(s: ReturnType<typeof setup>, id: NodeId): void {
  s.table.put(MEMBER_PREFIX + id, { ...s.table.member(id), leadershipPausedUntil: s.clock.now + 120_000 });
}

/** Records that the members `ids` run on one machine, as their agents register it. */
function shareMachine(s: ReturnType<typeof setup>, ids: readonly NodeId[], machine: string): void {
  for (const id of ids) s.table.put(MEMBER_PREFIX + id, { ...s.table.member(id), machine });
}

describe("ClusterController: leaders of agents that share a machine", () => {
  it("leads on where the ring puts it first, when its co-replicas run on other machines", async () => {
    const s = setup();
    shareMachine(s, ["n1", "n2", "n3"], "boot:a");
    shareMachine(s, [SELF], "boot:b");
    leadPartition(s, (first) => first === SELF);
    await runFor(s, 20_000);
    assert.deepEqual(s.host.transfers, []);
  });

  it("hands leadership to the lowest id among the replicas that share the preferred one's machine", async () => {
    const s = setup();
    shareMachine(s, ["n1", "n2", "n3", SELF], "boot:a");
    // The ring puts n4 first, but its co-replicas run on its machine: the lowest id of them leads.
    const { group, voters } = leadPartition(s, (first) => first === SELF);
    await runFor(s, 6000);
    assert.deepEqual(s.host.transfers, [{ group, to: [...voters].sort()[0] }]);
  });

  it("passes over an agent of that machine that is behind or stepped down, to the next lowest id", async () => {
    const s = setup();
    shareMachine(s, ["n1", "n2", "n3", SELF], "boot:a");
    const { group, voters, progress } = leadPartition(s, (first) => first === SELF);
    const [lowest, next] = [...voters].sort() as [NodeId, NodeId];
    // The lowest is down: its leader hears nothing from it, and it lags.
    progress.set(lowest, { match: 2, next: 3, state: "probe", learner: false, recentActive: false });
    await runFor(s, 6000);
    assert.deepEqual(s.host.transfers, [{ group, to: next }]);
    const t = setup();
    shareMachine(t, ["n1", "n2", "n3", SELF], "boot:a");
    const led = leadPartition(t, (first) => first === SELF);
    const [tLowest, tNext] = [...led.voters].sort() as [NodeId, NodeId];
    stepDown(t, tLowest);
    await runFor(t, 6000);
    assert.deepEqual(t.host.transfers, [{ group: led.group, to: tNext }]);
  });
});

describe("preferredLeader", () => {
  const machines: Record<NodeId, string | undefined> = {
    a1: "A",
    a2: "A",
    b1: "B",
    c1: undefined,
    c2: undefined,
  };
  const of = (id: NodeId) => machines[id];
  it("is the ring's first replica where no other replica shares its machine", () => {
    assert.equal(preferredLeader(["b1", "a2", "a1"], of), "b1");
    // Members whose records name no machine (older agents) count as a machine each.
    assert.equal(preferredLeader(["c2", "c1", "a1"], of), "c2");
  });
  it("is the lowest id among the replicas on the first one's machine, wherever they are in the list", () => {
    assert.equal(preferredLeader(["a2", "b1", "a1"], of), "a1");
    assert.equal(preferredLeader(["a2", "b1", "c1"], of), "a2");
  });
  it("skips the replicas of that machine that are not fit to lead, down to the first replica", () => {
    assert.equal(
      preferredLeader(["a2", "b1", "a1"], of, (id) => id !== "a1"),
      "a2",
    );
    assert.equal(
      preferredLeader(["a2", "b1", "a1"], of, () => false),
      "a2",
    );
    assert.equal(
      preferredLeader(["b1", "a1"], of, () => false),
      "b1",
    );
  });
  it("is undefined for a partition without replicas", () => {
    assert.equal(preferredLeader([], of), undefined);
  });
});

describe("MetaView.members", () => {
  it("reads the member table again only once the meta group has applied something", () => {
    const table = new MetaTable();
    table.put(MEMBER_PREFIX + "n1", memberRecord("n1", "up"));
    const { meta, reads } = countingView(table);
    assert.deepEqual(
      meta.members().map((m) => m.id),
      ["n1"],
    );
    // A caller may change the array it got; the next caller gets the table.
    meta.members().push(memberRecord("n9", "up"));
    assert.deepEqual(
      meta.members().map((m) => m.id),
      ["n1"],
    );
    assert.equal(reads.scan, 1);
    table.put(MEMBER_PREFIX + "n2", memberRecord("n2", "joining"));
    assert.deepEqual(
      meta.members().map((m) => [m.id, m.state]),
      [
        ["n1", "up"],
        ["n2", "joining"],
      ],
    );
    assert.equal(reads.scan, 2);
  });

  it("reads the ring again only once the meta group has applied something; the founding ring until it is stored", () => {
    const table = new MetaTable();
    const { meta, reads } = countingView(table);
    const founding = foundingRing(["n1", "n2", "n3"], { partitions: 8, replicationFactor: 3 });
    meta.foundingRing = founding;
    assert.equal(meta.ring(), founding);
    assert.equal(meta.ringStored(), false);
    const stored = foundingRing(["n1", "n2", "n3", "n4"], { partitions: 8, replicationFactor: 3 });
    table.put(RING_KEY, stored);
    assert.deepEqual(meta.ring()?.nodes, stored.nodes);
    assert.equal(meta.ringStored(), true);
    for (let p = 0; p < 8; p++) meta.replicas(p);
    assert.equal(reads.get, 2);
  });
});

describe("ClusterController: leader balance", () => {
  it("holds a leadership that just arrived for one balance period before handing it to the preferred replica", async () => {
    const s = setup();
    // A partition n4 replicates but another board is preferred to lead: n4 has just become its leader.
    const { group, voters } = leadPartition(s, (first) => first !== SELF);
    await runFor(s, 4500);
    assert.deepEqual(s.host.transfers, [], "no hand-over within the balance period (5 s)");
    // The first round (at 0.5 s) saw the leadership arrive; more than 5 s later it moves on.
    await runFor(s, 1500);
    assert.deepEqual(s.host.transfers, [{ group, to: voters[0] }]);
  });

  it("never hands leadership to a member that stepped down", async () => {
    const s = setup();
    const { voters } = leadPartition(s, (first) => first !== SELF);
    stepDown(s, voters[0]!);
    await runFor(s, 20_000);
    assert.deepEqual(s.host.transfers, []);
  });

  it("a member that stepped down and still leads passes the group to a caught-up voter that did not", async () => {
    const s = setup();
    const { group, voters, progress } = leadPartition(s, () => true);
    stepDown(s, SELF);
    const others = voters.filter((id) => id !== SELF);
    // The first other voter stepped down too, and the second is being sent a snapshot: neither is an heir.
    stepDown(s, others[0]!);
    progress.set(others[1]!, { ...progress.get(others[1]!)!, match: 0, state: "snapshot" });
    await runFor(s, 2000);
    assert.deepEqual(s.host.transfers, [], "no voter fit to lead: it keeps the group");
    progress.set(others[1]!, { ...progress.get(others[1]!)!, match: 10, state: "replicate" });
    await runFor(s, 500);
    assert.deepEqual(s.host.transfers, [{ group, to: others[1] }], "at once, not after a balance period");
  });
});
