/**
 * One Ringleader agent: the node's durable store, its Raft groups, the peer transport and the
 * client API, wired together. Everything it uses comes in through `AgentDeps`, so tests can run
 * several agents in one process and the CLI runs one per process.
 */
import { randomBytes } from "node:crypto";
import { ApiServer } from "../api/server.js";
import type { GroupId, Message, NodeId } from "../raft/index.js";
import { PeerTransport, type PeerAddress } from "../transport/tcp-transport.js";
import type { ClusterConfig } from "./cluster-config.js";
import { RaftHost } from "./host.js";
import { DATA_GROUP, RaftKvService } from "./kv-service.js";
import type { Logger } from "./logger.js";
import { AgentMetrics } from "./metrics.js";
import type { DurableStore } from "./ports.js";

export interface AgentOptions {
  readonly nodeId: NodeId;
  readonly config: ClusterConfig;
  readonly store: DurableStore;
  /** Static peers (id → address), this node included. Discovery replaces this later. */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly api: PeerAddress;
  readonly peer: PeerAddress;
  readonly tickMs: number;
  readonly electionTicks?: number;
  readonly snapshotEntries?: number;
  readonly logger: Logger;
  /** Called once when the agent's storage fails and it can no longer serve safely. */
  readonly onFatal?: (err: Error) => void;
}

/** A seeded generator for election jitter; seeded from the OS so nodes do not tie. */
function jitterSource(): () => number {
  let s = randomBytes(4).readUInt32LE(0) || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

export class Agent {
  readonly host: RaftHost;
  readonly metrics: AgentMetrics;
  private readonly transport: PeerTransport;
  private readonly api: ApiServer;
  private ticker: NodeJS.Timeout | null = null;
  private fatalReported = false;
  private readonly startedAt = Date.now();
  apiPort = 0;
  peerPort = 0;

  constructor(private readonly opts: AgentOptions) {
    const { nodeId, logger } = opts;
    this.transport = new PeerTransport({
      nodeId,
      listen: opts.peer,
      secret: opts.config.secret,
      clusterName: opts.config.clusterName,
      resolve: (id) => opts.peers.get(id),
      onMessages: (_from, msgs) => this.host.receive(msgs),
      unreachable: (id) => this.host.reportUnreachable(id),
      logger,
    });
    this.metrics = new AgentMetrics(
      nodeId,
      () => this.host.groups().map((g) => this.host.status(g)),
      () => this.transport.stats(),
      () => ({
        sent: this.host.snapshots.sender.sent,
        failed: this.host.snapshots.sender.failed,
        received: this.host.snapshots.receiver.received,
      }),
    );
    this.host = new RaftHost({
      nodeId,
      store: opts.store,
      send: (msgs) => this.send(msgs),
      random: jitterSource(),
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: 1,
      ...(opts.snapshotEntries ? { snapshotEntries: opts.snapshotEntries } : {}),
      logger,
      observer: {
        onFsync: (ms) => this.metrics.fsyncMs.observe(ms),
        onApply: (ms) => this.metrics.applyMs.observe(ms),
        onLeaderChange: (group, leader) => {
          this.metrics.onLeaderChange(group);
          logger.info("leader changed", { group, leader: leader || "(none)" });
        },
        onProposal: (group, outcome) => this.metrics.proposals.inc({ group: String(group), outcome }),
      },
    });
    const service = new RaftKvService({
      host: this.host,
      store: opts.store,
      status: async () => this.status(),
      metrics: () => this.metrics.text(),
      healthy: () => this.healthy(),
    });
    this.api = new ApiServer({
      service,
      token: opts.config.token,
      host: opts.api.host,
      port: opts.api.port,
      logger,
      onRequest: (route, status, ms) => {
        this.metrics.apiRequests.inc({ route, status: String(status) });
        this.metrics.apiLatencyMs.observe({ route }, ms);
      },
    });
  }

  private send(msgs: readonly Message[]): void {
    for (const m of msgs) this.transport.send(m.to, m);
  }

  async start(): Promise<void> {
    const groups: GroupId[] = [DATA_GROUP];
    for (const g of groups) {
      if (!this.opts.store.hasGroup(g)) {
        // A brand-new node of a static cluster: every node is started with the same peer list,
        // so each one bootstraps the same membership.
        const voters = [...this.opts.peers.keys()].sort();
        await this.opts.store.bootstrap(g, voters);
        this.opts.logger.info("bootstrapped a new group", { group: g, voters: voters.join(",") });
      }
      this.host.addGroup(g);
    }
    this.peerPort = (await this.transport.start()).port;
    this.apiPort = (await this.api.start()).port;
    this.ticker = setInterval(() => {
      this.host.tick();
      if (this.host.fatal && !this.fatalReported) {
        this.fatalReported = true;
        this.opts.onFatal?.(this.host.fatal);
      }
    }, this.opts.tickMs);
    this.opts.logger.info("agent started", {
      node: this.opts.nodeId,
      cluster: this.opts.config.clusterName,
      api: `${this.opts.api.host}:${this.apiPort}`,
      peer: `${this.opts.peer.host}:${this.peerPort}`,
    });
  }

  healthy(): { ok: boolean; reason?: string } {
    if (this.host.fatal) return { ok: false, reason: `storage failed: ${this.host.fatal.message}` };
    const st = this.host.status(DATA_GROUP);
    if (!st.leader) return { ok: false, reason: "no leader known" };
    return { ok: true };
  }

  status(): unknown {
    const st = this.host.status(DATA_GROUP);
    const members = [...new Set([...st.confState.voters, ...st.confState.learners])].sort().map((id) => {
      const pr = st.progress.get(id);
      const addr = this.opts.peers.get(id);
      return {
        id,
        peer: addr ? `${addr.host}:${addr.port}` : null,
        voter: st.confState.voters.includes(id),
        ...(pr
          ? { match: pr.match, lag: st.lastIndex - pr.match, state: pr.state, active: pr.recentActive }
          : {}),
      };
    });
    return {
      id: this.opts.nodeId,
      cluster: this.opts.config.clusterName,
      leader: st.leader || null,
      role: st.role,
      term: st.term,
      commit: st.commit,
      applied: st.applied,
      lastIndex: st.lastIndex,
      firstIndex: st.firstIndex,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      health: this.healthy(),
      members,
      groups: this.host.groups().map((g) => {
        const s = this.host.status(g);
        return {
          group: g,
          role: s.role,
          leader: s.leader || null,
          term: s.term,
          commit: s.commit,
          applied: s.applied,
        };
      }),
    };
  }

  /**
   * Stops gracefully: hands leadership to a caught-up peer first (so clients see no election
   * timeout), then closes the API, the transport and the groups.
   */
  async stop(opts: { transferTimeoutMs?: number } = {}): Promise<void> {
    const transfers = this.host.transferAllLeadership();
    if (transfers > 0) {
      const deadline = Date.now() + (opts.transferTimeoutMs ?? 2000);
      while (Date.now() < deadline && this.host.groups().some((g) => this.host.status(g).role === "leader")) {
        await new Promise((r) => setTimeout(r, this.opts.tickMs));
      }
    }
    if (this.ticker) clearInterval(this.ticker);
    this.host.stop();
    await this.api.stop();
    await this.transport.stop();
    this.opts.logger.info("agent stopped", { node: this.opts.nodeId });
  }
}
