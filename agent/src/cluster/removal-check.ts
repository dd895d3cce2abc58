/**
 * The controller's questions to partition leaders (`LeaderQuestions`), asked over the members'
 * HTTP APIs (`GET /v1/status`):
 *  - is this node out of a partition, before it releases a replica that may still vote or
 *    deletes a released replica's data;
 *  - does a joining member vote in every partition the ring gives it, before the meta leader
 *    marks it `up`.
 * Only a leader's view counts (a follower may not have the newest configuration yet), and only
 * its committed configuration: a configuration takes effect when appended, and a change that is
 * appended but not committed may still be undone. No answer is "not confirmed".
 */
import type { NodeId } from "../raft/index.js";
import type { LeaderQuestions } from "./controller.js";
import type { MetaView } from "./meta.js";
import { httpFetch } from "../net/http-fetch.js";

interface StatusPartition {
  readonly partition?: unknown;
  readonly role?: unknown;
  readonly term?: unknown;
  readonly voters?: unknown;
  readonly learners?: unknown;
  readonly committedConf?: { readonly voters?: unknown; readonly learners?: unknown };
}

function idList(v: unknown): readonly unknown[] | null {
  return Array.isArray(v) ? v : null;
}

async function ledPartitions(api: string, token: string, timeoutMs: number): Promise<StatusPartition[]> {
  const res = await httpFetch(new URL("/v1/status", api), {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) {
    await res.body?.cancel();
    return [];
  }
  const body = (await res.json()) as { partitions?: unknown };
  const parts = Array.isArray(body.partitions) ? (body.partitions as StatusPartition[]) : [];
  return parts.filter((p) => typeof p === "object" && p !== null && p.role === "leader");
}

/**
 * Whether the first leader of `partition` found among `apis` has committed a configuration that
 * leaves `self` out (and has not appended one that takes it back). An agent too old to report
 * its committed configuration never confirms.
 */
export async function leaderExcludes(
  apis: readonly string[],
  token: string,
  partition: number,
  self: NodeId,
  timeoutMs = 3000,
): Promise<boolean> {
  for (const api of apis) {
    let p: StatusPartition | undefined;
    try {
      p = (await ledPartitions(api, token, timeoutMs)).find((x) => x.partition === partition);
    } catch {
      continue; // Unreachable or not ready: ask the next one.
    }
    if (!p) continue;
    const lists = [p.voters, p.learners, p.committedConf?.voters, p.committedConf?.learners].map(idList);
    if (lists.some((l) => l === null)) continue;
    return lists.every((l) => !l!.includes(self));
  }
  return false;
}

/**
 * Whether, among the partitions the members at `apis` lead, the leader of each of `partitions`
 * (the newest term's, if two claim it) has committed `node` as a voter. A leader too old to
 * report its committed configuration is judged by its latest one: being marked `up` early only
 * changes what the member table shows, never what a quorum counts.
 */
export async function leadersHoldAsVoter(
  apis: readonly string[],
  token: string,
  node: NodeId,
  partitions: readonly number[],
  timeoutMs = 3000,
): Promise<boolean> {
  const answers = await Promise.allSettled(apis.map((api) => ledPartitions(api, token, timeoutMs)));
  const best = new Map<number, StatusPartition>();
  for (const a of answers) {
    if (a.status !== "fulfilled") continue;
    for (const p of a.value) {
      if (typeof p.partition !== "number" || typeof p.term !== "number") continue;
      const cur = best.get(p.partition);
      if (!cur || (cur.term as number) < p.term) best.set(p.partition, p);
    }
  }
  return partitions.every((partition) => {
    const p = best.get(partition);
    const voters = idList(p?.committedConf?.voters ?? p?.voters);
    return voters !== null && voters.includes(node);
  });
}

/**
 * Whom `self` asks whether it is out of `partition`: the partition's placed replicas first (one of
 * them leads it), then every other member (the multi-Raft simulator asks in the same order).
 */
export function excludesAskOrder(meta: MetaView, self: NodeId, partition: number): NodeId[] {
  const ids = new Set([...meta.replicas(partition), ...meta.members().map((m) => m.id)]);
  ids.delete(self);
  return [...ids].filter((id) => meta.member(id) !== null);
}

/** The HTTP questions of the agent `self`. */
export function httpLeaderQuestions(meta: MetaView, self: NodeId, token: string): LeaderQuestions {
  const apisOf = (ids: readonly NodeId[]): string[] =>
    ids.map((id) => meta.member(id)?.api).filter((api): api is string => api !== undefined);
  return {
    excludes: (partition) =>
      leaderExcludes(apisOf(excludesAskOrder(meta, self, partition)), token, partition, self),
    holdsAsVoter: (node, partitions) =>
      leadersHoldAsVoter(
        apisOf(
          meta
            .members()
            .filter((m) => m.state !== "removed")
            .map((m) => m.id),
        ),
        token,
        node,
        partitions,
      ),
  };
}
