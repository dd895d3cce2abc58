/**
 * Runs the Raft groups of one node: feeds them ticks and messages, and drives their Readies
 * through one loop that persists every group's work in one transaction (one fsync), sends the
 * messages, applies committed entries and answers waiting clients.
 */
import {
  NoLeaderError,
  ProposalDroppedError,
  RawNode,
  committedOnDisk,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type GroupId,
  type Message,
  type NodeId,
  type RaftStatus,
  type Ready,
} from "../raft/index.js";
import {
  ABSENT_VERSION,
  decide,
  decodeCommand,
  encodeCommand,
  type KvCommand,
  type KvCommandInput,
  type KvResult,
} from "../kv/commands.js";
import { pause } from "./pause.js";
import type { DurableStore, GroupUpdate, KvWrite } from "./ports.js";
import { SnapshotReceiver, SnapshotSender, isStreamMessage } from "./snapshot-transfer.js";

export type ReadLevel = "strong" | "weak" | "eventual";

/** The request could not be served now (no leader, lost leadership, timed out). Retry later. */
export class UnavailableError extends Error {
  override readonly name: string = "UnavailableError";
  constructor(message: string) {
    super(message);
  }
}

/**
 * The write was not appended to any log (the leader refused it, or this node could not propose
 * it): it will never be applied, so it is safe to send again once a leader can take it.
 */
export class WriteNotAppliedError extends UnavailableError {
  override readonly name = "WriteNotAppliedError";
}

/**
 * Applied entries between snapshots, per group; half of them stay below each snapshot. A
 * snapshot costs little here (the image is the live KV table; taking one records a point and
 * compacts the log below it), while the retained log costs disk and page cache on every node. At
 * 10,000 a 64-partition node may keep ~960,000 entries; after a minute of c=64 puts its
 * file-backed RSS was 152 MB and growing, against 88 MB at 1,000 (~96,000 entries at most, about
 * etcd's 100,000-entry snapshot count), for the same throughput and CPU per put.
 *
 * The agent's LMDB store bounds the log itself instead (`NodeStoreOptions.logRetainEntries`,
 * given half of this): at every flush, for every group at once, which keeps the file smaller
 * still and costs fewer disk writes (see `NodeStore.planRetention`).
 */
export const DEFAULT_SNAPSHOT_ENTRIES = 1_000;

/** Resubmitting a refused write: 5, 10, 20, 40, 80, then every 100 ms, at most 30 times (~2.6 s). */
const RESUBMIT_BASE_MS = 5;
const RESUBMIT_MAX_MS = 100;
const MAX_RESUBMITS = 30;

export interface HostLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface HostObserver {
  onFsync?(ms: number, groups: number): void;
  onApply?(ms: number, entries: number): void;
  onLeaderChange?(group: GroupId, leader: NodeId): void;
  onProposal?(group: GroupId, outcome: "ok" | "dropped" | "refused"): void;
  /** A leader handed this node a group (`timeoutNow`) while it declines leadership. */
  onDeclinedHandOver?(group: GroupId): void;
  /** A read's read index was asked for again (the first request got no answer). */
  onReadRetry?(group: GroupId): void;
}

export interface HostOptions {
  readonly nodeId: NodeId;
  readonly store: DurableStore;
  readonly send: (msgs: readonly Message[]) => void;
  readonly random: () => number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly logger: HostLogger;
  readonly observer?: HostObserver;
  /** Bound on client requests waiting in one group (writes and reads together). */
  readonly maxPendingPerGroup?: number;
  /** Take a snapshot (and compact the log) every this many applied entries. */
  readonly snapshotEntries?: number;
  /** Entries kept below a snapshot, so a follower a little behind catches up from the log. */
  readonly snapshotRetainEntries?: number;
  /** Chunk size of snapshot streams to followers. */
  readonly snapshotChunkBytes?: number;
  /** A request finding no leader re-checks this often, for up to four times as long. */
  readonly leaderWaitMs?: number;
  /**
   * Groups whose applies never wait to share a later save's commit: their state is read straight
   * from the store, without a read barrier (the meta group: members, ring, leadership pauses).
   */
  readonly eagerApplyGroups?: readonly GroupId[];
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(err: Error): void;
}

/** A read waiting for its read index: asked again when unanswered (see `askReadsAgain`). */
interface PendingRead extends Waiter<number> {
  readonly context: Uint8Array;
  readonly quorum: boolean;
  /** The host tick at which it was last asked. */
  askedAt: number;
}

class Replica {
  readonly pendingWrites = new Map<string, Waiter<KvResult>>();
  readonly pendingReads = new Map<string, PendingRead>();
  /** Readers waiting for the state machine to reach an index, in no particular order. */
  appliedWaiters: { index: number; waiter: Waiter<void> }[] = [];
  applied: number;
  /**
   * The last entry whose outcome was decided (and its writer answered). Runs ahead of `applied`:
   * outcomes are decided when an entry commits, the KV table's own write follows in the apply
   * chain. `decidedKeys` holds, for every key written by a decided but not yet applied entry, the
   * version it will have (null: absent) and that entry's index, so the next decision sees it.
   */
  decided: number;
  readonly decidedKeys = new Map<string, { version: string | null; index: number }>();
  leader: NodeId = "";
  /** Requests waiting for an election or a transfer to finish. */
  leaderWaiters: (() => void)[] = [];
  /** The index of the newest snapshot this node took or installed. */
  snapshotIndex = 0;
  /** When (ms) a leader last sent this replica an append, heartbeat or snapshot. */
  lastLeaderContactMs = Date.now();

  constructor(
    readonly group: GroupId,
    readonly raw: RawNode,
    applied: number,
  ) {
    this.applied = applied;
    this.decided = applied;
  }

  pendingCount(): number {
    return this.pendingWrites.size + this.pendingReads.size + this.appliedWaiters.length;
  }

  failAll(err: Error): void {
    for (const w of this.pendingWrites.values()) w.reject(err);
    for (const w of this.pendingReads.values()) w.reject(err);
    for (const { waiter } of this.appliedWaiters) waiter.reject(err);
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.appliedWaiters = [];
  }
}

/** A group's entries committed in one Ready turn, with the KV writes already decided for them. */
interface PendingApply {
  readonly r: Replica;
  readonly entries: readonly Entry[];
  readonly writes: Map<number, KvWrite>;
}

export class RaftHost {
  private readonly replicas = new Map<GroupId, Replica>();
  private loopRunning = false;
  private loopAgain = false;
  /** Called when the ready loop next goes idle (`stop` waits for the turn in flight). */
  private loopIdle: (() => void)[] = [];
  private stopped = false;
  private requestSeq = 0;
  /**
   * Request ids are this prefix and a sequence number: the start time tells this run's ids from
   * an earlier run's (the sequence starts over), without formatting the clock for every request.
   */
  private readonly requestPrefix: string;
  /** Host ticks so far: a group added later starts its count here (see `RaftConfig.startTick`). */
  private ticks = 0;
  /**
   * State machine work of every group, in Ready order; the ready loop does not wait for it. One
   * chain for the node, not one per group: a turn's committed entries, whatever their groups,
   * are one write job (the per-group cost of a job, its promises and its applied record's
   * planning, was a large part of a put's CPU with 64 groups).
   */
  private applyChain: Promise<void> = Promise.resolve();
  private readonly maxPending: number;
  /** Set when the ready loop failed on disk: the node must not go on as if nothing happened. */
  fatal: Error | null = null;
  /** See `declineLeadership`: until then (ms since the epoch) hand-overs to this node are refused. */
  private declineUntil = 0;

  readonly snapshots: { sender: SnapshotSender; receiver: SnapshotReceiver };
  private readonly snapshotEntries: number;
  /** How often a request waiting for a leader looks again (about one heartbeat). */
  private readonly leaderWaitMs: number;
  /** An unanswered read is asked again after this many ticks (half an election timeout). */
  private readonly readRetryTicks: number;
  private readonly snapshotRetain: number;
  /** See `HostOptions.eagerApplyGroups`. */
  private readonly eagerApply: ReadonlySet<GroupId>;

  constructor(private readonly opts: HostOptions) {
    this.requestPrefix = `${opts.nodeId}:${Date.now().toString(36)}:`;
    this.eagerApply = new Set(opts.eagerApplyGroups ?? []);
    this.maxPending = opts.maxPendingPerGroup ?? 10_000;
    this.snapshotEntries = opts.snapshotEntries ?? DEFAULT_SNAPSHOT_ENTRIES;
    this.leaderWaitMs = opts.leaderWaitMs ?? 250;
    this.readRetryTicks = Math.max(1, Math.floor((opts.electionTicks ?? 10) / 2));
    this.snapshotRetain = opts.snapshotRetainEntries ?? Math.floor(this.snapshotEntries / 2);
    const transfer = {
      nodeId: opts.nodeId,
      store: opts.store,
      send: (m: Message) => opts.send([m]),
      logger: opts.logger,
      ...(opts.snapshotChunkBytes ? { chunkBytes: opts.snapshotChunkBytes } : {}),
    };
    this.snapshots = {
      sender: new SnapshotSender(transfer, (peer, group, ok) => {
        this.replicas.get(group)?.raw.reportSnapshot(peer, ok);
        this.kick();
      }),
      receiver: new SnapshotReceiver(transfer, (m) => this.deliverSnapshot(m)),
    };
  }

  /** Messages leave through here: the core's snapshot requests become chunked streams. */
  private sendOut(msgs: readonly Message[]): void {
    const plain: Message[] = [];
    for (const m of msgs) {
      if (m.type === "snap") this.snapshots.sender.start(m);
      else plain.push(m);
    }
    if (plain.length > 0) this.opts.send(plain);
  }

  /** A fully staged snapshot goes to the core, which answers with a Ready that swaps it in. */
  private deliverSnapshot(m: Message): void {
    const r = this.replicas.get(m.group);
    const meta = m.snapshot!.metadata;
    if (!r) {
      this.opts.store.discardStagedSnapshot(m.group);
      return;
    }
    const st = r.raw.status();
    // The core ignores a stale term and refuses a snapshot it has already committed past; then
    // the staged image would never be swapped in.
    if (m.term < st.term || meta.index <= st.commit) this.opts.store.discardStagedSnapshot(m.group);
    r.raw.step(m);
    this.kick();
  }

  addGroup(group: GroupId): void {
    if (this.replicas.has(group)) throw new Error(`group ${group} already hosted`);
    const applied = this.opts.store.appliedIndex(group);
    const raw = new RawNode({
      id: this.opts.nodeId,
      group,
      storage: this.opts.store.storage(group),
      random: this.opts.random,
      electionTicks: this.opts.electionTicks ?? 10,
      heartbeatTicks: this.opts.heartbeatTicks ?? 1,
      startTick: this.ticks,
      applied,
      forwardProposals: true,
    });
    const replica = new Replica(group, raw, applied);
    replica.snapshotIndex = this.opts.store.storage(group).snapshot().metadata.index;
    this.replicas.set(group, replica);
    this.kick();
  }

  groups(): GroupId[] {
    return [...this.replicas.keys()];
  }

  hosts(group: GroupId): boolean {
    return this.replicas.has(group);
  }

  /** Milliseconds since a leader last reached this replica (0 while it leads the group itself). */
  sinceLeaderContactMs(group: GroupId): number {
    const r = this.replica(group);
    if (r.leader === this.opts.nodeId) r.lastLeaderContactMs = Date.now();
    return Date.now() - r.lastLeaderContactMs;
  }

  /**
   * Deletes the data of a group this node no longer runs (see `removeGroup`): only once the
   * group's current configuration is known to exclude this node, or a wiped voter could vote.
   */
  purgeGroup(group: GroupId): Promise<void> {
    if (this.replicas.has(group)) throw new Error(`group ${group} still runs here`);
    return this.opts.store.deleteGroup(group);
  }

  /** Whether the group may be added again (its data is not being deleted). */
  canHost(group: GroupId): boolean {
    return !this.opts.store.isDeleting(group);
  }

  /** Stops hosting a group (its data stays on disk); waiting clients get `UnavailableError`. */
  removeGroup(group: GroupId): void {
    const r = this.replicas.get(group);
    if (!r) return;
    this.replicas.delete(group);
    r.failAll(new UnavailableError(`this node no longer hosts group ${group}`));
  }

  proposeConfChange(group: GroupId, cc: ConfChange): void {
    this.replica(group).raw.proposeConfChange(cc);
    this.kick();
  }

  status(group: GroupId): RaftStatus {
    return this.replica(group).raw.status();
  }

  /** The group's latest appended membership (as `status(group).confState`, for hot paths). */
  confState(group: GroupId): ConfState {
    return this.replica(group).raw.confState;
  }

  /**
   * The configuration in force at the commit index. `status().confState` is the latest appended
   * one, which takes effect at once but may still be undone while it is not committed.
   */
  committedConfState(group: GroupId): ConfState {
    const raw = this.replica(group).raw;
    return raw.confStateAt(raw.status().commit);
  }

  private replica(group: GroupId): Replica {
    const r = this.replicas.get(group);
    if (!r) throw new Error(`group ${group} is not hosted here`);
    return r;
  }

  tick(): void {
    this.ticks++;
    for (const r of this.replicas.values()) {
      r.raw.tick();
      if (r.pendingReads.size > 0) this.askReadsAgain(r, this.ticks - this.readRetryTicks);
    }
    this.kick();
  }

  /**
   * Asks again for the read index of every read last asked at or before tick `before`. A request
   * can vanish without an answer: a node that no longer leads drops one forwarded to it, and a
   * leader that steps down (a hand-over, an election) forgets those it was confirming. Unasked,
   * such a read would wait for its deadline (the API's 5 s) and fail. Every answer confirms a
   * leadership after the read arrived, so whichever comes first is a correct read index.
   */
  private askReadsAgain(r: Replica, before: number): void {
    for (const read of r.pendingReads.values()) {
      if (read.askedAt > before) continue;
      try {
        r.raw.readIndex(read.context, { quorum: read.quorum });
        read.askedAt = this.ticks;
        this.opts.observer?.onReadRetry?.(r.group);
      } catch (err) {
        if (!(err instanceof NoLeaderError)) throw err;
        return; // No leader to ask yet: the next tick or the next leader tries again.
      }
    }
  }

  /** Delivers messages from a peer. Messages for groups not hosted here are dropped. */
  receive(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      if (isStreamMessage(m)) {
        if (m.type === "snap") this.snapshots.receiver.onChunk(m);
        else this.snapshots.sender.onAck(m);
        continue;
      }
      const r = this.replicas.get(m.group);
      if (!r) continue;
      if (m.type === "prop" && m.reject) {
        this.refused(r, m);
        continue;
      }
      if (m.type === "timeoutNow" && this.decliningLeadership()) {
        this.opts.logger.info("declined a leadership hand-over: this node stepped down", {
          group: m.group,
          from: m.from,
        });
        this.opts.observer?.onDeclinedHandOver?.(m.group);
        continue;
      }
      if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") r.lastLeaderContactMs = Date.now();
      r.raw.step(m);
    }
    this.kick();
  }

  /** The leader sent back writes this node forwarded to it: fail their writers, who may retry. */
  private refused(r: Replica, m: Message): void {
    for (const e of m.entries) {
      let id: string;
      try {
        id = decodeCommand(e.data).id;
      } catch {
        continue; // Not a write of ours; nobody waits for it.
      }
      const w = r.pendingWrites.get(id);
      if (!w) continue;
      r.pendingWrites.delete(id);
      this.opts.observer?.onProposal?.(r.group, "refused");
      w.reject(
        new WriteNotAppliedError(`${m.from} did not take the write (leadership is moving, or it is busy)`),
      );
    }
  }

  campaign(group: GroupId): void {
    this.replica(group).raw.campaign();
    this.kick();
  }

  /**
   * Until `untilMs` (ms since the epoch), a leader's hand-over (`timeoutNow`) is dropped instead
   * of campaigned on: this process stepped down before a restart. A hand-over already on its way
   * when the other leaders learned of the step-down lands here and goes no further; its leader
   * gives up the transfer after an election timeout and leads on. Elections are unaffected, so a
   * group with no other candidate still gets this node as leader.
   */
  declineLeadership(untilMs: number): void {
    this.declineUntil = untilMs;
  }

  decliningLeadership(now = Date.now()): boolean {
    return now < this.declineUntil;
  }

  transferLeadership(group: GroupId, to: NodeId): void {
    this.replica(group).raw.transferLeadership(to);
    this.kick();
  }

  reportUnreachable(peer: NodeId): void {
    for (const r of this.replicas.values()) r.raw.reportUnreachable(peer);
    this.kick();
  }

  nextRequestId(): string {
    return this.requestPrefix + (this.requestSeq++).toString(36);
  }

  /**
   * Proposes a write and resolves with its outcome once it is decided here. A write that provably
   * never entered a log (the leader was handing leadership over, or refused it) is proposed
   * again, with a short backoff, until `signal` fires: the writer gets the next leader's answer
   * in milliseconds instead of waiting out its timeout. A write that may have been appended is
   * never proposed twice.
   */
  async propose(group: GroupId, cmd: KvCommandInput, signal?: AbortSignal): Promise<KvResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.proposeOnce(group, cmd, signal);
      } catch (err) {
        if (!(err instanceof WriteNotAppliedError) || attempt >= MAX_RESUBMITS || signal?.aborted) throw err;
        await pause(Math.min(RESUBMIT_BASE_MS << attempt, RESUBMIT_MAX_MS), signal);
      }
    }
  }

  private async proposeOnce(group: GroupId, cmd: KvCommandInput, signal?: AbortSignal): Promise<KvResult> {
    const r = this.replica(group);
    this.checkUsable(r);
    await this.waitForStableLeader(r, signal);
    // The node may have stopped during that await, and nothing would answer a write registered
    // now. Here, not inside the helper: it returns without yielding when the leader is settled.
    this.checkUsable(r);
    const id = this.nextRequestId();
    return new Promise<KvResult>((resolve, reject) => {
      const cleanup = onAbort(signal, () => {
        r.pendingWrites.delete(id);
        reject(new UnavailableError("timed out waiting for the write to commit; it may still be applied"));
      });
      r.pendingWrites.set(id, {
        resolve: (v) => (cleanup(), resolve(v)),
        reject: (e) => (cleanup(), reject(e)),
      });
      try {
        r.raw.propose(encodeCommand(cmd, id));
        this.opts.observer?.onProposal?.(group, "ok");
      } catch (err) {
        r.pendingWrites.delete(id);
        cleanup();
        this.opts.observer?.onProposal?.(group, "dropped");
        if (err instanceof ProposalDroppedError) reject(new WriteNotAppliedError(err.message));
        else reject(err as Error);
        return;
      }
      this.kick();
    });
  }

  /**
   * Waits until local state may answer a read at `level`: strong confirms leadership through a
   * quorum (ReadIndex), weak asks only for the leader's commit index, eventual answers at once.
   */
  async readBarrier(group: GroupId, level: ReadLevel, signal?: AbortSignal): Promise<void> {
    if (level === "eventual") return;
    const r = this.replica(group);
    this.checkUsable(r);
    await this.waitForStableLeader(r, signal);
    this.checkUsable(r); // As in proposeOnce.
    const ctx = this.nextRequestId();
    const context = new TextEncoder().encode(ctx);
    const quorum = level === "strong";
    const index = await new Promise<number>((resolve, reject) => {
      const cleanup = onAbort(signal, () => {
        r.pendingReads.delete(ctx);
        reject(new UnavailableError("timed out confirming the leader for a read"));
      });
      r.pendingReads.set(ctx, {
        resolve: (v) => (cleanup(), resolve(v)),
        reject: (e) => (cleanup(), reject(e)),
        context,
        quorum,
        askedAt: this.ticks,
      });
      try {
        r.raw.readIndex(context, { quorum });
      } catch (err) {
        r.pendingReads.delete(ctx);
        cleanup();
        reject(err instanceof NoLeaderError ? new UnavailableError("no leader is known") : (err as Error));
        return;
      }
      this.kick();
    });
    await this.waitApplied(r, index, signal);
  }

  /**
   * An election or a leadership transfer takes a few ticks; a request that arrives meanwhile
   * waits for it (within its own deadline) instead of failing at once.
   */
  private async waitForStableLeader(r: Replica, signal?: AbortSignal): Promise<void> {
    const settled = (): boolean => r.raw.leader !== "" && r.raw.leadTransferee === "";
    if (settled()) return;
    const deadline = Date.now() + 4 * this.leaderWaitMs;
    while (!settled() && Date.now() < deadline && !signal?.aborted && !this.stopped) {
      await new Promise<void>((resolve) => {
        r.leaderWaiters.push(resolve);
        // Also re-check on every tick: a transfer that is abandoned changes no leader.
        setTimeout(resolve, this.leaderWaitMs).unref();
      });
    }
  }

  private waitApplied(r: Replica, index: number, signal?: AbortSignal): Promise<void> {
    if (r.applied >= index) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry = {
        index,
        waiter: { resolve: () => (cleanup(), resolve()), reject: (e: Error) => (cleanup(), reject(e)) },
      };
      const cleanup = onAbort(signal, () => {
        r.appliedWaiters = r.appliedWaiters.filter((w) => w !== entry);
        reject(new UnavailableError("timed out waiting for this replica to catch up"));
      });
      r.appliedWaiters.push(entry);
    });
  }

  private checkUsable(r: Replica): void {
    if (this.fatal) throw this.fatal;
    if (this.stopped) throw new UnavailableError("this node is shutting down");
    if (r.pendingCount() >= this.maxPending)
      throw new UnavailableError("too many requests in flight on this node");
  }

  /** Schedules the ready loop; many kicks in one turn run it once. */
  private kick(): void {
    if (this.loopRunning) {
      this.loopAgain = true;
      return;
    }
    this.loopRunning = true;
    setImmediate(() => void this.loop());
  }

  /**
   * The hard state a save writes: only when its term or vote differs from the store's. The commit
   * index is volatile state in Raft (it is learned again from the leader, and on restart the
   * applied index stands for it, see the core's constructor), and nearly every turn that appends
   * entries also moves it: at 64 writers that was one more record, encoded and put, per group per
   * turn on every node. Compared with the store's own record, which a snapshot installed outside
   * this loop may also have raised.
   */
  private hardStateToSave(group: GroupId, hs: HardState | null): HardState | null {
    if (hs === null) return null;
    const stored = this.opts.store.storage(group).initialState().hardState;
    return hs.term !== stored.term || hs.vote !== stored.vote ? hs : null;
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped) {
        this.loopAgain = false;
        const batch: { r: Replica; rd: Ready }[] = [];
        for (const r of this.replicas.values()) if (r.raw.hasReady()) batch.push({ r, rd: r.raw.ready() });
        if (batch.length === 0) break;
        await this.handleBatch(batch);
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.loopRunning = false;
      if (this.loopAgain && !this.stopped && !this.fatal) this.kick();
      else for (const idle of this.loopIdle.splice(0)) idle();
    }
  }

  private async handleBatch(batch: { r: Replica; rd: Ready }[]): Promise<void> {
    // 0. A leader's replication leaves at once: followers write while we write (thesis §10.2.1).
    const early: Message[] = [];
    for (const { rd } of batch) early.push(...rd.earlyMessages);
    if (early.length > 0) this.sendOut(early);
    // 1. Answer the writers of committed entries this node already has on disk (every entry before
    //    this Ready's new ones). A majority holds them, so their outcome is final: the answer need
    //    not wait for this turn's fsync, which is for other entries. This saves each write a whole
    //    turn when the loop is busy, as it is under load (the commit shows in the turn after the
    //    one whose fsync was under way when the acknowledgement arrived).
    const applies: PendingApply[] = [];
    for (const { r, rd } of batch) {
      if (rd.committedEntries.length === 0) continue;
      const apply: PendingApply = { r, entries: rd.committedEntries, writes: new Map() };
      this.decideCommitted(r, committedOnDisk(rd), apply.writes);
      applies.push(apply);
    }
    // 2. Persist every group's hard state, entries and snapshot in one transaction, one fsync.
    const updates: GroupUpdate[] = [];
    for (const { r, rd } of batch) {
      // A commit index alone (no term, vote, entry or snapshot to sync) is not worth a write:
      // it is learned again from the leader, and on restart the applied index stands for it.
      if (rd.mustSync || rd.entries.length > 0 || rd.snapshot) {
        updates.push({
          group: r.group,
          hardState: this.hardStateToSave(r.group, rd.hardState),
          entries: rd.entries,
          snapshot: rd.snapshot,
        });
      }
    }
    if (updates.length > 0) {
      const t0 = performance.now();
      await this.opts.store.saveBatch(updates);
      this.opts.observer?.onFsync?.(performance.now() - t0, updates.length);
    }
    // The rest of the committed entries: on this node's disk now (those decided above are skipped).
    for (const { r, entries, writes } of applies) this.decideCommitted(r, entries, writes);
    // 3. Only now may anything that depends on those writes leave the node.
    const out: Message[] = [];
    for (const { rd } of batch) out.push(...rd.messages);
    if (out.length > 0) this.sendOut(out);
    // 4. Apply in the background, in order: the next Ready's write can share the apply's
    //    transaction instead of waiting for it. Readers wait for `applied`, not for this loop.
    const installed: { r: Replica; index: number }[] = [];
    const newLeader: Replica[] = [];
    for (const { r, rd } of batch) {
      if (rd.softState && rd.softState.leader !== r.leader) {
        r.leader = rd.softState.leader;
        this.opts.observer?.onLeaderChange?.(r.group, r.leader);
        const waiters = r.leaderWaiters;
        r.leaderWaiters = [];
        for (const w of waiters) w();
        if (r.leader !== "") newLeader.push(r);
      }
      if (rd.snapshot) {
        const index = rd.snapshot.metadata.index;
        // The image (swapped in by the save above) holds every earlier decision.
        r.decidedKeys.clear();
        r.decided = Math.max(r.decided, index);
        installed.push({ r, index });
      }
      for (const rs of rd.readStates) {
        const ctx = new TextDecoder().decode(rs.context);
        const w = r.pendingReads.get(ctx);
        if (w) {
          r.pendingReads.delete(ctx);
          w.resolve(rs.index);
        }
      }
      r.raw.advance(rd);
    }
    // Reads asked of the previous leader (which dropped or forgot them) go to the new one at once.
    for (const r of newLeader) if (r.pendingReads.size > 0) this.askReadsAgain(r, Infinity);
    if (newLeader.length > 0) this.kick();
    if (applies.length > 0 || installed.length > 0) this.enqueueApply(applies, installed);
  }

  /** Runs one turn's state machine work after everything queued before it. */
  private enqueueApply(
    applies: readonly PendingApply[],
    installed: readonly { r: Replica; index: number }[],
  ): void {
    this.applyChain = this.applyChain
      .then(async () => {
        // Once stopped, the store may be closing: what is not applied yet is replayed from the
        // log at the next start, as after a crash.
        if (this.fatal || this.stopped) return;
        for (const { r, index } of installed) {
          r.applied = Math.max(r.applied, index);
          r.snapshotIndex = Math.max(r.snapshotIndex, index);
        }
        if (applies.length > 0) await this.apply(applies);
        const touched = new Set<Replica>();
        for (const { r } of installed) touched.add(r);
        for (const { r } of applies) touched.add(r);
        for (const r of touched) this.releaseAppliedWaiters(r);
        if (this.stopped) return;
        const snapshots: Promise<void>[] = [];
        for (const { r } of applies) snapshots.push(this.maybeSnapshot(r));
        await Promise.all(snapshots);
      })
      .catch((err: unknown) => this.fail(err as Error));
  }

  private fail(err: Error): void {
    if (this.fatal) return;
    // A failed write leaves the state in an unknown shape: stop serving rather than risk
    // acknowledging what is not on disk. The agent exits and the supervisor restarts it.
    this.fatal = err;
    this.opts.logger.error("storage failed; this node stops serving", { error: String(err) });
    for (const r of this.replicas.values()) r.failAll(new UnavailableError("node storage failed"));
  }

  /**
   * Decides the outcome of newly committed entries now, in log order, and answers their writers:
   * an entry on a majority's disk has this outcome on every replica, so a crash before the KV
   * table's own commit only replays it (etcd answers at the same point). Adds the KV writes, by
   * index, to `writes` for the apply chain to persist. Entries decided already are skipped.
   */
  private decideCommitted(r: Replica, entries: readonly Entry[], writes: Map<number, KvWrite>): void {
    const current = (key: string): string => {
      const pending = r.decidedKeys.get(key);
      if (pending) return pending.version ?? ABSENT_VERSION;
      return this.opts.store.get(r.group, key)?.version ?? ABSENT_VERSION;
    };
    for (const entry of entries) {
      if (entry.index <= r.decided) continue;
      r.decided = entry.index;
      if (entry.type !== "normal" || entry.data.length === 0) continue;
      let cmd: KvCommand;
      try {
        cmd = decodeCommand(entry.data);
      } catch (err) {
        // Every replica skips the same bad entry, so the state machines stay identical.
        this.opts.logger.warn("skipping an undecodable log entry", {
          index: entry.index,
          error: String(err),
        });
        continue;
      }
      const result = decide(cmd, () => current(cmd.key), entry.index);
      const w = r.pendingWrites.get(cmd.id);
      if (w) {
        r.pendingWrites.delete(cmd.id);
        w.resolve(result);
      }
      if (!result.ok) continue;
      if (cmd.op === "del") {
        writes.set(entry.index, { kind: "del", key: cmd.key });
        r.decidedKeys.set(cmd.key, { version: null, index: entry.index });
      } else {
        writes.set(entry.index, { kind: "put", key: cmd.key, value: cmd.value, version: result.version });
        r.decidedKeys.set(cmd.key, { version: result.version, index: entry.index });
      }
    }
  }

  private async apply(applies: readonly PendingApply[]): Promise<void> {
    const t0 = performance.now();
    let count = 0;
    // The writers have their answers (decideCommitted), and readers see a lazy apply at once
    // (the store buffers it in memory and writes it to disk later, with others).
    const lazy = applies.every(({ r }) => !this.eagerApply.has(r.group));
    await this.opts.store.apply(
      applies.map(({ r, entries, writes }) => {
        count += entries.length;
        return {
          group: r.group,
          entries,
          decide: (entry: Entry): KvWrite => writes.get(entry.index) ?? NO_WRITE,
        };
      }),
      { lazy },
    );
    this.opts.observer?.onApply?.(performance.now() - t0, count);
    for (const { r, entries } of applies) {
      r.applied = Math.max(r.applied, entries[entries.length - 1]!.index);
      // The table has these now; a key written again later keeps its newer pending version.
      if (r.decidedKeys.size > 0) {
        for (const [key, d] of r.decidedKeys) if (d.index <= r.applied) r.decidedKeys.delete(key);
      }
    }
  }

  /**
   * Bounds the log: a snapshot every `snapshotEntries` applied entries, then compaction; unless
   * the store bounds it itself.
   */
  private async maybeSnapshot(r: Replica): Promise<void> {
    if (this.opts.store.compactsOwnLog || r.applied - r.snapshotIndex < this.snapshotEntries) return;
    const index = r.applied;
    await this.opts.store.createSnapshot(r.group, index, r.raw.confStateAt(index), this.snapshotRetain);
    r.snapshotIndex = index;
  }

  private releaseAppliedWaiters(r: Replica): void {
    if (r.appliedWaiters.length === 0) return;
    const ready = r.appliedWaiters.filter((w) => w.index <= r.applied);
    if (ready.length === 0) return;
    r.appliedWaiters = r.appliedWaiters.filter((w) => w.index > r.applied);
    for (const w of ready) w.waiter.resolve();
  }

  /**
   * Hands leadership of every group this node leads to the most caught-up voter, preferring
   * voters that `avoid` does not name (boards that stepped down themselves); an avoided voter
   * takes over only when no other can. Returns the groups whose hand-over it started.
   */
  transferAllLeadership(avoid: (id: NodeId) => boolean = () => false): GroupId[] {
    const started: GroupId[] = [];
    for (const r of this.replicas.values()) {
      const st = r.raw.status();
      if (st.role !== "leader") continue;
      let best: NodeId | null = null;
      let bestPreferred = false;
      let bestMatch = -1;
      for (const [id, pr] of st.progress) {
        if (id === this.opts.nodeId || pr.learner || !st.confState.voters.includes(id)) continue;
        // Any preferred voter beats every avoided one; among equals, the most caught up wins.
        const preferred = !avoid(id);
        if (
          best === null ||
          (preferred && !bestPreferred) ||
          (preferred === bestPreferred && pr.match > bestMatch)
        ) {
          best = id;
          bestPreferred = preferred;
          bestMatch = pr.match;
        }
      }
      if (best) {
        r.raw.transferLeadership(best);
        started.push(r.group);
      }
    }
    this.kick();
    return started;
  }

  /** Whether this node leads `group` and is handing it over (the transfer neither done nor given up). */
  handingOver(group: GroupId): boolean {
    return (this.replicas.get(group)?.raw.leadTransferee ?? "") !== "";
  }

  /**
   * Stops taking work and answers every waiting request. Resolves once the ready loop's turn in
   * flight has saved what it started, so the store can close after it; no store work begins after
   * this is called (applies left undone replay from the log at the next start).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.snapshots.sender.stop();
    this.snapshots.receiver.stop();
    for (const r of this.replicas.values()) r.failAll(new UnavailableError("this node is shutting down"));
    if (this.loopRunning) await new Promise<void>((resolve) => this.loopIdle.push(resolve));
  }
}

/** Runs `fn` when `signal` aborts; returns a function that detaches the listener. */
function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    queueMicrotask(fn);
    return () => {};
  }
  signal.addEventListener("abort", fn, { once: true });
  return () => signal.removeEventListener("abort", fn);
}

const NO_WRITE: KvWrite = { kind: "none" };

export { ABSENT_VERSION };
