/**
 * What `ringleader agent` does about discovery before and after the agent starts, kept here so
 * the command stays a list of options:
 *
 *  - `plan`: decides how this node enters a cluster. A node with state uses it. A new node with
 *    static `--peers` founds with them (cluster id derived from the founder list). A new node with
 *    one `--join` URL and no discovery joins through it as before. Otherwise it holds the API port
 *    with a small discovery server, advertises and browses (mDNS and/or `--join` seeds), and runs
 *    the bootstrap agreement until it founds a cluster or finds one to join.
 *  - `attach`: once the agent runs, discovery answers as a member, probes the members (and
 *    watches the LAN where mDNS is on) for members' new addresses and for another cluster with
 *    our name, and keeps the cluster id in step.
 */
import { hostname } from "node:os";
import { Gauge, type Registry } from "prom-client";
import type { Agent } from "../node/agent.js";
import { META_GROUP } from "../cluster/meta.js";
import type { NodeId } from "../raft/index.js";
import type { DurableStore } from "../node/ports.js";
import type { PeerAddress } from "../transport/tcp-transport.js";
import type { Logger } from "../transport/types.js";
import { BootstrapServer } from "./bootstrap-server.js";
import { ClusterIdKeeper, type ClusterIdStore } from "./cluster-id.js";
import { FileBootstrapState } from "./durable-file.js";
import { BonjourMdns } from "./mdns.js";
import { clusterIdOf } from "./protocol.js";
import { DiscoveryService, seedUrl } from "./service.js";
import { agentVersion } from "./version.js";

export interface PlanInput {
  readonly nodeId: NodeId;
  readonly dataDir: string;
  readonly clusterName: string;
  readonly secret: string;
  readonly store: DurableStore;
  readonly ids: ClusterIdStore;
  readonly staticPeers: ReadonlyMap<NodeId, PeerAddress>;
  /** `--join` values: API URLs or host:port of members. */
  readonly seeds: readonly string[];
  readonly discover: boolean;
  readonly expect: number;
  readonly api: PeerAddress;
  readonly peer: PeerAddress;
  readonly advertiseHost?: string;
  readonly tickMs: number;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  /** `--fold-into`: join only the cluster whose id starts with this. */
  readonly onlyCluster?: string;
}

export interface Plan {
  readonly founders?: readonly NodeId[];
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  readonly join?: string;
  readonly service: DiscoveryService;
}

/** The founders' cluster id when the founder list is given by hand (`--peers`). */
export function staticClusterId(founders: readonly NodeId[]): string {
  const sorted = [...founders].sort();
  return clusterIdOf({ coordinator: sorted[0] ?? "", nonce: "static", founders: sorted });
}

function advertiseHostOf(input: PlanInput, listen: string): string {
  if (input.advertiseHost) return input.advertiseHost;
  return listen === "0.0.0.0" || listen === "::" ? `${hostname()}.local` : listen;
}

export async function plan(input: PlanInput): Promise<Plan> {
  // A single seed is joined through directly, so it needs its scheme as much as a list does.
  const seeds = input.seeds.map(seedUrl);
  const durable = new FileBootstrapState(input.dataDir);
  const useMdns = input.discover;
  const service = new DiscoveryService({
    nodeId: input.nodeId,
    clusterName: input.clusterName,
    secret: input.secret,
    version: agentVersion(),
    expect: input.expect,
    seeds: input.discover || seeds.length > 1 ? seeds : [],
    mdns: useMdns
      ? new BonjourMdns({ onError: (err) => input.logger.warn("mDNS error", { error: err.message }) })
      : null,
    advertiseHost: advertiseHostOf(input, input.api.host),
    apiPort: input.api.port,
    peerPort: input.peer.port,
    tickMs: Math.max(50, Math.min(input.tickMs * 2, 500)),
    durable,
    logger: input.logger,
    ...(input.onlyCluster ? { onlyCluster: input.onlyCluster } : {}),
  });
  const base = { service };
  if (input.store.hasGroup(META_GROUP)) {
    // Has a cluster. A founder that restarted before its meta group stored the ring needs its founders.
    const d = durable.load();
    return {
      ...base,
      peers: input.staticPeers,
      ...(d.kind === "committed" ? { founders: d.attempt.founders } : {}),
    };
  }
  if (input.staticPeers.size > 0) {
    await setId(input, staticClusterId([...input.staticPeers.keys()]));
    return { ...base, peers: input.staticPeers };
  }
  if (!input.discover && seeds.length === 1) return { ...base, peers: new Map(), join: seeds[0]! };
  if (input.api.port === 0 || input.peer.port === 0)
    throw new Error("discovery needs fixed --api and --peer ports (other boards must know where to look)");
  const server = new BootstrapServer((body, remote) => service.respond(body, remote));
  await server.start(input.api.host, input.api.port);
  try {
    const out = await service.bootstrap(input.signal);
    await setId(input, out.clusterId);
    if (out.kind === "found") {
      input.logger.info("founding a cluster agreed with the other founders", {
        founders: out.founders.join(","),
        clusterId: out.clusterId,
      });
      return { ...base, peers: out.peers, founders: out.founders };
    }
    input.logger.info("found a cluster to join", { via: out.via, clusterId: out.clusterId });
    return { ...base, peers: new Map(), join: out.via };
  } catch (err) {
    // Stopped (or failed) while discovering: goodbye packets, and nothing left holding the process.
    await service.stop();
    throw err;
  } finally {
    await server.stop();
  }
}

async function setId(input: PlanInput, id: string): Promise<void> {
  if (input.ids.clusterId !== id) await input.ids.setClusterId(id);
}

/** Once the agent runs: answer as a member, watch the LAN, keep the cluster id, export metrics. */
export function attach(
  p: Plan,
  agent: Agent,
  store: DurableStore,
  ids: ClusterIdStore,
  registry: Registry,
  logger: Logger,
): { stop: () => Promise<void> } {
  const keeper = new ClusterIdKeeper(agent.host, store, ids, logger);
  keeper.start();
  p.service.becomeMember({
    clusterId: () => ids.clusterId,
    memberApis: () => agent.meta.members().map((m) => m.api),
  });
  const counters = p.service.counters;
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge(
    "ringleader_discovery_foreign_nodes",
    "Nodes of another cluster with our name seen on the network (split brain)",
    () => p.service.foreignNodes().length,
  );
  gauge(
    "ringleader_discovery_foreign_answers_total",
    "Probe answers from nodes of another cluster",
    () => counters.foreignAnswers,
  );
  gauge(
    "ringleader_discovery_refused_foreign_traffic_total",
    "Raft batches refused from another cluster",
    () => counters.refusedForeignTraffic,
  );
  gauge(
    "ringleader_discovery_rogue_answers_total",
    "Discovered nodes that failed to prove the cluster secret",
    () => counters.rogueAnswers,
  );
  gauge(
    "ringleader_discovery_rejected_probes_total",
    "Discovery probes to us that failed the proof",
    () => counters.rejectedProbes,
  );
  return {
    stop: async () => {
      keeper.stop();
      await p.service.stop();
    },
  };
}
