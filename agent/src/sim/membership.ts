/**
 * The membership controller: it walks the group through the moves the placement layer makes in
 * production, one server at a time. A brand-new node (a fresh id, an empty disk) joins as a
 * learner, is promoted once it has caught up, and then a voter is removed so the group returns
 * to its size. A leader is never asked to remove itself; it hands leadership away first. A node
 * whose removal has committed is shut down for good, and its id is never reused.
 */
import { ProposalDroppedError, TransferRejectedError, type ConfChange, type NodeId } from "../raft/index.js";
import type { SimNode } from "./node.js";
import type { Random } from "./random.js";

export interface MembershipTarget {
  tickNumber(): number;
  leader(): SimNode | null;
  node(id: NodeId): SimNode | undefined;
  /** Creates and boots a node with an empty disk. */
  addNode(id: NodeId): SimNode;
  decommission(id: NodeId): void;
  trace(line: string): void;
}

export interface MembershipPlan {
  /** Voters the group returns to after each add/remove cycle. */
  readonly targetVoters: number;
  /** Mean ticks between controller actions (Infinity: no membership changes). */
  readonly intervalTicks: number;
  /** Bound on nodes ever added, which bounds the run's node count. */
  readonly maxAdded: number;
  /** The first id number of added nodes (`n<first>`, `n<first+1>`, ...). */
  readonly firstNewId: number;
}

export interface MembershipStats {
  proposed: number;
  applied: number;
  added: number;
  removed: number;
}

export class MembershipController {
  private nextActionAt: number;
  private added = 0;
  /** A node created for an add whose proposal was dropped; it is offered again next time. */
  private spare: NodeId | null = null;
  private readonly removals = new Set<NodeId>();
  private enabled = true;
  readonly stats: MembershipStats = { proposed: 0, applied: 0, added: 0, removed: 0 };

  constructor(
    private readonly plan: MembershipPlan,
    private readonly random: Random,
    private readonly target: MembershipTarget,
  ) {
    this.nextActionAt = this.nextInterval(0);
  }

  stop(): void {
    this.enabled = false;
  }

  /** A configuration entry committed somewhere (any node applying it proves that). */
  confApplied(cc: ConfChange): void {
    this.stats.applied++;
    if (cc.type === "removeNode") this.removals.add(cc.nodeId);
  }

  step(): void {
    // Committed removals are carried out even after the safety phase: the node is out of the group.
    for (const id of this.removals) {
      this.target.decommission(id);
      this.stats.removed++;
    }
    this.removals.clear();
    if (!this.enabled) return;
    const now = this.target.tickNumber();
    if (now < this.nextActionAt) return;
    this.nextActionAt = now + this.nextInterval(now);
    const leader = this.target.leader();
    const st = leader?.freshStatus();
    if (leader === null || st === null || st === undefined) return;
    const cs = st.confState;
    try {
      const learner = cs.learners[0];
      if (learner !== undefined) {
        const match = st.progress.get(learner)?.match ?? 0;
        const node = this.target.node(learner);
        if (node === undefined || node.decommissioned)
          this.propose(leader, { type: "removeNode", nodeId: learner });
        else if (match >= st.commit) this.propose(leader, { type: "addVoter", nodeId: learner });
      } else if (cs.voters.length > this.plan.targetVoters) {
        const others = cs.voters.filter((id) => id !== leader.id);
        if (others.length > 0 && this.random.chance(0.25)) {
          // Removing the leader itself is done by moving leadership first (thesis §3.10).
          const to = this.random.pick(others);
          this.target.trace(`membership: leader ${leader.id} hands over to ${to} before its removal`);
          leader.transferLeadership(to);
        } else if (others.length > 0) {
          this.propose(leader, { type: "removeNode", nodeId: this.random.pick(others) });
        }
      } else if (this.added < this.plan.maxAdded || this.spare !== null) {
        const id = this.spare ?? `n${this.plan.firstNewId + this.added++}`;
        if (this.spare === null) {
          this.target.addNode(id);
          this.stats.added++;
        }
        this.spare = id;
        this.propose(leader, { type: "addLearner", nodeId: id });
        this.spare = null;
      }
    } catch (err) {
      if (!(err instanceof ProposalDroppedError) && !(err instanceof TransferRejectedError)) throw err;
    }
  }

  private propose(leader: SimNode, cc: ConfChange): void {
    this.target.trace(`membership: ${leader.id} proposes ${cc.type} ${cc.nodeId}`);
    leader.proposeConfChange(cc);
    this.stats.proposed++;
  }

  private nextInterval(_now: number): number {
    const mean = this.plan.intervalTicks;
    if (!Number.isFinite(mean)) return Infinity;
    return this.random.int(Math.ceil(mean / 2), Math.ceil((mean * 3) / 2));
  }
}
