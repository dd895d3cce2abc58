/**
 * The fault injector of the safety phase: crashes and restarts, partitions of every shape (the
 * leader cut off more often than anyone, since that is where Raft's corner cases live), and
 * leadership transfers. Every choice comes from its own random stream, once per tick.
 */
import { TransferRejectedError, type Message, type NodeId } from "../raft/index.js";
import type { Network } from "./network.js";
import type { SimNode } from "./node.js";
import type { Random } from "./random.js";

export interface FaultPlan {
  /** Chance per tick that some node crashes. */
  readonly crashChance: number;
  /** At most this many members are down at once (crashes beyond it are skipped). */
  readonly maxDown: number;
  /** Chance that a node crashes right after a fsync, before sending what it made durable. */
  readonly crashAfterFsyncChance: number;
  /** Chance that a node reboots at once after sending a vote (it must remember the vote). */
  readonly crashAfterVoteChance: number;
  /** Chance per tick of a fault aimed at the leader: crashed, or cut off, for a short while. */
  readonly leaderFaultChance: number;
  /** Chance per tick that a partition starts (when none is in force). */
  readonly partitionChance: number;
  readonly partitionMinTicks: number;
  readonly partitionMaxTicks: number;
  /** Chance per tick that the leader is asked to hand leadership to another voter. */
  readonly transferChance: number;
}

/** What the injector may do to the cluster; implemented by the simulation. */
export interface FaultTarget {
  readonly network: Network<Message>;
  tickNumber(): number;
  /** Running nodes that have not been removed from the group. */
  upNodes(): SimNode[];
  /** Ids of every node not removed from the group, running or not. */
  memberIds(): NodeId[];
  leader(): SimNode | null;
  downCount(): number;
  crash(id: NodeId, downTicks: number, why: string): void;
  trace(line: string): void;
}

export interface FaultStats {
  crashes: number;
  partitions: number;
  transfers: number;
}

export class FaultInjector {
  private healAt = -1;
  private enabled = true;
  readonly stats: FaultStats = { crashes: 0, partitions: 0, transfers: 0 };

  constructor(
    private readonly plan: FaultPlan,
    private readonly random: Random,
    private readonly target: FaultTarget,
  ) {}

  /** Ends the safety phase: heals the network and injects nothing more. */
  stop(): void {
    this.enabled = false;
    this.target.network.healAll();
    this.healAt = -1;
  }

  step(): void {
    if (!this.enabled) return;
    const t = this.target;
    const now = t.tickNumber();
    if (this.healAt >= 0 && now >= this.healAt) {
      t.network.healAll();
      this.healAt = -1;
      t.trace("network healed");
    }
    if (this.random.chance(this.plan.crashChance)) this.crashSomeone();
    if (this.healAt < 0 && this.random.chance(this.plan.partitionChance)) this.partition(now);
    if (this.random.chance(this.plan.transferChance)) this.transfer();
    if (this.random.chance(this.plan.leaderFaultChance)) this.leaderFault(now);
  }

  /** Decides whether `node` crashes right after its fsync completed. */
  crashAfterFsync(node: SimNode): boolean {
    if (!this.enabled || !this.random.chance(this.plan.crashAfterFsyncChance)) return false;
    if (this.target.downCount() >= this.plan.maxDown) return false;
    this.stats.crashes++;
    this.target.crash(node.id, this.downtime(), "after fsync");
    return true;
  }

  /** Decides whether `node` reboots right after sending a granted vote. */
  crashAfterVote(node: SimNode): boolean {
    if (!this.enabled || !this.random.chance(this.plan.crashAfterVoteChance)) return false;
    if (this.target.downCount() >= this.plan.maxDown) return false;
    this.stats.crashes++;
    this.target.crash(node.id, this.random.int(0, 2), "right after voting");
    return true;
  }

  /**
   * A new leader lost soon after its election, before its own entries spread: the schedule that
   * leaves logs diverging at the same indexes (the Figure 8 scenario of the Raft paper).
   */
  private leaderFault(now: number): void {
    const t = this.target;
    const leader = t.leader();
    if (leader === null) return;
    if (this.healAt < 0 && this.random.chance(0.5)) {
      const others = t.memberIds().filter((id) => id !== leader.id);
      // "out": the leader still hears its clients and followers, so it keeps appending entries
      // that reach nobody, which is what a later leader may overwrite.
      const mode = this.random.pick(["both", "out"] as const);
      t.network.isolate(leader.id, others, mode);
      this.healAt = now + this.random.int(5, 60);
      this.stats.partitions++;
      t.trace(`partition: leader ${leader.id} isolated briefly (${mode}); heals at tick ${this.healAt}`);
    } else if (t.downCount() < this.plan.maxDown) {
      this.stats.crashes++;
      t.crash(leader.id, this.random.int(5, 80), "leader fault");
    }
  }

  private downtime(): number {
    // Mostly quick reboots (a vote may still be pending), sometimes long enough to need a snapshot.
    return this.random.chance(0.6) ? this.random.int(1, 15) : this.random.int(20, 300);
  }

  private crashSomeone(): void {
    const t = this.target;
    if (t.downCount() >= this.plan.maxDown) return;
    const leader = t.leader();
    const up = t.upNodes();
    if (up.length === 0) return;
    const victim = leader !== null && this.random.chance(0.5) ? leader : this.random.pick(up);
    this.stats.crashes++;
    t.crash(victim.id, this.downtime(), victim === leader ? "leader crash" : "crash");
  }

  private partition(now: number): void {
    const t = this.target;
    const ids = t.memberIds();
    if (ids.length < 2) return;
    const net = t.network;
    const leader = t.leader();
    const roll = this.random.next();
    let what: string;
    if (leader !== null && roll < 0.5) {
      const others = ids.filter((id) => id !== leader.id);
      const mode = this.random.pick(["both", "both", "in", "out"] as const);
      net.isolate(leader.id, others, mode);
      what = `leader ${leader.id} isolated (${mode})`;
    } else if (roll < 0.65) {
      const node = this.random.pick(ids);
      const mode = this.random.pick(["both", "in", "out"] as const);
      net.isolate(
        node,
        ids.filter((id) => id !== node),
        mode,
      );
      what = `${node} isolated (${mode})`;
    } else if (roll < 0.85) {
      const shuffled = this.random.shuffled(ids);
      const cut = this.random.int(1, Math.floor(ids.length / 2));
      const oneWay = this.random.chance(0.25);
      net.split(shuffled.slice(0, cut), shuffled.slice(cut), oneWay);
      what = `split ${shuffled.slice(0, cut).join(",")} | ${shuffled.slice(cut).join(",")}${oneWay ? " (one way)" : ""}`;
    } else {
      for (const a of ids) for (const b of ids) if (a !== b && this.random.chance(0.3)) net.cut(a, b);
      what = `random links cut`;
    }
    this.healAt = now + this.random.int(this.plan.partitionMinTicks, this.plan.partitionMaxTicks);
    this.stats.partitions++;
    t.trace(`partition: ${what}; cut ${net.describeCuts()}; heals at tick ${this.healAt}`);
  }

  private transfer(): void {
    const leader = this.target.leader();
    const st = leader?.freshStatus();
    if (leader === null || st === null || st === undefined) return;
    const others = st.confState.voters.filter((id) => id !== leader.id);
    if (others.length === 0) return;
    const to = this.random.pick(others);
    this.stats.transfers++;
    this.target.trace(`transfer leadership ${leader.id} -> ${to}`);
    try {
      leader.transferLeadership(to);
    } catch (err) {
      if (!(err instanceof TransferRejectedError)) throw err;
    }
  }
}
