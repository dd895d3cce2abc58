/**
 * Partition routing for clients. Every node answers `GET /v1/routing` with what it knows: the
 * partition count (a key's partition is `partitionForKey(partitions, key)`, the same function the
 * agents use), the API address of each member, and, for each partition it hosts, the leader it
 * follows and that leader's term. A node knows the leaders of the partitions it hosts only, so a
 * client merges the tables of several nodes and, per partition, believes the claim with the
 * highest term (a newer term's leader supersedes an older one; within a term there is one leader).
 *
 * A client that sends each request to its partition's leader skips the follower's extra hop
 * (proposal forwarded inside Raft, then the commit index learnt a message later). Being wrong
 * costs nothing but that hop: any node still serves any key.
 */
import type { NodeId } from "../raft/index.js";

export interface RoutingClaim {
  readonly partition: number;
  /** The leader the answering node follows, or null while it knows none. */
  readonly leader: NodeId | null;
  readonly term: number;
}

export interface RoutingTable {
  /** The node that answered. */
  readonly node: NodeId;
  readonly partitions: number;
  /** API base URL of every member the node knows. */
  readonly members: Readonly<Record<NodeId, string>>;
  /** One claim per partition the node hosts. */
  readonly groups: readonly RoutingClaim[];
}

/** Checks a table read off the wire; throws a TypeError naming the first thing wrong. */
export function parseRoutingTable(data: unknown): RoutingTable {
  if (typeof data !== "object" || data === null) throw new TypeError("routing table: not an object");
  const t = data as Record<string, unknown>;
  if (typeof t["node"] !== "string") throw new TypeError("routing table: no node id");
  const partitions = t["partitions"];
  if (typeof partitions !== "number" || !Number.isInteger(partitions) || partitions < 1) {
    throw new TypeError("routing table: bad partition count");
  }
  const members: Record<string, string> = {};
  if (typeof t["members"] !== "object" || t["members"] === null)
    throw new TypeError("routing table: no members");
  for (const [id, api] of Object.entries(t["members"] as Record<string, unknown>)) {
    if (typeof api === "string") members[id] = api;
  }
  if (!Array.isArray(t["groups"])) throw new TypeError("routing table: no groups");
  const groups: RoutingClaim[] = [];
  for (const g of t["groups"] as unknown[]) {
    if (typeof g !== "object" || g === null) continue;
    const { partition, leader, term } = g as Record<string, unknown>;
    if (
      typeof partition !== "number" ||
      !Number.isInteger(partition) ||
      partition < 0 ||
      partition >= partitions
    )
      continue;
    if (typeof term !== "number" || !Number.isInteger(term) || term < 0) continue;
    groups.push({ partition, leader: typeof leader === "string" && leader !== "" ? leader : null, term });
  }
  return { node: t["node"], partitions, members, groups };
}

/**
 * Merges tables from several nodes into partition → leader API URL. Tables that disagree on the
 * partition count (a ring being created) are ignored in favour of the most common count.
 */
export function mergeRoutingTables(tables: readonly RoutingTable[]): {
  partitions: number;
  leaders: (string | undefined)[];
} | null {
  if (tables.length === 0) return null;
  const votes = new Map<number, number>();
  for (const t of tables) votes.set(t.partitions, (votes.get(t.partitions) ?? 0) + 1);
  const partitions = [...votes].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]![0];
  const members: Record<string, string> = {};
  for (const t of tables) if (t.partitions === partitions) Object.assign(members, t.members);
  const best: (RoutingClaim | undefined)[] = Array.from({ length: partitions }, () => undefined);
  for (const t of tables) {
    if (t.partitions !== partitions) continue;
    for (const c of t.groups) {
      if (c.leader === null) continue;
      const cur = best[c.partition];
      if (!cur || c.term > cur.term) best[c.partition] = c;
    }
  }
  return { partitions, leaders: best.map((c) => (c?.leader ? members[c.leader] : undefined)) };
}
