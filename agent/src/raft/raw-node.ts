/**
 * The application's handle on one Raft group: it feeds in time and messages, takes out `Ready`
 * batches of work, and acknowledges them with `advance()` (etcd-io/raft's RawNode).
 */
import { NoLeaderError } from "./errors.js";
import { Raft, type RaftConfig } from "./raft.js";
import type {
  ConfChange,
  ConfState,
  Entry,
  GroupId,
  HardState,
  Message,
  NodeId,
  Ready,
  Role,
  SoftState,
} from "./types.js";
import { NO_NODE, emptyMessage } from "./types.js";

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: "probe" | "replicate" | "snapshot";
  readonly learner: boolean;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly group: GroupId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly role: Role;
  readonly leader: NodeId;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** On a leader: what it knows of each member's log. Empty elsewhere. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

export class RawNode {
  private readonly raft: Raft;
  private prevSoft: SoftState;
  private prevHard: HardState;
  /** Set between `ready()` and `advance()`: the contract allows one Ready in flight. */
  private pendingReady = false;

  constructor(cfg: RaftConfig) {
    this.raft = new Raft(cfg);
    this.prevSoft = this.softState();
    this.prevHard = this.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Feeds a message from a peer (or a local one such as `unreachable`). */
  step(m: Message): void {
    if (m.type === "hup" || m.type === "beat") {
      throw new Error(`raw node: ${m.type} is local; call campaign() or tick()`);
    }
    this.raft.step(m);
  }

  campaign(): void {
    this.raft.step(emptyMessage("hup", this.raft.group, this.raft.id, this.raft.id));
  }

  /** Appends `data` to the log if this node leads; throws `ProposalDroppedError` otherwise. */
  propose(data: Uint8Array): void {
    this.raft.propose(data);
  }

  proposeConfChange(cc: ConfChange): void {
    this.raft.proposeConfChange(cc);
  }

  /**
   * Asks for a linearizable read. The answer is a `ReadState` in a later Ready carrying the same
   * `context`, which must be unique among reads in flight (a node id and a counter will do). A
   * request lost with a leader change never answers; callers time out. With `quorum: false`
   * the leader answers with its commit index at once (a `weak` read).
   */
  readIndex(context: Uint8Array, opts: { quorum?: boolean } = {}): void {
    if (this.raft.role !== "leader" && this.raft.lead === NO_NODE && !this.raft.bugs.has("stale-read")) {
      throw new NoLeaderError();
    }
    this.raft.readIndex(context, opts.quorum ?? true);
  }

  transferLeadership(to: NodeId): void {
    this.raft.transferLeadership(to);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(emptyMessage("unreachable", this.raft.group, id, this.raft.id));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step({ ...emptyMessage("snapStatus", this.raft.group, id, this.raft.id), reject: !ok });
  }

  confStateAt(index: number): ConfState {
    return this.raft.confStateAt(index);
  }

  /** The term of this node's log entry at `index`, or null if compacted or absent (for checkers). */
  logTermAt(index: number): number | null {
    return this.raft.log.term(index);
  }

  private softState(): SoftState {
    return { leader: this.raft.lead, role: this.raft.role };
  }

  private hardState(): HardState {
    return { term: this.raft.term, vote: this.raft.vote, commit: this.raft.log.committed };
  }

  /**
   * Whether `ready()` has work. The host asks every group on every turn of its loop, so this
   * compares fields in place rather than building the soft and hard states to compare.
   */
  hasReady(): boolean {
    if (this.pendingReady) return false;
    const r = this.raft;
    const soft = this.prevSoft;
    if (r.lead !== soft.leader || r.role !== soft.role) return true;
    const hard = this.prevHard;
    if (r.term !== hard.term || r.vote !== hard.vote || r.log.committed !== hard.commit) return true;
    return (
      r.log.unstable.snapshot !== null ||
      r.log.unstable.entries.length > 0 ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.hasNextCommittedEnts()
    );
  }

  /** Collects the work to do; see `Ready` for the order. Call `advance()` when it is done. */
  ready(): Ready {
    if (this.pendingReady) throw new Error("raw node: ready() called again before advance()");
    const r = this.raft;
    const soft = this.softState();
    const softChanged = soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role;
    let hard: HardState = this.hardState();
    const hardChanged = !hardStateEqual(hard, this.prevHard);
    const entries = [...r.log.unstable.entries];
    const snapshot = r.log.unstable.snapshot;
    const committedEntries = snapshot ? [] : r.log.nextCommittedEnts(r.maxCommittedSizePerReady);
    if (r.bugs.has("forget-vote")) {
      // Deliberate defect: the vote never reaches the disk, so a restart can vote twice in a term.
      hard = { ...hard, vote: NO_NODE };
    }
    const termOrVoteChanged =
      hard.term !== this.prevHard.term || this.hardState().vote !== this.prevHard.vote;
    const { early, late } = splitEarly(r.msgs, {
      leader: r.role === "leader" && !termOrVoteChanged && snapshot === null,
      // Everything before this Ready's first new entry is already on disk.
      durableIndex: entries.length > 0 ? entries[0]!.index - 1 : r.log.lastIndex(),
    });
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      committedEntries,
      earlyMessages: early,
      messages: late,
      readStates: r.readStates,
      // A change of term or vote, or new entries, must be synced; a commit index alone need not be
      // (it can be learned again from the leader).
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        hard.term !== this.prevHard.term ||
        this.hardState().vote !== this.prevHard.vote,
    };
    r.msgs = [];
    r.readStates = [];
    if (softChanged) this.prevSoft = soft;
    if (hardChanged) this.prevHard = this.hardState();
    this.pendingReady = true;
    return rd;
  }

  /** Acknowledges that everything in `rd` was persisted, sent and applied. */
  advance(rd: Ready): void {
    if (!this.pendingReady) throw new Error("raw node: advance() without a pending ready()");
    this.pendingReady = false;
    const log = this.raft.log;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) log.unstable.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot) {
      log.unstable.stableSnapTo(rd.snapshot.metadata.index);
      log.appliedSnapshot(rd.snapshot.metadata.index);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) log.appliedTo(lastCommitted.index);
  }

  /** The leader this node knows of (`""`: none); as `status().leader`, without building a status. */
  get leader(): NodeId {
    return this.raft.lead;
  }

  /** The voter leadership is being handed to (`""`: none); as `status().leadTransferee`. */
  get leadTransferee(): NodeId {
    return this.raft.leadTransferee;
  }

  /** The latest appended membership; as `status().confState`. */
  get confState(): ConfState {
    return this.raft.conf;
  }

  status(): RaftStatus {
    const r = this.raft;
    const progress = new Map<NodeId, ProgressStatus>();
    if (r.role === "leader") {
      for (const [id, pr] of r.prs) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          learner: pr.isLearner,
          recentActive: pr.recentActive,
        });
      }
    }
    return {
      id: r.id,
      group: r.group,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      role: r.role,
      leader: r.lead,
      confState: r.conf,
      leadTransferee: r.leadTransferee,
      progress,
    };
  }
}

/**
 * The part of `rd.committedEntries` this node had on disk before `rd`: every entry before the
 * Ready's first new one. A majority holds these, so their outcome is final, and the writers who
 * proposed them may hear it before the Ready's own write is synced. The rest (a follower told of
 * a commit along with the entries themselves) must wait for that write.
 */
export function committedOnDisk(rd: Ready): readonly Entry[] {
  const committed = rd.committedEntries;
  if (rd.entries.length === 0 || committed.length === 0) return committed;
  const durable = rd.entries[0]!.index - 1;
  let n = 0;
  while (n < committed.length && committed[n]!.index <= durable) n++;
  return n === committed.length ? committed : committed.slice(0, n);
}

/** What a leader sends that depends on nothing it has yet to persist. */
const EARLY_TYPES: ReadonlySet<Message["type"]> = new Set([
  "app",
  "heartbeat",
  "snap",
  "timeoutNow",
  "readIndexResp",
]);

function splitEarly(
  msgs: readonly Message[],
  opts: { leader: boolean; durableIndex: number },
): { early: Message[]; late: Message[] } {
  if (!opts.leader) return { early: [], late: [...msgs] };
  const early: Message[] = [];
  const late: Message[] = [];
  for (const m of msgs) {
    // A commit index past our durable log (a lone voter commits on its own append) must wait.
    if (EARLY_TYPES.has(m.type) && m.commit <= opts.durableIndex) early.push(m);
    else late.push(m);
  }
  return { early, late };
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
