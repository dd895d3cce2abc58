/**
 * Keeps this node's part of the cluster converging on the placement the ring asks for.
 *
 * Every node runs it; what it does depends on what the node leads:
 *  - every node hosts the replicas the ring gives it (an empty replica waits for its leader to
 *    add it), and stops hosting a replica the ring took away once its leader has let go (a replica
 *    that may still vote only once a leader confirms its removal is committed);
 *  - the meta leader keeps the ring in step with the member table (a member joins: its tokens
 *    are allocated, and it is marked `up` once it votes in every partition the ring gives it; it
 *    drains or is removed: its tokens go) and keeps every member in the meta group (up to five
 *    voters, the rest learners);
 *  - each partition leader moves its own group toward the placement, one configuration change
 *    at a time: add the new replica as a learner, promote it once caught up, then remove the
 *    replica that no longer belongs (handing leadership away first if that is itself), and
 *    finally hands leadership to the partition's preferred leader, which spreads leaders evenly
 *    over machines (`preferredLeader`).
 * A node starts at most `maxCatchUps` learners at once, so a join moves a few replicas at a time.
 */
import {
  ProposalDroppedError,
  TransferRejectedError,
  type ConfChange,
  type NodeId,
  type RaftStatus,
} from "../raft/index.js";
import { addNode, removeNode } from "../ring/ring.js";
import type { Ring } from "../ring/types.js";
import type { RaftHost } from "../node/host.js";
import {
  MAX_META_VOTERS,
  MEMBER_PREFIX,
  preferredLeader,
  META_GROUP,
  RING_KEY,
  groupPartition,
  partitionGroup,
  type MemberRecord,
  type MemberState,
  type MetaView,
} from "./meta.js";

export interface ControllerLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * What the controller asks of the node's Raft host. `RaftHost` is the real one; the multi-Raft
 * simulator (`agent/src/sim/multi/`) drives the same controller over simulated replicas.
 */
export type ControllerHost = Pick<
  RaftHost,
  | "status"
  | "groups"
  | "hosts"
  | "addGroup"
  | "removeGroup"
  | "sinceLeaderContactMs"
  | "committedConfState"
  | "proposeConfChange"
  | "transferLeadership"
  | "propose"
>;

/**
 * What the controller asks the leaders of other groups (`removal-check.ts` asks over HTTP, the
 * multi-Raft simulator answers from its simulated boards). Only a leader's committed
 * configuration counts, since a configuration takes effect when appended and an appended change
 * may still be undone; no answer is "not confirmed".
 */
export interface LeaderQuestions {
  /** Whether a leader of `partition` has committed a configuration that leaves this node out. */
  excludes(partition: number): Promise<boolean>;
  /** Whether the leader of each of `partitions` has committed `node` as a voter. */
  holdsAsVoter(node: NodeId, partitions: readonly number[]): Promise<boolean>;
}

/** A replica the ring moved away that this node keeps, because no leader confirmed its removal. */
export interface HeldReplica {
  readonly partition: number;
  /** How long it has been kept since its leader went silent and the question was first asked (ms). */
  readonly waitingMs: number;
}

export interface ControllerOptions {
  readonly nodeId: NodeId;
  readonly host: ControllerHost;
  readonly meta: MetaView;
  /** How this node wants to be known: its addresses and weight. */
  readonly self: () => Omit<MemberRecord, "state" | "since">;
  readonly logger: ControllerLogger;
  /** The founders' ring, written by the first meta leader when the meta group has none. */
  readonly foundingRing: Ring | null;
  readonly intervalMs?: number;
  /** Learners this node catches up at once, over all the partitions it leads. */
  readonly maxCatchUps?: number;
  /** A replica the ring took away stops being hosted after this long without its leader. */
  readonly releaseAfterMs?: number;
  /** Confirms removals before a replica that may still vote is released, and joins before `up`. */
  readonly leaders: LeaderQuestions;
  /** How often one question about one replica or one joining member is asked again (ms). */
  readonly askEveryMs?: number;
  /** Seconds between leadership hand-overs of one partition to its preferred leader. */
  readonly leaderBalanceEveryMs?: number;
  /** A member the meta leader has not heard from for this long is marked down and replaced. */
  readonly replaceAfterMs?: number;
  /** The clock, in ms (`Date.now` by default; the simulator passes its virtual clock). */
  readonly now?: () => number;
  /**
   * A meta write not decided within this long is abandoned (the next round tries again). Without
   * it, a write whose entry is lost (a forwarded proposal dropped, a leader deposed before it
   * commits) would hold the controller's round forever: the multi-Raft simulator found a joining
   * board that never took its replicas that way.
   */
  readonly proposeTimeoutMs?: number;
  /** Makes the signal that aborts a write after `ms` (`AbortSignal.timeout`; the simulator's runs on its clock). */
  readonly timeoutSignal?: (ms: number) => AbortSignal;
  /**
   * Deleting released replicas' data (optional; without it the data stays on disk), once a leader
   * confirms (`leaders.excludes`) that this node is out: a voter whose log were wiped could
   * otherwise vote a committed entry away.
   */
  readonly purge?: {
    readonly deleteGroup: (group: number) => Promise<void>;
    readonly canHost: (group: number) => boolean;
  };
}

/** What a round knows of the members, read once (`round`). */
interface Roster {
  /** Whether the member stepped down (`members step-down`) and should not lead for now. */
  readonly paused: (id: NodeId) => boolean;
  /** The machine the member runs on, if its record says (`MemberRecord.machine`). */
  readonly machine: (id: NodeId) => string | undefined;
}

const enc = new TextEncoder();
/** Members whose tokens leave the ring (every other member's are in it, or are being added). */
const LEAVING: ReadonlySet<MemberState> = new Set(["draining", "down", "removed"]);
/** A learner this close to the leader's commit index is caught up enough to vote. */
const CAUGHT_UP_LAG = 16;

export class ClusterController {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Partitions led here: when leadership last moved here or was handed on (ms). */
  private readonly lastBalance = new Map<number, number>();
  private readonly intervalMs: number;
  private readonly maxCatchUps: number;
  private readonly releaseAfterMs: number;
  private readonly askEveryMs: number;
  private readonly balanceEveryMs: number;
  private readonly replaceAfterMs: number;
  private readonly now: () => number;
  private readonly proposeTimeoutMs: number;
  private readonly timeoutSignal: (ms: number) => AbortSignal;
  /** Groups whose leader confirmed this node is out (until a leader is heard from again). */
  private readonly confirmedOut = new Set<number>();
  private readonly outAsked = new Map<number, number>();
  /** Replicas the ring moved away that may still vote and wait for confirmation, since (ms). */
  private readonly held = new Map<number, number>();
  /** On the meta leader: when each joining member's replicas were last asked about (ms). */
  private readonly joinAsked = new Map<NodeId, number>();
  /** On the meta leader: joining members the leaders confirmed, with the ring version they were asked about. */
  private readonly joinConfirmed = new Map<NodeId, string>();
  /** When this node last led each group it hosts (ms). */
  private readonly leaderSeenAt = new Map<number, number>();
  /** On the meta leader: when each member was last heard from (ms). */
  private readonly lastSeen = new Map<NodeId, number>();
  /** Replicas released here whose data is still on disk, waiting for `confirmedOut`. */
  private readonly released = new Set<number>();
  /** Counts of what this node did, for status and tests. */
  readonly stats = { confChanges: 0, transfers: 0, ringChanges: 0, hosted: 0, released: 0, purged: 0 };

  constructor(private readonly opts: ControllerOptions) {
    this.intervalMs = opts.intervalMs ?? 500;
    this.maxCatchUps = opts.maxCatchUps ?? 4;
    this.releaseAfterMs = opts.releaseAfterMs ?? 10_000;
    this.askEveryMs = opts.askEveryMs ?? 5000;
    this.balanceEveryMs = opts.leaderBalanceEveryMs ?? 5_000;
    this.replaceAfterMs = opts.replaceAfterMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.proposeTimeoutMs = opts.proposeTimeoutMs ?? 5_000;
    this.timeoutSignal = opts.timeoutSignal ?? ((ms) => AbortSignal.timeout(ms));
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass over everything this node is responsible for. Never throws. */
  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      this.reconcileHosting();
      this.purgeReleased();
      const meta = this.opts.host.status(META_GROUP);
      if (meta.leader !== "") await this.registerSelf();
      if (meta.role === "leader") await this.metaDuties(meta);
      const now = this.now();
      // The member table is read once a round, at the first partition led here, not once per
      // partition and member: each record is a store read and a JSON parse.
      let table: Map<NodeId, MemberRecord> | null = null;
      const member = (id: NodeId): MemberRecord | undefined => {
        table ??= new Map(this.opts.meta.members().map((m) => [m.id, m]));
        return table.get(id);
      };
      const roster: Roster = {
        paused: (id) => (member(id)?.leadershipPausedUntil ?? 0) > now,
        machine: (id) => member(id)?.machine,
      };
      for (const g of this.opts.host.groups()) {
        if (g === META_GROUP) continue;
        const st = this.opts.host.status(g);
        if (st.role === "leader") this.partitionDuties(g, st, now, roster);
        else this.lastBalance.delete(groupPartition(g));
      }
    } catch (err) {
      this.opts.logger.warn("controller round failed; retrying", { error: String(err) });
    } finally {
      this.running = false;
    }
  }

  private reconcileHosting(): void {
    const { host, meta, nodeId } = this.opts;
    const ring = meta.ring();
    if (!ring) return;
    const now = this.now();
    for (let p = 0; p < ring.partitions; p++) {
      const g = partitionGroup(p);
      const wanted = meta.replicas(p).includes(nodeId);
      // Leading counts as contact (the host counts only other leaders'). Merely knowing a leader
      // does not: a removed replica keeps naming the leader that stopped talking to it.
      if (host.hosts(g) && host.status(g).role === "leader") this.leaderSeenAt.set(g, now);
      if (wanted) {
        this.released.delete(g);
        this.confirmedOut.delete(g);
        this.held.delete(g);
      }
      if (wanted && !host.hosts(g)) {
        if (this.opts.purge && !this.opts.purge.canHost(g)) continue; // Its old data is still going.
        host.addGroup(g);
        this.stats.hosted++;
      } else if (!wanted && host.hosts(g)) {
        this.releaseIfOut(g, now);
      }
    }
  }

  /**
   * Stops hosting a replica the ring moved away once its leader has let go of it. Keep serving
   * until the leader has removed us: it then stops talking to us. A leader hands leadership away
   * before it removes itself, so it never releases here. The host counts contact from other
   * leaders only, so a deposed leader would look silent for ages at once: the multi-Raft
   * simulator caught two such voters releasing one group together. Its own leadership counts as
   * contact.
   *
   * Silence alone does not tell a removed replica from one cut off from its leader, and a voter
   * that stops answering leaves its group one replica short until a quorum removes it: two such
   * voters lose the group's quorum for good. So a replica that may still vote (its log counts it
   * as a voter, committed or not) is released only once a leader confirms that its committed
   * configuration leaves this node out; without an answer the replica stays (it costs only disk)
   * and `heldReplicas` reports it. A learner never counts towards a quorum and goes after the
   * silence alone.
   */
  private releaseIfOut(g: number, now: number): void {
    const { host, nodeId } = this.opts;
    const st = host.status(g);
    const led = this.leaderSeenAt.get(g);
    const contactMs = host.sinceLeaderContactMs(g);
    const silentMs = led === undefined ? contactMs : Math.min(contactMs, now - led);
    if (st.role === "leader" || silentMs <= this.releaseAfterMs) {
      // A leader talks to us again: whatever was confirmed before may have changed since.
      this.confirmedOut.delete(g);
      this.held.delete(g);
      return;
    }
    const mayVote =
      st.confState.voters.includes(nodeId) || host.committedConfState(g).voters.includes(nodeId);
    if (mayVote && !this.confirmedOut.has(g)) {
      if (!this.held.has(g)) this.held.set(g, now);
      this.askIfOut(g, now);
      return;
    }
    this.held.delete(g);
    // A confirmation already in hand (`confirmedOut`) also lets the purge go at once.
    host.removeGroup(g);
    this.stats.released++;
    this.released.add(g);
    this.opts.logger.info("released a replica the ring moved away", {
      partition: groupPartition(g),
      confirmed: this.confirmedOut.has(g),
    });
  }

  /**
   * Replicas the ring moved away that this node keeps because no leader has confirmed their
   * removal: usually for a few seconds, but for good when the node is cut off from their leaders.
   */
  heldReplicas(): HeldReplica[] {
    const now = this.now();
    return [...this.held]
      .map(([g, since]) => ({ partition: groupPartition(g), waitingMs: now - since }))
      .sort((a, b) => a.partition - b.partition);
  }

  /** Asks (at most every `askEveryMs`) whether the partition's leader has removed this node. */
  private askIfOut(g: number, now: number): void {
    const last = this.outAsked.get(g) ?? -Infinity;
    if (now - last < this.askEveryMs) return;
    this.outAsked.set(g, now);
    this.opts.leaders.excludes(groupPartition(g)).then(
      (out) => {
        if (out) this.confirmedOut.add(g);
      },
      () => {}, // Unanswered: not confirmed; the replica stays.
    );
  }

  /**
   * Deletes the data of released replicas once their partition's leader confirms we are out,
   * through the same throttled question `askIfOut` puts to voters (the round never waits on it):
   * a learner released after the silence alone is asked here.
   */
  private purgeReleased(): void {
    const purge = this.opts.purge;
    if (!purge) return;
    for (const g of this.released) {
      if (this.opts.host.hosts(g)) {
        this.released.delete(g);
        continue;
      }
      if (!this.confirmedOut.has(g)) {
        this.askIfOut(g, this.now());
        continue;
      }
      this.released.delete(g);
      this.confirmedOut.delete(g);
      const partition = groupPartition(g);
      this.opts.logger.info("deleting the data of a released replica", { partition });
      purge.deleteGroup(g).then(
        () => this.stats.purged++,
        (err: unknown) =>
          this.opts.logger.warn("could not delete a released replica", { partition, error: String(err) }),
      );
    }
  }

  private async registerSelf(): Promise<void> {
    const { meta, nodeId } = this.opts;
    const want = this.opts.self();
    const have = meta.member(nodeId);
    if (
      have &&
      have.peer === want.peer &&
      have.api === want.api &&
      have.weight === want.weight &&
      have.machine === want.machine
    )
      return;
    if (have && have.state === "removed") return;
    // A founder holds its replicas from the start; any other node still has to take them.
    const inRing = meta.ring()?.nodes.some((n) => n.id === nodeId) ?? false;
    const record: MemberRecord = {
      ...want,
      state: have?.state ?? (inRing ? "up" : "joining"),
      since: have?.since ?? this.now(),
    };
    await this.putMeta(MEMBER_PREFIX + nodeId, record, meta.memberVersion(nodeId));
  }

  private async putMeta(key: string, value: unknown, cas: string): Promise<boolean> {
    const res = await this.opts.host.propose(
      META_GROUP,
      { op: "put", key, value: enc.encode(JSON.stringify(value)), cas },
      this.timeoutSignal(this.proposeTimeoutMs),
    );
    return res.ok;
  }

  private async metaDuties(st: RaftStatus): Promise<void> {
    const { meta } = this.opts;
    let ring = meta.ring();
    if (!ring) return;
    if (!meta.ringStored()) {
      // Only the founders' ring so far (held in memory): store it before changing anything.
      if (this.opts.foundingRing && (await this.putMeta(RING_KEY, this.opts.foundingRing, "0")))
        this.stats.ringChanges++;
      return;
    }
    const members = meta.members();
    if (await this.markLiveness(st, members)) return;
    // One ring change per round: joins first, then departures.
    const inRing = new Set(ring.nodes.map((n) => n.id));
    const joiner = members.find((m) => !LEAVING.has(m.state) && !inRing.has(m.id));
    const leaver = members.find((m) => LEAVING.has(m.state) && inRing.has(m.id));
    let next: Ring | null = null;
    if (joiner && this.metaMember(st, joiner.id))
      next = addNode(ring, { id: joiner.id, weight: joiner.weight });
    else if (leaver && ring.nodes.length > 1) next = removeNode(ring, leaver.id);
    if (next) {
      if (await this.putMeta(RING_KEY, next, meta.ringVersion())) {
        this.stats.ringChanges++;
        this.opts.logger.info("ring changed", {
          joined: joiner?.id,
          left: next === ring ? undefined : leaver?.id,
        });
        ring = next;
      }
      return;
    }
    if (await this.markJoined(members, inRing)) return;
    this.metaMembership(st, members);
  }

  /**
   * Marks a joining member `up` once the ring has it and the leader of every partition the ring
   * gives it has committed it as a voter. The question goes out at most every `askEveryMs` per
   * member and the round never waits on it; an answer counts only for the ring it was asked about.
   */
  private async markJoined(members: MemberRecord[], inRing: ReadonlySet<NodeId>): Promise<boolean> {
    const { meta } = this.opts;
    const version = meta.ringVersion();
    const now = this.now();
    for (const m of members) {
      if (m.state !== "joining" || !inRing.has(m.id)) continue;
      if (this.joinConfirmed.get(m.id) === version) {
        this.joinConfirmed.delete(m.id);
        const record: MemberRecord = { ...m, state: "up", since: now };
        if (await this.putMeta(MEMBER_PREFIX + m.id, record, meta.memberVersion(m.id))) {
          this.opts.logger.info("member joined: it holds every replica the ring gives it", { member: m.id });
        }
        return true;
      }
      if (now - (this.joinAsked.get(m.id) ?? -Infinity) < this.askEveryMs) continue;
      this.joinAsked.set(m.id, now);
      const partitions: number[] = [];
      for (let p = 0; p < (meta.partitions() ?? 0); p++)
        if (meta.replicas(p).includes(m.id)) partitions.push(p);
      this.opts.leaders.holdsAsVoter(m.id, partitions).then(
        (holds) => {
          if (holds) this.joinConfirmed.set(m.id, version);
        },
        () => {}, // Unanswered: asked again later.
      );
    }
    return false;
  }

  /**
   * Marks a member down once the meta leader has not heard from it for `replaceAfterMs` (its
   * tokens then leave the ring and its replicas are rebuilt on the others), and joining again
   * when it is heard from. A new meta leader starts every clock afresh, so it never acts on old
   * silence.
   */
  private async markLiveness(st: RaftStatus, members: MemberRecord[]): Promise<boolean> {
    const now = this.now();
    for (const m of members) {
      if (m.id === this.opts.nodeId) continue;
      if (st.progress.get(m.id)?.recentActive) this.lastSeen.set(m.id, now);
      else if (!this.lastSeen.has(m.id)) this.lastSeen.set(m.id, now);
    }
    for (const m of members) {
      const seen = m.id === this.opts.nodeId ? now : (this.lastSeen.get(m.id) ?? now);
      const silent = now - seen > this.replaceAfterMs;
      let state: MemberRecord["state"] | null = null;
      if ((m.state === "up" || m.state === "joining") && silent) state = "down";
      // Its tokens left the ring while it was away: it takes its replicas again, as a new board does.
      else if (m.state === "down" && !silent) state = "joining";
      if (!state) continue;
      const record: MemberRecord = { ...m, state, since: now };
      if (await this.putMeta(MEMBER_PREFIX + m.id, record, this.opts.meta.memberVersion(m.id))) {
        this.opts.logger.warn(
          state === "down" ? "member unreachable; rebuilding its replicas elsewhere" : "member is back",
          {
            member: m.id,
            silentMs: now - seen,
          },
        );
      }
      return true;
    }
    return false;
  }

  private metaMember(st: RaftStatus, id: NodeId): boolean {
    return st.confState.voters.includes(id) || st.confState.learners.includes(id);
  }

  /** Every live member follows the meta log; up to five of them vote. */
  private metaMembership(st: RaftStatus, members: MemberRecord[]): void {
    const live = members.filter((m) => m.state !== "removed");
    const notIn = live.find((m) => !this.metaMember(st, m.id));
    if (notIn) return this.confChange(META_GROUP, { type: "addLearner", nodeId: notIn.id });
    const gone = [...st.confState.voters, ...st.confState.learners].find(
      (id) => id !== this.opts.nodeId && members.find((m) => m.id === id)?.state === "removed",
    );
    if (gone) return this.confChange(META_GROUP, { type: "removeNode", nodeId: gone });
    if (st.confState.voters.length < MAX_META_VOTERS) {
      const promote = st.confState.learners.find(
        (id) => live.some((m) => m.id === id && m.state === "up") && this.caughtUp(st, id),
      );
      if (promote) this.confChange(META_GROUP, { type: "addVoter", nodeId: promote });
    }
  }

  private caughtUp(st: RaftStatus, id: NodeId): boolean {
    const pr = st.progress.get(id);
    if (pr === undefined || pr.state === "snapshot") return false;
    // A follower that once went unreachable stays in probe until the next append; in a quiet
    // partition none comes, so a probe that has everything committed counts as caught up (the
    // multi-Raft simulator found a learner never promoted that way).
    if (pr.state === "probe") return pr.recentActive && pr.match >= st.commit;
    return pr.match + CAUGHT_UP_LAG >= st.commit;
  }

  private partitionDuties(group: number, st: RaftStatus, now: number, roster: Roster): void {
    const { nodeId, meta } = this.opts;
    const partition = groupPartition(group);
    const target = meta.replicas(partition);
    if (target.length === 0) return;
    const { voters, learners } = st.confState;
    // Promote first: a caught-up learner frees a catch-up slot for the next partition.
    const ready = learners.find((id) => target.includes(id) && this.caughtUp(st, id));
    if (ready) return this.confChange(group, { type: "addVoter", nodeId: ready });
    // A learner the ring no longer wants (it changed again meanwhile) only holds a slot.
    const strayLearner = learners.find((id) => !target.includes(id));
    if (strayLearner) return this.confChange(group, { type: "removeNode", nodeId: strayLearner });
    const missing = target.find((id) => !voters.includes(id) && !learners.includes(id));
    if (missing) {
      if (this.catchUpsInFlight() < this.maxCatchUps)
        this.confChange(group, { type: "addLearner", nodeId: missing });
      return;
    }
    if (learners.length > 0) return; // Still catching up.
    const extraVoter = voters.find((id) => !target.includes(id));
    if (extraVoter === nodeId) {
      const heir = target.find((id) => voters.includes(id) && this.caughtUp(st, id));
      if (heir) this.transfer(group, heir);
      return;
    }
    if (extraVoter) return this.confChange(group, { type: "removeNode", nodeId: extraVoter });
    if (roster.paused(nodeId)) {
      // This member stepped down, yet leads (an election chose it, or a hand-over it took after
      // a restart): it passes the group on to a caught-up voter that did not step down, if any.
      const heir = voters.find((id) => id !== nodeId && !roster.paused(id) && this.caughtUp(st, id));
      if (heir) this.transfer(group, heir);
      return;
    }
    const preferred = preferredLeader(
      target,
      roster.machine,
      (id) => !roster.paused(id) && this.caughtUp(st, id),
    )!;
    const last = this.lastBalance.get(partition);
    if (last === undefined) {
      // Leadership just came here, by an election or a hand-over. It stays for one balance
      // period: a board that stepped down handed it over right after committing its pause, and
      // this node's meta replica may not have applied that pause yet.
      this.lastBalance.set(partition, now);
      return;
    }
    // A member that stepped down (a planned restart) is left without leadership for a while.
    const paused = roster.paused(preferred);
    if (preferred !== nodeId && !paused && this.caughtUp(st, preferred) && now - last > this.balanceEveryMs) {
      this.lastBalance.set(partition, now);
      this.transfer(group, preferred);
    }
  }

  /** Learners being caught up in partitions this node leads. */
  private catchUpsInFlight(): number {
    let n = 0;
    for (const g of this.opts.host.groups()) {
      if (g === META_GROUP) continue;
      const st = this.opts.host.status(g);
      if (st.role === "leader") n += st.confState.learners.filter((id) => !this.caughtUp(st, id)).length;
    }
    return n;
  }

  private confChange(group: number, cc: ConfChange): void {
    try {
      this.opts.host.proposeConfChange(group, cc);
      this.stats.confChanges++;
      this.opts.logger.info("membership change", { group, change: cc.type, node: cc.nodeId });
    } catch (err) {
      // One change at a time: the previous one is still committing, or the term is new.
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  private transfer(group: number, to: NodeId): void {
    try {
      this.opts.host.transferLeadership(group, to);
      this.stats.transfers++;
    } catch (err) {
      if (!(err instanceof TransferRejectedError)) throw err;
    }
  }
}
