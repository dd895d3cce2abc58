/**
 * The clients of the simulated cluster and the history they record for the linearizability
 * checker. Each client runs one operation at a time over a small key space, sends it to the node
 * it believes leads, follows redirects, and gives up after a timeout. What the client saw is
 * recorded as it would be by a real client:
 *  - an answer: the operation with its output and return time;
 *  - a definite failure (not the leader, no leader, slot lost): nothing, it had no effect;
 *  - no answer in time: a write with unknown outcome (ret = Infinity, output null); a read with
 *    no answer is left out, since a read that returned nothing constrains nothing.
 */
import type { KvInput, Operation } from "../check/linearizability.js";
import type { NodeId } from "../raft/index.js";
import type { ClientRequest, ClientResponse } from "./node.js";
import type { Random } from "./random.js";

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  /** Time units a client waits for an answer before recording an unknown outcome. */
  readonly timeoutUnits: number;
  /** Upper bound of the pause between one answer and the next request, in time units. */
  readonly thinkUnits: number;
  /** Chance that a read goes to a random node rather than the believed leader (follower reads). */
  readonly followerReadChance: number;
}

export interface WorkloadEnv {
  now(): number;
  readonly random: Random;
  /**
   * Nodes a client may address (running or not: a client cannot tell); with `route`, the nodes
   * that may serve that route (a partition's replicas in the multi-Raft simulator).
   */
  targets(route?: number): readonly NodeId[];
  /**
   * Which route (partition) a key belongs to. Without it every key goes one way and a client
   * keeps one believed leader; with it, one believed leader per route.
   */
  route?(key: string): number;
  send(node: NodeId, req: ClientRequest): void;
}

export interface WorkloadStats {
  issued: number;
  ok: number;
  failed: number;
  unknown: number;
  reads: number;
  writes: number;
}

interface InFlight {
  readonly opId: number;
  readonly input: KvInput;
  readonly call: number;
  readonly deadline: number;
  /** Issued after the liveness phase began: its success counts for liveness. */
  readonly armed: boolean;
}

interface ClientState {
  readonly id: number;
  target: NodeId;
  /** Believed leaders per route, when keys are routed (`WorkloadEnv.route`). */
  readonly routeTargets: Map<number, NodeId>;
  current: InFlight | null;
  /** The input to send again after a definite failure (it had no effect, so retrying is safe). */
  retry: KvInput | null;
  nextAt: number;
  seq: number;
  readonly lastSeen: Map<string, string | null>;
  livenessDone: boolean;
}

export class WorkloadOptionsError extends Error {
  override readonly name = "WorkloadOptionsError";
  constructor(message: string) {
    super(message);
  }
}

/** Bound on the recorded history, far above a default run (a few thousand operations). */
const MAX_HISTORY = 200_000;

export class Workload {
  readonly history: Operation[] = [];
  readonly stats: WorkloadStats = { issued: 0, ok: 0, failed: 0, unknown: 0, reads: 0, writes: 0 };
  private readonly clients: ClientState[] = [];
  private nextOpId = 1;
  private liveness = false;

  constructor(
    private readonly opts: WorkloadOptions,
    private readonly env: WorkloadEnv,
  ) {
    if (!(opts.clients >= 1 && opts.clients <= 64 && opts.keys >= 1 && opts.keys <= 1000)) {
      throw new WorkloadOptionsError(`bad workload size: ${opts.clients} clients, ${opts.keys} keys`);
    }
    const targets = env.targets();
    for (let id = 1; id <= opts.clients; id++) {
      this.clients.push({
        id,
        target: env.random.pick(targets),
        routeTargets: new Map(),
        current: null,
        retry: null,
        nextAt: env.random.int(0, opts.thinkUnits),
        seq: 0,
        lastSeen: new Map(),
        livenessDone: false,
      });
    }
  }

  /** From now on every client must complete one new operation (see `allCompleted`). */
  startLiveness(): void {
    this.liveness = true;
  }

  /** True when every client completed an operation issued after `startLiveness`. */
  allCompleted(): boolean {
    return this.clients.every((c) => c.livenessDone);
  }

  /** Clients that have not completed an operation since the liveness phase began. */
  stuckClients(): string {
    return this.clients
      .filter((c) => !c.livenessDone)
      .map(
        (c) =>
          `client ${c.id}${c.current ? ` (op ${c.current.opId} on ${c.current.input.key} to ${this.targetOf(c, c.current.input.key)})` : ""}`,
      )
      .join(", ");
  }

  /** Times out late operations and starts new ones; called once per tick. */
  step(): void {
    const now = this.env.now();
    for (const c of this.clients) {
      if (c.current !== null && now >= c.current.deadline) this.timeout(c, now);
      // In the liveness phase a client that has completed an operation rests, so that the
      // cluster can be seen to converge (commit reaching the end of the log) rather than chase load.
      const resting = this.liveness && c.livenessDone;
      if (c.current === null && !resting && now >= c.nextAt && this.history.length < MAX_HISTORY)
        this.issue(c, now);
    }
  }

  onResponse(clientId: number, resp: ClientResponse): void {
    const c = this.clients[clientId - 1];
    const op = c?.current;
    if (c === undefined || op === undefined || op === null || op.opId !== resp.opId) return; // A late answer.
    const now = this.env.now();
    c.current = null;
    if (resp.kind === "fail") {
      this.stats.failed++;
      c.retry = op.input;
      const key = op.input.key;
      const targets = this.env.targets(this.env.route?.(key));
      const was = this.targetOf(c, key);
      this.setTarget(
        c,
        key,
        resp.leaderHint !== "" && resp.leaderHint !== was ? resp.leaderHint : this.env.random.pick(targets),
      );
      // Back off a little: with no leader, redirects would otherwise spin.
      c.nextAt = now + this.env.random.int(1, Math.max(1, this.opts.thinkUnits));
      return;
    }
    this.stats.ok++;
    this.history.push({
      id: op.opId,
      clientId,
      input: op.input,
      call: op.call,
      ret: now,
      output: resp.output,
    });
    if (resp.output.kind === "get") c.lastSeen.set(op.input.key, resp.output.value);
    else if (op.input.kind === "put") c.lastSeen.set(op.input.key, op.input.value);
    else if (op.input.kind === "del") c.lastSeen.set(op.input.key, null);
    else if (op.input.kind === "cas" && resp.output.kind === "cas" && resp.output.ok) {
      c.lastSeen.set(op.input.key, op.input.value);
    }
    if (op.armed) c.livenessDone = true;
    c.nextAt = now + this.env.random.int(0, this.opts.thinkUnits);
  }

  /** Records every operation still waiting as of unknown outcome (the run is over). */
  finish(): void {
    for (const c of this.clients) {
      if (c.current !== null) this.recordUnknown(c.id, c.current);
      c.current = null;
    }
  }

  private timeout(c: ClientState, now: number): void {
    const op = c.current!;
    c.current = null;
    this.recordUnknown(c.id, op);
    this.setTarget(c, op.input.key, this.env.random.pick(this.env.targets(this.env.route?.(op.input.key))));
    c.nextAt = now;
  }

  private recordUnknown(clientId: number, op: InFlight): void {
    this.stats.unknown++;
    if (op.input.kind === "get") return;
    this.history.push({ id: op.opId, clientId, input: op.input, call: op.call, ret: Infinity, output: null });
  }

  private issue(c: ClientState, now: number): void {
    const input = c.retry ?? this.nextInput(c);
    c.retry = null;
    const opId = this.nextOpId++;
    c.current = { opId, input, call: now, deadline: now + this.opts.timeoutUnits, armed: this.liveness };
    this.stats.issued++;
    if (input.kind === "get") this.stats.reads++;
    else this.stats.writes++;
    let target = this.targetOf(c, input.key);
    if (input.kind === "get" && this.env.random.chance(this.opts.followerReadChance)) {
      target = this.env.random.pick(this.env.targets(this.env.route?.(input.key)));
    }
    this.env.send(target, { opId, clientId: c.id, input });
  }

  private targetOf(c: ClientState, key: string): NodeId {
    const route = this.env.route?.(key);
    if (route === undefined) return c.target;
    let target = c.routeTargets.get(route);
    if (target === undefined) {
      target = this.env.random.pick(this.env.targets(route));
      c.routeTargets.set(route, target);
    }
    return target;
  }

  private setTarget(c: ClientState, key: string, target: NodeId): void {
    const route = this.env.route?.(key);
    if (route === undefined) c.target = target;
    else c.routeTargets.set(route, target);
  }

  private nextInput(c: ClientState): KvInput {
    const r = this.env.random;
    const key = `k${r.int(0, this.opts.keys - 1)}`;
    const roll = r.next();
    if (roll < 0.4) return { kind: "get", key };
    c.seq++;
    const value = `c${c.id}.${c.seq}`;
    if (roll < 0.7) return { kind: "put", key, value };
    if (roll < 0.8) return { kind: "del", key };
    // Expect what this client last saw most of the time, so that many compare-and-sets succeed.
    const seen = c.lastSeen.get(key);
    const expected =
      seen !== undefined && r.chance(0.75) ? seen : r.chance(0.5) ? null : `c${r.int(1, 8)}.${r.int(1, 50)}`;
    return { kind: "cas", key, expected, value };
  }
}
