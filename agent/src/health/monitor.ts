/**
 * The agent's health monitor: samples its own board every `intervalMs` (never two samples at
 * once), pulls every other member's record over the authenticated HTTP API in the same round,
 * and keeps the latest of each with its age. From that it answers the cluster view, the warnings
 * and `loadOf(node)` for the `least-loaded` strategy.
 */
import type { BoardHealth, BoardSampler } from "./board.js";
import {
  HEALTH_RECORD_VERSION,
  parseHealthRecord,
  type HealthRecord,
  type HeldReplica,
  type LedPartition,
} from "./record.js";
import { loadScore, type ClusterHealth, type LoadSource, type NodeHealth } from "./view.js";
import {
  DEFAULT_THRESHOLDS,
  heldWarnings,
  nodeWarnings,
  partitionWarnings,
  type PartitionState,
  type WarningThresholds,
} from "./warnings.js";
import { deadline } from "../node/deadline.js";
import { httpFetch, type HttpFetch } from "../net/http-fetch.js";

export interface MemberRef {
  readonly id: string;
  readonly api: string;
  readonly state: string;
}

export interface HealthMonitorLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface HealthMonitorOptions {
  readonly nodeId: string;
  readonly sampler: Pick<BoardSampler, "sample">;
  /** The bearer token peers accept. */
  readonly token: string;
  readonly members: () => readonly MemberRef[];
  /** The partitions this node leads, as it sees them now. */
  readonly leads: () => readonly LedPartition[];
  /** Replicas this node keeps because no leader confirmed their removal (none by default). */
  readonly held?: () => readonly HeldReplica[];
  /** The ring's replicas of each partition (empty before the ring is known). */
  readonly placement: () => { replicationFactor: number; replicas: readonly (readonly string[])[] } | null;
  readonly intervalMs?: number;
  /** false: `start()` does nothing (the view then shows no board health). */
  readonly enabled?: boolean;
  readonly pullTimeoutMs?: number;
  readonly thresholds?: WarningThresholds;
  readonly logger?: HealthMonitorLogger;
  /** Wall clock (ms since the epoch) and a monotonic clock; tests pass their own. */
  readonly now?: () => number;
  readonly monotonic?: () => number;
  readonly fetch?: HttpFetch;
}

interface PeerEntry {
  record: HealthRecord | null;
  /** Our monotonic time when `record` arrived. */
  receivedAt: number | null;
  rttMs: number | null;
  skewMs: number | null;
  error: string | null;
  lastOk: boolean;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 10_000;
/** A record older than this many intervals counts as unreachable. */
const STALE_INTERVALS = 3;
const WARMUP_ROUNDS = 30;

export class HealthMonitor implements LoadSource {
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly monotonic: () => number;
  private readonly fetchImpl: HttpFetch;
  private readonly peers = new Map<string, PeerEntry>();
  private board: BoardHealth | null = null;
  private boardAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private rounds = 0;
  private readonly abort = new AbortController();
  /** Samples taken and pulls failed, for metrics. */
  readonly counters = { samples: 0, sampleErrors: 0, pulls: 0, pullErrors: 0, badRecords: 0 };

  constructor(private readonly opts: HealthMonitorOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    this.now = opts.now ?? Date.now;
    this.monotonic = opts.monotonic ?? (() => performance.now());
    this.fetchImpl = opts.fetch ?? httpFetch;
  }

  start(): void {
    if (this.opts.enabled === false) return;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await this.running?.catch(() => {});
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round().finally(() => {
        this.running = null;
        this.schedule(this.warmingUp() ? Math.min(1000, this.intervalMs) : this.intervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * A node that has just started has not heard from every peer yet: it pulls every second until
   * it has (for at most `WARMUP_ROUNDS`), so `status` right after `cluster up` shows every node.
   * Its own board is sampled at the normal rate all along.
   */
  private warmingUp(): boolean {
    if (this.rounds >= WARMUP_ROUNDS) return false;
    const members = this.opts.members().filter((m) => m.id !== this.opts.nodeId && m.state !== "removed");
    return members.length === 0 || members.some((m) => !this.peers.get(m.id)?.record);
  }

  /** One round: the local sample, then every peer's record. Exposed for tests. */
  async round(): Promise<void> {
    this.rounds++;
    if (
      this.board === null ||
      this.boardAt === null ||
      this.monotonic() - this.boardAt >= this.intervalMs * 0.9
    ) {
      await this.sampleOnce();
    }
    await this.pullAll();
  }

  async sampleOnce(): Promise<void> {
    try {
      this.board = await this.opts.sampler.sample();
      this.boardAt = this.monotonic();
      this.counters.samples++;
    } catch (err) {
      this.counters.sampleErrors++;
      this.opts.logger?.warn("health sample failed", { error: String(err) });
    }
  }

  /** The latest local sample. */
  latest(): BoardHealth | null {
    return this.board;
  }

  /** What this node serves at `GET /v1/health/local`. */
  record(): HealthRecord {
    return {
      v: HEALTH_RECORD_VERSION,
      node: this.opts.nodeId,
      sentAt: this.now(),
      board: this.board,
      leads: this.opts.leads(),
      held: this.opts.held?.() ?? [],
    };
  }

  private async pullAll(): Promise<void> {
    const members = this.opts.members().filter((m) => m.id !== this.opts.nodeId && m.state !== "removed");
    const known = new Set(members.map((m) => m.id));
    for (const id of this.peers.keys()) if (!known.has(id)) this.peers.delete(id);
    await Promise.all(members.map((m) => this.pull(m)));
  }

  private async pull(m: MemberRef): Promise<void> {
    const entry =
      this.peers.get(m.id) ??
      ({
        record: null,
        receivedAt: null,
        rttMs: null,
        skewMs: null,
        error: null,
        lastOk: false,
      } as PeerEntry);
    this.peers.set(m.id, entry);
    const wall0 = this.now();
    const t0 = this.monotonic();
    this.counters.pulls++;
    try {
      const res = await this.fetchImpl(new URL("/v1/health/local", m.api), {
        headers: { authorization: `Bearer ${this.opts.token}` },
        signal: deadline(this.opts.pullTimeoutMs ?? 3000, this.abort.signal),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body: unknown = await res.json();
      const t1 = this.monotonic();
      let record: HealthRecord;
      try {
        record = parseHealthRecord(body);
      } catch (err) {
        this.counters.badRecords++;
        throw err;
      }
      if (record.node !== m.id) throw new Error(`answered as ${record.node}`);
      const rtt = t1 - t0;
      entry.record = record;
      entry.receivedAt = t1;
      entry.rttMs = Math.round(rtt * 10) / 10;
      // The sender stamped `sentAt` about half a round trip after we asked.
      entry.skewMs = Math.round(record.sentAt - (wall0 + rtt / 2));
      entry.error = null;
      entry.lastOk = true;
    } catch (err) {
      this.counters.pullErrors++;
      entry.lastOk = false;
      entry.error = err instanceof Error ? err.message.slice(0, 200) : String(err);
      this.opts.logger?.debug("health pull failed", { node: m.id, error: entry.error });
    }
  }

  loadOf(node: string): number | undefined {
    const b = node === this.opts.nodeId ? this.board : this.fresh(node)?.board;
    return b ? loadScore(b) : undefined;
  }

  /** A peer's record if recent enough to act on. */
  private fresh(node: string): HealthRecord | null {
    const e = this.peers.get(node);
    if (!e?.record || e.receivedAt === null) return null;
    return this.monotonic() - e.receivedAt <= STALE_INTERVALS * this.intervalMs ? e.record : null;
  }

  view(): ClusterHealth {
    const mono = this.monotonic();
    const placed = this.opts.placement();
    const replicaCount = new Map<string, number>();
    for (const reps of placed?.replicas ?? [])
      for (const r of reps) replicaCount.set(r, (replicaCount.get(r) ?? 0) + 1);
    const members = this.opts.members().filter((m) => m.state !== "removed");
    if (!members.some((m) => m.id === this.opts.nodeId)) {
      members.unshift({ id: this.opts.nodeId, api: "", state: "joining" });
    }
    const leadsBy = new Map<string, readonly LedPartition[]>();
    const heldBy = new Map<string, readonly HeldReplica[]>();
    const nodes = members.map((m): NodeHealth => {
      if (m.id === this.opts.nodeId) {
        const leads = this.opts.leads();
        leadsBy.set(m.id, leads);
        heldBy.set(m.id, this.opts.held?.() ?? []);
        return {
          id: m.id,
          api: m.api || null,
          state: m.state,
          reachable: true,
          ageMs: this.boardAt === null ? null : Math.round(mono - this.boardAt),
          rttMs: 0,
          skewMs: 0,
          error: null,
          board: this.board,
          leads: leads.length,
          replicas: replicaCount.get(m.id) ?? 0,
          load: this.board ? loadScore(this.board) : null,
        };
      }
      const e = this.peers.get(m.id);
      const ageMs =
        e?.receivedAt === null || e?.receivedAt === undefined ? null : Math.round(mono - e.receivedAt);
      const fresh = ageMs !== null && ageMs <= STALE_INTERVALS * this.intervalMs;
      if (e?.record && fresh) {
        leadsBy.set(m.id, e.record.leads);
        heldBy.set(m.id, e.record.held ?? []);
      }
      return {
        id: m.id,
        api: m.api || null,
        state: m.state,
        reachable: Boolean(e?.lastOk) && fresh,
        ageMs,
        rttMs: e?.rttMs ?? null,
        skewMs: e?.skewMs ?? null,
        error: e?.error ?? null,
        board: e?.record?.board ?? null,
        leads: e?.record?.leads.length ?? 0,
        replicas: replicaCount.get(m.id) ?? 0,
        load: e?.record?.board && fresh ? loadScore(e.record.board) : null,
      };
    });
    const partitions = this.partitionStates(leadsBy, placed);
    const t = this.opts.thresholds ?? DEFAULT_THRESHOLDS;
    const allFresh = nodes.every((n) => n.reachable);
    const warnings = [
      ...nodes.flatMap((n) => nodeWarnings(n, t)),
      ...[...heldBy].flatMap(([id, held]) => heldWarnings(id, held)),
      ...partitionWarnings(partitions, placed?.replicationFactor ?? 3, allFresh),
    ];
    return {
      observer: this.opts.nodeId,
      at: this.now(),
      intervalMs: this.intervalMs,
      replicationFactor: placed?.replicationFactor ?? null,
      nodes,
      partitions,
      warnings,
    };
  }

  /** Every partition of the ring with the leader that reported it (the highest term wins). */
  private partitionStates(
    leadsBy: ReadonlyMap<string, readonly LedPartition[]>,
    placed: ReturnType<HealthMonitorOptions["placement"]>,
  ): PartitionState[] {
    const best = new Map<number, { leader: string; led: LedPartition }>();
    for (const [leader, leads] of leadsBy) {
      for (const led of leads) {
        const cur = best.get(led.partition);
        if (!cur || led.term > cur.led.term) best.set(led.partition, { leader, led });
      }
    }
    const count = placed?.replicas.length ?? Math.max(-1, ...best.keys()) + 1;
    const out: PartitionState[] = [];
    for (let p = 0; p < count; p++) {
      const b = best.get(p);
      out.push({
        partition: p,
        leader: b?.leader ?? null,
        term: b?.led.term ?? 0,
        voters: b?.led.voters ?? [],
        learners: b?.led.learners ?? [],
        active: b?.led.active ?? [],
        replicas: placed?.replicas[p] ?? [],
      });
    }
    return out;
  }
}
