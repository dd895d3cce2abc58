import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import type { CommandModule } from "yargs";
import { Agent } from "../../node/agent.js";
import type { BalanceStrategy } from "../../node/kv-service.js";
import { readClusterConfig } from "../../node/cluster-config.js";
import { openDurableStore } from "../../node/lmdb-adapter.js";
import { createLogger, type LogFormat, type LogLevel } from "../../node/logger.js";
import type { PeerAddress } from "../../transport/tcp-transport.js";
import { UsageError } from "../errors.js";

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
  weight: number;
  "replace-after": number;
  partitions: number;
  replication: number;
  strategy: string;
  "advertise-host"?: string;
  "log-level": string;
  "log-format": string;
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
      .option("join", { type: "string", describe: "Join an existing cluster through a member's API URL" })
      .option("replace-after", {
        type: "number",
        default: 300,
        describe: "Seconds a board may be unreachable before its replicas are rebuilt elsewhere",
      })
      .option("weight", { type: "number", default: 1, describe: "Share of replicas this board takes (1-16)" })
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
        describe: "How eventual reads pick a replica on another node",
      })
      .option("advertise-host", { type: "string", describe: "Address other nodes reach this one at" })
      .option("snapshot-entries", {
        type: "number",
        default: 10_000,
        describe: "Snapshot and compact the log every this many applied entries",
      })
      .option("log-level", { type: "string", default: "info", choices: ["debug", "info", "warn", "error"] })
      .option("log-format", { type: "string", default: "text", choices: ["text", "json"] })
      .example(
        "$0 agent --config ringleader.json --data /var/lib/ringleader --id n1 --peers n1=pi1.local:7100,n2=pi2.local:7100,n3=pi3.local:7100",
        "one board of a three-board cluster with a static peer list",
      ),
  handler: async (args) => {
    const logger = createLogger({
      level: args["log-level"] as LogLevel,
      format: args["log-format"] as LogFormat,
    });
    const config = await readClusterConfig(resolve(args.config));
    const peers = args.peers ? parsePeers(args.peers) : new Map<string, PeerAddress>();
    const dataDir = resolve(args.data);
    await mkdir(dataDir, { recursive: true });
    const opened = await openDurableStore(dataDir, args.id);
    const fresh = !opened.store.hasGroup(0);
    if (fresh && !args.join && peers.size === 0) {
      await opened.close();
      throw new UsageError(
        "a new node needs --peers (the founders of a new cluster, this node included) or --join <api url of a member>",
      );
    }
    if (fresh && !args.join && !peers.has(opened.nodeId)) {
      await opened.close();
      throw new UsageError(
        `this node's id ${opened.nodeId} is not in --peers (${[...peers.keys()].join(", ")})`,
      );
    }
    const agent = new Agent({
      nodeId: opened.nodeId,
      config,
      store: opened.store,
      peers,
      api: parseHostPort(args.api, "--api"),
      peer: parseHostPort(args.peer, "--peer"),
      tickMs: args["tick-ms"],
      electionTicks: args["election-ticks"],
      snapshotEntries: args["snapshot-entries"],
      weight: args.weight,
      replaceAfterMs: args["replace-after"] * 1000,
      shape: { partitions: args.partitions, replicationFactor: args.replication },
      strategy: args.strategy as BalanceStrategy,
      ...(args.join ? { join: args.join } : {}),
      ...(args["advertise-host"] ? { advertiseHost: args["advertise-host"] } : {}),
      logger,
      onFatal: (err) => {
        logger.error("stopping: storage failed", { error: err.message });
        process.exit(70);
      },
    });
    await agent.start();
    await new Promise<void>((done) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info("stopping", { signal });
        agent
          .stop()
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
