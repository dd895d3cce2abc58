/**
 * The agent's Prometheus metrics (prom-client, one registry per agent so tests can run several
 * agents in one process). Gauges that mirror Raft state are read at scrape time.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GroupId, RaftStatus } from "../raft/index.js";
import type { TransportStats } from "../transport/types.js";
import type { StoreWriteStats } from "./ports.js";

const LATENCY_BUCKETS_MS = [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/**
 * A counter with two labels, counted in plain maps and handed to prom-client when scraped. On
 * every `inc` prom-client validates the label object and hashes it (sorting its keys into a
 * string); for counts taken on every request and every proposal that was ~1 % of a leader's CPU
 * at c=64.
 */
export class TwoLabelCounter<A extends string | number, B extends string | number> {
  private readonly counts = new Map<A, Map<B, { labels: Record<string, string>; n: number }>>();
  private readonly names: readonly [string, string];

  constructor(name: string, help: string, labelNames: readonly [string, string], registry: Registry) {
    this.names = labelNames;
    const counts = this.counts;
    new Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      collect() {
        this.reset();
        for (const byB of counts.values()) for (const c of byB.values()) this.inc(c.labels, c.n);
      },
    });
  }

  inc(a: A, b: B): void {
    let byB = this.counts.get(a);
    if (!byB) this.counts.set(a, (byB = new Map()));
    const c = byB.get(b);
    if (c) c.n++;
    else byB.set(b, { labels: { [this.names[0]]: String(a), [this.names[1]]: String(b) }, n: 1 });
  }
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly leaderChanges: Counter<"group">;
  readonly proposals: TwoLabelCounter<GroupId, string>;
  readonly declinedHandOvers: Counter;
  readonly readRetries: Counter;
  readonly fsyncMs: Histogram;
  readonly applyMs: Histogram;
  readonly apiRequests: TwoLabelCounter<string, number>;
  readonly apiLatencyMs: Histogram<"route">;

  constructor(
    nodeId: string,
    statuses: () => RaftStatus[],
    transport: () => TransportStats | null,
    snapshots: () => { sent: number; failed: number; received: number } = () => ({
      sent: 0,
      failed: 0,
      received: 0,
    }),
    storeWrites: () => StoreWriteStats | null = () => null,
  ) {
    this.registry.setDefaultLabels({ node: nodeId });
    const r = [this.registry];
    const raftGauge = (name: string, help: string, pick: (s: RaftStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["group"],
        registers: r,
        collect() {
          this.reset();
          for (const s of statuses()) this.set({ group: String(s.group) }, pick(s));
        },
      });
    raftGauge("ringleader_raft_term", "Current Raft term", (s) => s.term);
    raftGauge("ringleader_raft_commit_index", "Highest log index known committed", (s) => s.commit);
    raftGauge(
      "ringleader_raft_applied_index",
      "Highest log index applied to the state machine",
      (s) => s.applied,
    );
    raftGauge("ringleader_raft_last_index", "Last index in the local log", (s) => s.lastIndex);
    raftGauge("ringleader_raft_is_leader", "1 if this node leads the group", (s) =>
      s.role === "leader" ? 1 : 0,
    );
    this.leaderChanges = new Counter({
      name: "ringleader_raft_leader_changes_total",
      help: "Leader changes seen by this node",
      labelNames: ["group"],
      registers: r,
    });
    this.proposals = new TwoLabelCounter(
      "ringleader_raft_proposals_total",
      "Proposals by outcome",
      ["group", "outcome"],
      this.registry,
    );
    this.declinedHandOvers = new Counter({
      name: "ringleader_raft_declined_hand_overs_total",
      help: "Leadership hand-overs this node refused because it stepped down (members step-down)",
      registers: r,
    });
    this.readRetries = new Counter({
      name: "ringleader_raft_read_index_retries_total",
      help: "Strong and weak reads whose read index was asked for again (no answer from the leader asked first)",
      registers: r,
    });
    this.fsyncMs = new Histogram({
      name: "ringleader_storage_fsync_ms",
      help: "Time to persist one batch of Raft state durably",
      buckets: LATENCY_BUCKETS_MS,
      registers: r,
    });
    this.applyMs = new Histogram({
      name: "ringleader_apply_ms",
      help: "Time to apply one batch of committed entries",
      buckets: LATENCY_BUCKETS_MS,
      registers: r,
    });
    this.apiRequests = new TwoLabelCounter(
      "ringleader_api_requests_total",
      "HTTP API requests by route and status",
      ["route", "status"],
      this.registry,
    );
    this.apiLatencyMs = new Histogram({
      name: "ringleader_api_request_ms",
      help: "HTTP API latency by route",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS_MS,
      registers: r,
    });
    for (const [field, help] of [
      ["sent", "Snapshot streams sent to followers"],
      ["failed", "Snapshot streams abandoned"],
      ["received", "Snapshot streams received and staged"],
    ] as const) {
      new Counter({
        name: `ringleader_snapshots_${field}_total`,
        help,
        registers: r,
        collect() {
          this.reset();
          this.inc(snapshots()[field]);
        },
      });
    }
    const transportFigures: [string, string, (t: TransportStats) => number][] = [
      ["bytes_sent", "Bytes sent to peers", (t) => t.bytesSent],
      ["bytes_received", "Bytes received from peers", (t) => t.bytesReceived],
      ["frames_sent", "Batch frames sent to peers", (t) => t.framesSent],
      ["messages_sent", "Raft messages sent to peers", (t) => t.messagesSent],
      ["messages_received", "Raft messages received from peers", (t) => t.messagesReceived],
      ["reconnects", "Reconnects to peers", (t) => t.reconnects],
      ["rejected_peers", "Peers refused (wrong secret)", (t) => t.rejectedPeers],
      ["bad_frames", "Malformed or oversized frames", (t) => t.badFrames],
      ["dropped_messages", "Messages dropped on full queues", (t) => t.droppedMessages],
    ];
    for (const [name, help, pick] of transportFigures) {
      new Gauge({
        name: `ringleader_transport_${name}`,
        help,
        registers: r,
        collect() {
          const t = transport();
          if (t) this.set(pick(t));
        },
      });
    }
    new Gauge({
      name: "ringleader_transport_messages_sent_by_type",
      help: "Raft messages sent to peers, by message type",
      labelNames: ["type"],
      registers: r,
      collect() {
        const t = transport();
        if (!t) return;
        for (const [type, n] of Object.entries(t.messagesSentByType)) this.set({ type }, n);
      },
    });
    for (const [field, name, help] of [
      ["batches", "commits", "LMDB transactions committed (each holds every write planned meanwhile)"],
      ["durableBatches", "durable_commits", "Of those, commits waited on until flushed to disk"],
      ["jobs", "jobs", "Write jobs (log saves, applies, snapshots) grouped into those commits"],
      ["ops", "ops", "Puts and removes issued to LMDB"],
      [
        "logReads",
        "log_reads",
        "Raft log entries and terms read from LMDB, not from the group's tail cache (followers far behind)",
      ],
    ] as const) {
      new Counter({
        name: `ringleader_storage_${name}_total`,
        help,
        registers: r,
        collect() {
          const n = storeWrites()?.[field];
          if (n === undefined) return;
          this.reset();
          this.inc(n);
        },
      });
    }
    new Gauge({
      name: "ringleader_storage_buffered_applies",
      help: "Applied KV writes held in memory, written to the table within a second",
      registers: r,
      collect() {
        const n = storeWrites()?.bufferedApplies;
        if (n !== undefined) this.set(n);
      },
    });
  }

  onLeaderChange(group: GroupId): void {
    this.leaderChanges.inc({ group: String(group) });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
