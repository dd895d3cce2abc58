/**
 * The safety checkers that watch a simulated cluster while it runs. Each method is fed one
 * observation (a leader seen, an entry applied, a vote sent...) and records a violation, with
 * the tick and one line saying which rule broke, when the observation contradicts Raft.
 *
 * Two families:
 *  - the properties of Raft's Figure 3 (election safety, log matching, leader completeness,
 *    state machine safety), which hold whatever the implementation looks like inside;
 *  - rule checks (`ruleChecks`), each one sentence of the paper checked where it applies: votes
 *    once per term and only when durable (§5.2, Figure 2), only for up-to-date logs (§5.4.1),
 *    commits by counting only in the current term (§5.4.2), read indexes not behind a commit
 *    that happened before the read (§6.4). They find a bug at its cause rather than at its
 *    distant consequence, and can be switched off to see what the end-to-end checks catch alone.
 */

export type ViolationKind =
  | "election-safety"
  | "log-matching"
  | "membership-agreement"
  | "leader-completeness"
  | "state-machine-safety"
  | "commit-rule"
  | "vote-once"
  | "vote-durability"
  | "vote-up-to-date"
  | "stale-read-index"
  | "linearizability"
  | "liveness"
  | "panic";

export interface Violation {
  readonly tick: number;
  readonly kind: ViolationKind;
  readonly description: string;
}

/** What a log checker needs to see of one node's log (its `RawNode`, in the simulator). */
export interface LogView {
  readonly id: string;
  readonly firstIndex: number;
  readonly lastIndex: number;
  termAt(index: number): number | null;
  /**
   * The membership this node derives at `index` (from its snapshot and the conf entries after
   * it); asked only for indexes at or after `snapshotIndex`.
   */
  confAt?(index: number): { readonly voters: readonly string[]; readonly learners: readonly string[] };
  readonly snapshotIndex?: number;
}

export interface CheckerOptions {
  /** The current tick, stamped on every violation. */
  readonly now: () => number;
  readonly ruleChecks?: boolean;
  /** Recording stops after this many violations (a broken run repeats itself). */
  readonly maxViolations?: number;
  /** How far back from the end the log checks look (they run often; the window keeps them cheap). */
  readonly windowEntries?: number;
}

interface AppliedRecord {
  readonly term: number;
  readonly dataHash: number;
  /** The state machine's fingerprint after applying this entry; 0 until someone reports it. */
  readonly stateDigest: number;
  readonly node: string;
}

/** Bound on the indexes remembered per table; a run that commits more stops checking old ones. */
const MAX_TRACKED_INDEXES = 2_000_000;

export class SafetyChecker {
  readonly violations: Violation[] = [];
  readonly ruleChecks: boolean;
  private readonly maxViolations: number;
  private readonly window: number;
  private readonly now: () => number;

  private readonly leaderOfTerm = new Map<number, string>();
  /** index → term of every entry some node reported committed. */
  private readonly committedTerm = new Map<number, number>();
  private maxCommittedIndex = 0;
  private readonly applied = new Map<number, AppliedRecord>();
  /** Snapshot states seen at indexes whose entries nobody applied one by one. */
  private readonly snapshotDigest = new Map<number, number>();
  /** `index/term` → payload hash: one leader per term writes one entry per index. */
  private readonly entryIdentity = new Map<string, number>();
  /** `voter/term` → the candidate it voted for. */
  private readonly votes = new Map<string, string>();

  constructor(opts: CheckerOptions) {
    this.now = opts.now;
    this.ruleChecks = opts.ruleChecks ?? true;
    this.maxViolations = opts.maxViolations ?? 20;
    this.window = opts.windowEntries ?? 256;
  }

  /** True once the violation budget is spent; the simulator then stops the run. */
  get saturated(): boolean {
    return this.violations.length >= this.maxViolations;
  }

  get maxCommitted(): number {
    return this.maxCommittedIndex;
  }

  report(kind: ViolationKind, description: string): void {
    if (this.saturated) return;
    this.violations.push({ tick: this.now(), kind, description });
  }

  // ---- Figure 3: election safety ------------------------------------------------------------

  /** At most one leader can be elected in a given term (§5.2). */
  leader(node: string, term: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) {
      this.leaderOfTerm.set(term, node);
    } else if (known !== node) {
      this.report("election-safety", `two leaders in term ${term}: ${known} and ${node}`);
    }
  }

  get electedTerms(): number {
    return this.leaderOfTerm.size;
  }

  // ---- Committed entries and leader completeness ---------------------------------------------

  /** `node` reports the entry at `index` (of `term`) committed. */
  committed(node: string, index: number, term: number): void {
    const known = this.committedTerm.get(index);
    if (known === undefined) {
      if (this.committedTerm.size < MAX_TRACKED_INDEXES) this.committedTerm.set(index, term);
      if (index > this.maxCommittedIndex) this.maxCommittedIndex = index;
    } else if (known !== term) {
      this.report(
        "state-machine-safety",
        `${node} committed index ${index} with term ${term}, but term ${known} was committed there before`,
      );
    }
  }

  /**
   * A leader's log holds every committed entry (§5.4, Leader Completeness): checked when a node
   * becomes leader, over the newest `window` committed indexes its log still holds.
   */
  newLeader(log: LogView, term: number): void {
    const hi = this.maxCommittedIndex;
    const lo = Math.max(log.firstIndex, hi - this.window + 1, 1);
    for (let i = lo; i <= hi; i++) {
      const want = this.committedTerm.get(i);
      if (want === undefined) continue;
      const have = log.termAt(i);
      if (have !== want) {
        this.report(
          "leader-completeness",
          `${log.id} became leader of term ${term} without committed entry ${i} (term ${want}); ` +
            (have === null ? `its log ends at ${log.lastIndex}` : `it holds term ${have} there`),
        );
        return;
      }
    }
  }

  // ---- Log matching --------------------------------------------------------------------------

  /** Every entry persisted anywhere: one (index, term) may only ever name one payload. */
  entryPersisted(node: string, index: number, term: number, dataHash: number): void {
    const key = `${index}/${term}`;
    const known = this.entryIdentity.get(key);
    if (known === undefined) {
      if (this.entryIdentity.size < MAX_TRACKED_INDEXES) this.entryIdentity.set(key, dataHash);
    } else if (known !== dataHash) {
      this.report(
        "log-matching",
        `${node} holds a different entry at index ${index} term ${term} than another node`,
      );
    }
  }

  /**
   * Log Matching (§5.3): if two logs hold an entry with the same index and term, they agree on
   * every entry before it. Compares terms over the newest `window` indexes both logs hold.
   */
  logsMatch(a: LogView, b: LogView): void {
    const hi = Math.min(a.lastIndex, b.lastIndex);
    const lo = Math.max(a.firstIndex, b.firstIndex, hi - this.window + 1);
    if (hi < lo) return;
    let i = hi;
    while (i >= lo && a.termAt(i) !== b.termAt(i)) i--;
    if (i >= lo) this.membershipsAgree(a, b, i);
    for (let j = i - 1; j >= lo; j--) {
      const ta = a.termAt(j);
      const tb = b.termAt(j);
      if (ta !== tb) {
        this.report(
          "log-matching",
          `${a.id} and ${b.id} agree at index ${i} (term ${a.termAt(i)}) but differ at ${j} (terms ${ta} and ${tb})`,
        );
        return;
      }
    }
  }

  /**
   * The membership is a function of the log (thesis §4.1: a server uses the latest configuration
   * in its log), so two nodes whose logs agree up to `index` must derive the same one there.
   */
  private membershipsAgree(a: LogView, b: LogView, index: number): void {
    if (a.confAt === undefined || b.confAt === undefined) return;
    if (index < (a.snapshotIndex ?? 0) || index < (b.snapshotIndex ?? 0)) return;
    const ca = a.confAt(index);
    const cb = b.confAt(index);
    const show = (c: { voters: readonly string[]; learners: readonly string[] }): string =>
      `voters ${[...c.voters].sort().join(",") || "-"} learners ${[...c.learners].sort().join(",") || "-"}`;
    const sa = show(ca);
    const sb = show(cb);
    if (sa !== sb) {
      this.report(
        "membership-agreement",
        `${a.id} and ${b.id} hold the same log up to index ${index} but derive different memberships there: ${sa} | ${sb}`,
      );
    }
  }

  // ---- State machine safety ------------------------------------------------------------------

  /** No two nodes apply different entries at one index (§5.4.3); their states then agree too. */
  entryApplied(node: string, index: number, term: number, dataHash: number, stateDigest: number): void {
    const known = this.applied.get(index);
    if (known === undefined) {
      if (this.applied.size < MAX_TRACKED_INDEXES)
        this.applied.set(index, { term, dataHash, stateDigest, node });
      const snap = this.snapshotDigest.get(index);
      if (snap !== undefined && snap !== stateDigest) {
        this.report(
          "state-machine-safety",
          `${node}'s state after index ${index} differs from a snapshot taken there`,
        );
      }
      return;
    }
    if (known.term !== term || known.dataHash !== dataHash) {
      this.report(
        "state-machine-safety",
        `${node} applied index ${index} from term ${term}, but ${known.node} applied a different entry (term ${known.term})`,
      );
    } else if (known.stateDigest !== stateDigest) {
      this.report(
        "state-machine-safety",
        `${node}'s state after index ${index} differs from ${known.node}'s after the same entries`,
      );
    }
  }

  /** A node's state machine was replaced by (or written into) a snapshot at `index`. */
  snapshotState(node: string, index: number, stateDigest: number): void {
    const known = this.applied.get(index);
    if (known !== undefined) {
      if (known.stateDigest !== stateDigest) {
        this.report(
          "state-machine-safety",
          `${node} holds a snapshot at index ${index} unlike ${known.node}'s state there`,
        );
      }
      return;
    }
    const snap = this.snapshotDigest.get(index);
    if (snap === undefined) this.snapshotDigest.set(index, stateDigest);
    else if (snap !== stateDigest) {
      this.report(
        "state-machine-safety",
        `${node} holds a snapshot at index ${index} unlike another one there`,
      );
    }
  }

  // ---- Rule checks ---------------------------------------------------------------------------

  /**
   * `voter` sent a granted vote for `candidate` in `term`, with `durableTerm`/`durableVote` on its
   * disk at that moment. A server votes for at most one candidate per term (§5.2), and the vote
   * must be on stable storage before the answer leaves (Figure 2, "Persistent state").
   */
  voteSent(voter: string, candidate: string, term: number, durableTerm: number, durableVote: string): void {
    if (!this.ruleChecks) return;
    const key = `${voter}/${term}`;
    const known = this.votes.get(key);
    if (known === undefined) this.votes.set(key, candidate);
    else if (known !== candidate) {
      this.report("vote-once", `${voter} voted for ${known} and then for ${candidate} in term ${term}`);
    }
    if (durableTerm < term || (durableTerm === term && durableVote !== candidate)) {
      this.report(
        "vote-durability",
        `${voter} granted its term ${term} vote to ${candidate} while its disk says term ${durableTerm}, vote "${durableVote}"`,
      );
    }
  }

  /**
   * A vote (or pre-vote) is granted only to a candidate whose log is at least as up-to-date as the
   * voter's (§5.4.1): a later last term, or the same last term and at least as long.
   */
  voteGrantedFor(
    voter: string,
    candidate: string,
    kind: string,
    term: number,
    voterLast: { index: number; term: number },
    candidateLast: { index: number; term: number },
  ): void {
    if (!this.ruleChecks) return;
    const upToDate =
      candidateLast.term > voterLast.term ||
      (candidateLast.term === voterLast.term && candidateLast.index >= voterLast.index);
    if (!upToDate) {
      this.report(
        "vote-up-to-date",
        `${voter} granted a ${kind} in term ${term} to ${candidate} whose log ends at ${candidateLast.index}/t${candidateLast.term}, ` +
          `behind its own ${voterLast.index}/t${voterLast.term}`,
      );
    }
  }

  /** A leader in `term` moved its commit index to `index`; by counting, only its own term's entries commit (§5.4.2). */
  leaderCommitted(node: string, term: number, index: number, entryTerm: number | null): void {
    if (!this.ruleChecks || entryTerm === term) return;
    this.report(
      "commit-rule",
      `leader ${node} of term ${term} advanced its commit index to ${index}, an entry of term ${entryTerm}`,
    );
  }

  /**
   * A read index must cover every entry committed before the read was asked for (§6.4);
   * `committedAtStart` is the highest index known committed anywhere at that moment.
   */
  readIndexServed(node: string, index: number, committedAtStart: number): void {
    if (!this.ruleChecks || index >= committedAtStart) return;
    this.report(
      "stale-read-index",
      `${node} got read index ${index} for a read asked after index ${committedAtStart} was committed`,
    );
  }
}
