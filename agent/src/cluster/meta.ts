/**
 * The cluster's own metadata, kept in the meta Raft group (group 0) as ordinary key-value
 * records: one per member (id, addresses, weight, state) and the hash ring (tokens and
 * partition count). Every node replicates the meta group (up to five voters, the rest learners),
 * so every node reads placement and addresses from its own disk.
 */
import { addNode, createRing } from "../ring/ring.js";
import { placement, type Placement } from "../ring/placement.js";
import { ringFromObject } from "../ring/format.js";
import type { Ring } from "../ring/types.js";
import type { GroupId, NodeId } from "../raft/index.js";
import type { DurableStore } from "../node/ports.js";

export const META_GROUP: GroupId = 0;
/** At most this many meta voters; more members follow the meta log as learners. */
export const MAX_META_VOTERS = 5;

export const RING_KEY = "ring";
export const MEMBER_PREFIX = "member/";

/**
 * `joining`: registered (or back after being down); the meta leader adds its tokens to the ring
 * and marks it `up` once it votes in every partition the ring gives it. `draining`: its tokens
 * leave the ring and its replicas move away. `down`: unreachable for longer than the replace-after
 * time; its replicas are rebuilt elsewhere. `removed`: gone for good; its id never comes back.
 *
 * Records are read without validating the state, so an agent of the previous version (which
 * knows no `joining`) reads such a record without failing. As meta leader, though, it would take
 * a joining member already in the ring for a leaving one and take its tokens out again (it kept
 * only `up` members in the ring): add boards before or after a rolling upgrade, not during it.
 */
export type MemberState = "joining" | "up" | "draining" | "down" | "removed";

export interface MemberRecord {
  readonly id: NodeId;
  /** host:port of the peer (TLS) listener. */
  readonly peer: string;
  /** Base URL of the client HTTP API. */
  readonly api: string;
  readonly weight: number;
  readonly state: MemberState;
  /** When the state last changed (ms since the epoch, from the proposer's clock). */
  readonly since: number;
  /**
   * Set by `members step-down`: until then (ms since the epoch) no partition leader hands
   * leadership to this member, so a board about to restart for an upgrade stays a follower.
   */
  readonly leadershipPausedUntil?: number;
  /**
   * The machine the agent runs on (`--machine`; by default the running kernel's boot id). Agents
   * that share a machine share its CPU cores, so the partitions whose replicas include several of
   * them are led by one of them (`preferredLeader`). Absent in records of older agents: such a
   * member counts as a machine of its own.
   */
  readonly machine?: string;
}

export function partitionGroup(partition: number): GroupId {
  return partition + 1;
}

export function groupPartition(group: GroupId): number {
  return group - 1;
}

/**
 * The replica that should lead a partition, given its replicas in the ring's order: the first,
 * which spreads leaderships evenly over the machines, or, when other replicas run on the same
 * machine as the first, the lowest id among them that is `fit` to lead (up, caught up, not
 * stepped down). So while that agent is down, the next one of its machine leads in its place.
 *
 * Spreading leaders is what makes separate boards add write capacity: each board does the client
 * and leader work of its share of the partitions. Agents on one machine share its cores, so
 * there it buys nothing and costs CPU per write: every agent then runs a leader's turn and a
 * follower's turn, each with its own commit and frames, where one leader batches all of them (on
 * a 3-agent `cluster up`, 64 partitions, c=64 puts: 1.10-1.20 ms of CPU per put spread, 0.84-0.94
 * led by one agent; issue 3's notes, session 16).
 */
export function preferredLeader(
  replicas: readonly NodeId[],
  machineOf: (id: NodeId) => string | undefined,
  fit: (id: NodeId) => boolean = () => true,
): NodeId | undefined {
  const first = replicas[0];
  if (first === undefined) return undefined;
  const machine = machineOf(first);
  if (machine === undefined) return first;
  let chosen: NodeId | undefined;
  for (const id of replicas) {
    if (machineOf(id) === machine && fit(id) && (chosen === undefined || id < chosen)) chosen = id;
  }
  // None fit: the first, as on a machine of its own (the caller waits until it is fit).
  return chosen ?? first;
}

export interface ClusterShape {
  readonly partitions: number;
  readonly replicationFactor: number;
}

const dec = new TextDecoder();

/** The ring every founder computes from the same founder list: it must be deterministic. */
export function foundingRing(founders: readonly NodeId[], shape: ClusterShape): Ring {
  let ring = createRing({ partitions: shape.partitions, replicationFactor: shape.replicationFactor });
  for (const id of [...founders].sort()) ring = addNode(ring, { id, weight: 1 });
  return ring;
}

/** The meta group's first voters and learners among the founders. */
export function foundingMetaConf(founders: readonly NodeId[]): { voters: NodeId[]; learners: NodeId[] } {
  const sorted = [...founders].sort();
  return { voters: sorted.slice(0, MAX_META_VOTERS), learners: sorted.slice(MAX_META_VOTERS) };
}

/** The part of the node's store the meta view reads (the simulator passes its own). */
export type MetaStore = Pick<DurableStore, "hasGroup" | "get" | "scan" | "appliedIndex">;

/** Reads the meta state from this node's replica of the meta group. */
export class MetaView {
  private cachedRingVersion = "";
  private cachedRing: Ring | null = null;
  private cachedPlacement: Placement | null = null;
  /** The meta group's applied index when the ring record was last read, and whether it was there. */
  private ringReadAt = -1;
  private ringInStore = false;
  private partitionCount = 0;
  /** The member table as of the meta group's applied index `applied`. */
  private cachedMembers: { applied: number; records: readonly MemberRecord[] } | null = null;

  /** A founder knows the founding ring before the meta group has stored it. */
  foundingRing: Ring | null = null;

  constructor(private readonly store: MetaStore) {}

  /**
   * The stored ring, else the founding ring. The record is read again only once the meta group
   * has applied something (the controller asks for it per partition in every round).
   */
  ring(): Ring | null {
    if (!this.store.hasGroup(META_GROUP)) return this.foundingRing;
    const applied = this.store.appliedIndex(META_GROUP);
    if (applied !== this.ringReadAt) {
      const rec = this.store.get(META_GROUP, RING_KEY);
      if (rec && rec.version !== this.cachedRingVersion) {
        // Validated: a damaged ring must stop placement here, not move replicas at random.
        this.cachedRing = ringFromObject(JSON.parse(dec.decode(rec.value)));
        this.cachedPlacement = null;
        this.cachedRingVersion = rec.version;
      }
      this.ringInStore = rec !== null;
      this.ringReadAt = applied;
    }
    return this.ringInStore ? this.cachedRing : this.foundingRing;
  }

  /**
   * The cluster's partition count, or null before the ring is known. It is fixed when the cluster
   * is created, so it is kept once known: request paths ask for it without reading and decoding
   * the ring from the store each time.
   */
  partitions(): number | null {
    if (this.partitionCount === 0) this.partitionCount = this.ring()?.partitions ?? 0;
    return this.partitionCount === 0 ? null : this.partitionCount;
  }

  /** Whether the meta group has stored a ring (a founder may only hold the founding ring). */
  ringStored(): boolean {
    if (!this.store.hasGroup(META_GROUP)) return false;
    this.ring();
    return this.ringInStore;
  }

  ringVersion(): string {
    this.ring();
    return this.cachedRingVersion;
  }

  placement(): Placement | null {
    const ring = this.ring();
    if (!ring) return null;
    this.cachedPlacement ??= placement(ring);
    return this.cachedPlacement;
  }

  /** The target replicas of `partition`, preferred leader first. */
  replicas(partition: number): readonly NodeId[] {
    return this.placement()?.partitions[partition]?.replicas ?? [];
  }

  member(id: NodeId): MemberRecord | null {
    if (!this.store.hasGroup(META_GROUP)) return null;
    const rec = this.store.get(META_GROUP, MEMBER_PREFIX + id);
    return rec ? (JSON.parse(dec.decode(rec.value)) as MemberRecord) : null;
  }

  /** Whether the member stepped down (`members step-down`) and should not lead for now. */
  leadershipPaused(id: NodeId, now = Date.now()): boolean {
    return (this.member(id)?.leadershipPausedUntil ?? 0) > now;
  }

  memberVersion(id: NodeId): string {
    return this.store.get(META_GROUP, MEMBER_PREFIX + id)?.version ?? "0";
  }

  /**
   * The member table. Read from the store and decoded again only after the meta group applied
   * something: the controller's rounds, discovery's ticks and every status ask for it, and
   * scanning and parsing it each time was ~5 % of an idle agent's CPU (perf).
   */
  members(): MemberRecord[] {
    if (!this.store.hasGroup(META_GROUP)) return [];
    const applied = this.store.appliedIndex(META_GROUP);
    if (this.cachedMembers?.applied !== applied) {
      const records = this.store
        .scan(META_GROUP, { prefix: MEMBER_PREFIX, limit: 10_000 })
        .map((r) => JSON.parse(dec.decode(r.record.value)) as MemberRecord);
      this.cachedMembers = { applied, records };
    }
    return [...this.cachedMembers.records];
  }
}
