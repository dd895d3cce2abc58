/**
 * `ringleader health`: asks one endpoint for the member list, then every member for its own
 * status, and says whether every partition has a leader and its full, caught-up set of replicas
 * (see ../cluster-health.ts). Exit status 0 when healthy, 1 when not: scripts and the rolling
 * upgrade playbook gate on it. `--wait` polls until healthy or the time is up.
 */
import type { Argv, CommandModule } from "yargs";
import {
  assessCluster,
  describeHealth,
  membersOf,
  type ClusterHealth,
  type MemberStatus,
} from "../cluster-health.js";
import { CheckFailedError, UsageError } from "../errors.js";
import { clientConfigFromArgs, withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";
import { writeJson, writeLine } from "../output.js";
import { adminRequest } from "./admin-request.js";
import { httpFetch } from "../../net/http-fetch.js";

interface HealthArgs extends GlobalArgs, ClientArgs {
  wait: number;
  "max-lag": number;
}

const POLL_MS = 500;

async function memberStatus(
  api: string,
  token: string,
  timeoutMs: number,
): Promise<{ status: unknown; error?: string }> {
  try {
    const res = await httpFetch(new URL("/v1/status", api), {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) return { status: null, error: `HTTP ${res.status}` };
    return { status: (await res.json()) as unknown };
  } catch (err) {
    return { status: null, error: err instanceof Error ? err.message : String(err) };
  }
}

async function checkOnce(args: HealthArgs): Promise<ClusterHealth> {
  const { token } = clientConfigFromArgs(args);
  let view: unknown;
  try {
    view = await adminRequest<unknown>(
      { ...args, timeout: Math.min(args.timeout, 3000) },
      "GET",
      "/v1/status",
    );
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    return assessCluster(
      null,
      [{ id: "endpoints", api: args.endpoints ?? "-", state: "up", status: null, error: why }],
      0,
    );
  }
  const members = membersOf(view);
  const reports: MemberStatus[] = await Promise.all(
    members.map(async (m) => ({ ...m, ...(await memberStatus(m.api, token, Math.min(args.timeout, 3000))) })),
  );
  return assessCluster(view, reports, args["max-lag"]);
}

export const healthCommand: CommandModule<object, HealthArgs> = {
  command: "health",
  describe: "Check that every partition has a leader and all its replicas (exit 1 if not)",
  builder: (y: Argv<object>): Argv<HealthArgs> =>
    withClientOptions(y)
      .option("wait", {
        type: "number",
        default: 0,
        describe: "Seconds to keep checking until the cluster is healthy (0: check once)",
      })
      .option("max-lag", {
        type: "number",
        default: 100,
        describe: "Entries a replica may trail its leader's commit and still count as caught up",
      })
      .example("$0 health", "Healthy? Exit 0; otherwise every problem found, exit 1")
      .example(
        "$0 health --wait 120 --endpoints http://pi1.local:7000",
        "Wait up to 2 min, e.g. after a restart",
      )
      .example("$0 health --json", "{healthy, problems, ...} for scripts") as Argv<HealthArgs>,
  handler: async (args) => {
    if (!(args.wait >= 0)) throw new UsageError("--wait must be 0 or more seconds");
    const deadline = Date.now() + args.wait * 1000;
    let health = await checkOnce(args);
    let lastNoteMs = Date.now();
    while (!health.healthy && Date.now() < deadline) {
      if (Date.now() - lastNoteMs > 5000) {
        lastNoteMs = Date.now();
        process.stderr.write(`waiting for the cluster: ${health.problems[0] ?? "?"}\n`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
      health = await checkOnce(args);
    }
    if (args.json) await writeJson(health);
    else if (health.healthy) await writeLine(describeHealth(health));
    if (!health.healthy) {
      const waited = args.wait > 0 ? ` (waited ${args.wait} s)` : "";
      throw new CheckFailedError(`${describeHealth(health)}${waited}`);
    }
  },
};
