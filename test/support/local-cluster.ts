/**
 * Test support: a real local cluster of agent processes started through `ringleader cluster up`,
 * with helpers to kill, restart and query nodes. Every wait is bounded and polls a real
 * condition (an HTTP answer), never a fixed sleep.
 */
import { waitFor } from "./wait.js";
import { after } from "node:test";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { agentEnv, agentNodeFlags } from "../../agent/src/node/runtime-flags.js";
import { ownMachine } from "../../agent/src/node/machine.js";

export const CLI = fileURLToPath(new URL("../../agent/src/cli/main.js", import.meta.url));

export interface NodeInfo {
  id: string;
  pid: number;
  api: string;
  peer: string;
  command: string[];
  cwd: string;
}

export interface StatusBody {
  id: string;
  leader: string | null;
  role: string;
  term: number;
  commit: number;
  applied: number;
  /** Partitions this node leads. */
  leaderOf: number;
}

export interface StartOptions {
  nodes: number;
  tickMs?: number;
  snapshotEntries?: number;
  replaceAfterSec?: number;
  /**
   * Whether the nodes count as separate boards, which spreads partition leaders over them
   * (`cluster up --spread-leaders`; default true: most tests model boards, and kill a leader
   * among several). `false` is `cluster up`'s own default: the nodes share this machine, and one
   * of them leads every partition.
   */
  spreadLeaders?: boolean;
  /** Added to the environment of `cluster up`, which hands it on to its agents. */
  env?: Readonly<Record<string, string>>;
}

/** Clusters started and not yet stopped, in this process. */
const live = new Set<LocalCluster>();

// Under the test runner, a cluster a test file started and never stopped fails the file, and is
// stopped, instead of holding the file open (its `cluster up` child and pipes) until the suite's
// 45 min limit, with no word of which file or why. Outside the runner (the bench scripts) this
// registers nothing: node:test would start a test run of its own in that process. This hook is the
// first root-level one of any file that imports this module, so files stop their clusters in
// their suites' hooks (as all do), not in root-level ones, which would run after it.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  after(async () => {
    if (live.size === 0) return;
    const leaked = [...live];
    await Promise.all(leaked.map((c) => c.stop()));
    throw new Error(
      `${leaked.length} local cluster(s) were started and never stopped (now stopped): ` +
        leaked.map((c) => c.dir).join(", "),
    );
  });
}

export class LocalCluster {
  readonly nodes = new Map<string, NodeInfo>();
  /** Processes this test started to replace killed nodes. */
  private readonly restarted = new Map<string, ChildProcess>();
  token = "";

  private constructor(
    readonly dir: string,
    private readonly up: ChildProcess,
    /** Each node its own machine (`--machine`), as `cluster up --spread-leaders` gives them. */
    private readonly spreadLeaders: boolean,
  ) {}

  /**
   * Several clusters started side by side. If one fails to start, the others are stopped before
   * the error is thrown: the caller never got them, so nothing else would stop them, and their
   * processes would hold the test file open until the suite's time limit (a CI run lost 45 min
   * that way).
   */
  static async startAll(all: StartOptions[]): Promise<LocalCluster[]> {
    const results = await Promise.allSettled(all.map((opts) => LocalCluster.start(opts)));
    const failed = results.find((r) => r.status === "rejected");
    if (!failed) return results.map((r) => (r as PromiseFulfilledResult<LocalCluster>).value);
    await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    throw failed.reason;
  }

  /**
   * Starts a cluster with `cluster up` (which itself starts a new cluster again on other ports if
   * another program takes one of its ports before its agent binds it: test files run side by
   * side, and their clusters' port probes can cross).
   */
  static async start(opts: StartOptions): Promise<LocalCluster> {
    const dir = await mkdtemp(join(tmpdir(), "ringleader-cluster-"));
    const up = spawn(
      process.execPath,
      [
        CLI,
        "cluster",
        "up",
        "--nodes",
        String(opts.nodes),
        "--dir",
        dir,
        "--json",
        "--tick-ms",
        String(opts.tickMs ?? 50),
        "--snapshot-entries",
        String(opts.snapshotEntries ?? 10_000),
        "--replace-after",
        String(opts.replaceAfterSec ?? 300),
        ...(opts.spreadLeaders === false ? [] : ["--spread-leaders"]),
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } },
    );
    const cluster = new LocalCluster(dir, up, opts.spreadLeaders !== false);
    live.add(cluster);
    let stderr = "";
    const upLog = openSync(join(dir, "cluster-up.log"), "a");
    up.stderr!.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-20_000);
      writeSync(upLog, b);
    });
    // On "close", not "exit": stderr may still deliver data after the process exits, and a write
    // to the closed descriptor, by then perhaps another file's or socket's, threw in the test
    // process ("ECONNREFUSED: connection refused, write" once in a full run).
    up.once("close", () => closeSync(upLog));
    let stdout = "";
    const ready = new Promise<void>((resolve, reject) => {
      up.stdout!.on("data", (b: Buffer) => {
        stdout += b.toString();
        if (stdout.includes("\n")) resolve();
      });
      up.once("exit", (code) => reject(new Error(`cluster up exited early (${code}): ${stderr}`)));
    });
    // A start that fails or hangs ends in `stop()`, which sends SIGTERM first: `cluster up` then
    // stops the nodes it started. Killed outright it leaves them running, holding the stderr pipe
    // it gave them, and so this test process, open.
    ready.catch(() => {}); // it may still reject after a timeout, with nobody waiting
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cluster up was not ready within 60 s: ${stderr}`)), 60_000);
    });
    try {
      await Promise.race([ready, timedOut]);
    } catch (err) {
      await cluster.stop(); // removes its directory too
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const file = JSON.parse(await readFile(join(dir, "cluster.json"), "utf8")) as {
      token: string;
      nodes: NodeInfo[];
    };
    cluster.token = file.token;
    for (const n of file.nodes) cluster.nodes.set(n.id, n);
    return cluster;
  }

  endpoints(): string[] {
    return [...this.nodes.values()].map((n) => n.api);
  }

  async status(id: string, timeoutMs = 1000): Promise<StatusBody | null> {
    try {
      const res = await fetch(`${this.nodes.get(id)!.api}/v1/status`, {
        headers: { authorization: `Bearer ${this.token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      return res.ok ? ((await res.json()) as StatusBody) : null;
    } catch {
      return null;
    }
  }

  /**
   * For failure messages: each node's partitions that have no leader or a leader other nodes do
   * not agree on, with role and term, from `/v1/status`.
   */
  async leaderless(): Promise<string> {
    const lines: string[] = [];
    for (const id of this.nodes.keys()) {
      const s = (await this.status(id, 2000)) as
        | (StatusBody & {
            partitions?: { partition: number; role: string; leader: string | null; term: number }[];
          })
        | null;
      if (!s) {
        lines.push(`${id}: no status`);
        continue;
      }
      const odd = (s.partitions ?? []).filter((p) => !p.leader);
      lines.push(
        `${id}: meta leader ${s.leader ?? "none"}; partitions without a leader: ` +
          (odd.map((p) => `${p.partition} (${p.role}, term ${p.term})`).join(", ") || "none"),
      );
    }
    return lines.join("\n");
  }

  /** Polls until `pred` holds, up to `timeoutMs`; throws with `what` otherwise. */
  waitFor<T>(
    what: string,
    timeoutMs: number,
    probe: () => Promise<T | null | undefined | false>,
  ): Promise<T> {
    return waitFor(what, timeoutMs, probe);
  }

  /**
   * Waits until every node answers `/healthz` with 200 (meta leader, ring and every partition led).
   * On a timeout the error names each node's last answer and ends with the tail of the agents' log.
   */
  async waitHealthy(timeoutMs = 60_000, among: string[] = [...this.nodes.keys()]): Promise<void> {
    const last = new Map<string, string>();
    await waitFor(
      `${among.join(", ")} to be healthy`,
      timeoutMs,
      async () => {
        const codes = await Promise.all(
          among.map(async (id) => {
            try {
              const res = await fetch(`${this.nodes.get(id)!.api}/healthz`, {
                signal: AbortSignal.timeout(2000),
              });
              last.set(id, `${res.status} ${(await res.text()).slice(0, 200)}`);
              return res.status;
            } catch (err) {
              last.set(id, `no answer: ${(err as Error).message}`);
              return 0;
            }
          }),
        );
        return codes.every((c) => c === 200);
      },
      {
        everyMs: 100,
        context: () =>
          [...last].map(([id, answer]) => `  ${id}: ${answer}`).join("\n") +
          `\n--- last lines of ${join(this.dir, "cluster-up.log")}:\n${this.logTail(4000)}`,
      },
    );
  }

  /** The end of the agents' shared log (cluster up's stderr), for failure messages. */
  logTail(chars: number): string {
    try {
      const text = readFileSync(join(this.dir, "cluster-up.log"), "utf8");
      return text.slice(-chars);
    } catch (err) {
      return `(no log: ${(err as Error).message})`;
    }
  }

  /** The leader as seen by a majority of the live nodes given. */
  async leader(among: string[] = [...this.nodes.keys()]): Promise<string | null> {
    const seen = await Promise.all(among.map((id) => this.status(id)));
    const counts = new Map<string, number>();
    for (const s of seen) if (s?.leader) counts.set(s.leader, (counts.get(s.leader) ?? 0) + 1);
    for (const [id, n] of counts) if (n * 2 > among.length && among.includes(id)) return id;
    return null;
  }

  kill9(id: string): void {
    const n = this.nodes.get(id)!;
    const replaced = this.restarted.get(id);
    if (replaced) replaced.kill("SIGKILL");
    else process.kill(n.pid, "SIGKILL");
  }

  /** The pid of the node's current process (the restarted one after `restart`). */
  pid(id: string): number {
    return this.restarted.get(id)?.pid ?? this.nodes.get(id)!.pid;
  }

  /** Stops a node gracefully (SIGTERM: it hands over its leaderships first) and waits for it. */
  async terminate(id: string): Promise<void> {
    const pid = this.pid(id);
    if (isAlive(pid)) process.kill(pid, "SIGTERM");
    await this.waitFor(`node ${id} to stop`, 20_000, async () => !isAlive(pid));
  }

  async waitExit(id: string): Promise<void> {
    const pid = this.restarted.get(id)?.pid ?? this.nodes.get(id)!.pid;
    await this.waitFor(`node ${id} to exit`, 10_000, async () => !isAlive(pid));
  }

  /** Starts a node again with the same data, exactly as cluster.json says. */
  restart(id: string): void {
    const n = this.nodes.get(id)!;
    // Restarted nodes log to a file in the cluster's folder rather than into the test output.
    const log = openSync(join(this.dir, `${id}.restart.log`), "a");
    const child = spawn(n.command[0]!, n.command.slice(1), {
      cwd: n.cwd,
      env: agentEnv(),
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    this.restarted.set(id, child);
  }

  /** Starts a brand-new node that joins through `via`'s API, and waits until it serves. */
  async join(id: string, via: string, opts: { tickMs?: number } = {}): Promise<NodeInfo> {
    const logPath = join(this.dir, `${id}.log`);
    const log = openSync(logPath, "a");
    const command = [
      process.execPath,
      ...agentNodeFlags(),
      CLI,
      "agent",
      "--config",
      join(this.dir, "ringleader.json"),
      "--data",
      join(this.dir, id),
      "--id",
      id,
      "--api",
      "127.0.0.1:0",
      "--peer",
      "127.0.0.1:0",
      "--join",
      this.nodes.get(via)!.api,
      "--tick-ms",
      String(opts.tickMs ?? 50),
      ...(this.spreadLeaders ? ["--machine", ownMachine(id)] : []),
    ];
    const child = spawn(command[0]!, command.slice(1), {
      cwd: this.dir,
      env: agentEnv(),
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    this.restarted.set(id, child);
    const api = await this.waitFor(`${id} to start`, 20_000, async () => {
      const m = /agent started .*api=(http:\/\/[0-9.]+:\d+)/.exec(await readFile(logPath, "utf8"));
      return m ? m[1]! : null;
    });
    const info: NodeInfo = { id, pid: child.pid ?? -1, api, peer: "", command, cwd: this.dir };
    this.nodes.set(id, info);
    return info;
  }

  async stop(): Promise<void> {
    live.delete(this);
    for (const c of this.restarted.values()) if (c.exitCode === null) c.kill("SIGTERM");
    if (this.up.exitCode === null) {
      this.up.kill("SIGTERM");
      const t = setTimeout(() => this.up.kill("SIGKILL"), 15_000);
      await once(this.up, "exit");
      clearTimeout(t);
    }
    await Promise.all(
      [...this.restarted.values()].map((c) =>
        c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined,
      ),
    );
    for (const n of this.nodes.values()) if (isAlive(n.pid)) process.kill(n.pid, "SIGKILL");
    // RINGLEADER_KEEP_CLUSTER=1 keeps the data and logs of a failed run for a look afterwards.
    if (process.env.RINGLEADER_KEEP_CLUSTER === "1") process.stderr.write(`# cluster kept in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}

/** Whether a process with this pid still runs. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
