/**
 * Is the whole cluster healthy? Used by `ringleader health` and by the rolling upgrade
 * (provisioning/upgrade.yml), which must never take a partition below quorum: it touches a board
 * only when every member answers and is healthy, none is joining or draining, and every partition has a
 * leader and its full set of voters, each following that leader and caught up to within
 * `maxLag` entries. Pure: it judges the `/v1/status` documents it is given.
 */

type Json = Record<string, unknown>;

export interface MemberStatus {
  readonly id: string;
  readonly api: string;
  readonly state: string;
  /** The member's own `/v1/status`, or null when it did not answer. */
  readonly status: unknown;
  readonly error?: string;
}

export interface ClusterHealth {
  readonly healthy: boolean;
  readonly cluster: string | null;
  readonly members: number;
  readonly answering: number;
  readonly partitions: number;
  readonly replicas: number;
  readonly problems: readonly string[];
}

interface PartitionView {
  partition: number;
  role: string;
  leader: string | null;
  term: number;
  commit: number;
  applied: number;
  voters: string[];
  learners: string[];
}

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function partitionsOf(status: unknown): Map<number, PartitionView> {
  const out = new Map<number, PartitionView>();
  const list = isRecord(status) ? status["partitions"] : undefined;
  if (!Array.isArray(list)) return out;
  for (const p of list) {
    if (!isRecord(p) || typeof p["partition"] !== "number") continue;
    out.set(p["partition"], {
      partition: p["partition"],
      role: String(p["role"] ?? ""),
      leader: typeof p["leader"] === "string" ? p["leader"] : null,
      term: Number(p["term"] ?? 0),
      commit: Number(p["commit"] ?? 0),
      applied: Number(p["applied"] ?? 0),
      voters: Array.isArray(p["voters"]) ? p["voters"].map(String) : [],
      learners: Array.isArray(p["learners"]) ? p["learners"].map(String) : [],
    });
  }
  return out;
}

/** The members listed in a `/v1/status` document (removed ones left out). */
export function membersOf(status: unknown): { id: string; api: string; state: string }[] {
  const list = isRecord(status) ? status["members"] : undefined;
  if (!Array.isArray(list)) return [];
  return list
    .filter(isRecord)
    .map((m) => ({ id: String(m["id"] ?? ""), api: String(m["api"] ?? ""), state: String(m["state"] ?? "") }))
    .filter((m) => m.id !== "" && m.state !== "removed");
}

export function assessCluster(
  view: unknown,
  members: readonly MemberStatus[],
  maxLag: number,
): ClusterHealth {
  const problems: string[] = [];
  const ring = isRecord(view) && isRecord(view["ring"]) ? view["ring"] : null;
  const cluster = isRecord(view) && typeof view["cluster"] === "string" ? view["cluster"] : null;
  const partitionCount = ring && typeof ring["partitions"] === "number" ? ring["partitions"] : 0;
  const ringNodes = ring && Array.isArray(ring["nodes"]) ? ring["nodes"].length : 0;
  const replication = ring && typeof ring["replication"] === "number" ? ring["replication"] : 0;
  const expected = Math.min(replication, ringNodes);
  if (!ring) problems.push("the ring is not known yet (is the cluster formed?)");
  const byId = new Map<string, Map<number, PartitionView>>();
  let answering = 0;
  for (const m of members) {
    if (m.state === "draining") problems.push(`${m.id} is draining (wait for it to finish, then remove it)`);
    if (m.state === "joining") problems.push(`${m.id} is joining (its replicas are still moving onto it)`);
    if (m.status === null) {
      problems.push(`${m.id} (${m.api}) does not answer${m.error ? `: ${m.error}` : ""}`);
      continue;
    }
    answering++;
    const health = isRecord(m.status) ? m.status["health"] : undefined;
    if (isRecord(health) && health["ok"] === false)
      problems.push(`${m.id} is unhealthy: ${String(health["reason"] ?? "no reason given")}`);
    byId.set(m.id, partitionsOf(m.status));
  }
  for (let p = 0; p < partitionCount; p++) {
    let leader: { id: string; view: PartitionView } | null = null;
    for (const [id, parts] of byId) {
      const v = parts.get(p);
      if (v?.role === "leader" && (!leader || v.term > leader.view.term)) leader = { id, view: v };
    }
    if (!leader) {
      problems.push(`partition ${p} has no leader`);
      continue;
    }
    const { voters, learners, commit } = leader.view;
    if (voters.length < expected)
      problems.push(`partition ${p} has ${voters.length} of ${expected} replicas`);
    if (learners.length > 0) problems.push(`partition ${p} is still catching up ${learners.join(", ")}`);
    for (const v of voters) {
      const parts = byId.get(v);
      if (!parts) continue; // Reported above: the member does not answer (or is unknown).
      const mine = parts.get(p);
      if (!mine) problems.push(`partition ${p}: voter ${v} does not host it`);
      else if (mine.leader !== leader.id)
        problems.push(`partition ${p}: ${v} follows ${mine.leader ?? "nobody"}, not ${leader.id}`);
      else if (commit - mine.applied > maxLag)
        problems.push(`partition ${p}: ${v} is ${commit - mine.applied} entries behind`);
    }
  }
  return {
    healthy: problems.length === 0,
    cluster,
    members: members.length,
    answering,
    partitions: partitionCount,
    replicas: expected,
    problems,
  };
}

export function describeHealth(h: ClusterHealth, maxProblems = 20): string {
  if (h.healthy) {
    return (
      `cluster ${h.cluster ?? "?"} is healthy: ${h.answering} of ${h.members} members answer; ` +
      `${h.partitions} partitions each have a leader and ${h.replicas} caught-up replicas`
    );
  }
  const shown = h.problems.slice(0, maxProblems).map((p) => `  - ${p}`);
  if (h.problems.length > maxProblems) shown.push(`  - and ${h.problems.length - maxProblems} more`);
  return `cluster ${h.cluster ?? "?"} is NOT healthy:\n${shown.join("\n")}`;
}
