/**
 * The deterministic simulator (TigerBeetle's VOPR, for our Raft core). One seed drives a whole
 * run: a cluster of `SimNode`s, the network between them, clients, a fault injector and a
 * membership controller, all advanced by one event queue on a virtual clock. Nothing reads the
 * wall clock or `Math.random`, so the same seed replays the same run, event for event.
 *
 * A run has two phases. The safety phase injects faults (crashes that lose unsynced writes,
 * partitions, lossy links, membership changes, leadership transfers) while the checkers watch.
 * The liveness phase stops the faults and brings every node back: within a bounded number of
 * ticks a leader must exist, every member must apply everything committed, and every client must
 * complete an operation. At the end the client history must be linearizable.
 */
import type { CheckResult, Operation } from "../check/linearizability.js";
import { MemoryStorage, type BugName, type Message, type NodeId } from "../raft/index.js";
import { SafetyChecker, type Violation } from "./checkers.js";
import {
  STREAM,
  UNITS_PER_TICK,
  defaultNodeCount,
  deriveConfig,
  describeConfig,
  type SimConfig,
} from "./config.js";
import { EventQueue } from "./event-queue.js";
import { FaultInjector, type FaultTarget } from "./faults.js";
import { Digest } from "./hash.js";
import { Machines, checkRunHistory, describeError, runDue, type RestartEvent } from "./machines.js";
import { MembershipController, type MembershipTarget } from "./membership.js";
import { Network } from "./network.js";
import { SimNode, type ClientRequest, type ClientResponse, type NodeEnv } from "./node.js";
import { Random } from "./random.js";
import { Workload } from "./workload.js";

export interface SimOptions {
  readonly seed: number;
  /** Cluster size; by default odd seeds run 3 nodes and even seeds 5. */
  readonly nodes?: 3 | 5;
  /** A deliberate defect to switch on in every node's core. */
  readonly bug?: BugName;
  /** Length of the safety phase (faults on), in ticks. */
  readonly ticks?: number;
  /** Bound on the liveness phase (faults off), in ticks. */
  readonly livenessTicks?: number;
  /** Membership changes by the controller (on by default). */
  readonly membership?: boolean;
  /** The rule checks of `SafetyChecker` (on by default); off leaves only end-to-end properties. */
  readonly ruleChecks?: boolean;
  /** Stop at the first violation instead of collecting up to `maxViolations`. */
  readonly stopAtFirstViolation?: boolean;
  readonly maxViolations?: number;
  /** Receives a line per notable event (elections, crashes, partitions...), prefixed with the tick. */
  readonly trace?: (line: string) => void;
  /** Also trace delivered messages: only elections ("votes"), or every one ("all"). */
  readonly traceMessages?: "votes" | "all";
  /** Keep the client history in the result (for tests and reports). */
  readonly keepHistory?: boolean;
}

export interface SimStats {
  ticks: number;
  /** Ticks the liveness phase needed to converge (or its bound when it did not). */
  livenessTicks: number;
  messagesSent: number;
  messagesDelivered: number;
  messagesLost: number;
  /** Terms in which some node became leader. */
  elections: number;
  crashes: number;
  partitions: number;
  transfers: number;
  confChanges: number;
  nodesAdded: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  fsyncs: number;
  maxCommitIndex: number;
  opsIssued: number;
  opsOk: number;
  opsFailed: number;
  opsUnknown: number;
  historyOps: number;
  linearizability: CheckResult["kind"] | "skipped";
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly bug: BugName | null;
  readonly config: string;
  readonly violations: readonly Violation[];
  readonly stats: SimStats;
  /** Fingerprint of the run (elections, applied entries, history); equal for replays of a seed. */
  readonly digest: string;
  readonly history?: readonly Operation[];
}

export class SimOptionsError extends Error {
  override readonly name = "SimOptionsError";
  constructor(message: string) {
    super(message);
  }
}

export const DEFAULT_TICKS = 3000;
export const DEFAULT_LIVENESS_TICKS = 1500;
export const MAX_TICKS = 10_000_000;

export function runSimulation(opts: SimOptions): SimResult {
  if (!Number.isSafeInteger(opts.seed))
    throw new SimOptionsError(`seed must be an integer, got ${opts.seed}`);
  const ticks = opts.ticks ?? DEFAULT_TICKS;
  const livenessTicks = opts.livenessTicks ?? DEFAULT_LIVENESS_TICKS;
  for (const [name, v] of [
    ["ticks", ticks],
    ["livenessTicks", livenessTicks],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_TICKS)
      throw new SimOptionsError(`${name} must be 1..${MAX_TICKS}`);
  }
  if (opts.nodes !== undefined && opts.nodes !== 3 && opts.nodes !== 5) {
    throw new SimOptionsError(`nodes must be 3 or 5, got ${String(opts.nodes)}`);
  }
  return new Simulation(
    opts,
    deriveConfig(opts.seed, opts.nodes ?? defaultNodeCount(opts.seed)),
    ticks,
    livenessTicks,
  ).run();
}

type SimEvent =
  | { readonly kind: "peer"; readonly msg: Message }
  | { readonly kind: "fsync"; readonly node: NodeId; readonly incarnation: number }
  | RestartEvent
  | { readonly kind: "request"; readonly node: NodeId; readonly req: ClientRequest }
  | { readonly kind: "response"; readonly clientId: number; readonly resp: ClientResponse };

class Simulation implements FaultTarget, MembershipTarget {
  readonly network: Network<Message>;
  private readonly queue = new EventQueue<SimEvent>(2_000_000);
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly machines = new Machines(
    this.nodes,
    (at, ev) => this.queue.push(at, ev),
    () => this.now,
    (line) => this.trace(line),
  );
  private readonly checker: SafetyChecker;
  private readonly faults: FaultInjector;
  private readonly membership: MembershipController;
  private readonly workload: Workload;
  private readonly digest = new Digest();
  private readonly scheduleRandom: Random;
  private readonly clientLinkRandom: Random;
  private readonly raftRandoms: Random;
  private readonly env: NodeEnv;
  private readonly confIndexes = new Set<number>();
  private readonly founders = new Set<NodeId>();
  private now = 0;
  private tick = 0;

  constructor(
    private readonly opts: SimOptions,
    private readonly config: SimConfig,
    private readonly safetyTicks: number,
    private readonly livenessBound: number,
  ) {
    const seed = opts.seed;
    this.checker = new SafetyChecker({
      now: () => this.tick,
      ruleChecks: opts.ruleChecks ?? true,
      maxViolations: opts.stopAtFirstViolation ? 1 : (opts.maxViolations ?? 20),
    });
    this.network = new Network<Message>(new Random(seed, STREAM.network), config.network, (time, msg) =>
      this.queue.push(time, { kind: "peer", msg }),
    );
    this.scheduleRandom = new Random(seed, STREAM.schedule);
    this.clientLinkRandom = new Random(seed, STREAM.clientLinks);
    this.raftRandoms = new Random(seed, STREAM.raftBase);
    const bugs: ReadonlySet<BugName> = new Set(opts.bug ? [opts.bug] : []);
    this.env = {
      checker: this.checker,
      random: new Random(seed, STREAM.disk),
      bugs,
      now: () => this.now,
      sendPeer: (m) => this.network.send(m, this.now),
      reply: (clientId, resp) =>
        this.queue.push(this.now + this.clientLinkRandom.int(1, UNITS_PER_TICK), {
          kind: "response",
          clientId,
          resp,
        }),
      scheduleFsync: (node, incarnation, time) => this.queue.push(time, { kind: "fsync", node, incarnation }),
      confApplied: (_node, cc, index) => {
        if (this.confIndexes.has(index)) return;
        // The founders' own entries (bootstrap writes the first membership into the log) are
        // not changes; founders never rejoin as voters, since joining nodes get fresh ids.
        if (cc.type === "addVoter" && this.founders.has(cc.nodeId)) return;
        this.confIndexes.add(index);
        this.trace(`conf change committed at index ${index}: ${cc.type} ${cc.nodeId}`);
        this.membership.confApplied(cc);
      },
      afterFsync: (id) => {
        const node = this.nodes.get(id);
        if (node !== undefined) this.faults.crashAfterFsync(node);
      },
      afterVote: (id) => {
        const node = this.nodes.get(id);
        if (node !== undefined) this.faults.crashAfterVote(node);
      },
      trace: (line) => this.trace(line),
      note: (a, b, c) => {
        this.digest.addNumber(a);
        this.digest.addNumber(b);
        this.digest.addNumber(c);
      },
    };
    const voters: NodeId[] = [];
    for (let i = 1; i <= config.nodes; i++) voters.push(`n${i}`);
    for (const id of voters) this.founders.add(id);
    for (const id of voters) this.createNode(id, MemoryStorage.bootstrap(voters));
    this.faults = new FaultInjector(config.faults, new Random(seed, STREAM.faults), this);
    const membershipPlan =
      opts.membership === false ? { ...config.membership, intervalTicks: Infinity } : config.membership;
    this.membership = new MembershipController(membershipPlan, new Random(seed, STREAM.membership), this);
    this.workload = new Workload(config.workload, {
      now: () => this.now,
      random: new Random(seed, STREAM.workload),
      targets: () => this.memberIds(),
      send: (node, req) =>
        this.queue.push(this.now + this.clientLinkRandom.int(1, UNITS_PER_TICK), {
          kind: "request",
          node,
          req,
        }),
    });
  }

  run(): SimResult {
    const stopped = (): boolean => this.checker.saturated;
    let livenessTicks = 0;
    try {
      for (const node of this.nodes.values()) node.start();
      this.trace(`config: ${describeConfig(this.config)}`);
      for (let t = 1; t <= this.safetyTicks && !stopped(); t++) this.advanceTo(t);
      if (!stopped()) livenessTicks = this.livenessPhase();
    } catch (err) {
      this.checker.report("panic", describeError(err));
    }
    this.workload.finish();
    const linearizability = stopped() ? "skipped" : this.checkHistory();
    return this.result(livenessTicks, linearizability);
  }

  // ---- The clock -----------------------------------------------------------------------------

  private advanceTo(t: number): void {
    const time = t * UNITS_PER_TICK;
    runDue(this.queue, time, (at, ev) => {
      this.now = at;
      this.handle(ev);
    });
    this.now = time;
    this.tick = t;
    this.faults.step();
    this.membership.step();
    for (const node of this.scheduleRandom.shuffled([...this.nodes.values()])) node.tick();
    this.workload.step();
    if (t % 10 === 0) this.checkLogs();
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case "peer":
        this.deliver(ev.msg);
        return;
      case "fsync":
        this.nodes.get(ev.node)?.fsyncDone(ev.incarnation);
        return;
      case "restart":
        this.machines.restarting(ev)?.start();
        return;
      case "request":
        this.nodes.get(ev.node)?.clientRequest(ev.req);
        return;
      case "response":
        this.workload.onResponse(ev.clientId, ev.resp);
        return;
    }
  }

  private deliver(m: Message): void {
    const linkOk = this.network.arrive(m);
    const dest = this.nodes.get(m.to);
    if (!linkOk || dest === undefined || !dest.up) {
      // The sender's transport notices the failed send, as a broken connection would show.
      const src = this.nodes.get(m.from);
      if (src !== undefined && src.up) {
        if (m.type === "snap") src.reportSnapshot(m.to, false);
        else src.reportUnreachable(m.to);
      }
      return;
    }
    if (this.opts.trace !== undefined && this.opts.traceMessages !== undefined) this.traceMessage(m);
    dest.deliver(m);
    if (m.type === "snap") {
      const src = this.nodes.get(m.from);
      if (src !== undefined && src.up) src.reportSnapshot(m.to, true);
    }
  }

  // ---- Phases and checks ---------------------------------------------------------------------

  /** Faults off, everyone up; returns the ticks it took to converge. */
  private livenessPhase(): number {
    this.faults.stop();
    this.membership.stop();
    const p = this.network.getParams();
    this.network.setParams({ ...p, dropChance: 0, duplicateChance: 0, slowChance: 0 });
    for (const node of this.nodes.values()) {
      if (!node.up && !node.decommissioned) node.start();
    }
    this.trace("liveness phase: faults off, all nodes up");
    this.workload.startLiveness();
    let problem: string | null = "not checked yet";
    for (let i = 1; i <= this.livenessBound; i++) {
      this.advanceTo(this.safetyTicks + i);
      if (this.checker.saturated) return i;
      problem = this.livenessProblem();
      if (problem === null) return i;
    }
    this.checker.report(
      "liveness",
      `not converged ${this.livenessBound} ticks after faults stopped: ${problem}`,
    );
    this.traceCluster();
    return this.livenessBound;
  }

  private livenessProblem(): string | null {
    const leader = this.leader();
    const st = leader?.freshStatus();
    if (leader === null || st === null || st === undefined) return "no leader";
    if (st.commit < st.lastIndex) return `leader ${leader.id} has committed ${st.commit} of ${st.lastIndex}`;
    for (const id of [...st.confState.voters, ...st.confState.learners]) {
      const node = this.nodes.get(id);
      if (node === undefined || !node.up) return `member ${id} is not running`;
      if (node.applied < st.commit) return `${id} has applied ${node.applied} of ${st.commit}`;
    }
    if (!this.workload.allCompleted()) return `clients still waiting: ${this.workload.stuckClients()}`;
    return null;
  }

  private traceMessage(m: Message): void {
    const election =
      m.type === "vote" || m.type === "preVote" || m.type === "voteResp" || m.type === "preVoteResp";
    if (this.opts.traceMessages === "votes" && !election && m.type !== "timeoutNow") return;
    const ents =
      m.entries.length > 0
        ? ` entries ${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}`
        : "";
    this.trace(
      `  ${m.from}->${m.to} ${m.type} term ${m.term} index ${m.index} logTerm ${m.logTerm} commit ${m.commit}` +
        `${m.reject ? " REJECT" : ""}${ents}${m.snapshot ? ` snapshot@${m.snapshot.metadata.index}` : ""}`,
    );
  }

  /** One trace line per node with what a person debugging a stuck cluster asks first. */
  private traceCluster(): void {
    for (const node of this.nodes.values()) {
      const st = node.freshStatus();
      if (st === null) {
        this.trace(`${node.id}: ${node.decommissioned ? "removed" : "down"}`);
        continue;
      }
      const progress = [...st.progress]
        .map(([id, p]) => `${id}:${p.state}/m${p.match}/n${p.next}${p.recentActive ? "" : "/inactive"}`)
        .join(" ");
      this.trace(
        `${node.id}: ${st.role} term ${st.term} vote ${st.vote || "-"} leader ${st.leader || "-"} ` +
          `log ${st.firstIndex}..${st.lastIndex} commit ${st.commit} applied ${node.applied}/${st.applied}${node.waitingForFsync ? " (fsync pending)" : ""} ` +
          `voters ${st.confState.voters.join(",")} learners ${st.confState.learners.join(",") || "-"}` +
          (progress ? ` progress ${progress}` : ""),
      );
    }
  }

  private checkLogs(): void {
    const views = [];
    for (const node of this.nodes.values()) {
      const v = node.logView();
      if (v !== null) views.push(v);
    }
    for (let i = 0; i < views.length; i++) {
      for (let j = i + 1; j < views.length; j++) this.checker.logsMatch(views[i]!, views[j]!);
    }
  }

  private checkHistory(): CheckResult["kind"] {
    return checkRunHistory(
      this.workload.history,
      this.digest,
      (res, gist) => {
        const first = res.ops[0];
        this.checker.report(
          "linearizability",
          `key ${res.key} (${res.ops.length} operations${first ? ` from op ${first.id}` : ""}): ${gist}`,
        );
      },
      (line) => this.trace(line),
    );
  }

  private result(livenessTicks: number, linearizability: SimStats["linearizability"]): SimResult {
    const net = this.network.stats;
    const w = this.workload.stats;
    let snapshotsTaken = 0;
    let snapshotsInstalled = 0;
    let fsyncs = 0;
    for (const node of this.nodes.values()) {
      snapshotsTaken += node.stats.snapshotsTaken;
      snapshotsInstalled += node.stats.snapshotsInstalled;
      fsyncs += node.stats.fsyncs;
    }
    const stats: SimStats = {
      ticks: this.tick,
      livenessTicks,
      messagesSent: net.sent,
      messagesDelivered: net.delivered,
      messagesLost: net.dropped + net.cut + net.overflow,
      elections: this.checker.electedTerms,
      crashes: this.faults.stats.crashes,
      partitions: this.faults.stats.partitions,
      transfers: this.faults.stats.transfers,
      confChanges: this.confIndexes.size,
      nodesAdded: this.membership.stats.added,
      snapshotsTaken,
      snapshotsInstalled,
      fsyncs,
      maxCommitIndex: this.checker.maxCommitted,
      opsIssued: w.issued,
      opsOk: w.ok,
      opsFailed: w.failed,
      opsUnknown: w.unknown,
      historyOps: this.workload.history.length,
      linearizability,
    };
    this.digest.addNumber(this.tick);
    this.digest.addNumber(net.sent);
    this.digest.addNumber(this.checker.violations.length);
    return {
      seed: this.opts.seed,
      nodes: this.config.nodes,
      bug: this.opts.bug ?? null,
      config: describeConfig(this.config),
      violations: [...this.checker.violations],
      stats,
      digest: this.digest.value(),
      ...(this.opts.keepHistory ? { history: [...this.workload.history] } : {}),
    };
  }

  // ---- FaultTarget and MembershipTarget ------------------------------------------------------

  tickNumber(): number {
    return this.tick;
  }

  upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const node of this.nodes.values()) if (node.up) out.push(node);
    return out;
  }

  memberIds(): NodeId[] {
    const out: NodeId[] = [];
    for (const node of this.nodes.values()) if (!node.decommissioned) out.push(node.id);
    return out;
  }

  node(id: NodeId): SimNode | undefined {
    return this.nodes.get(id);
  }

  /** The running node that believes it leads in the highest term, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const node of this.nodes.values()) {
      const st = node.lastStatus;
      if (st !== null && st.role === "leader" && st.term > bestTerm) {
        best = node;
        bestTerm = st.term;
      }
    }
    return best;
  }

  downCount(): number {
    return this.machines.downCount();
  }

  crash(id: NodeId, downTicks: number, why: string): void {
    this.machines.crash(id, downTicks, why);
  }

  addNode(id: NodeId): SimNode {
    const node = this.createNode(id, new MemoryStorage());
    this.trace(`${id} created with an empty disk`);
    node.start();
    return node;
  }

  decommission(id: NodeId): void {
    this.machines.decommission(id, "the group");
  }

  trace(line: string): void {
    this.opts.trace?.(`[${this.tick}] ${line}`);
  }

  private createNode(id: NodeId, storage: MemoryStorage): SimNode {
    const index = Number(id.slice(1));
    const node = new SimNode(id, storage, this.config.tuning, this.env, this.raftRandoms.fork(index));
    this.nodes.set(id, node);
    return node;
  }
}
