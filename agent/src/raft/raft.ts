/**
 * The Raft state machine (Ongaro & Ousterhout 2014; Ongaro's thesis 2014). Pure: no timers,
 * sockets, disk, clock or Math.random. Time is `tick()`, randomness is `cfg.random`, storage is
 * read through `Storage`, and everything to persist or send leaves through `RawNode.ready()`.
 *
 * Roles are functions (`stepLeader`, `stepCandidate`, `stepFollower`, `tickElection`,
 * `tickHeartbeat`) switched by `becomeFollower()` and friends, in the style of etcd-io/raft.
 */
import { confChangeProblem, decodeConfChange, encodeConfChange, nextConfState } from "./confchange.js";
import { NoLeaderError, ProposalDroppedError, TransferRejectedError } from "./errors.js";
import { RaftLog } from "./log.js";
import { Progress } from "./progress.js";
import { committedIndex, hasQuorum, voteResult } from "./quorum.js";
import { ReadOnly } from "./read-only.js";
import { entryBytes, type Storage } from "./storage.js";
import {
  EMPTY_BYTES,
  NO_NODE,
  emptyMessage,
  type ConfChange,
  type ConfState,
  type Entry,
  type GroupId,
  type Message,
  type MessageType,
  type NodeId,
  type ReadState,
  type Role,
  type Snapshot,
} from "./types.js";

/**
 * Deliberate defects that the simulator must catch. They exist to prove the checkers have teeth
 * and are never enabled outside tests.
 */
export type BugName = "commit-previous-term" | "vote-ignores-log" | "stale-read" | "forget-vote";
export const BUG_NAMES: readonly BugName[] = [
  "commit-previous-term",
  "vote-ignores-log",
  "stale-read",
  "forget-vote",
];

export interface RaftConfig {
  readonly id: NodeId;
  readonly group: GroupId;
  readonly storage: Storage;
  /** A seeded generator in [0, 1); the only source of randomness (election timeouts). */
  readonly random: () => number;
  /** Ticks without hearing from a leader before a follower campaigns (randomised up to twice this). */
  readonly electionTicks?: number;
  /**
   * A leader heartbeats on the ticks whose count is a multiple of this. The count is the node's,
   * not the group's (see `startTick`), so every group a node leads heartbeats on the same ticks:
   * their heartbeats share one frame per peer and one turn of the host's loop, where groups
   * elected at different times would each take their own.
   */
  readonly heartbeatTicks?: number;
  /**
   * The node's tick count when this group starts, so that a group added later keeps the node's
   * heartbeat ticks (see `heartbeatTicks`). Default 0.
   */
  readonly startTick?: number;
  /** The index the state machine has already applied (after a restart). */
  readonly applied?: number;
  /** Pre-vote (thesis §9.6): a node that cannot win does not bump everyone's term. */
  readonly preVote?: boolean;
  /** A leader that has not heard from a quorum for an election timeout steps down. */
  readonly checkQuorum?: boolean;
  /**
   * `safe`: ReadIndex confirms leadership with a heartbeat round. `lease`: the leader answers
   * from its commit index without a round trip while it holds a lease: a quorum acknowledged a
   * heartbeat it sent at tick T, and every one of them refuses votes until it has ticked
   * `electionTicks` times since receiving it, so no other leader can exist before T +
   * `electionTicks` (less a margin of LEASE_MARGIN_TICKS). The clock assumption: every node's
   * ticks run at the same rate within that margin over an election timeout, and no process
   * pauses (GC, swapping, a frozen SD card) for longer than the margin while believing it leads.
   * Outside its lease, or once it has started a leadership transfer, the leader falls back to a
   * ReadIndex round. A node in lease mode also refuses votes for one election timeout after it
   * starts, because a restarted follower has forgotten the lease it granted. Needs check-quorum.
   */
  readonly readOnly?: "safe" | "lease";
  /** Upper bound on the entry bytes in one append message. */
  readonly maxSizePerMsg?: number;
  /** Upper bound on append messages in flight to one follower (pipelining window). */
  readonly maxInflightMsgs?: number;
  /** Upper bound on entry bytes in flight to one follower. */
  readonly maxInflightBytes?: number;
  /** Upper bound on the bytes of committed entries handed out in one Ready. */
  readonly maxCommittedSizePerReady?: number;
  /** Upper bound on entries waiting to be committed on a leader; more proposals are dropped. */
  readonly maxUncommittedEntries?: number;
  /**
   * A follower that knows the leader forwards proposals to it instead of refusing them. The
   * caller then learns the outcome by applying the entry (match it by an id inside the data);
   * a forward lost on the way never commits and the caller times out.
   */
  readonly forwardProposals?: boolean;
  readonly bugs?: ReadonlySet<BugName>;
}

type StepFn = (r: Raft, m: Message) => void;
type TickFn = (r: Raft) => void;

/** In a `readIndex` message's `index` field: answer with the leader's commit index, no quorum round. */
export const LEADER_ONLY_READ = 1;

/** Ticks by which a lease ends before the followers' promise does: tick phase and clock drift. */
export const LEASE_MARGIN_TICKS = 2;

/** Vote requests with this context come from a leadership transfer and bypass the leader lease. */
const TRANSFER_CONTEXT = Uint8Array.of(0x74);

/** The voter set at each configuration entry in the log, so truncation can roll membership back. */
interface ConfPoint {
  readonly index: number;
  readonly conf: ConfState;
}

export class Raft {
  readonly id: NodeId;
  readonly group: GroupId;
  readonly log: RaftLog;
  term = 0;
  vote: NodeId = NO_NODE;
  lead: NodeId = NO_NODE;
  role: Role = "follower";

  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readOnlyOption: "safe" | "lease";
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
  readonly maxCommittedSizePerReady: number;
  readonly maxUncommittedEntries: number;
  readonly forwardProposals: boolean;
  readonly bugs: ReadonlySet<BugName>;
  private readonly random: () => number;

  /** Membership in force: the newest configuration in the log, committed or not. */
  conf: ConfState;
  private confBase: ConfPoint;
  private confPoints: ConfPoint[] = [];
  readonly prs = new Map<NodeId, Progress>();
  /** On a leader: the index of the newest configuration entry it appended. */
  pendingConfIndex = 0;

  votes = new Map<NodeId, boolean>();
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  readonly readOnly = new ReadOnly();
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  leadTransferee: NodeId = NO_NODE;

  electionElapsed = 0;
  /**
   * Ticks since this node started (from `startTick`): paces heartbeats, and stamps them so
   * acknowledgements can time the lease.
   */
  tickCount: number;
  /** Ticks left during which a freshly started node refuses votes (lease mode only). */
  voteGuardTicks = 0;
  /** Set once this leader sent timeoutNow: the target may win without waiting out our lease. */
  leaseRevoked = false;
  randomizedElectionTimeout = 0;

  private stepRole: StepFn = stepFollower;
  private tickRole: TickFn = tickElection;

  constructor(cfg: RaftConfig) {
    if (!cfg.id) throw new Error("raft: config needs a node id");
    this.id = cfg.id;
    this.group = cfg.group;
    this.random = cfg.random;
    this.electionTicks = cfg.electionTicks ?? 10;
    this.heartbeatTicks = cfg.heartbeatTicks ?? 1;
    this.tickCount = cfg.startTick ?? 0;
    if (this.heartbeatTicks <= 0 || this.electionTicks <= this.heartbeatTicks) {
      throw new Error("raft: electionTicks must be greater than heartbeatTicks > 0");
    }
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.readOnlyOption = cfg.readOnly ?? "safe";
    if (this.readOnlyOption === "lease" && !this.checkQuorum) {
      throw new Error("raft: lease-based reads require checkQuorum");
    }
    this.maxSizePerMsg = cfg.maxSizePerMsg ?? 1 << 20;
    this.maxInflightMsgs = cfg.maxInflightMsgs ?? 256;
    this.maxInflightBytes = cfg.maxInflightBytes ?? 32 << 20;
    this.maxCommittedSizePerReady = cfg.maxCommittedSizePerReady ?? 4 << 20;
    this.maxUncommittedEntries = cfg.maxUncommittedEntries ?? 10_000;
    this.forwardProposals = cfg.forwardProposals ?? false;
    this.bugs = cfg.bugs ?? new Set();

    if (this.readOnlyOption === "lease") this.voteGuardTicks = this.electionTicks;
    this.log = new RaftLog(cfg.storage);
    const { hardState } = cfg.storage.initialState();
    const snap = cfg.storage.snapshot();
    this.confBase = { index: snap.metadata.index, conf: snap.metadata.confState };
    this.conf = this.confBase.conf;
    this.loadConfPoints();
    if (hardState.commit > this.log.lastIndex()) {
      throw new Error(`raft: stored commit ${hardState.commit} is past last index ${this.log.lastIndex()}`);
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    // The application may persist a commit index lazily (it can be learned again from the
    // leader); whatever it applied was committed, so the applied index is a commit index too.
    this.log.commitTo(Math.max(hardState.commit, Math.min(cfg.applied ?? 0, this.log.lastIndex())));
    if (cfg.applied !== undefined && cfg.applied > this.log.applied) this.log.appliedTo(cfg.applied);
    this.becomeFollower(this.term, NO_NODE);
  }

  // ---- Membership ------------------------------------------------------------------------

  /** Rebuilds the configuration history from the stored log (after a restart). */
  private loadConfPoints(): void {
    this.confPoints = [];
    const first = this.log.firstIndex();
    const last = this.log.lastIndex();
    let conf = this.confBase.conf;
    for (let lo = first; lo <= last;) {
      const batch = this.log.slice(lo, last + 1, 8 << 20);
      for (const e of batch) {
        if (e.type === "conf") {
          conf = nextConfState(conf, decodeConfChange(e.data));
          this.confPoints.push({ index: e.index, conf });
        }
      }
      lo += batch.length;
    }
    this.setConf(conf);
  }

  /** The membership in force at `index` (for snapshots taken at an applied index). */
  confStateAt(index: number): ConfState {
    let conf = this.confBase.conf;
    for (const p of this.confPoints) {
      if (p.index > index) break;
      conf = p.conf;
    }
    return conf;
  }

  private noteAppended(ents: readonly Entry[]): void {
    let changed = false;
    for (const e of ents) {
      if (e.type !== "conf") continue;
      const prev = this.confPoints[this.confPoints.length - 1]?.conf ?? this.confBase.conf;
      this.confPoints.push({ index: e.index, conf: nextConfState(prev, decodeConfChange(e.data)) });
      changed = true;
    }
    if (changed) this.setConf(this.confPoints[this.confPoints.length - 1]!.conf);
  }

  private noteTruncated(from: number): void {
    const before = this.confPoints.length;
    this.confPoints = this.confPoints.filter((p) => p.index < from);
    if (this.confPoints.length !== before) {
      this.setConf(this.confPoints[this.confPoints.length - 1]?.conf ?? this.confBase.conf);
    }
  }

  private setConf(conf: ConfState): void {
    this.conf = conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    for (const id of [...this.prs.keys()]) if (!members.has(id)) this.prs.delete(id);
    const next = this.log.lastIndex() + 1;
    for (const id of members) {
      const learner = conf.learners.includes(id);
      const pr = this.prs.get(id);
      if (pr && pr.isLearner === learner) continue;
      const fresh = new Progress(id, next, this.maxInflightMsgs, this.maxInflightBytes, learner);
      if (pr) {
        fresh.match = pr.match;
        fresh.next = pr.next;
        fresh.recentActive = pr.recentActive;
      }
      if (id === this.id) fresh.match = this.log.lastIndex();
      this.prs.set(id, fresh);
    }
    if (this.role === "leader") {
      // A new voter set may commit entries the old one could not (a removed laggard).
      if (this.maybeCommit()) this.bcastAppend();
      if (this.leadTransferee !== NO_NODE && !conf.voters.includes(this.leadTransferee))
        this.abortLeaderTransfer();
    }
  }

  /** Only voters of the current configuration may campaign. */
  promotable(): boolean {
    return this.conf.voters.includes(this.id) && !this.log.unstable.snapshot;
  }

  // ---- Role changes ----------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.lead = NO_NODE;
    this.electionElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.votes = new Map();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.prs) {
      const fresh = new Progress(id, last + 1, this.maxInflightMsgs, this.maxInflightBytes, pr.isLearner);
      if (id === this.id) fresh.match = last;
      this.prs.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.leaseRevoked = false;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepRole = stepFollower;
    this.tickRole = tickElection;
    this.reset(term);
    this.lead = lead;
    this.role = "follower";
  }

  becomePreCandidate(): void {
    if (this.role === "leader") throw new Error("raft: leader cannot become pre-candidate");
    // A pre-candidate keeps its term and vote: it only asks whether it could win.
    this.stepRole = stepCandidate;
    this.tickRole = tickElection;
    this.votes = new Map();
    this.lead = NO_NODE;
    this.role = "preCandidate";
  }

  becomeCandidate(): void {
    if (this.role === "leader") throw new Error("raft: leader cannot become candidate");
    this.stepRole = stepCandidate;
    this.tickRole = tickElection;
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  becomeLeader(): void {
    if (this.role === "follower") throw new Error("raft: follower cannot become leader directly");
    this.stepRole = stepLeader;
    this.tickRole = tickHeartbeat;
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    const self = this.prs.get(this.id);
    if (self) self.becomeReplicate();
    // Any configuration still uncommitted in our log must commit before another may start.
    this.pendingConfIndex = this.log.lastIndex();
    // Raft §5.4.2 / §8: an entry of our own term commits everything before it and lets us serve
    // ReadIndex; append an empty one at once.
    this.appendEntries([{ term: this.term, type: "normal", data: EMPTY_BYTES }], true);
  }

  // ---- Campaigning -----------------------------------------------------------------------

  hup(transfer: boolean): void {
    if (this.role === "leader" || !this.promotable()) return;
    if (this.preVote && !transfer) this.campaign("preVote", false);
    else this.campaign("vote", transfer);
  }

  private campaign(kind: "preVote" | "vote", transfer: boolean): void {
    let term: number;
    if (kind === "preVote") {
      this.becomePreCandidate();
      term = this.term + 1; // We ask as if we were in the next term, without moving to it.
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    this.votes.set(this.id, true);
    if (this.pollResult() === "won") {
      if (kind === "preVote") this.campaign("vote", false);
      else this.becomeLeader();
      return;
    }
    for (const id of this.conf.voters) {
      if (id === this.id) continue;
      this.send({
        ...emptyMessage(kind, this.group, this.id, id),
        term,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        context: transfer ? TRANSFER_CONTEXT : EMPTY_BYTES,
      });
    }
  }

  pollResult(): "won" | "lost" | "pending" {
    return voteResult(this.conf.voters, this.votes);
  }

  // ---- Sending ---------------------------------------------------------------------------

  send(m: Message): void {
    if (m.to === this.id) throw new Error(`raft: ${this.id} sending ${m.type} to itself`);
    if (m.from !== this.id) throw new Error(`raft: ${this.id} sending ${m.type} in the name of ${m.from}`);
    this.msgs.push(m);
  }

  private msg(type: MessageType, to: NodeId, fields: Partial<Message> = {}): Message {
    return { ...emptyMessage(type, this.group, this.id, to), term: this.term, ...fields };
  }

  /** Sends an append (or a snapshot) to `to` if flow control allows. Returns whether it sent. */
  sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.prs.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    let ents: Entry[] | null = null;
    if (prevTerm !== null && pr.next >= this.log.firstIndex()) {
      ents = this.log.entriesFrom(pr.next, this.maxSizePerMsg);
    }
    if (prevTerm === null || ents === null) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send(
      this.msg("app", to, { index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed }),
    );
    if (ents.length > 0) {
      const last = ents[ents.length - 1]!.index;
      if (pr.state === "replicate") {
        pr.next = last + 1;
        let bytes = 0;
        for (const e of ents) bytes += entryBytes(e);
        pr.inflights.add(last, bytes);
      } else {
        pr.probeSent = true;
      }
    } else if (pr.state === "probe") {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // A follower we have not heard from recently may be gone; do not stream a snapshot into the void.
    if (!pr.recentActive) return false;
    const snap = this.log.snapshot();
    if (snap.metadata.index === 0) return false;
    pr.becomeSnapshot(snap.metadata.index);
    this.send(this.msg("snap", to, { snapshot: snap }));
    return true;
  }

  /** Sends appends to `to` until flow control or the end of the log stops it (pipelining). */
  private sendAppendsTo(id: NodeId): void {
    if (!this.sendAppend(id)) return;
    for (let i = 0; i < this.maxInflightMsgs && this.sendAppend(id, false); i++);
  }

  bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppendsTo(id);
  }

  /**
   * The commit index to tell `to` outside an append (heartbeats, read answers): never past what
   * it is known to hold, since its log beyond that may still differ from ours.
   */
  private commitFor(to: NodeId): number {
    return Math.min(this.prs.get(to)?.match ?? 0, this.log.committed);
  }

  /** A commit index heard outside an append (see `commitFor`), as far as our log reaches. */
  learnCommit(commit: number): void {
    this.log.commitTo(Math.min(commit, this.log.lastIndex()));
  }

  private sendHeartbeat(to: NodeId, context: Uint8Array): void {
    // `index` carries our tick count; the answer echoes it, which times the lease.
    this.send(this.msg("heartbeat", to, { commit: this.commitFor(to), context, index: this.tickCount }));
  }

  /** Tells members waiting for their forwarded writes to commit that they have (see `commitWanted`). */
  sendWantedCommits(): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id || pr.commitWanted === 0 || pr.commitWanted > this.log.committed) continue;
      if (this.sendAppend(id)) pr.commitWanted = 0;
    }
  }

  bcastHeartbeat(context: Uint8Array = this.readOnly.lastPendingContext() ?? EMPTY_BYTES): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendHeartbeat(id, context);
  }

  // ---- Leader bookkeeping ----------------------------------------------------------------

  appendEntries(ents: readonly Omit<Entry, "index">[], force = false): boolean {
    const last = this.log.lastIndex();
    if (!force && last - this.log.committed + ents.length > this.maxUncommittedEntries) return false;
    // A literal, not `{ ...e, index }`: see encodeCommand (agent/src/kv/commands.ts).
    const stamped: Entry[] = ents.map((e, i) => ({
      term: this.term,
      index: last + 1 + i,
      type: e.type,
      data: e.data,
    }));
    this.log.append(stamped);
    this.noteAppended(stamped);
    // The leader's own append counts toward the quorum. This is safe because the application
    // persists it before sending anything that could make a follower commit it (Ready's order).
    this.prs.get(this.id)?.maybeUpdate(this.log.lastIndex());
    this.maybeCommit();
    return true;
  }

  maybeCommit(): boolean {
    const mci = committedIndex(this.conf.voters, (id) => this.prs.get(id)?.match ?? 0);
    if (this.bugs.has("commit-previous-term")) {
      // Deliberate defect: commit by counting replicas whatever the entry's term (Raft Figure 8).
      if (mci > this.log.committed) {
        this.log.commitTo(mci);
        this.releasePendingReadIndexMessages();
        return true;
      }
      return false;
    }
    if (this.log.maybeCommit(mci, this.term)) {
      this.releasePendingReadIndexMessages();
      return true;
    }
    return false;
  }

  committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.serveReadIndex(m);
  }

  /** Starts confirming leadership for a read, or answers it at once when that is safe. */
  serveReadIndex(m: Message): void {
    if (m.index === LEADER_ONLY_READ) {
      this.answerRead(m, this.log.committed);
      return;
    }
    if (this.conf.voters.length === 1 && this.conf.voters[0] === this.id) {
      this.answerRead(m, this.log.committed);
      return;
    }
    if (!this.committedEntryInCurrentTerm()) {
      // Our commit index may lag the true one until an entry of our term commits (thesis §6.4).
      if (this.pendingReadIndexMessages.length < 4096) this.pendingReadIndexMessages.push(m);
      return;
    }
    if (this.readOnlyOption === "lease" && this.leaseValid()) {
      this.answerRead(m, this.log.committed);
      return;
    }
    if (!this.readOnly.add(this.log.committed, m)) return; // Over the bound: the reader times out.
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeat(m.context);
  }

  answerRead(m: Message, index: number): void {
    if (m.from === NO_NODE || m.from === this.id) {
      this.readStates.push({ index, context: m.context });
    } else {
      // The reader waits until it has applied `index`, so it must learn the commit index now
      // rather than at the next heartbeat.
      const commit = this.commitFor(m.from);
      this.send(this.msg("readIndexResp", m.from, { index, context: m.context, commit }));
    }
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NO_NODE;
  }

  /** Whether a quorum's acknowledgements still guarantee that no other leader exists. */
  leaseValid(): boolean {
    if (this.leaseRevoked || this.role !== "leader") return false;
    const acked = committedIndex(this.conf.voters, (id) =>
      id === this.id ? this.tickCount : (this.prs.get(id)?.leaseAckTick ?? -Infinity),
    );
    return this.tickCount < acked + this.electionTicks - LEASE_MARGIN_TICKS;
  }

  sendTimeoutNow(to: NodeId): void {
    this.leaseRevoked = true;
    this.send(this.msg("timeoutNow", to));
  }

  // ---- Follower handlers -----------------------------------------------------------------

  handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(this.msg("appResp", m.from, { index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries, (from, appended) => {
      this.noteTruncated(from);
      this.noteAppended(appended);
    });
    if (lastNew !== null) {
      this.send(this.msg("appResp", m.from, { index: lastNew }));
      return;
    }
    // Fast back-tracking: tell the leader the last index whose term could match its entry.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.send(
      this.msg("appResp", m.from, {
        index: m.index,
        reject: true,
        rejectHint: hintIndex,
        rejectTerm: hintTerm,
      }),
    );
  }

  handleHeartbeat(m: Message): void {
    this.learnCommit(m.commit);
    this.send(this.msg("heartbeatResp", m.from, { context: m.context, index: m.index }));
  }

  handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (!snap) return;
    if (this.restore(snap)) {
      this.send(this.msg("appResp", m.from, { index: this.log.lastIndex() }));
    } else {
      this.send(this.msg("appResp", m.from, { index: this.log.committed }));
    }
  }

  /** Installs a leader's snapshot unless our log already covers it. */
  restore(snap: Snapshot): boolean {
    const { index, term } = snap.metadata;
    if (index <= this.log.committed) return false;
    if (this.role !== "follower") {
      throw new Error(`raft: ${this.id} restoring a snapshot as ${this.role}`);
    }
    if (this.log.matchTerm(index, term)) {
      // We hold the entry already: just move the commit index forward.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snap);
    this.confBase = { index, conf: snap.metadata.confState };
    this.confPoints = [];
    this.setConf(snap.metadata.confState);
    return true;
  }

  // ---- The public operations ---------------------------------------------------------------

  tick(): void {
    this.tickCount++;
    if (this.voteGuardTicks > 0) this.voteGuardTicks--;
    this.tickRole(this);
  }

  step(m: Message): void {
    if (m.group !== this.group) {
      throw new Error(`raft: message for group ${m.group} delivered to group ${this.group}`);
    }
    if (m.term === 0) {
      // Local messages (and forwarded proposals and reads) carry no term.
    } else if (m.term > this.term) {
      if (m.type === "vote" || m.type === "preVote") {
        const force = bytesEqual(m.context, TRANSFER_CONTEXT);
        const inLease =
          this.checkQuorum &&
          ((this.lead !== NO_NODE && this.electionElapsed < this.electionTicks) || this.voteGuardTicks > 0);
        if (!force && inLease) {
          // We heard from a live leader within the minimum election timeout: a node coming back
          // from a flaky link must not depose it (thesis §4.2.3). Ignore without a term bump.
          return;
        }
      }
      if (m.type === "preVote") {
        // Never change our term for a pre-vote request.
      } else if (m.type === "preVoteResp" && !m.reject) {
        // A granted pre-vote carries the term we would move to; we move when we win.
      } else if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NO_NODE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === "heartbeat" || m.type === "app")) {
        // A stale leader (cut off, or restarted) learns our term and steps down; without this a
        // node that pre-votes could never win against a stale leader holding its followers.
        this.send(this.msg("appResp", m.from));
      } else if (m.type === "preVote") {
        this.send(this.msg("preVoteResp", m.from, { reject: true }));
      }
      return;
    }

    switch (m.type) {
      case "hup":
        this.hup(false);
        return;
      case "prop":
        if (m.reject) return; // A forward we made came back refused: for the application, not us.
        if (m.from !== this.id && this.role !== "leader") {
          this.refuseForwarded(m); // We do not lead (any more): tell the forwarder at once.
          return;
        }
        this.stepRole(this, m);
        return;
      case "vote":
      case "preVote":
        this.stepVoteRequest(m);
        return;
      default:
        this.stepRole(this, m);
    }
  }

  private stepVoteRequest(m: Message): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === NO_NODE && this.lead === NO_NODE) ||
      (m.type === "preVote" && m.term > this.term);
    const upToDate = this.bugs.has("vote-ignores-log") || this.log.isUpToDate(m.index, m.logTerm);
    const respType = m.type === "vote" ? "voteResp" : "preVoteResp";
    if (canVote && upToDate) {
      // A pre-vote answer carries the requested term so the candidate can tell it apart from
      // stale answers; a real vote answer carries our (now equal) term.
      this.send(this.msg(respType, m.from, { term: m.type === "preVote" ? m.term : this.term }));
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(this.msg(respType, m.from, { term: this.term, reject: true }));
    }
  }

  propose(data: Uint8Array): void {
    this.proposeEntries([{ term: 0, type: "normal", data }]);
  }

  proposeConfChange(cc: ConfChange): void {
    if (this.role !== "leader") throw new ProposalDroppedError(this.notLeaderReason());
    if (this.pendingConfIndex > this.log.committed) {
      throw new ProposalDroppedError("a configuration change is already in progress");
    }
    if (!this.committedEntryInCurrentTerm()) {
      throw new ProposalDroppedError("the new leader has not committed an entry of its term yet");
    }
    if (cc.nodeId === this.id && cc.type !== "addVoter") {
      throw new ProposalDroppedError("the leader cannot remove or demote itself; transfer leadership first");
    }
    const problem = confChangeProblem(this.conf, cc);
    if (problem) throw new ProposalDroppedError(problem);
    this.proposeEntries([{ term: 0, type: "conf", data: encodeConfChange(cc) }]);
    this.pendingConfIndex = this.log.lastIndex();
  }

  private proposeEntries(ents: Omit<Entry, "index">[]): void {
    if (this.role !== "leader") {
      if (this.forwardProposals && this.lead !== NO_NODE && ents.every((e) => e.type === "normal")) {
        const stamped = ents.map((e): Entry => ({ term: e.term, index: 0, type: e.type, data: e.data }));
        this.send({ ...emptyMessage("prop", this.group, this.id, this.lead), entries: stamped });
        return;
      }
      throw new ProposalDroppedError(this.notLeaderReason());
    }
    if (!this.prs.has(this.id)) throw new ProposalDroppedError("this node is no longer a member");
    if (this.leadTransferee !== NO_NODE) {
      throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
    }
    if (!this.appendEntries(ents)) throw new ProposalDroppedError("too many uncommitted entries");
    this.bcastAppend();
  }

  /**
   * Sends a forwarded proposal back to the follower that forwarded it, marked `reject`: its
   * entries were not appended anywhere, so the follower's application can fail the writers at
   * once (and retry them) instead of letting them time out not knowing.
   */
  refuseForwarded(m: Message): void {
    this.send({ ...emptyMessage("prop", this.group, this.id, m.from), reject: true, entries: m.entries });
  }

  notLeaderReason(): string {
    return this.lead === NO_NODE ? "no leader is known" : `not the leader; the leader is ${this.lead}`;
  }

  /**
   * `quorum: false` asks only for the leader's commit index, without confirming leadership (a
   * `weak` read: as fresh as the leader's state, possibly stale if it was just deposed).
   */
  readIndex(context: Uint8Array, quorum = true): void {
    if (this.bugs.has("stale-read")) {
      // Deliberate defect: answer a strong read from local state with no leadership check.
      this.readStates.push({ index: this.log.committed, context });
      return;
    }
    const m = {
      ...emptyMessage("readIndex", this.group, this.id, NO_NODE),
      context,
      index: quorum ? 0 : LEADER_ONLY_READ,
    };
    if (this.role === "leader") {
      this.serveReadIndex(m);
      return;
    }
    if (this.lead === NO_NODE) throw new NoLeaderError();
    this.send({ ...m, to: this.lead });
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== "leader") throw new TransferRejectedError(this.notLeaderReason());
    if (!this.conf.voters.includes(to)) throw new TransferRejectedError(`${to} is not a voter`);
    stepLeader(this, { ...emptyMessage("transferLeader", this.group, to, this.id) });
  }
}

// ---- Role step functions -----------------------------------------------------------------

function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case "beat":
      r.bcastHeartbeat();
      return;
    case "readIndex":
      r.serveReadIndex(m);
      return;
    case "prop": {
      // A proposal forwarded by a follower. When it cannot be appended (leadership is moving,
      // too much is uncommitted), the follower hears so at once.
      if (
        r.leadTransferee !== NO_NODE ||
        m.entries.some((e) => e.type !== "normal") ||
        !r.appendEntries(m.entries.map((e) => ({ term: 0, type: "normal", data: e.data })))
      ) {
        r.refuseForwarded(m);
        return;
      }
      const forwarder = r.prs.get(m.from);
      // (A lone voter has committed it already, and the append below says so.)
      if (forwarder && r.log.lastIndex() > r.log.committed) forwarder.commitWanted = r.log.lastIndex();
      r.bcastAppend();
      return;
    }
  }
  const pr = r.prs.get(m.from);
  if (!pr) return; // Not a member (any more): ignore.
  switch (m.type) {
    case "appResp":
      stepLeaderAppResp(r, pr, m);
      return;
    case "heartbeatResp":
      stepLeaderHeartbeatResp(r, pr, m);
      return;
    case "snapStatus":
      if (pr.state !== "snapshot") return;
      if (m.reject) pr.pendingSnapshot = 0;
      pr.becomeProbe();
      // Wait for a heartbeat reply (or the append answer) before probing again.
      pr.probeSent = true;
      return;
    case "unreachable":
      if (pr.state === "replicate") pr.becomeProbe();
      return;
    case "transferLeader":
      stepLeaderTransfer(r, pr, m.from);
      return;
  }
}

function stepLeaderAppResp(r: Raft, pr: Progress, m: Message): void {
  pr.recentActive = true;
  if (m.reject) {
    let hint = m.rejectHint;
    if (m.rejectTerm > 0) hint = r.log.findConflictByTerm(m.rejectHint, m.rejectTerm);
    if (pr.maybeDecrTo(m.index, hint)) {
      if (pr.state === "replicate") pr.becomeProbe();
      r.sendAppend(m.from);
    }
    return;
  }
  const wasPaused = pr.isPaused();
  // A probe answered at the index we already knew still proves the logs match there.
  if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === "probe")) return;
  if (pr.state === "probe") pr.becomeReplicate();
  else if (pr.state === "snapshot" && pr.match >= pr.pendingSnapshot) {
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === "replicate") pr.inflights.freeLE(m.index);

  // A new commit index is not broadcast on its own: followers learn it from the next append or
  // heartbeat (within a tick), and a read served by a follower learns it from the leader's
  // answer (`answerRead`). Under load that halves the messages per write (an empty append and
  // its answer per follower); only followers' local state, which may be stale, waits a little.
  r.maybeCommit();
  r.sendWantedCommits();
  if (wasPaused) r.sendAppend(m.from);
  for (let i = 0; i < r.maxInflightMsgs && r.sendAppend(m.from, false); i++);
  if (m.from === r.leadTransferee && pr.match === r.log.lastIndex()) r.sendTimeoutNow(m.from);
}

function stepLeaderHeartbeatResp(r: Raft, pr: Progress, m: Message): void {
  pr.recentActive = true;
  pr.probeSent = false;
  if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.match < r.log.lastIndex()) r.sendAppend(m.from);
  pr.leaseAckTick = Math.max(pr.leaseAckTick, m.index);
  if (m.context.length === 0) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (!acks || !hasQuorum(r.conf.voters, (id) => acks.has(id))) return;
  for (const rs of r.readOnly.advance(m.context)) r.answerRead(rs.req, rs.index);
}

function stepLeaderTransfer(r: Raft, pr: Progress, transferee: NodeId): void {
  if (pr.isLearner || transferee === r.id) return;
  if (r.leadTransferee === transferee) return; // Already under way.
  r.abortLeaderTransfer();
  r.leadTransferee = transferee;
  // The transfer must finish within an election timeout or it is abandoned (tickHeartbeat).
  r.electionElapsed = 0;
  if (pr.match === r.log.lastIndex()) r.sendTimeoutNow(transferee);
  else r.sendAppend(transferee);
}

function stepCandidate(r: Raft, m: Message): void {
  const myRespType: MessageType = r.role === "preCandidate" ? "preVoteResp" : "voteResp";
  switch (m.type) {
    case "app":
      r.becomeFollower(m.term, m.from);
      r.handleAppend(m);
      return;
    case "heartbeat":
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      return;
    case "snap":
      r.becomeFollower(m.term, m.from);
      r.handleSnapshot(m);
      return;
    case "voteResp":
    case "preVoteResp": {
      if (m.type !== myRespType) return;
      r.votes.set(m.from, !m.reject);
      const result = r.pollResult();
      if (result === "won") {
        if (r.role === "preCandidate") r.hup(true);
        else {
          r.becomeLeader();
          r.bcastAppend();
        }
      } else if (result === "lost") {
        r.becomeFollower(r.term, NO_NODE);
      }
      return;
    }
  }
}

function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case "app":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleAppend(m);
      return;
    case "heartbeat":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleHeartbeat(m);
      return;
    case "snap":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleSnapshot(m);
      return;
    case "timeoutNow":
      // The leader chose us: campaign at once, skipping pre-vote and the lease check.
      r.hup(true);
      return;
    case "readIndex":
      // A read another node forwarded to us when we led. Dropping it is safe (its reader times
      // out and asks again); forwarding it on would send a message in that node's name.
      return;
    case "readIndexResp":
      r.learnCommit(m.commit);
      r.readStates.push({ index: m.index, context: m.context });
      return;
  }
}

// ---- Role tick functions -----------------------------------------------------------------

function tickElection(r: Raft): void {
  r.electionElapsed++;
  if (r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout) {
    r.electionElapsed = 0;
    r.hup(false);
  }
}

function tickHeartbeat(r: Raft): void {
  r.electionElapsed++;
  if (r.electionElapsed >= r.electionTicks) {
    r.electionElapsed = 0;
    if (r.checkQuorum) {
      const self = r.prs.get(r.id);
      if (self) self.recentActive = true;
      if (!hasQuorum(r.conf.voters, (id) => r.prs.get(id)?.recentActive ?? false)) {
        r.becomeFollower(r.term, NO_NODE);
        return;
      }
      for (const [id, pr] of r.prs) if (id !== r.id) pr.recentActive = false;
    }
    if (r.leadTransferee !== NO_NODE) r.abortLeaderTransfer();
  }
  for (const [id, pr] of r.prs) {
    if (id === r.id || pr.state !== "snapshot") continue;
    // A snapshot message lost on the way would otherwise stall this follower forever.
    if (++pr.snapshotTicks > 2 * r.electionTicks) pr.becomeProbe();
  }
  if (r.tickCount % r.heartbeatTicks === 0) r.bcastHeartbeat();
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
