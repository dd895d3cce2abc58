/**
 * One Ringleader agent: the node's durable store, its Raft groups (the meta group and the
 * partitions the ring gives it), the peer transport, the controller that moves replicas, and the
 * client API, wired together. Everything comes in through `AgentOptions`, so tests can run
 * several agents in one process and the CLI runs one per process.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { ApiServer } from "../api/server.js";
import { ClusterController } from "../cluster/controller.js";
import { Forwarder } from "../cluster/forward.js";
import {
  META_GROUP,
  MetaView,
  foundingMetaConf,
  foundingRing,
  groupPartition,
  partitionGroup,
  type ClusterShape,
  type MemberRecord,
} from "../cluster/meta.js";
import { ActivityTracker } from "../health/activity.js";
import { BoardSampler } from "../health/board.js";
import { BridgeMetricsProxy, DEFAULT_BRIDGE_METRICS_URL } from "../health/bridge-metrics.js";
import { registerGroupSnapshotMetrics, registerHealthMetrics } from "../health/metrics.js";
import { HealthMonitor } from "../health/monitor.js";
import { observeRoutes } from "../observe/routes.js";
import { SensorReader } from "../observe/sensors.js";
import { UiAssets } from "../observe/ui-assets.js";
import { httpLeaderQuestions } from "../cluster/removal-check.js";
import { routingRoute, routingTable } from "../routing/route.js";
import { placement } from "../ring/placement.js";
import type { Ring } from "../ring/types.js";
import type { GroupId, Message, NodeId } from "../raft/index.js";
import { PeerTransport, type PeerAddress } from "../transport/tcp-transport.js";
import type { ClusterConfig } from "./cluster-config.js";
import { RaftHost } from "./host.js";
import { xorshift32 } from "./jitter.js";
import { machineId } from "./machine.js";
import { RaftKvService, type BalanceStrategy } from "./kv-service.js";
import type { Logger } from "./logger.js";
import { AgentMetrics } from "./metrics.js";
import type { DurableStore } from "./ports.js";
import { httpFetch } from "../net/http-fetch.js";

export interface AgentOptions {
  readonly nodeId: NodeId;
  readonly config: ClusterConfig;
  readonly store: DurableStore;
  /**
   * The founders of a new cluster (id → peer address), this node included; every founder must
   * be given the same list. Ignored once the node has state. Discovery replaces this later.
   */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /** Join an existing cluster through any member's API (`http://host:port`) instead. */
  readonly join?: string;
  /** The founders, when discovery agreed on them but knows only some addresses (the rest follow). */
  readonly founders?: readonly NodeId[];
  /** mDNS discovery on this node (`agent/src/discovery/`). */
  readonly discovery?: AgentDiscovery;
  /** This node's persisted cluster id, shown in status. */
  readonly clusterId?: () => string | null;
  readonly api: PeerAddress;
  readonly peer: PeerAddress;
  /** The host others reach this node at (default: the listen host, or `<hostname>.local`). */
  readonly advertiseHost?: string;
  readonly weight?: number;
  /** The machine this agent shares CPU cores with, for leader placement (default: `machineId()`). */
  readonly machine?: string;
  readonly shape?: ClusterShape;
  readonly tickMs: number;
  readonly electionTicks?: number;
  readonly snapshotEntries?: number;
  readonly strategy?: BalanceStrategy;
  readonly controllerIntervalMs?: number;
  /** A board unreachable for this long is replaced: its replicas are rebuilt on the others. */
  readonly replaceAfterMs?: number;
  /** The data directory, for the board health's disk and data-size figures. */
  readonly dataDir?: string;
  /** How often the board is sampled and peers' health pulled (default 10 s; 0: never). */
  readonly healthIntervalMs?: number;
  /** Where the board's sysfs is mounted (default /sys): the host's in a container, a made-up tree in tests. */
  readonly sysRoot?: string;
  /** The local serial bridge's `/metrics`, folded into ours (default 127.0.0.1:9465; null: off). */
  readonly bridgeMetricsUrl?: string | null;
  readonly logger: Logger;
  /** Called once when the agent's storage fails and it can no longer serve safely. */
  readonly onFatal?: (err: Error) => void;
}

/** What the agent asks of discovery. */
export interface AgentDiscovery {
  /** A node's current peer address, when discovery verified it recently (DHCP may have moved it). */
  peerAddress(id: NodeId): PeerAddress | undefined;
  /** Whether to refuse Raft traffic from `id` (a node of another cluster); counts each refusal. */
  refuseTraffic(id: NodeId): boolean;
  /** The answer to `POST /v1/discovery`. */
  respond(body: string, remote: string | undefined): Promise<{ status: number; body: string }>;
  status(): unknown;
}

export const DEFAULT_SHAPE: ClusterShape = { partitions: 64, replicationFactor: 3 };

/**
 * A leader heartbeats every second tick (200 ms at the default 100 ms tick; every group a node
 * leads on the same ticks, see `RaftConfig.heartbeatTicks`). Against every tick, an idle 3-node
 * cluster of 64 partitions took 34-37 ms/s of CPU per agent instead of 47-50 (interleaved runs of
 * `test/bench/idle-cpu.sh`); every third tick took no less (34), and the simulator checks
 * heartbeats at 1 and 2 ticks only. Under c=64 puts it changed neither puts/s nor CPU per put. A
 * follower still hears from its leader 5 times per shortest election timeout (10 ticks), and a
 * strong read sends its own heartbeat round at once, so it does not wait for the next one.
 */
export const HEARTBEAT_TICKS = 2;

function parseAddress(text: string): PeerAddress | undefined {
  const i = text.lastIndexOf(":");
  if (i <= 0) return undefined;
  const port = Number(text.slice(i + 1));
  return Number.isInteger(port) ? { host: text.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port } : undefined;
}

export class Agent {
  readonly host: RaftHost;
  readonly metrics: AgentMetrics;
  readonly meta: MetaView;
  /** Board health of this node and of its peers; `health` is the `least-loaded` load source. */
  readonly health: HealthMonitor;
  private readonly activity: ActivityTracker;
  private readonly transport: PeerTransport;
  private readonly api: ApiServer;
  private readonly forwarder: Forwarder;
  private controller: ClusterController | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private joinTimer: NodeJS.Timeout | null = null;
  private fatalReported = false;
  /** Addresses a joining node learns from the member it asked, until its meta replica has them. */
  private readonly learnedPeers = new Map<NodeId, PeerAddress>();
  private readonly startedAt = Date.now();
  apiPort = 0;
  peerPort = 0;

  constructor(private readonly opts: AgentOptions) {
    const { nodeId, logger } = opts;
    this.meta = new MetaView(opts.store);
    this.transport = new PeerTransport({
      nodeId,
      listen: opts.peer,
      secret: opts.config.secret,
      clusterName: opts.config.clusterName,
      // What mDNS sees now first, then the member table (a board re-registers when its address
      // changes, DHCP), then --peers, then what --join taught. The member table beats --peers, so a
      // local cluster started again keeps its ports (cluster up reuses them).
      resolve: (id) => {
        const found = opts.discovery?.peerAddress(id);
        if (found) return found;
        const m = this.meta.member(id);
        return (m ? parseAddress(m.peer) : undefined) ?? opts.peers.get(id) ?? this.learnedPeers.get(id);
      },
      onMessages: (from, msgs) => {
        if (opts.discovery?.refuseTraffic(from)) return;
        this.host.receive(msgs);
      },
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
      () => opts.store.writeStats?.() ?? null,
    );
    this.host = new RaftHost({
      nodeId,
      store: opts.store,
      send: (msgs) => this.send(msgs),
      // Seeded from the OS so that nodes do not tie.
      random: xorshift32(randomBytes(4).readUInt32LE(0)),
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: HEARTBEAT_TICKS,
      // Long enough to ride out an election (one to two election timeouts) before a 503.
      leaderWaitMs: (opts.tickMs * (opts.electionTicks ?? 10)) / 2,
      ...(opts.snapshotEntries ? { snapshotEntries: opts.snapshotEntries } : {}),
      // The controllers read the meta group from the store as soon as it is applied.
      eagerApplyGroups: [META_GROUP],
      logger,
      observer: {
        onFsync: (ms) => this.metrics.fsyncMs.observe(ms),
        onApply: (ms) => this.metrics.applyMs.observe(ms),
        onLeaderChange: (group) => this.metrics.onLeaderChange(group),
        onProposal: (group, outcome) => this.metrics.proposals.inc(group, outcome),
        onDeclinedHandOver: () => this.metrics.declinedHandOvers.inc(),
        onReadRetry: () => this.metrics.readRetries.inc(),
      },
    });
    const electionMs = opts.tickMs * (opts.electionTicks ?? 10);
    // Checked at a period that does not divide the election timeout (so checks do not keep
    // landing right after the core's reset of its activity flags), forgiving 5 timeouts.
    this.activity = new ActivityTracker(nodeId, () => this.ledPartitions(), {
      checkMs: Math.max(300, electionMs * 0.7),
      graceMs: Math.max(2000, electionMs * 5),
    });
    this.health = new HealthMonitor({
      nodeId,
      sampler: new BoardSampler({
        dataDir: opts.dataDir ?? null,
        ...(opts.sysRoot !== undefined ? { sysRoot: opts.sysRoot } : {}),
      }),
      token: opts.config.token,
      members: () => this.meta.members(),
      leads: () => this.activity.leads(),
      held: () => this.controller?.heldReplicas() ?? [],
      placement: () => {
        const placed = this.meta.placement();
        const ring = this.meta.ring();
        return placed && ring
          ? { replicationFactor: ring.replicationFactor, replicas: placed.partitions.map((p) => p.replicas) }
          : null;
      },
      ...(opts.healthIntervalMs ? { intervalMs: opts.healthIntervalMs } : {}),
      enabled: opts.healthIntervalMs !== 0,
      logger,
    });
    registerHealthMetrics(this.metrics.registry, this.health);
    registerGroupSnapshotMetrics(this.metrics.registry, () => this.host.snapshots.sender.sentByGroup);
    const bridgeUrl =
      opts.bridgeMetricsUrl === undefined ? DEFAULT_BRIDGE_METRICS_URL : opts.bridgeMetricsUrl;
    const bridge = bridgeUrl ? new BridgeMetricsProxy(bridgeUrl, nodeId, this.metrics.registry) : null;
    this.forwarder = new Forwarder(opts.config.token);
    const service = new RaftKvService({
      nodeId,
      host: this.host,
      store: opts.store,
      meta: this.meta,
      forwarder: this.forwarder,
      status: async () => this.status(),
      // The bridge first, so `ringleader_bridge_up` in our own text is this scrape's.
      metrics: async () => {
        const bridgeText = bridge ? await bridge.text() : "";
        return (await this.metrics.text()) + bridgeText;
      },
      healthy: () => this.healthy(),
      ...(opts.strategy ? { strategy: opts.strategy } : {}),
      // The board-health score (agent/src/health/view.ts loadScore); undefined when unknown or stale.
      loadOf: (id) => this.health.loadOf(id),
    });
    this.api = new ApiServer({
      service,
      token: opts.config.token,
      ...(opts.config.readToken ? { readToken: opts.config.readToken } : {}),
      extraRoutes: [
        ...observeRoutes({
          health: this.health,
          ring: () => this.meta.ring(),
          sensors: new SensorReader(service, () => this.meta.partitions() ?? 0),
          ui: new UiAssets(),
        }),
        routingRoute(() => routingTable(nodeId, this.host, this.meta)),
      ],
      host: opts.api.host,
      port: opts.api.port,
      logger,
      ...(opts.discovery ? { discovery: opts.discovery.respond.bind(opts.discovery) } : {}),
      onRequest: (route, status, ms) => {
        this.metrics.apiRequests.inc(route, status);
        this.metrics.apiLatencyMs.observe({ route }, ms);
      },
    });
  }

  /** The partitions this node leads, with the members the core flags active (for health). */
  private ledPartitions() {
    return this.host
      .groups()
      .filter((g) => g !== META_GROUP)
      .map((g) => this.host.status(g))
      .filter((s) => s.role === "leader")
      .map((s) => ({
        partition: groupPartition(s.group),
        term: s.term,
        commit: s.commit,
        voters: s.confState.voters,
        learners: s.confState.learners,
        recentActive: new Set([...s.progress].filter(([, p]) => p.recentActive).map(([id]) => id)),
      }));
  }

  private send(msgs: readonly Message[]): void {
    for (const m of msgs) this.transport.send(m.to, m);
  }

  private advertised(port: number, listenHost: string): string {
    const host =
      this.opts.advertiseHost ??
      (listenHost === "0.0.0.0" || listenHost === "::" ? `${hostname()}.local` : listenHost);
    return `${host.includes(":") ? `[${host}]` : host}:${port}`;
  }

  /** A brand-new founder writes the meta group and its partitions exactly as every founder does. */
  private async bootstrapFounder(): Promise<Ring> {
    const founders = this.founders();
    const shape = this.opts.shape ?? DEFAULT_SHAPE;
    const ring = foundingRing(founders, shape);
    const conf = foundingMetaConf(founders);
    await this.opts.store.bootstrap(META_GROUP, conf.voters, conf.learners);
    for (const part of placement(ring).partitions) {
      if (part.replicas.includes(this.opts.nodeId)) {
        await this.opts.store.bootstrap(partitionGroup(part.partition), part.replicas);
      }
    }
    this.opts.logger.info("bootstrapped a new cluster", {
      founders: founders.sort().join(","),
      partitions: shape.partitions,
      replication: shape.replicationFactor,
    });
    return ring;
  }

  private founders(): NodeId[] {
    return this.opts.founders ? [...this.opts.founders] : [...this.opts.peers.keys()];
  }

  async start(): Promise<void> {
    const { store, nodeId, logger } = this.opts;
    let founding: Ring | null = null;
    if (!store.hasGroup(META_GROUP)) {
      if (this.opts.join) logger.info("joining an existing cluster", { via: this.opts.join });
      else if (this.founders().length > 0) founding = await this.bootstrapFounder();
      else throw new Error("a new node needs founders (--peers) or a cluster to join (--join)");
    } else if (!this.meta.ring() && !this.opts.join && this.founders().length > 0) {
      // A founder restarted before the meta group stored the ring: the founders' ring stands.
      founding = foundingRing(this.founders(), this.opts.shape ?? DEFAULT_SHAPE);
    }
    this.meta.foundingRing = founding;
    this.host.addGroup(META_GROUP);
    for (const g of store.groupIds()) if (g !== META_GROUP && !this.host.hosts(g)) this.host.addGroup(g);
    try {
      this.peerPort = (await this.transport.start()).port;
    } catch (err) {
      throw listenError(err, "peer", this.opts.peer, "--peer");
    }
    try {
      this.apiPort = (await this.api.start()).port;
    } catch (err) {
      // Nothing of this node may stay up: a half-started agent would take part in Raft unseen.
      await this.transport.stop();
      throw listenError(err, "API", this.opts.api, "--api");
    }
    this.ticker = setInterval(() => {
      this.host.tick();
      if (this.host.fatal && !this.fatalReported) {
        this.fatalReported = true;
        this.opts.onFatal?.(this.host.fatal);
      }
    }, this.opts.tickMs);
    const self = {
      id: nodeId,
      peer: this.advertised(this.peerPort, this.opts.peer.host),
      api: `http://${this.advertised(this.apiPort, this.opts.api.host)}`,
      weight: this.opts.weight ?? 1,
      machine: this.opts.machine ?? machineId(),
    };
    this.controller = new ClusterController({
      nodeId,
      host: this.host,
      meta: this.meta,
      self: () => self,
      logger,
      foundingRing: founding,
      ...(this.opts.controllerIntervalMs ? { intervalMs: this.opts.controllerIntervalMs } : {}),
      ...(this.opts.replaceAfterMs ? { replaceAfterMs: this.opts.replaceAfterMs } : {}),
      leaders: httpLeaderQuestions(this.meta, nodeId, this.opts.config.token),
      purge: {
        deleteGroup: (g) => this.host.purgeGroup(g),
        canHost: (g) => this.host.canHost(g),
      },
    });
    this.controller.start();
    this.activity.start();
    this.health.start();
    if (this.opts.join && !this.meta.member(nodeId)) this.askToJoin(self);
    logger.info("agent started", {
      node: nodeId,
      cluster: this.opts.config.clusterName,
      api: self.api,
      peer: self.peer,
    });
  }

  /** Asks a member to add us, retrying until the member table has us. */
  private askToJoin(self: Omit<MemberRecord, "state" | "since">): void {
    const attempt = async (): Promise<void> => {
      if (this.meta.member(self.id)) return;
      try {
        const res = await httpFetch(new URL("/v1/members", this.opts.join), {
          method: "POST",
          headers: { authorization: `Bearer ${this.opts.config.token}`, "content-type": "application/json" },
          body: JSON.stringify(self),
          signal: AbortSignal.timeout(5000),
        });
        if (res.ok) {
          await this.learnPeers();
          this.opts.logger.info("asked to join; waiting for the meta group", { via: this.opts.join });
          return;
        }
        this.opts.logger.warn("join refused; retrying", {
          status: res.status,
          body: (await res.text()).slice(0, 200),
        });
      } catch (err) {
        this.opts.logger.warn("could not reach the cluster to join; retrying", {
          via: this.opts.join,
          error: String(err),
        });
      }
      this.joinTimer = setTimeout(() => void attempt(), 2000);
    };
    void attempt();
  }

  /** Reads the member table from the member we joined through, so we can answer its leaders. */
  private async learnPeers(): Promise<void> {
    const res = await httpFetch(new URL("/v1/members", this.opts.join), {
      headers: { authorization: `Bearer ${this.opts.config.token}` },
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) return;
    const body = (await res.json()) as { members?: { id?: unknown; peer?: unknown }[] };
    for (const m of body.members ?? []) {
      const addr = typeof m.peer === "string" ? parseAddress(m.peer) : undefined;
      if (typeof m.id === "string" && addr) this.learnedPeers.set(m.id, addr);
    }
  }

  healthy(): { ok: boolean; reason?: string } {
    if (this.host.fatal) return { ok: false, reason: `storage failed: ${this.host.fatal.message}` };
    const st = this.host.status(META_GROUP);
    if (!st.leader) return { ok: false, reason: "no meta leader known" };
    if (!this.meta.ring()) return { ok: false, reason: "the ring is not known yet" };
    for (const g of this.host.groups()) {
      if (!this.host.status(g).leader)
        return { ok: false, reason: `partition ${groupPartition(g)} has no leader` };
    }
    return { ok: true };
  }

  status(): unknown {
    const meta = this.host.status(META_GROUP);
    const ring = this.meta.ring();
    const partitions = this.host
      .groups()
      .filter((g) => g !== META_GROUP)
      .map((g) => {
        const s = this.host.status(g);
        return {
          partition: groupPartition(g),
          role: s.role,
          leader: s.leader || null,
          term: s.term,
          commit: s.commit,
          applied: s.applied,
          voters: s.confState.voters,
          learners: s.confState.learners,
          // What `removal-check.ts` trusts: the appended configuration may still be undone.
          committedConf: this.host.committedConfState(g),
        };
      });
    const members = this.meta.members().map((m) => {
      const pr = meta.progress.get(m.id);
      return {
        ...m,
        ...(pr ? { match: pr.match, lag: meta.lastIndex - pr.match, active: pr.recentActive } : {}),
      };
    });
    return {
      id: this.opts.nodeId,
      cluster: this.opts.config.clusterName,
      clusterId: this.opts.clusterId?.() ?? null,
      discovery: this.opts.discovery?.status() ?? null,
      leader: meta.leader || null,
      role: meta.role,
      term: meta.term,
      commit: meta.commit,
      applied: meta.applied,
      lastIndex: meta.lastIndex,
      firstIndex: meta.firstIndex,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      health: this.healthy(),
      board: this.health.latest(),
      ring: ring
        ? {
            partitions: ring.partitions,
            replication: ring.replicationFactor,
            nodes: ring.nodes.map((n) => n.id),
          }
        : null,
      leaderOf: partitions.filter((p) => p.role === "leader").length,
      replicaOf: partitions.length,
      controller: this.controller?.stats ?? null,
      members,
      partitions,
    };
  }

  /**
   * Stops gracefully: hands leadership to a caught-up peer first (so clients see no election
   * timeout), then closes the API, the transport and the groups.
   */
  async stop(opts: { transferTimeoutMs?: number } = {}): Promise<void> {
    this.controller?.stop();
    this.activity.stop();
    await this.health.stop();
    if (this.joinTimer) clearTimeout(this.joinTimer);
    const handing = this.host.transferAllLeadership((id) => this.meta.leadershipPaused(id));
    // Wait for the hand-overs started here to finish (or be given up), not for every leadership
    // to be gone: when a whole cluster stops at once, the stopping agents hand groups to each
    // other, and waiting for none to lead kept each of them here until the deadline (2 s).
    const deadline = Date.now() + (opts.transferTimeoutMs ?? 2000);
    const unfinished = (): GroupId[] => handing.filter((g) => this.host.handingOver(g));
    while (Date.now() < deadline && unfinished().length > 0) {
      await new Promise((r) => setTimeout(r, this.opts.tickMs));
    }
    if (Date.now() >= deadline) {
      this.opts.logger.warn("stopping at the hand-over deadline", {
        node: this.opts.nodeId,
        unfinished: unfinished().join(","),
      });
    }
    if (this.ticker) clearInterval(this.ticker);
    await this.host.stop();
    await this.api.stop();
    await this.transport.stop();
    this.forwarder.close();
    this.opts.logger.info("agent stopped", { node: this.opts.nodeId });
  }
}

/** An address the agent was told to listen on is held by another program. */
export class AddressInUseError extends Error {
  override readonly name = "AddressInUseError";
}

/** A listener that could not start, said in the operator's terms when the address is taken. */
function listenError(err: unknown, what: string, addr: PeerAddress, flag: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE")
    return new AddressInUseError(
      `the ${what} address ${addr.host}:${addr.port} is already in use by another program; stop it or choose another with ${flag}`,
    );
  if (code === "EADDRNOTAVAIL")
    return new Error(
      `the ${what} address ${addr.host}:${addr.port} is not an address of this machine (${flag})`,
    );
  return err instanceof Error ? err : new Error(String(err));
}
