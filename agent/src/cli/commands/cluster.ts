import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { freePorts } from "../free-ports.js";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import {
  newClusterConfig,
  readClusterConfig,
  writeClusterConfig,
  type ClusterConfig,
} from "../../node/cluster-config.js";
import { EXIT_ADDRESS_IN_USE, UsageError } from "../errors.js";
import { DEFAULT_SNAPSHOT_ENTRIES } from "../../node/host.js";
import { agentEnv, agentNodeFlags } from "../../node/runtime-flags.js";
import { ownMachine } from "../../node/machine.js";
import { deadline } from "../../node/deadline.js";
import { httpFetch } from "../../net/http-fetch.js";

interface UpArgs {
  nodes: number;
  dir: string;
  "base-port": number;
  "tick-ms": number;
  "snapshot-entries": number;
  partitions: number;
  "replace-after": number;
  "spread-leaders": boolean;
  json: boolean;
}

export interface LocalClusterNode {
  id: string;
  pid: number;
  api: string;
  peer: string;
  command: string[];
  cwd: string;
}

/** The file `cluster up` writes for clients, tests and tools (its shape is a contract). */
export interface LocalClusterFile {
  token: string;
  nodes: LocalClusterNode[];
}

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));

async function loadOrCreateConfig(path: string): Promise<ClusterConfig> {
  try {
    return await readClusterConfig(path);
  } catch (err) {
    if ((err as Error).message.includes("no cluster config")) {
      const cfg = newClusterConfig("local", new Date());
      await writeClusterConfig(path, cfg, false);
      return cfg;
    }
    throw err;
  }
}

type Ports = { api: number; peer: number }[];

/**
 * The ports of the last run in `dir`, when it holds a cluster already: its nodes stored each
 * other's addresses in the member table and look for each other there first, so a cluster
 * started again on fresh ports would never find a leader.
 */
async function lastRunPorts(dir: string, ids: readonly string[]): Promise<Ports | null> {
  let last: LocalClusterFile;
  try {
    last = JSON.parse(await readFile(join(dir, "cluster.json"), "utf8")) as LocalClusterFile;
  } catch {
    return null;
  }
  const ports = ids.map((id) => {
    const n = last.nodes.find((x) => x.id === id);
    return { api: Number(n ? new URL(n.api).port : NaN), peer: Number(n?.peer.split(":").pop()) };
  });
  return ports.every((p) => p.api > 0 && p.peer > 0) ? ports : null;
}

/** The nodes' ports, and whether they are the last run's (`lastRunPorts`). */
async function portsFor(
  dir: string,
  ids: readonly string[],
  base: number,
): Promise<{ ports: Ports; reused: boolean }> {
  const n = ids.length;
  if (base > 0)
    return {
      ports: Array.from({ length: n }, (_, i) => ({ api: base + i, peer: base + 100 + i })),
      reused: false,
    };
  const last = await lastRunPorts(dir, ids);
  if (last) return { ports: last, reused: true };
  const free = await freePorts(2 * n);
  return {
    ports: Array.from({ length: n }, (_, i) => ({ api: free[2 * i]!, peer: free[2 * i + 1]! })),
    reused: false,
  };
}

/** A local cluster has at most this many nodes, named n1, n2, ... */
const MAX_LOCAL_NODES = 9;

function nodeIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `n${i + 1}`);
}

/** The nodes whose data `dir` already holds. */
function existingNodes(dir: string): string[] {
  return nodeIds(MAX_LOCAL_NODES).filter((id) => existsSync(join(dir, id)));
}

/**
 * Waits until the node is ready for the tour's commands: `/healthz` answers 200 (the meta group
 * and every partition it holds have a leader) and its member table lists every node of this
 * cluster (else `members step-down n2` through it says there is no n2). Returns null then, or
 * what it last lacked when `signal` ends the wait first.
 */
async function waitReady(
  api: string,
  token: string,
  ids: readonly string[],
  signal: AbortSignal,
): Promise<string | null> {
  let last = "no answer yet";
  while (!signal.aborted) {
    try {
      const res = await httpFetch(`${api}/healthz`, { signal });
      const text = await res.text();
      if (res.ok) {
        const members = await httpFetch(`${api}/v1/members`, {
          headers: { authorization: `Bearer ${token}` },
          signal,
        });
        const body = (await members.json()) as { members?: { id: string }[] };
        const missing = ids.filter((id) => !body.members?.some((m) => m.id === id));
        if (missing.length === 0) return null;
        last = `its member table lacks ${missing.join(", ")}`;
      } else {
        last = (
          /"reason":"([^"]*)"/.exec(text)?.[1] ?? `HTTP ${res.status}: ${text.replace(/\s+/g, " ")}`
        ).slice(0, 160);
      }
    } catch (err) {
      if (!signal.aborted) last = `no answer (${(err as Error).message})`;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

function tour(file: string, nodes: LocalClusterNode[], ready: boolean, spread: boolean): string {
  const lines = [
    "",
    ready
      ? "Local cluster is up:"
      : "Local cluster is running, but not every node is ready (warnings above):",
    ...nodes.map((n) => `  ${n.id}  api ${n.api}  peer ${n.peer}  pid ${n.pid}`),
    "",
    "Try, in another terminal:",
    "  ringleader put greeting hello",
    "  ringleader get greeting",
    "  ringleader status",
    "  ringleader bench --duration 5",
    `  kill -9 ${nodes[0]?.pid ?? "<pid>"}   # then: ringleader get greeting  (still there)`,
    "",
    spread
      ? "Partition leaders spread over the nodes, as over separate boards (--spread-leaders)."
      : `The nodes share this machine's cores, so ${nodes[0]?.id ?? "the first node"} leads every partition once settled (--spread-leaders spreads them).`,
    `Clients find this cluster through ${file}. Ctrl-C stops every node.`,
    "(`ringleader` here means `node dist/agent/src/cli/main.js`, or `npm link` once.)",
  ];
  return lines.join("\n") + "\n";
}

/** The agent command that runs node `id` of the local cluster in `dir`, on `port`. */
function nodeCommand(
  args: UpArgs,
  dir: string,
  configPath: string,
  id: string,
  port: Ports[number],
  peers: string,
): string[] {
  // Node's own flags given to this command (`node --cpu-prof …/main.js cluster up`) pass on to
  // the agents after the agent's defaults, so a profile or another heap size can be tried on a
  // whole local cluster.
  return [
    process.execPath,
    ...agentNodeFlags(),
    ...process.execArgv,
    MAIN,
    "agent",
    "--config",
    configPath,
    "--data",
    join(dir, id),
    "--id",
    id,
    "--api",
    `127.0.0.1:${port.api}`,
    "--peer",
    `127.0.0.1:${port.peer}`,
    "--peers",
    peers,
    "--tick-ms",
    String(args["tick-ms"]),
    "--snapshot-entries",
    String(args["snapshot-entries"]),
    "--partitions",
    String(args.partitions),
    "--replace-after",
    String(args["replace-after"]),
    // By default the agents know they share this machine (its boot id), and one of them leads
    // every partition; each its own machine spreads leaders as over separate boards.
    ...(args["spread-leaders"] ? ["--machine", ownMachine(id)] : []),
  ];
}

/** Resolves once `api` answers HTTP at all (the agent listens on both its ports), or `signal` ends. */
async function waitListening(api: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      await (await httpFetch(`${api}/healthz`, { signal })).arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Starts of a new cluster tried before `cluster up` gives up on ports that other programs take. */
const START_ATTEMPTS = 3;

async function up(args: UpArgs): Promise<void> {
  if (!Number.isInteger(args.nodes) || args.nodes < 1 || args.nodes > MAX_LOCAL_NODES) {
    throw new UsageError(`--nodes must be between 1 and ${MAX_LOCAL_NODES}`);
  }
  const dir = resolve(args.dir);
  await mkdir(dir, { recursive: true });
  const configPath = join(dir, "ringleader.json");
  const ids = nodeIds(args.nodes);
  const existing = existingNodes(dir);
  if (existing.length > 0 && existing.join() !== ids.join()) {
    throw new UsageError(
      `${dir} holds the data of a ${existing.length}-node cluster (${existing.join(", ")}); ` +
        `start it again with --nodes ${existing.length}, or give a new --dir`,
    );
  }
  const config = await loadOrCreateConfig(configPath);

  const userStop = new AbortController();
  let children: ChildProcess[] = [];
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  };
  const onSignal = (): void => {
    if (userStop.signal.aborted) return;
    userStop.abort();
    process.stderr.write("\nStopping the local cluster...\n");
    killAll();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const allExited = (): Promise<unknown> =>
    Promise.all(
      children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined)),
    );

  let nodes: LocalClusterNode[] = [];
  let started = false;
  let failure: string | null = null;
  /** Aborts when a node of the current start exits before the cluster is ready. */
  let failed = new AbortController();
  /** The current start's wait for its nodes: 30 s, then the cluster runs on with a warning. */
  let wait = userStop.signal;
  for (let attempt = 1; ; attempt++) {
    const { ports, reused } = await portsFor(dir, ids, args["base-port"]);
    const peers = ids.map((id, i) => `${id}=127.0.0.1:${ports[i]!.peer}`).join(",");
    nodes = [];
    children = ids.map((id, i) => {
      const command = nodeCommand(args, dir, configPath, id, ports[i]!, peers);
      const child = spawn(command[0]!, command.slice(1), {
        cwd: dir,
        env: agentEnv(),
        stdio: ["ignore", "inherit", "inherit"],
      });
      nodes.push({
        id,
        pid: child.pid ?? -1,
        api: `http://127.0.0.1:${ports[i]!.api}`,
        peer: `127.0.0.1:${ports[i]!.peer}`,
        command,
        cwd: dir,
      });
      return child;
    });
    // A node that dies while the cluster starts (a port taken, a bad data folder) fails the whole
    // command: its own error is right above.
    failed = new AbortController();
    wait = deadline(30_000, userStop.signal, failed.signal);
    let lostPort = false;
    for (const [i, c] of children.entries()) {
      c.on("exit", (code, signal) => {
        if (userStop.signal.aborted || failed.signal.aborted) return;
        if (started) {
          process.stderr.write(`node ${ids[i]} exited (${signal ?? code}); it is not restarted.\n`);
          return;
        }
        lostPort = code === EXIT_ADDRESS_IN_USE;
        failure =
          `node ${ids[i]} exited (${signal ?? code}) while the cluster was starting; its error is above` +
          (reused
            ? ". A cluster started again keeps the ports of its last run (its nodes look for each other " +
              "there): free that port, or start a new cluster with another --dir"
            : "");
        failed.abort();
        killAll();
      });
    }
    await Promise.all(nodes.map((n) => waitListening(n.api, wait)));
    if (!failed.signal.aborted) break;
    await allExited();
    // A new cluster's ports were free when chosen, and another program took one before its node
    // bound it. No client knows these ports yet (cluster.json is written once every node
    // listens), so nothing was acknowledged: start the cluster afresh on other ports.
    const fresh = existing.length === 0 && args["base-port"] === 0;
    if (!lostPort || !fresh || attempt >= START_ATTEMPTS || userStop.signal.aborted) break;
    await Promise.all(ids.map((id) => rm(join(dir, id), { recursive: true, force: true })));
    process.stderr.write(
      `A port that was free a moment ago was taken by another program before the node bound it; ` +
        `starting the new cluster again on other ports (attempt ${attempt + 1} of ${START_ATTEMPTS}).\n`,
    );
    failure = null;
  }

  if (!userStop.signal.aborted && !failed.signal.aborted) {
    const file = join(dir, "cluster.json");
    const body: LocalClusterFile = { token: config.token, nodes };
    await writeFile(file + ".tmp", JSON.stringify(body, null, 2) + "\n", { mode: 0o600 });
    await rename(file + ".tmp", file);
    const notReady = await Promise.all(nodes.map((n) => waitReady(n.api, config.token, ids, wait)));
    started = true;
    if (!userStop.signal.aborted && !failed.signal.aborted) {
      for (const [i, reason] of notReady.entries()) {
        if (reason !== null)
          process.stderr.write(`warning: node ${ids[i]} is not ready after 30 s: ${reason}\n`);
      }
      if (args.json) process.stdout.write(JSON.stringify({ file, ...body }) + "\n");
      else
        process.stdout.write(
          tour(
            file,
            nodes,
            notReady.every((r) => r === null),
            args["spread-leaders"],
          ),
        );
    }
  }
  await allExited();
  if (failure) throw new Error(failure);
}

export const clusterCommand: CommandModule<object, object> = {
  command: "cluster <action>",
  describe: "Run a local cluster on this machine (the main job for trying Ringleader)",
  builder: (y: Argv) =>
    y
      .command<UpArgs>({
        command: "up",
        describe: "Start N agents on 127.0.0.1 in the foreground; Ctrl-C stops them",
        builder: (yy) =>
          yy
            .option("nodes", { type: "number", default: 3, describe: "How many agents" })
            .option("dir", {
              type: "string",
              default: ".data/cluster",
              describe: "Data, config and cluster.json go here",
            })
            .option("base-port", {
              type: "number",
              default: 0,
              describe: "API ports base..base+N-1, peer ports base+100...; 0 picks free ports",
            })
            .option("tick-ms", { type: "number", default: 100, describe: "Raft tick length in milliseconds" })
            .option("partitions", {
              type: "number",
              default: 64,
              describe: "Partitions (Raft groups) of the new cluster",
            })
            .option("replace-after", {
              type: "number",
              default: 300,
              describe: "Seconds a node may be unreachable before its replicas are rebuilt elsewhere",
            })
            .option("snapshot-entries", {
              type: "number",
              default: DEFAULT_SNAPSHOT_ENTRIES,
              describe:
                "Each agent keeps about half this many of each partition's latest log entries for followers that fall behind, and compacts older ones",
            })
            .option("spread-leaders", {
              type: "boolean",
              default: false,
              describe:
                "Spread partition leaders over the nodes as over separate boards. By default one node leads every partition: the nodes share this machine's cores, and one leader batching all writes costs less CPU per write than three splitting them",
            })
            .option("json", { type: "boolean", default: false })
            .example(
              "$0 cluster up --nodes 3 --dir .data/cluster",
              "three agents with data under .data/cluster",
            )
            .example("$0 cluster up --base-port 7000", "APIs on 7000-7002, peers on 7100-7102")
            .epilogue(
              "It writes cluster.json once every node listens, and prints the endpoints once every node is " +
                "ready: every partition has a leader and every node knows every member. A node that fails to " +
                "start stops the others and the command exits 1 with that node's error; but when another " +
                "program takes a port of a new cluster between this command finding it free and the node " +
                "binding it, the new cluster is started again on other ports (3 tries). Not ready after 30 s: the cluster runs on " +
                "and a warning names what each node still lacks. Run again with the same --dir to restart " +
                "the same cluster with its data.",
            ),
        handler: up,
      })
      .demandCommand(1),
  handler: () => {},
};
