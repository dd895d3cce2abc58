// Helpers of put-cost.sh (run as dist/test/bench/put-cost.js):
//   snapshot CLUSTER_JSON DISK_BYTES       counters of every agent now, and the device's bytes
//                                          written (from disk-bytes.sh, or -), as JSON on stdout
//   report BENCH_JSON BEFORE AFTER         per-put differences, a table for people
//   profile CLUSTER_JSON BENCH_JSON SECS   `perf script -F pid,tid,ip,sym` on stdin, by category
//   allocations CLUSTER_JSON SECS          what the first agent allocates for SECS, by function
//                                          (needs node --experimental-websocket)
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const [cmd, ...args] = process.argv.slice(2);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON files this script wrote
const readJson = (path: string): any => JSON.parse(readFileSync(path, "utf8"));

/** Counters from /metrics worth dividing by the number of puts, with what they mean. */
const METRICS: Record<string, string> = {
  ringleader_storage_commits_total: "LMDB commits",
  ringleader_storage_durable_commits_total: "  of which flushed to disk",
  ringleader_storage_jobs_total: "write jobs (saves, applies, snapshots)",
  ringleader_storage_ops_total: "LMDB puts and removes",
  ringleader_transport_messages_sent: "Raft messages between agents",
  ringleader_transport_frames_sent: "frames between agents",
  ringleader_transport_bytes_sent: "bytes between agents",
};

/** Prefix of the per-type message counts in a snapshot. */
const BY_TYPE = "messages:";

interface Node {
  readonly id: string;
  readonly pid: number;
  readonly api: string;
}

async function snapshot(clusterFile: string, diskBytes: string): Promise<void> {
  const cluster = readJson(clusterFile) as { token: string; nodes: Node[] };
  const out: Record<string, number> = { cpuMs: 0 };
  if (diskBytes !== "-") out.diskBytes = Number(diskBytes);
  for (const node of cluster.nodes) {
    const res = await fetch(`${node.api}/metrics`, { headers: { authorization: `Bearer ${cluster.token}` } });
    for (const line of (await res.text()).split("\n")) {
      const m = /^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+]+)$/.exec(line);
      if (m && m[1]! in METRICS) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
      const byType =
        /^ringleader_transport_messages_sent_by_type\{type="([A-Za-z]+)"[^}]*\} ([0-9.e+]+)$/.exec(line);
      if (byType) out[`${BY_TYPE}${byType[1]}`] = (out[`${BY_TYPE}${byType[1]}`] ?? 0) + Number(byType[2]);
    }
    const stat = readFileSync(`/proc/${node.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime, fields 14 and 15 of stat, in clock ticks of 10 ms.
    out.cpuMs! += (Number(fields[11]) + Number(fields[12])) * 10;
  }
  console.log(JSON.stringify(out));
}

function report(benchFile: string, beforeFile: string, afterFile: string): void {
  const put = readJson(benchFile).ops.put;
  const a = readJson(beforeFile) as Record<string, number>;
  const b = readJson(afterFile) as Record<string, number>;
  const per = (k: string): number => (b[k]! - (a[k] ?? 0)) / put.count;
  console.log(
    `${Math.round(put.opsPerSecond)} puts/s, p50 ${(put.latencyUs.p50 / 1000).toFixed(1)} ms, ` +
      `p99 ${(put.latencyUs.p99 / 1000).toFixed(1)} ms, ${put.count} puts measured`,
  );
  console.log("per put, all three agents:");
  console.log(`  ${(per("cpuMs") * 1000).toFixed(0).padStart(9)}  us of CPU`);
  const disk = "diskBytes" in b ? per("diskBytes").toFixed(0) : "-";
  console.log(`  ${disk.padStart(9)}  bytes written to the disk (the device's count, all writers)`);
  for (const [k, what] of Object.entries(METRICS)) {
    if (k in b)
      console.log(
        `  ${per(k)
          .toFixed(k.includes("bytes") ? 0 : 3)
          .padStart(9)}  ${what}`,
      );
    if (k === "ringleader_transport_messages_sent") {
      const types = Object.keys(b).filter((t) => t.startsWith(BY_TYPE) && per(t) >= 0.001);
      for (const t of types.sort((x, y) => per(y) - per(x)))
        console.log(`  ${per(t).toFixed(3).padStart(9)}    ${t.slice(BY_TYPE.length)}`);
    }
  }
}

/** Parts of the code, by the file of the innermost JavaScript frame. */
const PARTS: [string, RegExp][] = [
  ["lmdb-js", /node_modules\/lmdb\//],
  ["cbor-x", /node_modules\/cbor-x\//],
  ["prom-client", /node_modules\/prom-client\//],
  ["raft core", /agent\/src\/raft\//],
  ["store: write batcher", /agent\/src\/storage\/write-batch/],
  ["store", /agent\/src\/storage\//],
  ["transport", /agent\/src\/transport\//],
  ["host (ready loop)", /agent\/src\/node\/host\.js/],
  ["kv service", /agent\/src\/node\/|agent\/src\/kv\//],
  ["http api", /agent\/src\/api\//],
  ["node: http", /node:_http|node:internal\/http/],
  ["node: streams, sockets", /node:net|node:internal\/streams|node:internal\/stream_base|node:stream/],
  ["node: timers", /node:internal\/timers/],
  ["node: events, abort", /abort_controller|event_target|node:events/],
  ["other agent code", /\/dist\//],
  ["node: other", /node:/],
];

function partOf(pid: string, tid: string, frames: string[]): string {
  for (const f of frames) {
    if (!/ JS:/.test(f)) continue;
    return PARTS.find(([, re]) => re.test(f))?.[0] ?? "other javascript";
  }
  const all = frames.join(" ");
  if (pid !== tid) {
    if (/mdb_|WriteWorker/.test(all)) {
      const sys = frames.map((f) => f.split(/\s+/)[1] ?? "").find((s) => s.startsWith("__x64_sys_"));
      return sys ? `lmdb thread: ${sys.slice("__x64_sys_".length)} (kernel)` : "lmdb thread: b-tree";
    }
    if (/compiler::|maglev|turboshaft/i.test(all)) return "v8 jit compiler";
    if (/v8::internal|Scaveng|Marking|Sweep/.test(all)) return "garbage collection (helpers)";
    return "other threads";
  }
  if (/Scaveng|MarkCompact|Heap::/.test(all)) return "garbage collection (main)";
  if (/uv__io_poll|epoll/.test(all)) return "event loop poll (native)";
  return "main thread, native";
}

async function profile(clusterFile: string, benchFile: string, seconds: string): Promise<void> {
  // PERF_NODES=n2,n3: only those agents (the followers, where n1 leads every partition).
  const only = process.env["PERF_NODES"]?.split(",").filter((id) => id !== "");
  const nodes = (readJson(clusterFile) as { nodes: Node[] }).nodes.filter(
    (n) => !only?.length || only.includes(n.id),
  );
  const pids = new Set(nodes.map((n) => String(n.pid)));
  const puts = readJson(benchFile).ops.put.opsPerSecond * Number(seconds);
  const totals = new Map<string, number>();
  // By innermost JavaScript frame, the native code it called included; and how many of those
  // frames ran in code V8 had not optimised (interpreter `~`, baseline `^`; TurboFan is `*`).
  const functions = new Map<string, number>();
  const slow = new Map<string, number>();
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let sample: { pid: string; tid: string; frames: string[] } | null = null;
  const flush = () => {
    if (sample && pids.has(sample.pid)) {
      const part = partOf(sample.pid, sample.tid, sample.frames);
      count(totals, part);
      const js = sample.frames.find((f) => / JS:/.test(f));
      if (js) {
        const name = js.slice(js.indexOf(" JS:") + 4);
        const fn = name.replace(/^[*^~+]/, "").replace(/file:\/\/\S*?\/(dist|node_modules)\//, "$1/");
        count(functions, fn);
        if (name[0] === "~" || name[0] === "^") count(slow, fn);
      }
    }
  };
  for await (const line of createInterface({ input: process.stdin })) {
    const head = /^\s*(\d+)\/(\d+)\s*$/.exec(line);
    if (head) {
      flush();
      sample = { pid: head[1]!, tid: head[2]!, frames: [] };
    } else if (sample && line.trim()) sample.frames.push(line.trim());
  }
  flush();
  // perf samples at 999 Hz: one sample is about 1 ms of CPU.
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const largest = (m: Map<string, number>, n = Infinity) => [...m].sort((x, y) => y[1] - x[1]).slice(0, n);
  console.log(
    `perf over ${seconds} s: ${((sum(totals) / puts) * 1000).toFixed(0)} us of CPU per put of ${nodes.map((n) => n.id).join(", ")}, by part:`,
  );
  const us = (n: number) => ((n / puts) * 1000).toFixed(1).padStart(7);
  for (const [part, n] of largest(totals)) console.log(`  ${us(n)} us  ${part}`);
  console.log("the JavaScript functions that cost most (innermost frame, with the native code it called):");
  for (const [fn, n] of largest(functions, 25)) console.log(`  ${us(n)} us  ${fn}`);
  console.log(`  ${us(sum(slow))} us  in code V8 had not optimised yet (interpreter, baseline), most in:`);
  for (const [fn, n] of largest(slow, 8)) console.log(`    ${us(n)} us  ${fn}`);
}

/** The part of the WebSocket global (`node --experimental-websocket`) used here; @types/node 20 lacks it. */
interface Socket {
  send(data: string): void;
  close(): void;
  addEventListener(type: "open", fn: () => void): void;
  addEventListener(type: "message", fn: (ev: { data: string }) => void): void;
}

interface SamplingNode {
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly selfSize: number;
  readonly children?: readonly SamplingNode[];
}

/**
 * V8's sampling heap profiler on the first agent for `seconds`, counting what the garbage
 * collector already freed too (what an agent allocates, not what it keeps): it opens the agent's
 * inspector on 127.0.0.1:9229 with SIGUSR1 and drives it over the DevTools protocol. Prints MB
 * per second and the functions that allocate most.
 */
async function allocations(clusterFile: string, secs: string): Promise<void> {
  const WebSocketCtor = (globalThis as { WebSocket?: new (url: string) => Socket }).WebSocket;
  if (!WebSocketCtor) throw new Error("run with node --experimental-websocket");
  const cluster = readJson(clusterFile) as { nodes: Node[] };
  process.kill(cluster.nodes[0]!.pid, "SIGUSR1");
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 50 && targets.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    targets = await fetch("http://127.0.0.1:9229/json/list").then(
      (r) => r.json() as Promise<{ webSocketDebuggerUrl: string }[]>,
      () => [],
    );
  }
  if (targets.length === 0) throw new Error("the agent's inspector did not open on 127.0.0.1:9229");
  const ws = new WebSocketCtor(targets[0]!.webSocketDebuggerUrl);
  await new Promise<void>((r) => ws.addEventListener("open", r));
  const waiting = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (ev) => {
    const m = JSON.parse(ev.data) as { id?: number; result?: unknown };
    if (m.id !== undefined) waiting.get(m.id)?.(m.result);
  });
  let id = 0;
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve) => {
      waiting.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("HeapProfiler.enable");
  await call("HeapProfiler.startSampling", {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const seconds = Number(secs);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const { profile } = (await call("HeapProfiler.stopSampling")) as { profile: { head: SamplingNode } };
  ws.close();
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (n: SamplingNode): void => {
    const f = n.callFrame;
    const site = `${f.functionName || "(anonymous)"} ${f.url.replace(/.*\/(agent|node_modules)\//, "$1/")}:${f.lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children ?? []) walk(c);
  };
  walk(profile.head);
  const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);
  console.log(`allocated by the first agent over ${seconds} s: ${mb(total / seconds)} MB/s, by function:`);
  for (const [site, bytes] of [...bySite].sort((x, y) => y[1] - x[1]).slice(0, 25)) {
    console.log(`  ${((bytes / total) * 100).toFixed(1).padStart(5)} %  ${site}`);
  }
}

if (cmd === "snapshot") await snapshot(args[0]!, args[1] ?? "-");
else if (cmd === "report") report(args[0]!, args[1]!, args[2]!);
else if (cmd === "profile") await profile(args[0]!, args[1]!, args[2]!);
else if (cmd === "allocations") await allocations(args[0]!, args[1]!);
else {
  console.error("usage: node dist/test/bench/put-cost.js snapshot|report|profile|allocations ...");
  process.exit(2);
}
