/**
 * `ringleader status`: asks every endpoint for its `/v1/status` and prints one row per node: id,
 * API, role, the leader it follows, term, commit and applied index, replication lag (from the
 * leader's view of its members) and health. Fields a node does not report show as `-`, so the
 * table keeps working while the status document grows. `--json` prints what each node said.
 */
import type { Argv, CommandModule } from "yargs";
import { RingleaderClient } from "../../client/client.js";
import { CheckFailedError } from "../errors.js";
import {
  clientConfigFromArgs,
  explainClientError,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { fetchOverview, renderOverview } from "../observe/overview.js";
import { formatTable, writeJson, writeLine } from "../output.js";

type StatusArgs = GlobalArgs & ClientArgs;

interface NodeReport {
  api: string;
  status: unknown;
  error: string | null;
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The first of `names` that `record` has as a string, number or boolean, as text. */
function field(record: Json, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = record[name];
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      return String(value);
  }
  return undefined;
}

function healthText(record: Json): string | undefined {
  const health = record["health"] ?? record["healthy"];
  if (typeof health === "boolean") return health ? "ok" : "unhealthy";
  if (typeof health === "string") return health;
  if (isRecord(health) && typeof health["ok"] === "boolean") {
    return health["ok"] ? "ok" : `unhealthy: ${field(health, "reason") ?? "no reason given"}`;
  }
  return undefined;
}

/** Lag of each node id as the leaders among the reports see it (`members[].lag`). */
function lagsFromLeaders(statuses: readonly Json[]): Map<string, string> {
  const lags = new Map<string, string>();
  for (const status of statuses) {
    if (field(status, "role") !== "leader") continue;
    const members = status["members"];
    if (!Array.isArray(members)) continue;
    for (const member of members) {
      if (!isRecord(member)) continue;
      const id = field(member, "id");
      const lag = field(member, "lag");
      if (id !== undefined && lag !== undefined) lags.set(id, lag);
    }
  }
  return lags;
}

/** ROLE/LEADER/TERM/COMMIT/APPLIED/LAG are the meta group's; REPLICAS and LEADS count partitions. */
const HEADERS = [
  "ID",
  "API",
  "ROLE",
  "LEADER",
  "TERM",
  "COMMIT",
  "APPLIED",
  "LAG",
  "REPLICAS",
  "LEADS",
  "HEALTH",
];

function row(status: Json, api: string, lags: Map<string, string>): string[] {
  const id = field(status, "id", "nodeId");
  const cells = [
    id,
    field(status, "api") ?? api,
    field(status, "role", "state"),
    field(status, "leader", "leaderId"),
    field(status, "term"),
    field(status, "commit", "commitIndex"),
    field(status, "applied", "appliedIndex"),
    field(status, "lag") ?? (id === undefined ? undefined : lags.get(id)),
    field(status, "replicaOf"),
    field(status, "leaderOf"),
    healthText(status),
  ];
  return cells.map((cell) => (cell === undefined || cell === "" ? "-" : cell));
}

/** The table for people. A status that lists `nodes` itself (a cluster-wide view) is shown as is. */
export function renderStatus(reports: readonly NodeReport[]): string {
  const statuses = reports.map((r) => r.status).filter(isRecord);
  const clusterWide = statuses.find((s) => Array.isArray(s["nodes"]));
  if (clusterWide) {
    const nodes = (clusterWide["nodes"] as unknown[]).filter(isRecord);
    const lags = lagsFromLeaders(nodes);
    return formatTable(
      HEADERS,
      nodes.map((n) => row(n, "-", lags)),
    );
  }
  const lags = lagsFromLeaders(statuses);
  const rows = reports.map((r) =>
    isRecord(r.status)
      ? row(r.status, r.api, lags)
      : ["-", r.api, "-", "-", "-", "-", "-", "-", "-", "-", `unreachable: ${r.error ?? "no status"}`],
  );
  const lines = [formatTable(HEADERS, rows)];
  const cluster = statuses.map((s) => field(s, "cluster", "clusterName")).find((c) => c !== undefined);
  if (cluster !== undefined) lines.unshift(`cluster ${cluster}`);
  return lines.join("\n");
}

/** The cluster id and any split-brain alarm the nodes report (from discovery), one line each. */
export function discoveryAlarms(reports: readonly NodeReport[]): string[] {
  const lines = new Set<string>();
  for (const r of reports) {
    if (!isRecord(r.status)) continue;
    const d = r.status["discovery"];
    if (isRecord(d) && typeof d["alarm"] === "string")
      lines.add(
        `ALARM on ${field(r.status, "id") ?? r.api}: ${d["alarm"]} (see \`ringleader agent --help\`, --fold-into)`,
      );
  }
  const ids = new Set(
    reports.map((r) => (isRecord(r.status) ? field(r.status, "clusterId") : undefined)).filter(Boolean),
  );
  if (ids.size > 0) lines.add(`cluster id ${[...ids].join(", ")}`);
  return [...lines];
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "Show the cluster on one screen: nodes, board health, partitions, leaders, warnings",
  builder: (y: Argv<object>): Argv<StatusArgs> =>
    withClientOptions(y)
      .example("$0 status", "The nodes of the local cluster, their boards, partitions and warnings")
      .example("$0 top", "The same view, redrawn every 2 s")
      .example("$0 status --endpoints http://pi1.local:7001 --json", "What one node reports, for a script"),
  handler: async (args) => {
    const config = clientConfigFromArgs(args);
    const errors: unknown[] = [];
    // Each node reports its own view, so each endpoint is asked once, without failover.
    const reports = await Promise.all(
      config.endpoints.map(async (api): Promise<NodeReport> => {
        const client = new RingleaderClient({
          endpoints: [api],
          token: config.token,
          timeoutMs: args.timeout,
          maxAttempts: 1,
          learnAgents: false,
        });
        try {
          return { api, status: await client.status(), error: null };
        } catch (err) {
          errors.push(err);
          return { api, status: null, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    // The one-screen overview needs an agent with `/v1/health`; older ones get the table above.
    const { overview } = await fetchOverview(config.endpoints, config.token, args.timeout, {
      statuses: true,
    });
    if (args.json)
      await writeJson(overview ? { nodes: reports, health: overview.health } : { nodes: reports });
    else if (overview) await writeLine(renderOverview(overview).join("\n"));
    else await writeLine(renderStatus(reports));
    if (!args.json) for (const line of discoveryAlarms(reports)) process.stderr.write(`${line}\n`);
    if (errors.length === reports.length) {
      if (args.json) process.exitCode = 1;
      else
        throw errors.length > 0 ? explainClientError(errors[0]) : new CheckFailedError("no endpoints to ask");
    }
  },
};
