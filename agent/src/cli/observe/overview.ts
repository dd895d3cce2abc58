/**
 * The one-screen cluster overview that `status` prints once and `top` redraws: the nodes with
 * their board health, partitions and leaders per node, under-replicated partitions and warnings.
 * Fetching and rendering are separate so tests render recorded views.
 */
import type { ClusterHealth, NodeHealth } from "../../health/view.js";
import { formatTable } from "../output.js";
import { httpFetch } from "../../net/http-fetch.js";

export interface Overview {
  /** The endpoint that answered. */
  readonly api: string;
  readonly health: ClusterHealth;
  /** Each node's own `/v1/status` (meta role, term), when asked. */
  readonly statuses: ReadonlyMap<string, Record<string, unknown>>;
  readonly cluster: string | null;
}

/** Asks the endpoints in turn for the health view; null when none has one (an older agent). */
export async function fetchOverview(
  endpoints: readonly string[],
  token: string,
  timeoutMs: number,
  opts: { statuses: boolean },
): Promise<{ overview: Overview | null; errors: string[] }> {
  const errors: string[] = [];
  const get = async (base: string, path: string): Promise<unknown> => {
    const res = await httpFetch(new URL(path, base), {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  };
  for (const api of endpoints) {
    try {
      const health = (await get(api, "/v1/health")) as ClusterHealth;
      const statuses = new Map<string, Record<string, unknown>>();
      let cluster: string | null = null;
      if (opts.statuses) {
        const apis = health.nodes.filter((n) => n.api && n.reachable).map((n) => n.api!);
        const docs = await Promise.all(apis.map((a) => get(a, "/v1/status").catch(() => null)));
        for (const d of docs) {
          if (typeof d === "object" && d !== null && typeof (d as { id?: unknown }).id === "string") {
            const rec = d as Record<string, unknown>;
            statuses.set(rec["id"] as string, rec);
            if (typeof rec["cluster"] === "string") cluster = rec["cluster"];
          }
        }
      }
      return { overview: { api, health, statuses, cluster }, errors };
    } catch (err) {
      errors.push(`${api}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { overview: null, errors };
}

const KiB = 1024;

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= KiB && u < units.length - 1) {
    v /= KiB;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

function ms(n: number | null): string {
  if (n === null) return "-";
  const a = Math.abs(n);
  return a >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
}

export const PLAIN: Style = {
  bold: (s) => s,
  dim: (s) => s,
  red: (s) => s,
  yellow: (s) => s,
  green: (s) => s,
};
export const ANSI: Style = {
  bold: (s) => `\x1b[1m${s}\x1b[22m`,
  dim: (s) => `\x1b[2m${s}\x1b[22m`,
  red: (s) => `\x1b[31m${s}\x1b[39m`,
  yellow: (s) => `\x1b[33m${s}\x1b[39m`,
  green: (s) => `\x1b[32m${s}\x1b[39m`,
};

function nodeState(n: NodeHealth): string {
  if (!n.reachable) return "unreachable";
  return n.state;
}

function address(api: string | null): string {
  if (!api) return "-";
  try {
    return new URL(api).host;
  } catch {
    return api;
  }
}

export const NODE_HEADERS = [
  "NODE",
  "ADDRESS",
  "STATE",
  "META",
  "TEMP",
  "CPU",
  "LOAD",
  "MEM FREE",
  "DISK FREE",
  "DATA",
  "REPLICAS",
  "LEADS",
  "SKEW",
  "SEEN",
];

export function nodeRows(o: Overview): string[][] {
  return o.health.nodes.map((n) => {
    const b = n.board;
    const st = o.statuses.get(n.id);
    const diskPct =
      b && b.diskFreeBytes !== null && b.diskTotalBytes
        ? Math.round((100 * b.diskFreeBytes) / b.diskTotalBytes)
        : null;
    return [
      n.id,
      address(n.api),
      nodeState(n),
      typeof st?.["role"] === "string" ? (st["role"] as string) : "-",
      b?.tempC !== null && b?.tempC !== undefined ? `${b.tempC.toFixed(1)}°C` : "-",
      b?.cpuLoadPct !== null && b?.cpuLoadPct !== undefined ? `${Math.round(b.cpuLoadPct)}%` : "-",
      n.load === null ? "-" : n.load.toFixed(2),
      b ? bytes(b.memAvailableBytes) : "-",
      b && b.diskFreeBytes !== null ? `${bytes(b.diskFreeBytes)} ${diskPct}%` : "-",
      b ? bytes(b.dataDirBytes) : "-",
      String(n.replicas),
      String(n.leads),
      n.id === o.health.observer ? "-" : ms(n.skewMs),
      n.ageMs === null ? "never" : `${Math.round(n.ageMs / 1000)} s ago`,
    ];
  });
}

/** The overview as lines for a terminal `width` columns wide (longer lines are cut). */
export function renderOverview(
  o: Overview,
  opts: { width?: number; style?: Style; now?: Date } = {},
): string[] {
  const s = opts.style ?? PLAIN;
  const h = o.health;
  const parts = h.partitions;
  const led = parts.filter((p) => p.leader !== null).length;
  const title =
    `${s.bold(`cluster ${o.cluster ?? "?"}`)} · ${h.nodes.length} nodes · ${parts.length} partitions × ` +
    `${h.replicationFactor ?? "?"} replicas · seen from ${h.observer} (${address(o.api)})` +
    (opts.now ? ` · ${opts.now.toISOString().slice(11, 19)}` : "");
  const lines = [title, ""];
  const table = formatTable(NODE_HEADERS, nodeRows(o)).split("\n");
  lines.push(s.bold(table[0]!));
  for (const [i, row] of table.slice(1).entries()) {
    const n = h.nodes[i]!;
    lines.push(n.reachable ? row : s.red(row));
  }
  lines.push("");
  const leaders = new Map<string, number>();
  for (const p of parts) if (p.leader) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1);
  const leaderText = [...leaders.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([id, c]) => `${id} ${c}`)
    .join(", ");
  lines.push(`${s.bold("partitions")}  ${led}/${parts.length} have a leader (${leaderText || "none known"})`);
  const under = h.warnings.filter((w) => w.kind === "under-replicated");
  const noLeader = h.warnings.filter((w) => w.kind === "no-leader");
  // Partitions whose leader we have not heard from (a node unreachable) are unknown, not fine.
  const unknown = parts.length - led - noLeader.length;
  lines.push(
    `${s.bold("replication")}  ` +
      (under.length === 0 && noLeader.length === 0
        ? unknown > 0
          ? s.yellow(`${unknown} partitions unknown (their leaders' nodes have not answered)`)
          : s.green("every partition fully replicated")
        : s.yellow(`${under.length} under-replicated, ${noLeader.length} without a leader: `) +
          [...under, ...noLeader]
            .slice(0, 12)
            .map((w) => w.partition)
            .join(", ") +
          (under.length + noLeader.length > 12 ? ", …" : "")),
  );
  lines.push("");
  const others = h.warnings.filter((w) => w.kind !== "under-replicated" && w.kind !== "no-leader");
  if (others.length === 0 && under.length === 0 && noLeader.length === 0) lines.push(s.green("no warnings"));
  else {
    lines.push(s.bold(`warnings (${h.warnings.length})`));
    for (const w of [...others, ...under, ...noLeader]) lines.push(`  ${s.yellow("!")} ${w.message}`);
  }
  const width = opts.width;
  return width ? lines.map((l) => cut(l, width)) : lines;
}

/** Cuts a line to `width` visible columns, keeping ANSI sequences intact. */
export function cut(line: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      // eslint-disable-next-line no-control-regex -- matching ANSI escapes is the point.
      const m = /^\x1b\[[0-9;?]*[A-Za-z]/.exec(line.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible >= width) continue;
    out += line[i];
    visible++;
  }
  return out;
}
