/**
 * The agent's side of the client API. A key maps to its partition through the ring; when this
 * node hosts that partition the request becomes a Raft proposal or read barrier on the local
 * replica (which forwards to the partition leader inside Raft), otherwise it is forwarded over
 * HTTP to a node that hosts it. Scans and aggregations fan out to every partition that may hold
 * matching keys and merge the answers.
 */
import {
  BadRequestError,
  CasMismatchError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
} from "../api/errors.js";
import {
  checkWindow,
  emptyPart,
  finishAggregate,
  mergeParts,
  partitionQuery,
  partOfResult,
  type AggregateOptions,
  type AggregatePart,
  type AggregateResult,
} from "../api/aggregate.js";
import {
  ABSENT_VERSION,
  type KvItem,
  type KvService,
  type GetOptions,
  type MembershipService,
  type PartitionSnapshot,
  type ScanOptions,
  type WriteOptions,
} from "../api/service.js";
import { Forwarder, type ForwardReply } from "../cluster/forward.js";
import { machineProblem } from "./machine.js";
import {
  MEMBER_PREFIX,
  META_GROUP,
  partitionGroup,
  type MemberRecord,
  type MetaView,
} from "../cluster/meta.js";
import type { KvCommandInput } from "../kv/commands.js";
import { hashTag, partitionForKey } from "../ring/keys.js";
import type { NodeId } from "../raft/index.js";
import { Balancer, LocalLoadTracker, type Strategy } from "../balance/index.js";
import { UnavailableError, type RaftHost } from "./host.js";
import { aggregatePartition } from "./partition-aggregate.js";
import type { DurableStore } from "./ports.js";

/** How `eventual` reads pick their replica (`agent/src/balance/`). */
export type BalanceStrategy = Strategy;

export interface KvServiceDeps {
  readonly nodeId: NodeId;
  readonly host: RaftHost;
  readonly store: DurableStore;
  readonly meta: MetaView;
  readonly forwarder: Forwarder;
  readonly status: () => Promise<unknown>;
  readonly metrics: () => Promise<string>;
  readonly healthy: () => { ok: boolean; reason?: string };
  /** How `eventual` reads pick a replica when this node holds none of the partition. */
  readonly strategy?: BalanceStrategy;
  /**
   * Load reported by each node (lower is better, undefined or ≥ 2 avoided), for `least-loaded`:
   * the board-health monitor's score. Without one, this node's own view stands in: eventual
   * reads in flight to each replica and how long recent ones took (`LocalLoadTracker`).
   */
  readonly loadOf?: (id: NodeId) => number | undefined;
}

const enc = new TextEncoder();
/** How long a stepped-down member is left without leadership (an upgrade's restart fits in it). */
const STEP_DOWN_PAUSE_MS = 120_000;
/** How long a step-down waits for the transfers it started to finish before it answers. */
const STEP_DOWN_WAIT_MS = 3000;
/** Rows per store scan while a snapshot reads a partition (the store's own upper bound). */
const SNAPSHOT_PAGE = 10_000;
/**
 * Rows one partition reads for one aggregate before it answers `truncated`: a bound on one
 * request's work that still fits a week of one series sampled every second.
 */
export const AGGREGATE_MAX_ROWS = 1_000_000;

export class RaftKvService implements KvService {
  readonly members: MembershipService;
  /** Eventual reads in flight per serving node and their latency: `least-loaded`'s default signal. */
  readonly readLoad = new LocalLoadTracker();
  private readonly balancer: Balancer;

  constructor(private readonly deps: KvServiceDeps) {
    this.members = new Members(deps);
    const loadOf = deps.loadOf;
    this.balancer = new Balancer({
      strategy: deps.strategy ?? "round-robin",
      load: loadOf ? { loadOf: (id) => loadOf(id) } : this.readLoad,
    });
  }

  // ---- Routing ---------------------------------------------------------------------------

  private partitions(): number {
    const count = this.deps.meta.partitions();
    if (count === null) throw new ServiceUnavailableError("this node does not know the ring yet", 1);
    return count;
  }

  private partitionOf(key: string): number {
    return partitionForKey(this.partitions(), key);
  }

  /** Whether this node holds a replica of `partition` that is a member of its group. */
  private local(partition: number): boolean {
    const g = partitionGroup(partition);
    if (!this.deps.host.hosts(g)) return false;
    const cs = this.deps.host.confState(g);
    return cs.voters.includes(this.deps.nodeId) || cs.learners.includes(this.deps.nodeId);
  }

  /** API base URLs of the nodes that should hold `partition`, best first. */
  private remotes(partition: number, prefer: "leader" | "spread"): string[] {
    const ids = [...this.deps.meta.replicas(partition)].filter((id) => id !== this.deps.nodeId);
    const ordered = prefer === "spread" ? this.balancer.order(ids) : ids;
    const out: string[] = [];
    for (const id of ordered) {
      const api = this.deps.meta.member(id)?.api;
      if (api) out.push(api);
    }
    return out;
  }

  /** Sends the request to the partition's nodes in turn until one answers other than 503. */
  private async forward(
    partition: number,
    prefer: "leader" | "spread",
    method: string,
    path: string,
    opts: { body?: Uint8Array; hops?: number; signal?: AbortSignal },
  ): Promise<ForwardReply> {
    const targets = this.remotes(partition, prefer);
    if (targets.length === 0) {
      throw new ServiceUnavailableError(`no known node holds partition ${partition} yet`, 1);
    }
    let last: unknown = null;
    for (const base of targets) {
      try {
        const reply = await this.deps.forwarder.request(base, method, path, {
          hops: opts.hops ?? 0,
          ...(opts.body ? { body: opts.body } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        if (reply.status !== 503) return reply;
        last = reply;
      } catch (err) {
        if (!(err instanceof ServiceUnavailableError)) throw err;
        last = err;
      }
    }
    if (last instanceof ServiceUnavailableError) throw last;
    return last as ForwardReply;
  }

  // ---- Writes ----------------------------------------------------------------------------

  private async write(
    cmd: KvCommandInput,
    opts: { signal?: AbortSignal; hops?: number },
  ): Promise<{ version: string; deleted?: boolean }> {
    const partition = this.partitionOf(cmd.key);
    if (!this.local(partition)) {
      const path = `/v1/kv/${encodeURIComponent(cmd.key)}${cmd.cas !== null ? `?cas=${cmd.cas}` : ""}`;
      const reply = await this.forward(partition, "leader", cmd.op === "put" ? "PUT" : "DELETE", path, {
        ...opts,
        ...(cmd.op === "put" ? { body: cmd.value } : {}),
      });
      if (reply.status !== 200) Forwarder.fail(reply);
      return JSON.parse(reply.body.toString("utf8")) as { version: string; deleted?: boolean };
    }
    const result = await mapUnavailable(() =>
      this.deps.host.propose(partitionGroup(partition), cmd, opts.signal),
    );
    if (!result.ok) {
      const current = result.current === ABSENT_VERSION ? "absent (0)" : result.current;
      throw new CasMismatchError(`version of ${JSON.stringify(cmd.key)} is ${current}, not ${cmd.cas}`);
    }
    return result;
  }

  async put(key: string, value: Uint8Array, opts: WriteOptions): Promise<{ version: string }> {
    const r = await this.write({ op: "put", key, value, cas: opts.cas ?? null }, opts);
    return { version: r.version };
  }

  async del(key: string, opts: WriteOptions): Promise<{ version: string; deleted: boolean }> {
    const r = await this.write({ op: "del", key, cas: opts.cas ?? null }, opts);
    return { version: r.version, deleted: r.deleted ?? false };
  }

  // ---- Reads -----------------------------------------------------------------------------

  async get(
    key: string,
    opts: GetOptions,
  ): Promise<{ value: Uint8Array; version: string; servedBy?: string } | null> {
    const partition = this.partitionOf(key);
    if (opts.consistency === "eventual") return this.eventualGet(key, partition, opts);
    if (!this.local(partition)) {
      const path = `/v1/kv/${encodeURIComponent(key)}?consistency=${opts.consistency}`;
      const reply = await this.forward(partition, "leader", "GET", path, opts);
      if (reply.status === 404) return null;
      if (reply.status !== 200) Forwarder.fail(reply);
      return withServedBy(new Uint8Array(reply.body), reply.version ?? "0", reply.servedBy);
    }
    const g = partitionGroup(partition);
    await mapUnavailable(() => this.deps.host.readBarrier(g, opts.consistency, opts.signal));
    const found = this.deps.store.get(g, key);
    return found && withServedBy(found.value, found.version, this.deps.nodeId);
  }

  /**
   * An eventual read: the strategy (the request's, else this node's) picks one of the partition's
   * replicas, this node's own included, and the others follow in order in case it fails. A read
   * another agent forwarded here was already balanced by it, so a local replica answers it.
   */
  private async eventualGet(
    key: string,
    partition: number,
    opts: { signal?: AbortSignal; hops?: number; strategy?: Strategy; clientAddress?: string },
  ): Promise<{ value: Uint8Array; version: string; servedBy?: string } | null> {
    const self = this.deps.nodeId;
    const local = this.local(partition);
    const hops = opts.hops ?? 0;
    if (hops > 0 && local) return this.eventualLocal(key, partition);
    const candidates = this.deps.meta
      .replicas(partition)
      .filter((id) => (id === self ? local : this.deps.meta.member(id)?.api !== undefined));
    const ordered = this.balancer.order(candidates, {
      ...(opts.strategy ? { strategy: opts.strategy } : {}),
      ...(opts.clientAddress ? { clientAddress: opts.clientAddress } : {}),
    });
    let last: unknown = null;
    for (const id of ordered) {
      if (id === self) return this.eventualLocal(key, partition);
      const done = this.readLoad.begin(id);
      try {
        const reply = await this.deps.forwarder.request(
          this.deps.meta.member(id)!.api,
          "GET",
          `/v1/kv/${encodeURIComponent(key)}?consistency=eventual`,
          {
            hops,
            ...(opts.signal ? { signal: opts.signal } : {}),
            ...(opts.clientAddress ? { clientAddress: opts.clientAddress } : {}),
          },
        );
        if (reply.status === 404) return null;
        if (reply.status === 200)
          return withServedBy(new Uint8Array(reply.body), reply.version ?? "0", reply.servedBy ?? id);
        if (reply.status !== 503) Forwarder.fail(reply);
        last = reply;
      } catch (err) {
        if (!(err instanceof ServiceUnavailableError)) throw err;
        last = err;
      } finally {
        done();
      }
    }
    if (last instanceof ServiceUnavailableError) throw last;
    throw new ServiceUnavailableError(`no replica of partition ${partition} answered an eventual read`, 1);
  }

  private eventualLocal(
    key: string,
    partition: number,
  ): { value: Uint8Array; version: string; servedBy: string } | null {
    const done = this.readLoad.begin(this.deps.nodeId);
    try {
      const found = this.deps.store.get(partitionGroup(partition), key);
      return found && { value: found.value, version: found.version, servedBy: this.deps.nodeId };
    } finally {
      done();
    }
  }

  /** Partitions that may hold keys starting with `prefix`: one if the prefix fixes a hash tag. */
  private partitionsFor(prefix: string): number[] {
    const close = prefix.indexOf("}");
    if (hashTag(prefix) !== null && close >= 0 && close < prefix.length) {
      return [this.partitionOf(prefix)];
    }
    return Array.from({ length: this.partitions() }, (_, p) => p);
  }

  async scan(opts: ScanOptions): Promise<{ items: KvItem[]; next: string | null }> {
    if (opts.partition !== undefined) {
      if (opts.partition >= this.partitions()) throw new BadRequestError(`no partition ${opts.partition}`);
      return this.scanPartition(opts.partition, opts);
    }
    const pages = await Promise.all(this.partitionsFor(opts.prefix).map((p) => this.scanPartition(p, opts)));
    // Merge in key order; one more than asked tells whether another page follows.
    const all = pages.flatMap((p) => p.items).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const more = all.length > opts.limit || pages.some((p) => p.next !== null);
    const items = all.slice(0, opts.limit);
    const next = more && items.length > 0 ? items[items.length - 1]!.key : null;
    return { items, next };
  }

  private async scanPartition(
    partition: number,
    opts: Omit<ScanOptions, "partition">,
  ): Promise<{ items: KvItem[]; next: string | null }> {
    if (!this.local(partition)) {
      const q = new URLSearchParams({
        prefix: opts.prefix,
        limit: String(opts.limit),
        consistency: opts.consistency,
        partition: String(partition),
        ...(opts.after ? { after: opts.after } : {}),
      });
      const reply = await this.forward(
        partition,
        opts.consistency === "eventual" ? "spread" : "leader",
        "GET",
        `/v1/kv?${q}`,
        opts,
      );
      if (reply.status !== 200) Forwarder.fail(reply);
      const body = JSON.parse(reply.body.toString("utf8")) as {
        items: { key: string; value: string; version: string }[];
        next: string | null;
      };
      return {
        items: body.items.map((i) => ({
          key: i.key,
          value: Buffer.from(i.value, "base64"),
          version: i.version,
        })),
        next: body.next,
      };
    }
    const g = partitionGroup(partition);
    await mapUnavailable(() => this.deps.host.readBarrier(g, opts.consistency, opts.signal));
    const rows = this.deps.store.scan(g, {
      prefix: opts.prefix,
      limit: opts.limit + 1,
      ...(opts.after !== undefined ? { after: opts.after } : {}),
    });
    const page = rows.slice(0, opts.limit);
    return {
      items: page.map((r) => ({ key: r.key, value: r.record.value, version: r.record.version })),
      next: rows.length > opts.limit ? (page[page.length - 1]?.key ?? null) : null,
    };
  }

  /**
   * A whole partition at one point: a strong read barrier, then one synchronous pass over the
   * local table (nothing is applied in between), or the same on a node that holds the partition.
   * Bounded by `maxBytes` of keys and values, since the answer is built in memory.
   */
  async snapshotPartition(
    partition: number,
    opts: { maxBytes: number; signal?: AbortSignal; hops?: number },
  ): Promise<PartitionSnapshot> {
    if (partition >= this.partitions()) throw new BadRequestError(`no partition ${partition}`);
    if (!this.local(partition)) {
      const reply = await this.forward(
        partition,
        "leader",
        "GET",
        `/v1/snapshot?partition=${partition}`,
        opts,
      );
      if (reply.status !== 200) Forwarder.fail(reply);
      const body = JSON.parse(reply.body.toString("utf8")) as {
        partition: number;
        index: number;
        items: { key: string; value: string; version: string }[];
      };
      const items = body.items.map((i) => ({ ...i, value: Buffer.from(i.value, "base64") }));
      return { partition: body.partition, index: body.index, items };
    }
    const g = partitionGroup(partition);
    await mapUnavailable(() => this.deps.host.readBarrier(g, "strong", opts.signal));
    const index = this.deps.host.status(g).applied;
    // Pages read back to back without an await in between see one read view of the store: the
    // store renews its view only when a write commits, and that happens on this thread.
    const rows: { key: string; record: { value: Uint8Array; version: string } }[] = [];
    let bytes = 0;
    for (let after: string | undefined; ;) {
      const page = this.deps.store.scan(g, { prefix: "", limit: SNAPSHOT_PAGE, ...(after ? { after } : {}) });
      for (const r of page) {
        bytes += Buffer.byteLength(r.key) + r.record.value.byteLength;
        rows.push(r);
      }
      if (bytes > opts.maxBytes) {
        throw new PayloadTooLargeError(
          `partition ${partition} holds over ${opts.maxBytes} bytes, the snapshot limit per partition`,
        );
      }
      if (page.length < SNAPSHOT_PAGE) break;
      after = page[page.length - 1]!.key;
    }
    const items = rows.map((r) => ({ key: r.key, value: r.record.value, version: r.record.version }));
    return { partition, index, items };
  }

  /**
   * count/sum/min/max/avg over the numeric values of keys under `prefix` (within [from, to) when
   * given), optionally bucketed by the readings' times. Each partition's part is computed where
   * the partition is held (here, or on the node it is forwarded to, the leader first for strong
   * and weak reads) from its own table, and the entry node combines the parts.
   */
  async aggregate(opts: AggregateOptions): Promise<AggregateResult> {
    if (opts.window) checkWindow(opts.window);
    if (opts.partition !== undefined) {
      if (opts.partition >= this.partitions()) throw new BadRequestError(`no partition ${opts.partition}`);
      return finishAggregate(opts.fn, await this.aggregatePart(opts.partition, opts), 1, opts.window);
    }
    const parts = this.partitionsFor(opts.prefix);
    const results = await Promise.all(parts.map((p) => this.aggregatePart(p, opts)));
    const merged = results.reduce(mergeParts, emptyPart(opts.window !== undefined));
    return finishAggregate(opts.fn, merged, parts.length, opts.window);
  }

  private async aggregatePart(partition: number, opts: AggregateOptions): Promise<AggregatePart> {
    if (!this.local(partition)) {
      const prefer = opts.consistency === "eventual" ? "spread" : "leader";
      const path = `/v1/aggregate?${partitionQuery(opts, partition)}`;
      const reply = await this.forward(partition, prefer, "GET", path, opts);
      if (reply.status !== 200) Forwarder.fail(reply);
      return partOfResult(JSON.parse(reply.body.toString("utf8")) as AggregateResult);
    }
    const g = partitionGroup(partition);
    await mapUnavailable(() => this.deps.host.readBarrier(g, opts.consistency, opts.signal));
    const store = this.deps.store;
    return aggregatePartition(
      { scan: (o) => store.scan(g, o), get: (key) => store.get(g, key) },
      {
        prefix: opts.prefix,
        maxRows: AGGREGATE_MAX_ROWS,
        ...(opts.from !== undefined ? { from: opts.from } : {}),
        ...(opts.to !== undefined ? { to: opts.to } : {}),
        ...(opts.window ? { window: opts.window } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
  }

  status(): Promise<unknown> {
    return this.deps.status();
  }

  metrics(): Promise<string> {
    return this.deps.metrics();
  }

  healthy(): { ok: boolean; reason?: string } {
    return this.deps.healthy();
  }
}

/** Membership changes, written to the meta group; the meta leader's controller acts on them. */
class Members implements MembershipService {
  constructor(private readonly deps: KvServiceDeps) {}

  async list(): Promise<MemberRecord[]> {
    return this.deps.meta.members();
  }

  private async putMember(record: MemberRecord, signal?: AbortSignal): Promise<void> {
    const res = await mapUnavailable(() =>
      this.deps.host.propose(
        META_GROUP,
        {
          op: "put",
          key: MEMBER_PREFIX + record.id,
          value: enc.encode(JSON.stringify(record)),
          cas: this.deps.meta.memberVersion(record.id),
        },
        signal,
      ),
    );
    if (!res.ok) throw new ServiceUnavailableError("the member record changed meanwhile; retry", 1);
  }

  async join(body: unknown, signal?: AbortSignal): Promise<unknown> {
    const b = body as Partial<MemberRecord>;
    if (typeof b.id !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(b.id)) {
      throw new BadRequestError("id must be 1-64 letters, digits, dots, dashes or underscores");
    }
    if (typeof b.peer !== "string" || !/^.+:\d{1,5}$/.test(b.peer))
      throw new BadRequestError("peer must be host:port");
    if (typeof b.api !== "string" || !/^https?:\/\//.test(b.api))
      throw new BadRequestError("api must be a URL");
    const weight = b.weight ?? 1;
    if (!Number.isInteger(weight) || weight < 1 || weight > 16)
      throw new BadRequestError("weight must be 1-16");
    const machineError = b.machine === undefined ? null : machineProblem(b.machine);
    if (machineError) throw new BadRequestError(`machine ${machineError}`);
    const existing = this.deps.meta.member(b.id);
    if (existing?.state === "removed") {
      throw new BadRequestError(
        `${b.id} was removed from this cluster; start it with a fresh data directory and a new id`,
      );
    }
    const record: MemberRecord = {
      id: b.id,
      peer: b.peer,
      api: b.api,
      weight,
      ...(b.machine !== undefined ? { machine: b.machine } : {}),
      // The meta leader marks it `up` once it votes in every partition the ring gives it.
      state: existing?.state ?? "joining",
      since: existing?.since ?? Date.now(),
    };
    await this.putMember(record, signal);
    return record;
  }

  async drain(id: string, signal?: AbortSignal): Promise<unknown> {
    const m = this.deps.meta.member(id);
    if (!m) throw new NotFoundError(`no member ${id}`);
    if (m.state !== "up" && m.state !== "joining") return m;
    const record: MemberRecord = { ...m, state: "draining", since: Date.now() };
    await this.putMember(record, signal);
    return record;
  }

  /**
   * Leadership transfer for a planned restart: on `id` itself, hands every group it leads to the
   * most caught-up voter and waits (bounded) until it leads none; elsewhere, asks `id` to.
   */
  async stepDown(id: string, signal?: AbortSignal, hops = 0): Promise<unknown> {
    const { host, nodeId } = this.deps;
    if (id !== nodeId) {
      const m = this.deps.meta.member(id);
      if (!m) throw new NotFoundError(`no member ${id}`);
      const path = `/v1/members/${encodeURIComponent(id)}/step-down`;
      const reply = await this.deps.forwarder.request(m.api, "POST", path, {
        hops,
        ...(signal ? { signal } : {}),
      });
      if (reply.status !== 200) Forwarder.fail(reply);
      return JSON.parse(reply.body.toString("utf8")) as unknown;
    }
    const leading = (): number => host.groups().filter((g) => host.status(g).role === "leader").length;
    // First ask the other leaders' balancers not to hand leadership back for a while (they read
    // this from the member table), then hand over what this node leads.
    const self = this.deps.meta.member(nodeId);
    const pausedUntil = Date.now() + STEP_DOWN_PAUSE_MS;
    // Hand-overs other leaders started before they applied the pause are refused here; after a
    // restart this node takes them again (the pause in the member table still holds the balancers).
    host.declineLeadership(pausedUntil);
    try {
      if (self) await this.putMember({ ...self, leadershipPausedUntil: pausedUntil }, signal);
    } catch (err) {
      host.declineLeadership(0); // The step-down failed, and says so: nothing of it stays.
      throw err;
    }
    const before = leading();
    const transferred = host.transferAllLeadership((other) => this.deps.meta.leadershipPaused(other)).length;
    const deadline = Date.now() + STEP_DOWN_WAIT_MS;
    while (leading() > 0 && Date.now() < deadline && !signal?.aborted) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return {
      id,
      ledBefore: before,
      transferred,
      stillLeading: leading(),
      pausedUntil: new Date(pausedUntil).toISOString(),
    };
  }

  async remove(id: string, force: boolean, signal?: AbortSignal): Promise<unknown> {
    const m = this.deps.meta.member(id);
    if (!m) throw new NotFoundError(`no member ${id}`);
    const ring = this.deps.meta.ring();
    if (!force && ring?.nodes.some((n) => n.id === id)) {
      throw new BadRequestError(
        `${id} still holds replicas; drain it first (or pass force=true for a dead board)`,
      );
    }
    const record: MemberRecord = { ...m, state: "removed", since: Date.now() };
    await this.putMember(record, signal);
    return record;
  }
}

function withServedBy(
  value: Uint8Array,
  version: string,
  servedBy: string | null,
): { value: Uint8Array; version: string; servedBy?: string } {
  return servedBy ? { value, version, servedBy } : { value, version };
}

async function mapUnavailable<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UnavailableError) throw new ServiceUnavailableError(err.message, 1);
    throw err;
  }
}
