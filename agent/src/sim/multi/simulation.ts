/**
 * The multi-Raft simulator: one seed drives a sharded cluster (a meta group plus P partition
 * groups on 3–6 boards, three replicas each) on the same Raft core, network, fault injector and
 * checkers as the one-group simulator (`../simulation.ts`). On top of them run the real
 * `ClusterController` on every board (the ring, replica moves, leader balancing, replacing a
 * board that stays down) and an operator that makes boards join and drain. Clients route each
 * key to its partition; at the end the whole history must be linearizable (keys are independent,
 * so the checker takes it key by key).
 *
 * The controller is asynchronous (it awaits its meta writes), so a run is too: after any tick in
 * which a promise settled, the loop lets the promise continuations run (`setImmediate` drains the
 * microtask queue) before the next tick. Nothing else is awaited, so a seed still replays exactly.
 */
import type { CheckResult, Operation } from "../../check/linearizability.js";
import type { LeaderQuestions } from "../../cluster/controller.js";
import { META_GROUP, RING_KEY, foundingMetaConf, foundingRing, partitionGroup } from "../../cluster/meta.js";
import { excludesAskOrder } from "../../cluster/removal-check.js";
import type { KvResult } from "../../kv/commands.js";
import {
  MemoryStorage,
  type BugName,
  type ConfChange,
  type GroupId,
  type Message,
  type NodeId,
} from "../../raft/index.js";
import { partitionForKey } from "../../ring/keys.js";
import { placement } from "../../ring/placement.js";
import { SafetyChecker, type Violation } from "../checkers.js";
import { STREAM, UNITS_PER_TICK } from "../config.js";
import { EventQueue } from "../event-queue.js";
import { FaultInjector, type FaultTarget } from "../faults.js";
import { Digest } from "../hash.js";
import { Machines, checkRunHistory, describeError, runDue, type RestartEvent } from "../machines.js";
import { Network } from "../network.js";
import type { ClientRequest, ClientResponse, NodeEnv, NodeTuning, SimNode } from "../node.js";
import { Random } from "../random.js";
import { Workload } from "../workload.js";
import {
  MAX_FOUNDERS,
  MAX_SIM_PARTITIONS,
  MIN_FOUNDERS,
  MIN_PARTITIONS,
  MS_PER_TICK,
  MULTI_STREAM,
  deriveMultiConfig,
  describeMultiConfig,
  type ControllerTiming,
  type MultiSimConfig,
} from "./config.js";
import { Operator, type OperatorTarget } from "./operator.js";
import { SimHost, type HostWorld } from "./sim-host.js";

export interface MultiSimOptions {
  readonly seed: number;
  /** Founding boards, 3–5 (default: drawn by the seed). */
  readonly nodes?: number;
  /** Partitions, 1–16 (default: drawn by the seed, 4–8). */
  readonly partitions?: number;
  readonly bug?: BugName;
  readonly ticks?: number;
  readonly livenessTicks?: number;
  /** Joins and drains by the operator (on by default). */
  readonly membership?: boolean;
  readonly ruleChecks?: boolean;
  readonly stopAtFirstViolation?: boolean;
  readonly maxViolations?: number;
  readonly trace?: (line: string) => void;
  readonly keepHistory?: boolean;
  /**
   * The controller abandons a meta write that is not decided in time (on by default). Off shows
   * the defect it fixes: a lost write holds the controller's round forever.
   */
  readonly proposeTimeout?: boolean;
}

export interface MultiSimStats {
  ticks: number;
  livenessTicks: number;
  groups: number;
  boards: number;
  messagesSent: number;
  messagesLost: number;
  messagesDuplicated: number;
  elections: number;
  crashes: number;
  partitions: number;
  transfers: number;
  joins: number;
  drains: number;
  removals: number;
  ringChanges: number;
  /** Configuration changes committed in partition groups (learner added, promoted, removed). */
  replicaChanges: number;
  metaConfChanges: number;
  snapshotsInstalled: number;
  controllerWarnings: number;
  /** Leaders' answers that a board is out of a partition (it may then release its replica). */
  removalsConfirmed: number;
  /** Answers that a joining board votes in every partition the ring gives it (it may then be `up`). */
  joinsConfirmed: number;
  opsOk: number;
  opsFailed: number;
  opsUnknown: number;
  historyOps: number;
  linearizability: CheckResult["kind"] | "skipped";
}

export interface MultiSimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly partitions: number;
  readonly bug: BugName | null;
  readonly config: string;
  readonly violations: readonly Violation[];
  readonly stats: MultiSimStats;
  readonly digest: string;
  readonly history?: readonly Operation[];
}

export class MultiSimOptionsError extends Error {
  override readonly name = "MultiSimOptionsError";
  constructor(message: string) {
    super(message);
  }
}

export const DEFAULT_MULTI_TICKS = 2000;
export const DEFAULT_MULTI_LIVENESS_TICKS = 4000;
const MAX_TICKS = 1_000_000;
/** Boards ever created, founders included (ids n1..n9). */
const MAX_BOARDS = 9;

export async function runMultiSimulation(opts: MultiSimOptions): Promise<MultiSimResult> {
  if (!Number.isSafeInteger(opts.seed))
    throw new MultiSimOptionsError(`seed must be an integer, got ${opts.seed}`);
  const ticks = opts.ticks ?? DEFAULT_MULTI_TICKS;
  const livenessTicks = opts.livenessTicks ?? DEFAULT_MULTI_LIVENESS_TICKS;
  for (const [name, v] of [
    ["ticks", ticks],
    ["livenessTicks", livenessTicks],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_TICKS)
      throw new MultiSimOptionsError(`${name} must be 1..${MAX_TICKS}`);
  }
  const n = opts.nodes;
  if (n !== undefined && !(Number.isInteger(n) && n >= MIN_FOUNDERS && n <= MAX_FOUNDERS)) {
    throw new MultiSimOptionsError(`nodes must be ${MIN_FOUNDERS}..${MAX_FOUNDERS}, got ${String(n)}`);
  }
  const p = opts.partitions;
  if (p !== undefined && !(Number.isInteger(p) && p >= MIN_PARTITIONS && p <= MAX_SIM_PARTITIONS)) {
    throw new MultiSimOptionsError(
      `partitions must be ${MIN_PARTITIONS}..${MAX_SIM_PARTITIONS}, got ${String(p)}`,
    );
  }
  const sim = new MultiSimulation(opts, deriveMultiConfig(opts.seed, n, p), ticks, livenessTicks);
  return sim.run();
}

type SimEvent =
  | { readonly kind: "peer"; readonly msg: Message }
  | { readonly kind: "fsync"; readonly node: NodeId; readonly group: GroupId; readonly incarnation: number }
  | RestartEvent
  | { readonly kind: "request"; readonly node: NodeId; readonly req: ClientRequest }
  | { readonly kind: "response"; readonly clientId: number; readonly resp: ClientResponse }
  | { readonly kind: "abort"; readonly controller: AbortController }
  | { readonly kind: "answer"; readonly deliver: () => void };

const drainPromises = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class MultiSimulation implements FaultTarget, OperatorTarget, HostWorld {
  readonly network: Network<Message>;
  private readonly queue = new EventQueue<SimEvent>(4_000_000);
  private readonly boards = new Map<NodeId, SimHost>();
  private readonly machines = new Machines(
    this.boards,
    (at, ev) => this.queue.push(at, ev),
    () => this.now,
    (line) => this.trace(line),
  );
  private readonly checkers = new Map<GroupId, SafetyChecker>();
  /** Run-level findings: linearizability, liveness, a panic. */
  private readonly runChecker: SafetyChecker;
  private readonly envs = new Map<GroupId, NodeEnv>();
  private readonly faults: FaultInjector;
  private readonly operator: Operator;
  private readonly workload: Workload;
  private readonly digest = new Digest();
  private readonly scheduleRandom: Random;
  private readonly clientLinkRandom: Random;
  private readonly leaderPickRandom: Random;
  private readonly hostRandoms: Random;
  private readonly diskRandom: Random;
  private readonly questionRandom: Random;
  private readonly bugs: ReadonlySet<BugName>;
  private readonly confIndexes = new Set<string>();
  /** Conf entries a group starts with (its founders' bootstrap), which are not changes. */
  private readonly bootstrapEntries = new Map<GroupId, number>();
  private readonly ringVersions = new Set<string>();
  private readonly maxViolations: number;
  private woken = false;
  private now = 0;
  private tick = 0;
  private boardsCreated = 0;
  private warnings = 0;
  private replicaChanges = 0;
  private metaConfChanges = 0;
  private removalsConfirmed = 0;
  private joinsConfirmed = 0;

  readonly tuning: NodeTuning;
  readonly controllerTiming: ControllerTiming;

  constructor(
    private readonly opts: MultiSimOptions,
    private readonly config: MultiSimConfig,
    private readonly safetyTicks: number,
    private readonly livenessBound: number,
  ) {
    const seed = opts.seed;
    this.tuning = config.base.tuning;
    this.controllerTiming = config.controller;
    this.maxViolations = opts.stopAtFirstViolation ? 1 : (opts.maxViolations ?? 20);
    this.runChecker = this.newChecker();
    this.bugs = new Set(opts.bug ? [opts.bug] : []);
    this.network = new Network<Message>(new Random(seed, STREAM.network), config.base.network, (time, msg) =>
      this.queue.push(time, { kind: "peer", msg }),
    );
    this.scheduleRandom = new Random(seed, STREAM.schedule);
    this.clientLinkRandom = new Random(seed, STREAM.clientLinks);
    this.leaderPickRandom = new Random(seed, MULTI_STREAM.leaderPick);
    this.hostRandoms = new Random(seed, MULTI_STREAM.hosts);
    this.diskRandom = new Random(seed, STREAM.disk);
    this.questionRandom = new Random(seed, MULTI_STREAM.questions);
    for (let g = 0; g <= config.partitions; g++) this.checkers.set(g, this.newChecker());
    this.bootstrap();
    this.faults = new FaultInjector(config.base.faults, new Random(seed, STREAM.faults), this);
    const plan =
      opts.membership === false ? { ...config.operator, intervalTicks: Infinity } : config.operator;
    this.operator = new Operator(plan, new Random(seed, MULTI_STREAM.operator), this);
    this.workload = new Workload(config.base.workload, {
      now: () => this.now,
      random: new Random(seed, STREAM.workload),
      targets: (route) => this.clientTargets(route),
      route: (key) => partitionForKey(config.partitions, key),
      send: (node, req) =>
        this.queue.push(this.now + this.clientLinkRandom.int(1, UNITS_PER_TICK), {
          kind: "request",
          node,
          req,
        }),
    });
  }

  private newChecker(): SafetyChecker {
    return new SafetyChecker({
      now: () => this.tick,
      ruleChecks: this.opts.ruleChecks ?? true,
      maxViolations: this.maxViolations,
    });
  }

  /** The founders write the meta group and their partitions exactly as `Agent.bootstrapFounder` does. */
  private bootstrap(): void {
    const ids: NodeId[] = [];
    for (let i = 1; i <= this.config.founders; i++) ids.push(`n${i}`);
    const shape = { partitions: this.config.partitions, replicationFactor: this.config.replicationFactor };
    const ring = foundingRing(ids, shape);
    const metaConf = foundingMetaConf(ids);
    const placed = placement(ring);
    this.bootstrapEntries.set(META_GROUP, metaConf.voters.length + metaConf.learners.length);
    for (const part of placed.partitions)
      this.bootstrapEntries.set(partitionGroup(part.partition), part.replicas.length);
    for (const id of ids) {
      const host = this.createBoard(id, ring);
      host.createReplica(META_GROUP, MemoryStorage.bootstrap(metaConf.voters, metaConf.learners));
      for (const part of placed.partitions) {
        if (part.replicas.includes(id))
          host.createReplica(partitionGroup(part.partition), MemoryStorage.bootstrap(part.replicas));
      }
    }
  }

  private createBoard(id: NodeId, ring: ReturnType<typeof foundingRing> | null): SimHost {
    this.boardsCreated++;
    const host = new SimHost(id, this, this.hostRandoms.fork(this.boardsCreated), ring, {
      id,
      peer: `${id}:7100`,
      api: `http://${id}:7000`,
      weight: 1,
      ...(this.config.machines > 0 ? { machine: `m${this.boardsCreated % this.config.machines}` } : {}),
    });
    this.boards.set(id, host);
    return host;
  }

  get saturated(): boolean {
    let n = this.runChecker.violations.length;
    for (const c of this.checkers.values()) n += c.violations.length;
    return n >= this.maxViolations;
  }

  async run(): Promise<MultiSimResult> {
    let livenessTicks = 0;
    try {
      for (const host of this.boards.values()) host.boot();
      this.trace(`config: ${describeMultiConfig(this.config)}`);
      for (let t = 1; t <= this.safetyTicks && !this.saturated; t++) await this.step(t);
      if (!this.saturated) livenessTicks = await this.livenessPhase();
    } catch (err) {
      this.runChecker.report("panic", describeError(err));
    }
    this.workload.finish();
    const linearizability = this.saturated ? "skipped" : this.checkHistory();
    return this.result(livenessTicks, linearizability);
  }

  // ---- The clock -----------------------------------------------------------------------------

  private async step(t: number): Promise<void> {
    this.advanceTo(t);
    if (this.woken) {
      this.woken = false;
      await drainPromises();
    }
  }

  private advanceTo(t: number): void {
    const time = t * UNITS_PER_TICK;
    runDue(this.queue, time, (at, ev) => {
      this.now = at;
      this.handle(ev);
    });
    this.now = time;
    this.tick = t;
    this.faults.step();
    this.operator.step();
    const order = (groups: GroupId[]): GroupId[] => this.scheduleRandom.shuffled(groups);
    for (const host of this.scheduleRandom.shuffled([...this.boards.values()])) host.tick(order);
    this.workload.step();
    if ((t * MS_PER_TICK) % this.controllerTiming.intervalMs === 0) {
      for (const host of this.boards.values()) host.round();
      this.woken = true;
    }
    if (t % 10 === 0) this.checkLogs();
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case "peer":
        this.deliver(ev.msg);
        return;
      case "fsync":
        this.boards.get(ev.node)?.replicaOf(ev.group)?.fsyncDone(ev.incarnation);
        return;
      case "restart":
        this.machines.restarting(ev)?.boot();
        return;
      case "request":
        this.clientRequest(ev.node, ev.req);
        return;
      case "response":
        this.workload.onResponse(ev.clientId, ev.resp);
        return;
      case "abort":
        ev.controller.abort();
        return;
      case "answer":
        ev.deliver();
        return;
    }
  }

  private deliver(m: Message): void {
    const linkOk = this.network.arrive(m);
    const dest = this.boards.get(m.to);
    const replica = dest?.serving(m.group);
    const src = this.boards.get(m.from)?.serving(m.group);
    if (!linkOk || dest === undefined || !dest.up) {
      // The sender's transport notices the failed send, as a broken connection would show.
      if (src !== undefined) {
        if (m.type === "snap") src.reportSnapshot(m.to, false);
        else src.reportUnreachable(m.to);
      }
      return;
    }
    if (replica === undefined) {
      // The board does not host the group (yet): the real host drops the message.
      if (m.type === "snap") src?.reportSnapshot(m.to, false);
      return;
    }
    if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") dest.noteLeaderContact(m.group);
    replica.deliver(m);
    if (m.type === "snap") src?.reportSnapshot(m.to, true);
  }

  private clientRequest(node: NodeId, req: ClientRequest): void {
    const host = this.boards.get(node);
    if (host === undefined || !host.up) return; // Lost; the client times out.
    const group = partitionGroup(partitionForKey(this.config.partitions, req.input.key));
    const replica = host.serving(group);
    if (replica === undefined) {
      this.queue.push(this.now + this.clientLinkRandom.int(1, UNITS_PER_TICK), {
        kind: "response",
        clientId: req.clientId,
        resp: { kind: "fail", opId: req.opId, leaderHint: "", reason: "partition not hosted here" },
      });
      return;
    }
    replica.clientRequest(req);
  }

  private clientTargets(route: number | undefined): NodeId[] {
    if (route !== undefined) {
      const group = partitionGroup(route);
      const out = [...this.boards.values()].filter((h) => h.mayServe(group)).map((h) => h.id);
      if (out.length > 0) return out;
    }
    return this.memberIds();
  }

  // ---- Phases and checks ---------------------------------------------------------------------

  private async livenessPhase(): Promise<number> {
    this.faults.stop();
    this.operator.stop();
    const p = this.network.getParams();
    this.network.setParams({ ...p, dropChance: 0, duplicateChance: 0, slowChance: 0 });
    for (const host of this.boards.values()) if (!host.up && !host.decommissioned) host.boot();
    this.trace("liveness phase: faults off, all boards up");
    this.workload.startLiveness();
    let problem: string | null = "not checked yet";
    for (let i = 1; i <= this.livenessBound; i++) {
      await this.step(this.safetyTicks + i);
      if (this.saturated) return i;
      problem = this.livenessProblem();
      if (problem === null) return i;
    }
    this.runChecker.report(
      "liveness",
      `not converged ${this.livenessBound} ticks after faults stopped: ${problem}`,
    );
    for (let g = 0; g <= this.config.partitions; g++) {
      const st = this.leaderOf(g)?.freshStatus();
      if (st === null || st === undefined) continue;
      const progress = [...st.progress]
        .map(([id, pr]) => `${id}:${pr.state}/m${pr.match}/n${pr.next}${pr.recentActive ? "" : "/inactive"}`)
        .join(" ");
      this.trace(`group ${g}: leader ${st.id} term ${st.term} commit ${st.commit} progress ${progress}`);
    }
    for (const host of this.boards.values()) {
      const groups = host.up ? host.groups().join(",") : "-";
      this.trace(
        `${host.id}: ${host.decommissioned ? "removed" : host.up ? "up" : "down"}, hosts ${groups}, ` +
          `${host.pendingProposals} meta proposals waiting`,
      );
    }
    return this.livenessBound;
  }

  /** What still keeps the cluster from having converged, or null. */
  private livenessProblem(): string | null {
    const metaLeader = this.metaLeader();
    if (metaLeader === null) return "no meta leader";
    for (let g = 0; g <= this.config.partitions; g++) {
      const problem = this.groupProblem(g);
      if (problem !== null) return problem;
    }
    const meta = metaLeader.meta;
    const ring = meta.ring();
    if (ring === null || !meta.ringStored()) return "the ring is not stored";
    const up = meta
      .members()
      .filter((m) => m.state === "up")
      .map((m) => m.id)
      .sort();
    const inRing = ring.nodes.map((n) => n.id).sort();
    if (up.join() !== inRing.join())
      return `ring holds ${inRing.join(",")} but members up are ${up.join(",")}`;
    for (let p = 0; p < this.config.partitions; p++) {
      const want = [...meta.replicas(p)].sort();
      const conf = this.leaderOf(partitionGroup(p))!.freshStatus()!.confState;
      const have = [...conf.voters].sort();
      if (want.join() !== have.join() || conf.learners.length > 0) {
        return `partition ${p} has voters ${have.join(",")} learners ${conf.learners.join(",") || "-"}, placement wants ${want.join(",")}`;
      }
    }
    for (const host of this.boards.values()) {
      const held = host.heldReplicas();
      if (held.length > 0)
        return `${host.id} keeps partitions ${held.map((h) => h.partition).join(",")}: no leader confirmed their removal`;
    }
    if (!this.workload.allCompleted()) return `clients still waiting: ${this.workload.stuckClients()}`;
    return null;
  }

  private groupProblem(g: GroupId): string | null {
    const leader = this.leaderOf(g);
    const st = leader?.freshStatus();
    if (leader === undefined || st === null || st === undefined) return `group ${g} has no leader`;
    if (st.commit < st.lastIndex)
      return `group ${g}: leader ${leader.id} has committed ${st.commit} of ${st.lastIndex}`;
    for (const id of [...st.confState.voters, ...st.confState.learners]) {
      const r = this.boards.get(id)?.serving(g);
      if (r === undefined) return `group ${g}: member ${id} is not running it`;
      if (r.applied < st.commit) return `group ${g}: ${id} has applied ${r.applied} of ${st.commit}`;
    }
    return null;
  }

  private checkLogs(): void {
    for (let g = 0; g <= this.config.partitions; g++) {
      const views = [];
      for (const host of this.boards.values()) {
        const v = host.serving(g)?.logView();
        if (v !== null && v !== undefined) views.push(v);
      }
      const checker = this.checkers.get(g)!;
      for (let i = 0; i < views.length; i++) {
        for (let j = i + 1; j < views.length; j++) checker.logsMatch(views[i]!, views[j]!);
      }
    }
  }

  private checkHistory(): CheckResult["kind"] {
    return checkRunHistory(
      this.workload.history,
      this.digest,
      (res, gist) => {
        const partition = partitionForKey(this.config.partitions, res.key);
        this.runChecker.report(
          "linearizability",
          `key ${res.key} (partition ${partition}, ${res.ops.length} operations): ${gist}`,
        );
      },
      (line) => this.trace(line),
    );
  }

  private result(livenessTicks: number, linearizability: MultiSimStats["linearizability"]): MultiSimResult {
    const net = this.network.stats;
    const w = this.workload.stats;
    let snapshotsInstalled = 0;
    let elections = 0;
    for (const host of this.boards.values()) {
      for (const [, r] of host.allReplicas()) snapshotsInstalled += r.stats.snapshotsInstalled;
    }
    const violations: Violation[] = [...this.runChecker.violations];
    for (const [g, c] of this.checkers) {
      elections += c.electedTerms;
      for (const v of c.violations) violations.push({ ...v, description: `group ${g}: ${v.description}` });
    }
    violations.sort((a, b) => a.tick - b.tick);
    const stats: MultiSimStats = {
      ticks: this.tick,
      livenessTicks,
      groups: this.config.partitions + 1,
      boards: this.boardsCreated,
      messagesSent: net.sent,
      messagesLost: net.dropped + net.cut + net.overflow,
      messagesDuplicated: net.duplicated,
      elections,
      crashes: this.faults.stats.crashes,
      partitions: this.faults.stats.partitions,
      transfers: this.faults.stats.transfers,
      joins: this.operator.stats.joins,
      drains: this.operator.stats.drains,
      removals: this.operator.stats.decommissioned,
      ringChanges: this.ringVersions.size,
      replicaChanges: this.replicaChanges,
      metaConfChanges: this.metaConfChanges,
      snapshotsInstalled,
      controllerWarnings: this.warnings,
      removalsConfirmed: this.removalsConfirmed,
      joinsConfirmed: this.joinsConfirmed,
      opsOk: w.ok,
      opsFailed: w.failed,
      opsUnknown: w.unknown,
      historyOps: this.workload.history.length,
      linearizability,
    };
    this.digest.addNumber(this.tick);
    this.digest.addNumber(net.sent);
    this.digest.addNumber(violations.length);
    return {
      seed: this.opts.seed,
      nodes: this.config.founders,
      partitions: this.config.partitions,
      bug: this.opts.bug ?? null,
      config: describeMultiConfig(this.config),
      violations,
      stats,
      digest: this.digest.value(),
      ...(this.opts.keepHistory ? { history: [...this.workload.history] } : {}),
    };
  }

  // ---- HostWorld -----------------------------------------------------------------------------

  env(group: GroupId): NodeEnv {
    let env = this.envs.get(group);
    if (env !== undefined) return env;
    const checker = this.checkers.get(group)!;
    env = {
      checker,
      random: this.diskRandom,
      bugs: this.bugs,
      now: () => this.now,
      sendPeer: (m) => this.network.send(m, this.now),
      reply: (clientId, resp) =>
        this.queue.push(this.now + this.clientLinkRandom.int(1, UNITS_PER_TICK), {
          kind: "response",
          clientId,
          resp,
        }),
      scheduleFsync: (node, incarnation, time) =>
        this.queue.push(time, { kind: "fsync", node, group, incarnation }),
      confApplied: (_node, cc, index) => this.confApplied(group, cc, index),
      afterFsync: (id) => {
        const r = this.boards.get(id)?.serving(group);
        if (r !== undefined) this.faults.crashAfterFsync(r);
      },
      afterVote: (id) => {
        const r = this.boards.get(id)?.serving(group);
        if (r !== undefined) this.faults.crashAfterVote(r);
      },
      trace: (line) => this.trace(`g${group} ${line}`),
      note: (a, b, c) => {
        this.digest.addNumber(group);
        this.digest.addNumber(a);
        this.digest.addNumber(b);
        this.digest.addNumber(c);
      },
    };
    this.envs.set(group, env);
    return env;
  }

  private confApplied(group: GroupId, cc: ConfChange, index: number): void {
    const key = `${group}/${index}`;
    if (this.confIndexes.has(key) || index <= (this.bootstrapEntries.get(group) ?? 0)) return;
    this.confIndexes.add(key);
    if (group === META_GROUP) this.metaConfChanges++;
    else this.replicaChanges++;
    this.trace(`g${group} conf change committed at index ${index}: ${cc.type} ${cc.nodeId}`);
  }

  nowMs(): number {
    return this.tick * MS_PER_TICK;
  }

  timeoutSignal(ms: number): AbortSignal {
    const controller = new AbortController();
    if (this.opts.proposeTimeout !== false) {
      this.queue.push(this.now + Math.ceil(ms / MS_PER_TICK) * UNITS_PER_TICK, { kind: "abort", controller });
    }
    return controller.signal;
  }

  wake(): void {
    this.woken = true;
  }

  warned(): void {
    this.warnings++;
  }

  /**
   * The questions the agent asks over HTTP (`removal-check.ts`), as a round trip: answered a
   * moment later from the state the asked boards are in then, by the boards the asker can reach
   * both ways (a cut link or a board that is down is a request that fails). The agent asks its
   * candidates one by one with a timeout each; here they all answer in one hop.
   */
  leaderQuestions(asker: SimHost): LeaderQuestions {
    return {
      excludes: (partition) =>
        this.ask(asker, () => {
          const out = this.excludedBy(asker, partition);
          if (out) this.removalsConfirmed++;
          return out;
        }),
      holdsAsVoter: (node, partitions) =>
        this.ask(asker, () => {
          const holds = this.votesIn(asker, node, partitions);
          if (holds) this.joinsConfirmed++;
          return holds;
        }),
    };
  }

  private ask(asker: SimHost, answer: () => boolean): Promise<boolean> {
    const incarnation = asker.incarnation;
    return new Promise((resolve) => {
      this.queue.push(this.now + this.questionRandom.int(1, 2 * UNITS_PER_TICK), {
        kind: "answer",
        deliver: () => {
          // A reboot forgot the question (its controller is a new one).
          resolve(asker.up && asker.incarnation === incarnation && answer());
          this.wake();
        },
      });
    });
  }

  private reachable(from: NodeId, to: NodeId): SimHost | undefined {
    const host = this.boards.get(to);
    if (host === undefined || !host.up) return undefined;
    return from === to || (this.network.linkUp(from, to) && this.network.linkUp(to, from)) ? host : undefined;
  }

  /** `leaderExcludes`: the first reachable leader's latest and committed configurations both leave the asker out. */
  private excludedBy(asker: SimHost, partition: number): boolean {
    const g = partitionGroup(partition);
    for (const id of excludesAskOrder(asker.meta, asker.id, partition)) {
      const host = this.reachable(asker.id, id);
      const st = host?.serving(g)?.freshStatus();
      if (host === undefined || st?.role !== "leader") continue;
      const committed = host.committedConfState(g);
      return [st.confState, committed].every(
        (c) => !c.voters.includes(asker.id) && !c.learners.includes(asker.id),
      );
    }
    return false;
  }

  /** `leadersHoldAsVoter`: the newest reachable leader of each partition has committed `node` as a voter. */
  private votesIn(asker: SimHost, node: NodeId, partitions: readonly number[]): boolean {
    const ids = asker.meta
      .members()
      .filter((m) => m.state !== "removed")
      .map((m) => m.id);
    return partitions.every((partition) => {
      const g = partitionGroup(partition);
      let best: { term: number; host: SimHost } | null = null;
      for (const id of ids) {
        const host = this.reachable(asker.id, id);
        const st = host?.serving(g)?.freshStatus();
        if (host !== undefined && st?.role === "leader" && (best === null || st.term > best.term))
          best = { term: st.term, host };
      }
      return best !== null && best.host.committedConfState(g).voters.includes(node);
    });
  }

  metaApplied(_node: NodeId, key: string, result: KvResult): void {
    if (key === RING_KEY && result.ok && !this.ringVersions.has(result.version)) {
      this.ringVersions.add(result.version);
      this.trace(`ring changed (version ${result.version})`);
    }
  }

  // ---- FaultTarget and OperatorTarget --------------------------------------------------------

  tickNumber(): number {
    return this.tick;
  }

  /** One running replica per running board (the fault injector only uses their ids). */
  upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const host of this.boards.values()) {
      const r = host.serving(META_GROUP);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  memberIds(): NodeId[] {
    return [...this.boards.values()].filter((h) => !h.decommissioned).map((h) => h.id);
  }

  hosts(): readonly SimHost[] {
    return [...this.boards.values()];
  }

  /**
   * The leader the fault injector aims at: the meta group's a third of the time, else a random
   * partition's, so that faults hit every group's leader over a run.
   */
  leader(): SimNode | null {
    const r = this.leaderPickRandom;
    const group = r.chance(1 / 3) ? META_GROUP : partitionGroup(r.int(0, this.config.partitions - 1));
    return this.leaderOf(group) ?? null;
  }

  private leaderOf(group: GroupId): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const host of this.boards.values()) {
      const st = host.serving(group)?.lastStatus;
      if (st !== null && st !== undefined && st.role === "leader" && st.term > bestTerm) {
        best = host.serving(group);
        bestTerm = st.term;
      }
    }
    return best;
  }

  metaLeader(): SimHost | null {
    const r = this.leaderOf(META_GROUP);
    return r === undefined ? null : (this.boards.get(r.id) ?? null);
  }

  holdsReplicas(id: NodeId): boolean {
    for (let p = 0; p < this.config.partitions; p++) {
      const conf = this.leaderOf(partitionGroup(p))?.freshStatus()?.confState;
      // Without a leader nobody can tell: count it as held.
      if (conf === undefined || conf.voters.includes(id) || conf.learners.includes(id)) return true;
    }
    return false;
  }

  downCount(): number {
    return this.machines.downCount();
  }

  crash(id: NodeId, downTicks: number, why: string): void {
    this.machines.crash(id, downTicks, why);
  }

  join(): SimHost | null {
    if (this.boardsCreated >= MAX_BOARDS) return null;
    const id = `n${this.boardsCreated + 1}`;
    const host = this.createBoard(id, null);
    // A joining agent hosts an empty meta replica from its first start (`Agent.start`).
    host.createReplica(META_GROUP, new MemoryStorage());
    this.trace(`${id} created with an empty disk`);
    host.boot();
    return host;
  }

  decommission(id: NodeId): void {
    this.machines.decommission(id, "the cluster");
  }

  trace(line: string): void {
    this.opts.trace?.(`[${this.tick}] ${line}`);
  }
}
