/**
 * One simulated board of a multi-Raft cluster: the replicas it hosts (a `SimNode` per Raft group,
 * each with its own simulated disk), the meta view read from its meta replica, and the real
 * `ClusterController` driven over it. It offers the controller what `RaftHost` offers
 * (`ControllerHost`): status, hosting, configuration changes, transfers and proposals that
 * resolve once applied here.
 *
 * Differences from the real host, on purpose: each group's Ready waits for its own simulated
 * fsync (the real host writes every group's Ready in one transaction), and a proposal made with
 * no leader known fails at once rather than waiting a few ticks for an election.
 */
import {
  ClusterController,
  type ControllerHost,
  type HeldReplica,
  type LeaderQuestions,
} from "../../cluster/controller.js";
import { META_GROUP, MetaView, type MemberRecord } from "../../cluster/meta.js";
import { encodeCommand, type KvCommandInput, type KvResult } from "../../kv/commands.js";
import type { KvRecord } from "../../node/ports.js";
import {
  MemoryStorage,
  ProposalDroppedError,
  type ConfChange,
  type ConfState,
  type GroupId,
  type NodeId,
  type RaftStatus,
} from "../../raft/index.js";
import type { Ring } from "../../ring/types.js";
import { kvMachine, SimNode, type NodeEnv, type NodeTuning } from "../node.js";
import type { Random } from "../random.js";
import { MetaMachine } from "./meta-machine.js";

/** A request this host cannot serve now; the controller logs it and tries again next round. */
export class SimUnavailableError extends Error {
  override readonly name = "SimUnavailableError";
  constructor(message: string) {
    super(message);
  }
}

/** What a host needs from the simulated world; one per cluster, shared by every host. */
export interface HostWorld {
  readonly tuning: NodeTuning;
  /** The environment (checker, clock, network...) of a group's replicas. */
  env(group: GroupId): NodeEnv;
  nowMs(): number;
  /** Something settled a promise: the simulation must let its continuations run. */
  wake(): void;
  trace(line: string): void;
  /** A meta command was applied on board `node` (every replica reports it). */
  metaApplied(node: NodeId, key: string, result: KvResult): void;
  /** A signal that aborts `ms` virtual milliseconds from now. */
  timeoutSignal(ms: number): AbortSignal;
  /** Counts a controller warning (a failed round). */
  warned(msg: string): void;
  /** The controller's questions to partition leaders, answered as `removal-check.ts` does over HTTP. */
  leaderQuestions(asker: SimHost): LeaderQuestions;
  controllerTiming: {
    readonly intervalMs: number;
    readonly releaseAfterMs: number;
    readonly leaderBalanceEveryMs: number;
    readonly replaceAfterMs: number;
    readonly maxCatchUps: number;
  };
}

interface Pending {
  resolve(r: KvResult): void;
  reject(e: Error): void;
}

/** Bound on proposals waiting at one host (the controller makes at most a few at once). */
const MAX_PENDING = 256;

export class SimHost implements ControllerHost {
  /** Every group with state on this board's disk, hosted or not (a released replica keeps its disk). */
  private readonly replicas = new Map<GroupId, SimNode>();
  private readonly hosted = new Set<GroupId>();
  private readonly lastContactMs = new Map<GroupId, number>();
  private readonly pending = new Map<string, Pending>();
  private metaMachine: MetaMachine | null = null;
  private controller: ClusterController | null = null;
  private seq = 0;
  /** Bumped on every crash; request ids carry it so that a reboot never matches an old answer. */
  private incarnationCount = 0;
  /** Incarnations handed to replicas, so an fsync scheduled for an old replica object never matches. */
  private replicaIncarnations = 0;
  up = false;
  decommissioned = false;
  readonly meta: MetaView;

  constructor(
    readonly id: NodeId,
    private readonly world: HostWorld,
    private readonly random: Random,
    /** The founders' ring (founders only); a joining board learns the ring from the meta group. */
    private readonly foundingRing: Ring | null,
    readonly self: Omit<MemberRecord, "state" | "since">,
  ) {
    // Arrow functions read the current machine: a restart or an installed snapshot replaces it.
    this.meta = new MetaView({
      hasGroup: (g) => g === META_GROUP && this.metaMachine !== null,
      get: (g, key) => (g === META_GROUP ? (this.metaMachine?.record(key) ?? null) : null),
      scan: (g, o): { key: string; record: KvRecord }[] =>
        g === META_GROUP && this.metaMachine !== null ? this.metaMachine.scan(o.prefix, o.limit) : [],
      appliedIndex: () => this.metaMachine?.stamp ?? 0,
    });
    this.meta.foundingRing = foundingRing;
  }

  /** A founder knows the founding ring; a board that joined later does not. */
  get founder(): boolean {
    return this.foundingRing !== null;
  }

  /** Gives the board a group's disk (bootstrapped by a founder, or empty for a new replica). */
  createReplica(group: GroupId, storage: MemoryStorage): SimNode {
    const machine =
      group === META_GROUP
        ? (image: Uint8Array): MetaMachine => {
            const m = new MetaMachine(image, (id, key, result) => {
              this.world.metaApplied(this.id, key, result);
              this.settle(id, result);
            });
            this.metaMachine = m;
            return m;
          }
        : kvMachine;
    const node = new SimNode(
      this.id,
      storage,
      this.world.tuning,
      this.world.env(group),
      this.random.fork(group),
      {
        group,
        machine,
      },
    );
    node.incarnation = ++this.replicaIncarnations * 1_000_000;
    this.replicas.set(group, node);
    return node;
  }

  /** Boots the board: every group on its disk is hosted again, and a fresh controller starts. */
  boot(): void {
    if (this.up || this.decommissioned) return;
    this.up = true;
    const now = this.world.nowMs();
    for (const [group, replica] of this.replicas) {
      this.hosted.add(group);
      this.lastContactMs.set(group, now);
      replica.start();
    }
    const t = this.world.controllerTiming;
    this.controller = new ClusterController({
      nodeId: this.id,
      host: this,
      meta: this.meta,
      self: () => this.self,
      logger: {
        info: (msg, fields) =>
          this.world.trace(`${this.id} controller: ${msg} ${JSON.stringify(fields ?? {})}`),
        warn: (msg, fields) => {
          this.world.warned(msg);
          this.world.trace(`${this.id} controller WARN: ${msg} ${JSON.stringify(fields ?? {})}`);
        },
      },
      foundingRing: this.foundingRing,
      leaders: this.world.leaderQuestions(this),
      now: () => this.world.nowMs(),
      timeoutSignal: (ms) => this.world.timeoutSignal(ms),
      ...t,
    });
  }

  /** Loses everything not on disk: pending fsyncs, unsent messages, waiting proposals, the controller. */
  crash(): void {
    if (!this.up) return;
    this.up = false;
    this.incarnationCount++;
    for (const replica of this.replicas.values()) replica.crash();
    this.hosted.clear();
    this.pending.clear();
    this.controller = null;
  }

  /** One controller pass (its continuations run when the simulation drains promises). */
  round(): void {
    if (this.controller !== null) void this.controller.round();
  }

  tick(order: (groups: GroupId[]) => GroupId[]): void {
    if (!this.up) return;
    for (const g of order([...this.hosted])) this.replicas.get(g)!.tick();
  }

  /** The replica serving `group` here, if this board is up and hosts it. */
  serving(group: GroupId): SimNode | undefined {
    return this.up && this.hosted.has(group) ? this.replicas.get(group) : undefined;
  }

  get incarnation(): number {
    return this.incarnationCount;
  }

  /** Meta proposals made here still waiting for their outcome. */
  get pendingProposals(): number {
    return this.pending.size;
  }

  /** The replica object of `group` on this board's disk, hosted or not. */
  replicaOf(group: GroupId): SimNode | undefined {
    return this.replicas.get(group);
  }

  /** Whether a client may find `group` here: hosted now, or on the disk of a board that is down. */
  mayServe(group: GroupId): boolean {
    return !this.decommissioned && (this.up ? this.hosted.has(group) : this.replicas.has(group));
  }

  /** Every replica object of this board (hosted or released), for the checkers and stats. */
  allReplicas(): IterableIterator<[GroupId, SimNode]> {
    return this.replicas.entries();
  }

  /** Replicas the controller keeps because no leader confirmed their removal. */
  heldReplicas(): HeldReplica[] {
    return this.controller?.heldReplicas() ?? [];
  }

  noteLeaderContact(group: GroupId): void {
    this.lastContactMs.set(group, this.world.nowMs());
  }

  // ---- ControllerHost ------------------------------------------------------------------------

  status(group: GroupId): RaftStatus {
    const st = this.serving(group)?.freshStatus();
    if (st === null || st === undefined) throw new SimUnavailableError(`${this.id} does not host ${group}`);
    return st;
  }

  committedConfState(group: GroupId): ConfState {
    const r = this.serving(group);
    const st = r?.freshStatus();
    const view = r?.logView();
    if (st === null || st === undefined || view?.confAt === undefined)
      throw new SimUnavailableError(`${this.id} does not host ${group}`);
    return view.confAt(st.commit);
  }

  groups(): GroupId[] {
    return [...this.hosted].sort((a, b) => a - b);
  }

  hosts(group: GroupId): boolean {
    return this.hosted.has(group);
  }

  addGroup(group: GroupId): void {
    if (this.hosted.has(group)) throw new Error(`sim: ${this.id} already hosts group ${group}`);
    const replica = this.replicas.get(group) ?? this.createReplica(group, new MemoryStorage());
    this.hosted.add(group);
    this.lastContactMs.set(group, this.world.nowMs());
    this.world.trace(`${this.id} hosts group ${group}`);
    replica.start();
  }

  removeGroup(group: GroupId): void {
    if (!this.hosted.delete(group)) return;
    this.world.trace(`${this.id} releases group ${group}`);
    // Unsynced writes of this group are lost, as in a crash; its disk stays.
    this.replicas.get(group)?.crash();
  }

  sinceLeaderContactMs(group: GroupId): number {
    return this.world.nowMs() - (this.lastContactMs.get(group) ?? this.world.nowMs());
  }

  proposeConfChange(group: GroupId, cc: ConfChange): void {
    const r = this.serving(group);
    if (r === undefined) throw new ProposalDroppedError(`${this.id} does not host ${group}`);
    r.proposeConfChange(cc);
  }

  transferLeadership(group: GroupId, to: NodeId): void {
    this.serving(group)?.transferLeadership(to);
  }

  propose(group: GroupId, cmd: KvCommandInput, signal?: AbortSignal): Promise<KvResult> {
    const r = this.serving(group);
    if (r === undefined) return Promise.reject(new SimUnavailableError(`${this.id} does not host ${group}`));
    if (group !== META_GROUP) return Promise.reject(new Error("sim: hosts propose only to the meta group"));
    if (this.pending.size >= MAX_PENDING)
      return Promise.reject(new SimUnavailableError("too many proposals"));
    if (r.freshStatus()?.leader === "") return Promise.reject(new SimUnavailableError("no leader is known"));
    const id = `${this.id}.${this.incarnationCount}.${this.seq++}`;
    return new Promise<KvResult>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(id)) return;
        this.world.wake();
        reject(new SimUnavailableError("timed out waiting for the write to commit; it may still be applied"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => signal?.removeEventListener("abort", onAbort);
      this.pending.set(id, {
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
      });
      try {
        r.proposeData(encodeCommand(cmd, id));
      } catch (err) {
        this.pending.delete(id);
        done();
        if (err instanceof ProposalDroppedError) reject(new SimUnavailableError(err.message));
        else reject(err as Error);
      }
    });
  }

  /** A meta command applied on this board: the proposer's promise settles. */
  private settle(id: string, result: KvResult): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.world.wake();
    p.resolve(result);
  }
}
