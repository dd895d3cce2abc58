/**
 * One simulated board: a `RawNode` over a `MemoryStorage` that stands for its disk, the key-value
 * state machine, and the ready loop. The ready loop follows the contract on `Ready` with a slow
 * disk in between: the writes of a Ready reach the storage only when a simulated fsync completes
 * some time later, its messages leave only after that, and a crash before then loses both. After
 * a restart the state machine is rebuilt from the stored snapshot and the core replays the
 * committed log after it.
 */
import type { KvInput, KvOutput } from "../check/linearizability.js";
import {
  MemoryStorage,
  NoLeaderError,
  ProposalDroppedError,
  RawNode,
  committedOnDisk,
  decodeConfChange,
  type BugName,
  type ConfChange,
  type Entry,
  type Message,
  type NodeId,
  type RaftStatus,
  type Ready,
  type Role,
} from "../raft/index.js";
import type { LogView, SafetyChecker } from "./checkers.js";
import { hashBytes } from "./hash.js";
import { KvStore, decodeCommand, encodeCommand } from "./kv.js";
import type { Random } from "./random.js";

export const SIM_GROUP = 1;

/** A client's request as it reaches a node. */
export interface ClientRequest {
  readonly opId: number;
  readonly clientId: number;
  readonly input: KvInput;
}

/**
 * A node's answer. `fail` is definite: the operation had no effect (not the leader, no leader
 * known, proposal dropped, or its log slot went to another entry).
 */
export type ClientResponse =
  | { readonly kind: "ok"; readonly opId: number; readonly output: KvOutput }
  | { readonly kind: "fail"; readonly opId: number; readonly leaderHint: NodeId; readonly reason: string };

export interface NodeTuning {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readOnly: "safe" | "lease";
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  /** Fsync latency, in time units. */
  readonly fsyncMin: number;
  readonly fsyncMax: number;
  /** Take a snapshot every this many applied entries. */
  readonly snapshotEvery: number;
  /** Entries kept in the log behind a snapshot, for followers that lag only a little. */
  readonly keepEntries: number;
  /** A follower passes proposals on to its leader (the real host does; off in the one-group runs). */
  readonly forwardProposals?: boolean;
}

/**
 * A replica's state machine. The one-group simulator runs the clients' key-value map (`kvMachine`);
 * the multi-Raft simulator also runs the meta group's versioned records.
 */
export interface ReplicaMachine {
  /** Applies a normal entry's payload; returns the client operation it answers, if it is one. */
  apply(data: Uint8Array, index: number): { readonly opId: number; readonly output: KvOutput } | null;
  get(key: string): string | null;
  /** Equal states give equal digests (the checkers compare replicas with it). */
  digest(): number;
  /** The snapshot image; the factory rebuilds the machine from it. */
  encode(): Uint8Array;
}

/** Builds a machine from a snapshot image (empty for the bootstrap snapshot). */
export type MachineFactory = (image: Uint8Array) => ReplicaMachine;

/** The clients' key-value map, commands as `encodeCommand` writes them. */
export const kvMachine: MachineFactory = (image) => {
  const kv = KvStore.decode(image);
  return {
    apply: (data) => {
      const cmd = decodeCommand(data);
      return { opId: cmd.opId, output: kv.apply(cmd.input) };
    },
    get: (key) => kv.get(key),
    digest: () => kv.digest(),
    encode: () => kv.encode(),
  };
};

/** Which group a replica belongs to and what it runs; the one-group simulator uses the defaults. */
export interface ReplicaOptions {
  readonly group?: number;
  readonly machine?: MachineFactory;
}

/** What a node needs from the simulated world around it; passed in, never global. */
export interface NodeEnv {
  readonly checker: SafetyChecker;
  readonly random: Random;
  readonly bugs: ReadonlySet<BugName>;
  now(): number;
  sendPeer(m: Message): void;
  reply(clientId: number, response: ClientResponse): void;
  scheduleFsync(node: NodeId, incarnation: number, time: number): void;
  /** A configuration entry was applied (it is committed). */
  confApplied(node: NodeId, cc: ConfChange, index: number): void;
  /** The node may crash right after a fsync; the world decides. */
  afterFsync(node: NodeId): void;
  /** The node may crash right after it sent a vote (a reboot that must not forget it); the world decides. */
  afterVote(node: NodeId): void;
  trace(line: string): void;
  /** Feeds the run digest. */
  note(a: number, b: number, c: number): void;
}

interface PendingWrite {
  readonly clientId: number;
  readonly index: number;
}

interface PendingRead {
  readonly opId: number;
  readonly clientId: number;
  readonly key: string;
  /** Highest index known committed anywhere when the read was asked for. */
  readonly committedAtStart: number;
  /** This node's tick count when the read index was last asked for (asked again if unanswered). */
  askedAt: number;
}

interface ReadyRead extends PendingRead {
  readonly index: number;
}

export interface NodeStats {
  fsyncs: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  entriesApplied: number;
}

/** Bound on reads waiting at one node; more are refused (the client sees a definite failure). */
const MAX_PENDING_READS = 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class SimNode {
  readonly storage: MemoryStorage;
  private raw: RawNode | null = null;
  private kv: ReplicaMachine;
  private appliedIndex = 0;
  /** Bumped on every crash, so that a fsync scheduled before it is recognised as lost. */
  incarnation = 0;
  private inflight: Ready | null = null;
  private readonly pendingWrites = new Map<number, PendingWrite>();
  private readonly pendingReads = new Map<string, PendingRead>();
  /** Ticks this node has taken (it reads them against `PendingRead.askedAt`). */
  private ticks = 0;
  private readyReads: ReadyRead[] = [];
  /** Observed state for the checkers, refreshed whenever a Ready shows a change. */
  private seenRole: Role = "follower";
  private seenTerm = 0;
  private seenCommit = 0;
  private status: RaftStatus | null = null;
  /**
   * This node's log and the candidate's, as they stood when a pre-vote request arrived, by
   * `candidate/term`. A pre-vote grant changes no state, so the up-to-date rule is checked when
   * the granting answer goes out (`send`). Bounded: old requests are forgotten.
   */
  private readonly preVoteRequests = new Map<
    string,
    { index: number; term: number; candIndex: number; candTerm: number }
  >();
  /** Set when the node was removed from the group and shut down for good. */
  decommissioned = false;
  readonly stats: NodeStats = { fsyncs: 0, snapshotsInstalled: 0, snapshotsTaken: 0, entriesApplied: 0 };

  constructor(
    readonly id: NodeId,
    storage: MemoryStorage,
    private readonly tuning: NodeTuning,
    private readonly env: NodeEnv,
    private readonly raftRandom: Random,
    replica: ReplicaOptions = {},
  ) {
    this.storage = storage;
    this.group = replica.group ?? SIM_GROUP;
    this.machine = replica.machine ?? kvMachine;
    this.kv = this.machine(new Uint8Array(0));
  }

  readonly group: number;
  private readonly machine: MachineFactory;

  get up(): boolean {
    return this.raw !== null;
  }

  get waitingForFsync(): boolean {
    return this.inflight !== null;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  /** The core's status when its role, term or commit last changed (null while down). */
  get lastStatus(): RaftStatus | null {
    return this.status;
  }

  /** The core's status now (null while down). */
  freshStatus(): RaftStatus | null {
    return this.raw?.status() ?? null;
  }

  /** Boots (or reboots) the node from whatever its disk holds. */
  start(): void {
    if (this.raw !== null) throw new Error(`sim: ${this.id} is already running`);
    const snap = this.storage.snapshot();
    this.kv = this.machine(snap.data);
    this.appliedIndex = snap.metadata.index;
    const t = this.tuning;
    this.raw = new RawNode({
      id: this.id,
      group: this.group,
      storage: this.storage,
      random: () => this.raftRandom.next(),
      electionTicks: t.electionTicks,
      heartbeatTicks: t.heartbeatTicks,
      applied: this.appliedIndex,
      preVote: t.preVote,
      checkQuorum: t.checkQuorum,
      readOnly: t.readOnly,
      maxSizePerMsg: t.maxSizePerMsg,
      maxInflightMsgs: t.maxInflightMsgs,
      forwardProposals: t.forwardProposals ?? false,
      bugs: this.env.bugs,
    });
    const st = this.raw.status();
    this.seenRole = st.role;
    this.seenTerm = st.term;
    this.seenCommit = st.commit;
    this.status = st;
    this.drive();
  }

  /** Loses everything not on disk: the pending fsync, unsent messages, client requests. */
  crash(): void {
    this.raw = null;
    this.inflight = null;
    this.status = null;
    this.incarnation++;
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.readyReads = [];
    this.preVoteRequests.clear();
  }

  tick(): void {
    const raw = this.raw;
    if (raw === null) return;
    raw.tick();
    this.ticks++;
    // As the agent's host does: a read whose request got no answer in half an election timeout
    // (dropped by a node that no longer leads, forgotten by a leader that stepped down) asks again.
    const retryTicks = Math.max(1, Math.floor(this.tuning.electionTicks / 2));
    for (const [ctx, read] of this.pendingReads) {
      if (this.ticks - read.askedAt < retryTicks) continue;
      try {
        raw.readIndex(encoder.encode(ctx));
      } catch (err) {
        if (err instanceof NoLeaderError) break;
        throw err;
      }
      read.askedAt = this.ticks;
    }
    this.afterEvent();
  }

  deliver(m: Message): void {
    const raw = this.raw;
    if (raw === null) return;
    const isVote = (m.type === "vote" || m.type === "preVote") && this.env.checker.ruleChecks;
    if (!isVote) {
      raw.step(m);
      this.afterEvent();
      return;
    }
    // The voter's log and vote before it decides: what the up-to-date rule compares against.
    const st = raw.status();
    const lastTerm = raw.logTermAt(st.lastIndex) ?? 0;
    raw.step(m);
    this.checkVoteDecision(m, st.term, st.vote, st.lastIndex, lastTerm);
    this.afterEvent();
  }

  private checkVoteDecision(
    m: Message,
    termBefore: number,
    voteBefore: NodeId,
    lastIndex: number,
    lastTerm: number,
  ): void {
    const raw = this.raw;
    if (raw === null) return;
    const st = raw.status();
    const granted = st.vote === m.from && st.term === m.term;
    const grantedBefore = voteBefore === m.from && termBefore === m.term;
    if (m.type === "vote" && granted && !grantedBefore) {
      this.env.checker.voteGrantedFor(
        this.id,
        m.from,
        "vote",
        m.term,
        { index: lastIndex, term: lastTerm },
        { index: m.index, term: m.logTerm },
      );
    }
    if (m.type === "preVote") {
      this.preVoteRequests.set(`${m.from}/${m.term}`, {
        index: lastIndex,
        term: lastTerm,
        candIndex: m.index,
        candTerm: m.logTerm,
      });
      if (this.preVoteRequests.size > 64)
        this.preVoteRequests.delete(this.preVoteRequests.keys().next().value!);
    }
  }

  reportUnreachable(peer: NodeId): void {
    this.raw?.reportUnreachable(peer);
    if (this.raw) this.afterEvent();
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    this.raw?.reportSnapshot(peer, ok);
    if (this.raw) this.afterEvent();
  }

  proposeConfChange(cc: ConfChange): void {
    if (this.raw === null) throw new ProposalDroppedError("node is down");
    try {
      this.raw.proposeConfChange(cc);
    } finally {
      this.afterEvent();
    }
  }

  /** Proposes a payload (forwarded to the leader when `forwardProposals` is on). */
  proposeData(data: Uint8Array): void {
    if (this.raw === null) throw new ProposalDroppedError("node is down");
    try {
      this.raw.propose(data);
    } finally {
      this.afterEvent();
    }
  }

  transferLeadership(to: NodeId): void {
    if (this.raw === null) return;
    try {
      this.raw.transferLeadership(to);
    } finally {
      this.afterEvent();
    }
  }

  /** The node's view of its own log, for the log checkers (null while down). */
  logView(): LogView | null {
    const raw = this.raw;
    if (raw === null) return null;
    const st = raw.status();
    return {
      id: this.id,
      firstIndex: st.firstIndex,
      lastIndex: st.lastIndex,
      termAt: (i) => raw.logTermAt(i),
      confAt: (i) => raw.confStateAt(i),
      snapshotIndex: this.storage.snapshot().metadata.index,
    };
  }

  // ---- Client requests ---------------------------------------------------------------------

  clientRequest(req: ClientRequest): void {
    const raw = this.raw;
    if (raw === null) return; // Lost with the node; the client times out.
    if (req.input.kind === "get") this.startRead(raw, req);
    else this.startWrite(raw, req);
    this.afterEvent();
  }

  private fail(req: ClientRequest, reason: string): void {
    const leaderHint = this.raw?.status().leader ?? "";
    this.env.reply(req.clientId, { kind: "fail", opId: req.opId, leaderHint, reason });
  }

  private startWrite(raw: RawNode, req: ClientRequest): void {
    const st = raw.status();
    if (st.role !== "leader") {
      this.fail(req, "not the leader");
      return;
    }
    try {
      raw.propose(encodeCommand(req));
    } catch (err) {
      if (err instanceof ProposalDroppedError) {
        this.fail(req, err.reason);
        return;
      }
      throw err;
    }
    // The core appends a proposal at once, so the last index is where our entry sits.
    this.pendingWrites.set(req.opId, { clientId: req.clientId, index: raw.status().lastIndex });
  }

  private startRead(raw: RawNode, req: ClientRequest): void {
    if (req.input.kind !== "get") return;
    if (this.pendingReads.size >= MAX_PENDING_READS) {
      this.fail(req, "too many reads in flight");
      return;
    }
    const ctx = `r${req.opId}`;
    try {
      raw.readIndex(encoder.encode(ctx));
    } catch (err) {
      if (err instanceof NoLeaderError) {
        this.fail(req, "no leader is known");
        return;
      }
      throw err;
    }
    this.pendingReads.set(ctx, {
      opId: req.opId,
      clientId: req.clientId,
      key: req.input.key,
      committedAtStart: this.env.checker.maxCommitted,
      askedAt: this.ticks,
    });
  }

  // ---- Observation for the checkers ----------------------------------------------------------

  private afterEvent(): void {
    this.drive();
  }

  private observe(): void {
    const raw = this.raw;
    if (raw === null) return;
    const st = raw.status();
    this.status = st;
    const checker = this.env.checker;
    if (st.role === "leader") {
      checker.leader(this.id, st.term);
      if (this.seenRole !== "leader" || this.seenTerm !== st.term) {
        this.env.trace(`${this.id} became leader of term ${st.term} (last index ${st.lastIndex})`);
        this.env.note(1, st.term, hashString32(this.id));
        const view = this.logView();
        if (view) checker.newLeader(view, st.term);
      }
      if (st.commit > this.seenCommit)
        checker.leaderCommitted(this.id, st.term, st.commit, raw.logTermAt(st.commit));
    }
    if (st.commit > this.seenCommit) {
      // Look at most a window back: a snapshot may have moved commit far ahead in one step.
      const from = Math.max(this.seenCommit + 1, st.commit - 1024, st.firstIndex - 1);
      for (let i = from; i <= st.commit; i++) {
        const t = raw.logTermAt(i);
        if (t !== null) checker.committed(this.id, i, t);
      }
    }
    this.seenRole = st.role;
    this.seenTerm = st.term;
    this.seenCommit = Math.max(this.seenCommit, st.commit);
  }

  // ---- The ready loop ----------------------------------------------------------------------

  /** Takes the next Ready unless one is still waiting for its fsync. */
  private drive(): void {
    for (let rounds = 0; rounds < 64; rounds++) {
      const raw = this.raw;
      if (raw === null || this.inflight !== null || !raw.hasReady()) return;
      const rd = raw.ready();
      // A leader's replication may leave before its own write reaches the disk.
      for (const m of rd.earlyMessages) this.send(m);
      // Every change of role, leader, term, vote or commit shows in a Ready, so looking at the
      // status only then sees them all, at a fraction of the cost of looking after every event.
      if (rd.softState !== null || rd.hardState !== null) this.observe();
      if (!rd.mustSync && rd.hardState !== null && rd.entries.length === 0 && rd.snapshot === null) {
        // Only the commit index changed: written without a fsync, as etcd does. Keeping it even
        // across a crash is one of the outcomes a real disk allows (the other is learning it again).
        this.storage.setHardState(rd.hardState);
      } else if (rd.mustSync || rd.entries.length > 0 || rd.snapshot !== null) {
        // As the agent does: what was committed and already on disk is answered before this
        // write's fsync (a crash meanwhile must not lose what was answered).
        for (const e of committedOnDisk(rd)) this.applyEntry(e);
        this.inflight = rd;
        this.stats.fsyncs++;
        const latency = this.env.random.int(this.tuning.fsyncMin, this.tuning.fsyncMax);
        this.env.scheduleFsync(this.id, this.incarnation, this.env.now() + latency);
        return;
      }
      this.finishReady(raw, rd);
    }
  }

  /** The fsync of the pending Ready completed (unless the node crashed meanwhile). */
  fsyncDone(incarnation: number): void {
    const raw = this.raw;
    const rd = this.inflight;
    if (raw === null || rd === null || incarnation !== this.incarnation) return;
    this.inflight = null;
    this.persist(rd);
    this.env.afterFsync(this.id);
    if (this.raw !== raw) return; // Crashed right after the write reached the disk.
    this.finishReady(raw, rd);
    if (rd.messages.some((m) => m.type === "voteResp" && !m.reject)) {
      this.env.afterVote(this.id);
      if (this.raw !== raw) return;
    }
    this.afterEvent();
  }

  private persist(rd: Ready): void {
    if (rd.snapshot !== null) this.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      this.storage.append(rd.entries);
      for (const e of rd.entries)
        this.env.checker.entryPersisted(this.id, e.index, e.term, hashBytes(e.data));
    }
    if (rd.hardState !== null) this.storage.setHardState(rd.hardState);
  }

  private finishReady(raw: RawNode, rd: Ready): void {
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot !== null) this.installSnapshot(rd.snapshot.metadata.index, rd.snapshot.data);
    for (const e of rd.committedEntries) if (e.index > this.appliedIndex) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const ctx = decoder.decode(rs.context);
      const pending = this.pendingReads.get(ctx);
      if (pending === undefined) continue;
      this.pendingReads.delete(ctx);
      this.env.checker.readIndexServed(this.id, rs.index, pending.committedAtStart);
      this.readyReads.push({ ...pending, index: rs.index });
    }
    this.answerReads();
    this.maybeSnapshot(raw);
    raw.advance(rd);
  }

  private send(m: Message): void {
    if (m.type === "voteResp" && !m.reject) {
      const hs = this.storage.initialState().hardState;
      this.env.checker.voteSent(this.id, m.to, m.term, hs.term, hs.vote);
    } else if (m.type === "preVoteResp" && !m.reject) {
      const seen = this.preVoteRequests.get(`${m.to}/${m.term}`);
      if (seen !== undefined) {
        this.env.checker.voteGrantedFor(
          this.id,
          m.to,
          "pre-vote",
          m.term,
          { index: seen.index, term: seen.term },
          { index: seen.candIndex, term: seen.candTerm },
        );
      }
    }
    this.env.sendPeer(m);
  }

  private installSnapshot(index: number, data: Uint8Array): void {
    this.kv = this.machine(data);
    this.appliedIndex = index;
    this.stats.snapshotsInstalled++;
    this.env.checker.snapshotState(this.id, index, this.kv.digest());
    this.env.trace(`${this.id} installed a snapshot at index ${index}`);
    // Writes whose slot the snapshot covers can no longer be matched to an outcome here.
    for (const [opId, w] of this.pendingWrites) if (w.index <= index) this.pendingWrites.delete(opId);
  }

  private applyEntry(e: Entry): void {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`sim: ${this.id} asked to apply index ${e.index} after ${this.appliedIndex}`);
    }
    this.appliedIndex = e.index;
    this.stats.entriesApplied++;
    let answered = -1;
    if (e.type === "conf") {
      this.env.confApplied(this.id, decodeConfChange(e.data), e.index);
    } else if (e.data.byteLength > 0) {
      const done = this.kv.apply(e.data, e.index);
      const pending = done === null ? undefined : this.pendingWrites.get(done.opId);
      if (done !== null && pending !== undefined) {
        this.pendingWrites.delete(done.opId);
        answered = done.opId;
        this.env.reply(pending.clientId, { kind: "ok", opId: done.opId, output: done.output });
      }
    }
    this.env.checker.entryApplied(this.id, e.index, e.term, hashBytes(e.data), this.kv.digest());
    this.env.note(2, e.index, e.term);
    // A write proposed into this slot lost it to another entry: it can never commit now.
    for (const [opId, w] of this.pendingWrites) {
      if (w.index <= e.index && opId !== answered) {
        this.pendingWrites.delete(opId);
        const leaderHint = this.raw?.status().leader ?? "";
        this.env.reply(w.clientId, { kind: "fail", opId, leaderHint, reason: "entry overwritten" });
      }
    }
  }

  private answerReads(): void {
    if (this.readyReads.length === 0) return;
    const still: ReadyRead[] = [];
    for (const r of this.readyReads) {
      if (this.appliedIndex >= r.index) {
        this.env.reply(r.clientId, {
          kind: "ok",
          opId: r.opId,
          output: { kind: "get", value: this.kv.get(r.key) },
        });
      } else {
        still.push(r);
      }
    }
    this.readyReads = still;
  }

  private maybeSnapshot(raw: RawNode): void {
    const snapIndex = this.storage.snapshot().metadata.index;
    const applied = this.appliedIndex;
    if (applied - snapIndex < this.tuning.snapshotEvery || applied > this.storage.lastIndex()) return;
    this.storage.createSnapshot(applied, raw.confStateAt(applied), this.kv.encode());
    this.stats.snapshotsTaken++;
    this.env.checker.snapshotState(this.id, applied, this.kv.digest());
    const compactTo = applied - this.tuning.keepEntries;
    if (compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
  }
}

function hashString32(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h >>> 0;
}
