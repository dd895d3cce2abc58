import { mkdir, rename } from "node:fs/promises";
import { resolve } from "node:path";
import type { CommandModule } from "yargs";
import { AddressInUseError, Agent, HEARTBEAT_TICKS } from "../../node/agent.js";
import { DEFAULT_SNAPSHOT_ENTRIES } from "../../node/host.js";
import { attach, plan } from "../../discovery/node-discovery.js";
import type { BalanceStrategy } from "../../node/kv-service.js";
import { readClusterConfig } from "../../node/cluster-config.js";
import { openDurableStore } from "../../node/lmdb-adapter.js";
import { machineProblem } from "../../node/machine.js";
import { createLogger, type LogFormat, type LogLevel } from "../../node/logger.js";
import type { PeerAddress } from "../../transport/tcp-transport.js";
import { EXIT_ADDRESS_IN_USE, EXIT_STORAGE_FAILED, UsageError } from "../errors.js";

interface AgentArgs {
  config: string;
  data: string;
  id?: string;
  api: string;
  peer: string;
  peers?: string;
  "tick-ms": number;
  "election-ticks": number;
  "snapshot-entries": number;
  join?: string;
  discover?: boolean;
  "bootstrap-expect": number;
  "fold-into"?: string;
  weight: number;
  machine?: string;
  "replace-after": number;
  partitions: number;
  replication: number;
  strategy: string;
  "advertise-host"?: string;
  "log-level": string;
  "log-format": string;
  "bridge-metrics": string;
  "health-interval": number;
  sysfs?: string;
}

export function parseHostPort(text: string, what: string): PeerAddress {
  const m = /^(.*):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535)
    throw new UsageError(`${what} must look like host:port, got ${JSON.stringify(text)}`);
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** `n1=10.0.0.5:7100,n2=10.0.0.6:7100` → id → address. */
export function parsePeers(text: string): Map<string, PeerAddress> {
  const peers = new Map<string, PeerAddress>();
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`--peers entries look like id=host:port, got ${JSON.stringify(part)}`);
    const id = part.slice(0, eq);
    if (peers.has(id)) throw new UsageError(`--peers names ${id} twice`);
    peers.set(id, parseHostPort(part.slice(eq + 1), `--peers ${id}`));
  }
  return peers;
}

export const agentCommand: CommandModule<object, AgentArgs> = {
  command: "agent",
  describe: "Run one Ringleader node in the foreground (what systemd runs on each board)",
  builder: (y) =>
    y
      .option("config", {
        type: "string",
        default: "ringleader.json",
        describe: "Cluster config from `ringleader init`",
      })
      .option("data", { type: "string", default: "/var/lib/ringleader", describe: "Data directory (LMDB)" })
      .option("id", {
        type: "string",
        describe: "Node id, fixed on first start (default: generated and kept)",
      })
      .option("api", { type: "string", default: "0.0.0.0:7000", describe: "Client HTTP API address" })
      .option("peer", { type: "string", default: "0.0.0.0:7100", describe: "Peer (TLS) address" })
      .option("peers", { type: "string", describe: "Static peers, this node included: id=host:port,..." })
      .option("tick-ms", { type: "number", default: 100, describe: "Raft tick in milliseconds" })
      .option("election-ticks", {
        type: "number",
        default: 10,
        describe: "Ticks before a follower campaigns",
      })
      .option("join", {
        type: "string",
        describe:
          "Members to join through: API URLs or host:port, comma-separated (also the fallback seeds when multicast is blocked)",
      })
      .option("discover", {
        type: "boolean",
        describe:
          "Find the other boards by mDNS (_ringleader._tcp); on unless --peers or --join is given. A new board founds a cluster with --bootstrap-expect boards, or joins the one it finds",
      })
      .option("bootstrap-expect", {
        type: "number",
        default: 3,
        describe:
          "Boards that found a NEW cluster together (1: a single-board cluster); ignored once the node has a cluster",
      })
      .option("fold-into", {
        type: "string",
        describe:
          "Split brain repair: if this node belongs to another cluster than the one whose id starts with this, move its data directory aside (DIR.folded-<time>) and join that cluster, keeping the node id",
      })
      .option("replace-after", {
        type: "number",
        default: 300,
        describe: "Seconds a board may be unreachable before its replicas are rebuilt elsewhere",
      })
      .option("weight", { type: "number", default: 1, describe: "Share of replicas this board takes (1-16)" })
      .option("machine", {
        type: "string",
        describe:
          "The machine this agent shares CPU cores with (default: the kernel's boot id). Partitions are led by one agent per machine where several replicate them, so agents of one machine do not split the leader work on the same cores; give each its own value to spread leaders over them as over separate boards",
      })
      .option("partitions", {
        type: "number",
        default: 64,
        describe: "Partitions of a NEW cluster (fixed forever)",
      })
      .option("replication", {
        type: "number",
        default: 3,
        describe: "Replicas per partition of a NEW cluster",
      })
      .option("strategy", {
        type: "string",
        default: "round-robin",
        choices: ["random", "round-robin", "ip-hash", "least-loaded"],
        describe:
          "How eventual reads pick the replica that serves them (this node's included); a request may override it with ?strategy=",
      })
      .option("advertise-host", { type: "string", describe: "Address other nodes reach this one at" })
      .option("snapshot-entries", {
        type: "number",
        default: DEFAULT_SNAPSHOT_ENTRIES,
        describe:
          "Bounds each partition's log: about half this many of its latest entries stay for followers that fall behind (one further behind gets a snapshot); older ones are compacted at each flush, about every second",
      })
      .option("sysfs", {
        type: "string",
        describe:
          "Where the board's sysfs is mounted, for its temperature and throttling (default /sys; e.g. /host/sys in a container)",
      })
      .option("health-interval", {
        type: "number",
        default: 10,
        describe: "Seconds between board health samples and pulls of the peers' health (0: off)",
      })
      .option("bridge-metrics", {
        type: "string",
        default: "http://127.0.0.1:9465/metrics",
        describe: "This board's serial bridge /metrics, folded into the agent's /metrics (none: off)",
      })
      .option("log-level", { type: "string", default: "info", choices: ["debug", "info", "warn", "error"] })
      .option("log-format", { type: "string", default: "text", choices: ["text", "json"] })
      .example(
        "$0 agent --data /var/lib/ringleader",
        "zero-config: find the other boards by mDNS, found or join a cluster",
      )
      .example("$0 agent --data /var/lib/ringleader --bootstrap-expect 1", "a single-board cluster")
      .example(
        "$0 agent --data /var/lib/ringleader --join 192.168.1.20:7000,192.168.1.21:7000",
        "multicast blocked: join through seed members",
      )
      .example(
        "$0 agent --data /var/lib/ringleader --fold-into 3fa1c2d0",
        "after a split-brain alarm: leave this cluster and join cluster 3fa1c2d0… (the id `ringleader status` shows)",
      )
      .example(
        "$0 agent --config ringleader.json --data /var/lib/ringleader --id n1 --peers n1=pi1.local:7100,n2=pi2.local:7100,n3=pi3.local:7100",
        "one board of a three-board cluster with a static peer list",
      )
      .epilogue(
        `Exit codes: 0 stopped (SIGINT, SIGTERM), 1 an error it names, 2 an option it cannot use, ` +
          `${EXIT_STORAGE_FAILED} the data store failed while running, ${EXIT_ADDRESS_IN_USE} an address it was told to listen on ` +
          "is held by another program (free it, or choose another with --api or --peer).",
      ),
  handler: async (args) => {
    const electionTicks = args["election-ticks"];
    if (!Number.isInteger(electionTicks) || electionTicks <= HEARTBEAT_TICKS || electionTicks > 1000) {
      throw new UsageError(
        `--election-ticks must be an integer from ${HEARTBEAT_TICKS + 1} to 1000 (a leader heartbeats ` +
          `every ${HEARTBEAT_TICKS} ticks), got ${electionTicks}`,
      );
    }
    const machineError = args.machine === undefined ? null : machineProblem(args.machine);
    if (machineError) throw new UsageError(`--machine ${machineError}, got "${args.machine}"`);
    const logger = createLogger({
      level: args["log-level"] as LogLevel,
      format: args["log-format"] as LogFormat,
    });
    const config = await readClusterConfig(resolve(args.config));
    const peers = args.peers ? parsePeers(args.peers) : new Map<string, PeerAddress>();
    const dataDir = resolve(args.data);
    await mkdir(dataDir, { recursive: true });
    const seeds = (args.join ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const discover = args.discover ?? (peers.size === 0 && seeds.length === 0);
    const expect = args["bootstrap-expect"];
    if (!Number.isInteger(expect) || expect < 1 || expect > 64)
      throw new UsageError(`--bootstrap-expect must be an integer from 1 to 64, got ${expect}`);
    const snapshotEntries = args["snapshot-entries"];
    if (!Number.isInteger(snapshotEntries) || snapshotEntries < 2 || snapshotEntries > 100_000_000)
      throw new UsageError(
        `--snapshot-entries must be an integer from 2 to 100000000, got ${snapshotEntries}`,
      );
    const storeOpts = { logRetainEntries: Math.floor(snapshotEntries / 2) };
    let opened = await openDurableStore(dataDir, args.id, storeOpts);
    const fold = args["fold-into"]?.toLowerCase();
    if (fold !== undefined) {
      if (!/^[0-9a-f]{4,32}$/.test(fold))
        throw new UsageError("--fold-into takes a cluster id (4-32 hex digits)");
      const mine = opened.store.node.clusterId;
      if (opened.store.hasGroup(0) && !mine?.startsWith(fold)) {
        const nodeId = opened.nodeId;
        await opened.close();
        const aside = `${dataDir}.folded-${new Date().toISOString().replace(/[:.]/g, "-")}`;
        await rename(dataDir, aside);
        await mkdir(dataDir, { recursive: true });
        logger.warn("folding into another cluster: moved this node's data aside", { aside, into: fold });
        opened = await openDurableStore(dataDir, nodeId, storeOpts);
      }
    }
    const fresh = !opened.store.hasGroup(0);
    if (fresh && !discover && seeds.length === 0 && peers.size === 0) {
      await opened.close();
      throw new UsageError(
        "a new node needs --discover (the default), --peers (the founders of a new cluster, this node included) or --join <member>",
      );
    }
    if (fresh && peers.size > 0 && !peers.has(opened.nodeId)) {
      await opened.close();
      throw new UsageError(
        `this node's id ${opened.nodeId} is not in --peers (${[...peers.keys()].join(", ")})`,
      );
    }
    const aborter = new AbortController();
    const abort = (): void => aborter.abort(new Error("stopped while discovering"));
    process.once("SIGINT", abort);
    process.once("SIGTERM", abort);
    const store = opened.store;
    const ids = {
      get clusterId() {
        return store.node.clusterId;
      },
      setClusterId: (id: string) => store.node.setClusterId(id),
    };
    let entry;
    try {
      entry = await plan({
        nodeId: opened.nodeId,
        dataDir,
        clusterName: config.clusterName,
        secret: config.secret,
        store,
        ids,
        staticPeers: peers,
        seeds,
        discover,
        expect,
        api: parseHostPort(args.api, "--api"),
        peer: parseHostPort(args.peer, "--peer"),
        ...(args["advertise-host"] ? { advertiseHost: args["advertise-host"] } : {}),
        tickMs: args["tick-ms"],
        logger,
        signal: aborter.signal,
        ...(fold !== undefined ? { onlyCluster: fold } : {}),
      });
    } catch (err) {
      await opened.close();
      if (aborter.signal.aborted) return;
      throw err;
    } finally {
      process.off("SIGINT", abort);
      process.off("SIGTERM", abort);
    }
    const healthEvery = args["health-interval"];
    if (!(healthEvery === 0 || (healthEvery >= 1 && healthEvery <= 3600))) {
      await opened.close();
      throw new UsageError(`--health-interval must be 0 (off) or 1-3600 seconds, got ${healthEvery}`);
    }
    const agent = new Agent({
      nodeId: opened.nodeId,
      config,
      store: opened.store,
      peers: entry.peers,
      ...(entry.founders ? { founders: entry.founders } : {}),
      discovery: entry.service,
      clusterId: () => store.node.clusterId,
      api: parseHostPort(args.api, "--api"),
      peer: parseHostPort(args.peer, "--peer"),
      tickMs: args["tick-ms"],
      electionTicks: args["election-ticks"],
      snapshotEntries,
      weight: args.weight,
      ...(args.machine !== undefined ? { machine: args.machine } : {}),
      replaceAfterMs: args["replace-after"] * 1000,
      shape: { partitions: args.partitions, replicationFactor: args.replication },
      strategy: args.strategy as BalanceStrategy,
      dataDir,
      bridgeMetricsUrl: args["bridge-metrics"] === "none" ? null : args["bridge-metrics"],
      healthIntervalMs: Math.round(args["health-interval"] * 1000),
      ...(args.sysfs !== undefined ? { sysRoot: args.sysfs } : {}),
      ...(entry.join ? { join: entry.join } : {}),
      ...(args["advertise-host"] ? { advertiseHost: args["advertise-host"] } : {}),
      logger,
      onFatal: (err) => {
        logger.error("stopping: storage failed", { error: err.message });
        process.exit(EXIT_STORAGE_FAILED);
      },
    });
    try {
      await agent.start();
    } catch (err) {
      if (err instanceof AddressInUseError) throw new UsageError(err.message, EXIT_ADDRESS_IN_USE);
      throw err;
    }
    const watching = attach(entry, agent, store, ids, agent.metrics.registry, logger);
    await new Promise<void>((done) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info("stopping", { signal });
        agent
          .stop()
          .then(() => watching.stop())
          .then(() => opened.close())
          .then(done, (err: unknown) => {
            logger.error("unclean stop", { error: String(err) });
            done();
          });
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
  },
};
