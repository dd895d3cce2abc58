/**
 * The operator of the simulated cluster: boards join and leave as a person would make them,
 * through the same member records the API writes (`POST /v1/members`, `members drain`,
 * `members remove`). Everything after that is the real controller's doing: the meta leader
 * changes the ring, each partition leader moves its replicas (learner, catch-up, promote, remove).
 *
 *  - join: a brand-new board (fresh id, empty disk) starts, hosting only an empty meta replica,
 *    and its member record is written with state `joining` (the meta leader marks it `up`);
 *  - drain: an `up` member is marked `draining`; its tokens leave the ring and its replicas move;
 *  - remove: a drained member that no partition holds any more is marked `removed`; once the meta
 *    group has let it go too, the board is shut down for good and its id never comes back.
 */
import { MEMBER_PREFIX, META_GROUP, type MemberRecord } from "../../cluster/meta.js";
import type { NodeId } from "../../raft/index.js";
import type { Random } from "../random.js";
import type { SimHost } from "./sim-host.js";

export interface OperatorPlan {
  /** Mean ticks between actions (Infinity: none). */
  readonly intervalTicks: number;
  /** Bound on boards ever added. */
  readonly maxJoins: number;
  /** The cluster never drains below this many `up` members. */
  readonly minUp: number;
  /** Nor grows past this many members (not removed). */
  readonly maxMembers: number;
}

export interface OperatorTarget {
  tickNumber(): number;
  nowMs(): number;
  hosts(): readonly SimHost[];
  /** The board leading the meta group, if any is up and believes it leads. */
  metaLeader(): SimHost | null;
  /** Whether any partition's leader still counts `id` as a member of its group. */
  holdsReplicas(id: NodeId): boolean;
  /** Creates and boots a board with an empty disk. */
  join(): SimHost | null;
  decommission(id: NodeId): void;
  trace(line: string): void;
}

export interface OperatorStats {
  joins: number;
  drains: number;
  removals: number;
  decommissioned: number;
}

const enc = new TextEncoder();

export class Operator {
  private nextAt: number;
  private enabled = true;
  private joined = 0;
  readonly stats: OperatorStats = { joins: 0, drains: 0, removals: 0, decommissioned: 0 };

  constructor(
    private readonly plan: OperatorPlan,
    private readonly random: Random,
    private readonly target: OperatorTarget,
  ) {
    this.nextAt = this.interval();
  }

  stop(): void {
    this.enabled = false;
  }

  step(): void {
    const t = this.target;
    this.shutDownRemoved();
    if (!this.enabled || t.tickNumber() < this.nextAt) return;
    this.nextAt = t.tickNumber() + this.interval();
    const leader = t.metaLeader();
    if (leader === null) return;
    const members = leader.meta.members();
    const ring = leader.meta.ring();
    if (ring === null) return;
    const inRing = new Set(ring.nodes.map((n) => n.id));
    // Finish what was started first: a drained board that holds nothing is removed.
    const drained = members.find(
      (m) => m.state === "draining" && !inRing.has(m.id) && !t.holdsReplicas(m.id),
    );
    if (drained !== undefined) {
      this.write(leader, { ...drained, state: "removed", since: t.nowMs() }, "remove");
      return;
    }
    // A board started for a join whose record was lost (its write timed out) asks again.
    const orphan = t
      .hosts()
      .find((h) => !h.founder && !h.decommissioned && !members.some((m) => m.id === h.id));
    if (orphan !== undefined) {
      this.write(leader, { ...orphan.self, state: "joining", since: t.nowMs() }, "join again");
      return;
    }
    const live = members.filter((m) => m.state !== "removed");
    const up = members.filter((m) => m.state === "up");
    const canJoin = this.joined < this.plan.maxJoins && live.length < this.plan.maxMembers;
    const canDrain = up.length > this.plan.minUp && !members.some((m) => m.state === "draining");
    if (canJoin && (!canDrain || this.random.chance(0.6))) {
      const host = t.join();
      if (host === null) return;
      this.joined++;
      this.stats.joins++;
      this.write(leader, { ...host.self, state: "joining", since: t.nowMs() }, "join");
    } else if (canDrain) {
      const victim = this.random.pick(up);
      this.stats.drains++;
      this.write(leader, { ...victim, state: "draining", since: t.nowMs() }, "drain");
    }
  }

  /** A member marked removed whose meta replica the meta leader has let go is shut down. */
  private shutDownRemoved(): void {
    const t = this.target;
    const leader = t.metaLeader();
    if (leader === null) return;
    const conf = leader.status(META_GROUP).confState;
    for (const m of leader.meta.members()) {
      if (m.state !== "removed" || conf.voters.includes(m.id) || conf.learners.includes(m.id)) continue;
      const host = t.hosts().find((h) => h.id === m.id);
      if (host === undefined || host.decommissioned || t.holdsReplicas(m.id)) continue;
      this.stats.decommissioned++;
      t.decommission(m.id);
    }
  }

  /** Writes a member record through the meta leader, as the members API does (compare-and-set). */
  private write(leader: SimHost, record: MemberRecord, what: string): void {
    this.target.trace(`operator: ${what} ${record.id} (state ${record.state})`);
    if (what === "remove") this.stats.removals++;
    leader
      .propose(META_GROUP, {
        op: "put",
        key: MEMBER_PREFIX + record.id,
        value: enc.encode(JSON.stringify(record)),
        cas: leader.meta.memberVersion(record.id),
      })
      .catch((err: unknown) => this.target.trace(`operator: ${what} ${record.id} failed: ${String(err)}`));
  }

  private interval(): number {
    const mean = this.plan.intervalTicks;
    if (!Number.isFinite(mean)) return Infinity;
    return this.random.int(Math.ceil(mean / 2), Math.ceil((mean * 3) / 2));
  }
}
