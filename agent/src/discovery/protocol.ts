/**
 * The bootstrap agreement: how brand-new nodes that discovered each other pick ONE founder set
 * and create exactly one cluster with it. Pure and synchronous (no sockets, no clock, no
 * randomness of its own), so the deterministic simulator (`sim.ts`) and the real driver
 * (`service.ts`) run the same code. The argument for its safety is in `README.md`; in short:
 *
 *  - A coordinator is a new node that sees at least `expect` new nodes, the lowest id among them
 *    being its own. It picks the `expect` lowest ids it has verified (the founder set S), draws a
 *    fresh nonce and asks each member of S for a lock on (coordinator, nonce, S).
 *  - A node grants a lock only while it is new and unlocked (or already locks the same attempt),
 *    and only if it knows no new node with a lower id than the coordinator. A grant is persisted
 *    before it is sent, so it survives a restart.
 *  - The coordinator commits only once every member of S granted; commit is persisted before it is
 *    revealed. The cluster id is derived from S and the nonce, so every founder computes it alone.
 *  - A locked node never acts on its own: it asks the coordinator. If the coordinator reports the
 *    cluster id of the locked attempt, it founds with S; if it reports anything that proves the
 *    attempt is over (new, another attempt, another cluster), it releases the lock. While the
 *    coordinator cannot be reached it stays locked: waiting is always safe.
 *  - A node that sees a verified member of an existing cluster joins it instead (when unlocked).
 *
 * Locks are exclusive, so two committed founder sets never share a node; with fewer than
 * 2 × expect new nodes that also means at most one cluster.
 */
import { createHash } from "node:crypto";

export type NodeId = string;

/** What a node says about itself when asked (over the authenticated probe). */
export type BootstrapState = "new" | "locked" | "preparing" | "committed" | "joining" | "member";

export interface Attempt {
  readonly coordinator: NodeId;
  readonly nonce: string;
  /** The founder set, sorted. */
  readonly founders: readonly NodeId[];
}

export interface Report {
  readonly id: NodeId;
  readonly state: BootstrapState;
  /** Set when committed or member. */
  readonly clusterId?: string;
  /** The attempt this node is locked to (locked) or runs (preparing). */
  readonly attempt?: Attempt;
  /** New nodes this node has verified, for gossip and the lowest-id rule. */
  readonly known: readonly NodeId[];
}

export type PrepareReply =
  | { readonly granted: true; readonly report: Report }
  | { readonly granted: false; readonly reason: string; readonly report: Report };

/** What the driver must do. Persist actions come first and must be durable before the rest. */
export type Action =
  | { readonly type: "prepare"; readonly to: NodeId; readonly attempt: Attempt }
  | { readonly type: "found"; readonly attempt: Attempt; readonly clusterId: string }
  | { readonly type: "join"; readonly via: NodeId; readonly clusterId: string };

/** What is persisted (the driver writes it before acting on the state change). */
export type Durable =
  | { readonly kind: "new" }
  | { readonly kind: "locked"; readonly attempt: Attempt }
  | { readonly kind: "committed"; readonly attempt: Attempt; readonly clusterId: string };

export interface ProtocolOptions {
  readonly id: NodeId;
  /** Founders of a new cluster (1 allowed: a single-board cluster). */
  readonly expect: number;
  /** Ticks the set of known new nodes must stay unchanged before this node coordinates. */
  readonly settleTicks: number;
  /** Ticks a coordinator waits for all grants before it gives up the attempt. */
  readonly prepareTimeoutTicks: number;
  /** A peer's report older than this is forgotten (it went away or stopped answering). */
  readonly reportTtlTicks: number;
  /** Randomness (in [0, 1)) for nonces and back-off; injected so the simulator is deterministic. */
  readonly random: () => number;
  /** The state read back from disk on start. */
  readonly durable?: Durable;
  /** Join only a cluster this accepts, and never found one (folding into a given cluster). */
  readonly onlyCluster?: (clusterId: string) => boolean;
}

/** The cluster id every founder derives from the agreed attempt. */
export function clusterIdOf(attempt: Attempt): string {
  const text = `${[...attempt.founders].sort().join(",")}|${attempt.nonce}`;
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/** The short form shown in mDNS TXT records and tables. */
export function fingerprint(clusterId: string): string {
  return clusterId.slice(0, 8);
}

function sameAttempt(a: Attempt | undefined, b: Attempt | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.coordinator === b.coordinator &&
    a.nonce === b.nonce &&
    a.founders.join(",") === b.founders.join(",")
  );
}

type Phase =
  | { kind: "new" }
  | { kind: "locked"; attempt: Attempt }
  | { kind: "preparing"; attempt: Attempt; granted: Set<NodeId>; sinceTick: number }
  | { kind: "committed"; attempt: Attempt; clusterId: string }
  | { kind: "joining"; via: NodeId; clusterId: string };

export class BootstrapProtocol {
  private phase: Phase;
  private tickCount = 0;
  /** Last report heard from each peer, and when. */
  private readonly reports = new Map<NodeId, { report: Report; tick: number }>();
  private lastKnownKey = "";
  private knownSinceTick = 0;
  private backoffUntilTick = 0;
  private probeCount = 0;
  /** The probe count when the lock was taken (0 after a restart: every later probe is fresh). */
  private lockedAtProbe = 0;
  /** Counts, for status and tests. */
  readonly stats = { attempts: 0, aborted: 0, grants: 0, refusals: 0, releases: 0 };

  constructor(private readonly opts: ProtocolOptions) {
    if (!Number.isInteger(opts.expect) || opts.expect < 1) throw new RangeError("expect must be >= 1");
    const d = opts.durable ?? { kind: "new" };
    this.phase =
      d.kind === "new"
        ? { kind: "new" }
        : d.kind === "locked"
          ? { kind: "locked", attempt: d.attempt }
          : { kind: "committed", attempt: d.attempt, clusterId: d.clusterId };
  }

  get id(): NodeId {
    return this.opts.id;
  }

  /** The outcome, once there is one: found a cluster with these founders, or join one. */
  outcome(): Action | null {
    if (this.phase.kind === "committed")
      return { type: "found", attempt: this.phase.attempt, clusterId: this.phase.clusterId };
    if (this.phase.kind === "joining")
      return { type: "join", via: this.phase.via, clusterId: this.phase.clusterId };
    return null;
  }

  durable(): Durable {
    if (this.phase.kind === "locked") return { kind: "locked", attempt: this.phase.attempt };
    if (this.phase.kind === "committed")
      return { kind: "committed", attempt: this.phase.attempt, clusterId: this.phase.clusterId };
    return { kind: "new" };
  }

  /** New nodes this node has heard from recently (itself included), sorted. */
  known(): NodeId[] {
    const ids = [this.opts.id];
    for (const [id, r] of this.reports) {
      if (this.tickCount - r.tick > this.opts.reportTtlTicks) continue;
      const st = r.report.state;
      if (st === "new" || st === "locked" || st === "preparing") ids.push(id);
    }
    return ids.sort();
  }

  report(): Report {
    const p = this.phase;
    const known = this.known();
    switch (p.kind) {
      case "new":
        return { id: this.opts.id, state: "new", known };
      case "locked":
        return { id: this.opts.id, state: "locked", attempt: p.attempt, known };
      case "preparing":
        return { id: this.opts.id, state: "preparing", attempt: p.attempt, known };
      case "committed":
        return { id: this.opts.id, state: "committed", clusterId: p.clusterId, attempt: p.attempt, known };
      case "joining":
        return { id: this.opts.id, state: "joining", clusterId: p.clusterId, known };
    }
  }

  /**
   * A token to send with a probe and hand back to `observe` with its answer. A locked node only
   * releases on an answer to a probe sent after it locked: an older answer, delayed on the way,
   * may predate the attempt and prove nothing about it.
   */
  probeToken(): number {
    return ++this.probeCount;
  }

  /** A verified peer's report; `token` is the probe's (none for reports that are not answers). */
  observe(report: Report, token = 0): void {
    if (report.id === this.opts.id) return;
    this.reports.set(report.id, { report, tick: this.tickCount });
    const p = this.phase;
    // A locked node learns its attempt's fate from the coordinator alone.
    if (p.kind === "locked" && report.id === p.attempt.coordinator) {
      if (report.state === "committed" || report.state === "member") {
        if (report.clusterId === clusterIdOf(p.attempt)) {
          this.phase = { kind: "committed", attempt: p.attempt, clusterId: report.clusterId };
          return;
        }
        this.release();
      } else if (
        token > this.lockedAtProbe &&
        (report.state !== "preparing" || !sameAttempt(report.attempt, p.attempt))
      ) {
        this.release();
      }
    }
  }

  private release(): void {
    this.phase = { kind: "new" };
    this.stats.releases++;
  }

  /** A coordinator asks for a lock. The driver persists `durable()` before sending the reply. */
  onPrepare(attempt: Attempt): PrepareReply {
    const p = this.phase;
    const refuse = (reason: string): PrepareReply => {
      this.stats.refusals++;
      return { granted: false, reason, report: this.report() };
    };
    if (!attempt.founders.includes(this.opts.id)) return refuse("not in the founder set");
    if (p.kind === "committed" || p.kind === "joining") return refuse("already in a cluster");
    if (p.kind === "preparing") return refuse("coordinating an attempt of its own");
    if (p.kind === "locked" && !sameAttempt(p.attempt, attempt)) {
      // A newer attempt of the same coordinator proves its older one is over.
      if (p.attempt.coordinator !== attempt.coordinator) return refuse("locked to another attempt");
    }
    const lower = this.known().find((id) => id < attempt.coordinator);
    if (lower !== undefined) return refuse(`knows a new node with a lower id (${lower})`);
    this.phase = { kind: "locked", attempt };
    this.lockedAtProbe = this.probeCount;
    this.stats.grants++;
    return { granted: true, report: this.report() };
  }

  /** The answer to our prepare from `from`. */
  onPrepareReply(from: NodeId, nonce: string, reply: PrepareReply): void {
    this.observe(reply.report);
    const p = this.phase;
    if (p.kind !== "preparing" || p.attempt.nonce !== nonce) return;
    if (!reply.granted) {
      this.abort();
      return;
    }
    p.granted.add(from);
    if (p.attempt.founders.every((id) => p.granted.has(id))) {
      this.phase = { kind: "committed", attempt: p.attempt, clusterId: clusterIdOf(p.attempt) };
    }
  }

  private abort(): void {
    this.phase = { kind: "new" };
    this.stats.aborted++;
    // Random back-off, so two would-be coordinators do not keep colliding.
    this.backoffUntilTick = this.tickCount + 1 + Math.floor(this.opts.random() * this.opts.settleTicks * 2);
  }

  /**
   * Advances one tick and says what to send. A new node that heard from a member of a cluster
   * turns to joining it (it never coordinates again); a coordinator re-sends its prepares.
   */
  tick(): Action[] {
    this.tickCount++;
    const p = this.phase;
    if (p.kind === "committed" || p.kind === "joining") return [];
    if (p.kind === "locked") return [];
    const member = this.memberToJoin();
    if (p.kind === "new" && member) {
      this.phase = { kind: "joining", via: member.id, clusterId: member.clusterId };
      return [];
    }
    if (p.kind === "preparing") {
      if (this.tickCount - p.sinceTick > this.opts.prepareTimeoutTicks) {
        this.abort();
        return [];
      }
      // Re-send to those that have not granted yet (messages may be lost).
      return p.attempt.founders
        .filter((id) => id !== this.opts.id && !p.granted.has(id))
        .map((to) => ({ type: "prepare" as const, to, attempt: p.attempt }));
    }
    return this.maybeCoordinate();
  }

  private memberToJoin(): { id: NodeId; clusterId: string } | null {
    let best: { id: NodeId; clusterId: string } | null = null;
    for (const [id, r] of this.reports) {
      if (this.tickCount - r.tick > this.opts.reportTtlTicks) continue;
      const st = r.report.state;
      const accepted = r.report.clusterId && (this.opts.onlyCluster?.(r.report.clusterId) ?? true);
      if ((st === "member" || st === "committed") && accepted && r.report.clusterId) {
        if (!best || id < best.id) best = { id, clusterId: r.report.clusterId };
      }
    }
    return best;
  }

  private maybeCoordinate(): Action[] {
    const known = this.known();
    const key = known.join(",");
    if (key !== this.lastKnownKey) {
      this.lastKnownKey = key;
      this.knownSinceTick = this.tickCount;
    }
    if (this.opts.onlyCluster || known.length < this.opts.expect || known[0] !== this.opts.id) return [];
    // Someone we know knows a lower new node: it should coordinate, not us.
    for (const [, r] of this.reports) {
      if (this.tickCount - r.tick > this.opts.reportTtlTicks) continue;
      if (r.report.known.some((id) => id < this.opts.id)) return [];
    }
    if (this.tickCount - this.knownSinceTick < this.opts.settleTicks) return [];
    if (this.tickCount < this.backoffUntilTick) return [];
    const founders = known.slice(0, this.opts.expect);
    const nonce = Math.floor(this.opts.random() * 2 ** 48)
      .toString(16)
      .padStart(12, "0");
    const attempt: Attempt = { coordinator: this.opts.id, nonce, founders };
    this.stats.attempts++;
    if (founders.length === 1) {
      this.phase = { kind: "committed", attempt, clusterId: clusterIdOf(attempt) };
      return [];
    }
    this.phase = { kind: "preparing", attempt, granted: new Set([this.opts.id]), sinceTick: this.tickCount };
    return founders
      .filter((id) => id !== this.opts.id)
      .map((to) => ({ type: "prepare" as const, to, attempt }));
  }
}
