/**
 * Asks the cluster whether a partition's current configuration leaves this node out, before the
 * node deletes a released replica's data. Only a leader's view counts (a follower may not have
 * the newest configuration yet); no answer is "not confirmed", and the data stays for now.
 */
import type { NodeId } from "../raft/index.js";

interface StatusPartition {
  readonly partition?: unknown;
  readonly role?: unknown;
  readonly voters?: unknown;
  readonly learners?: unknown;
}

export async function leaderExcludes(
  apis: readonly string[],
  token: string,
  partition: number,
  self: NodeId,
  timeoutMs = 3000,
): Promise<boolean> {
  for (const api of apis) {
    try {
      const res = await fetch(new URL("/v1/status", api), {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) {
        await res.body?.cancel();
        continue;
      }
      const body = (await res.json()) as { partitions?: StatusPartition[] };
      const p = body.partitions?.find((x) => x.partition === partition && x.role === "leader");
      if (!p || !Array.isArray(p.voters) || !Array.isArray(p.learners)) continue;
      return !p.voters.includes(self) && !p.learners.includes(self);
    } catch {
      // Unreachable or not ready: ask the next one.
    }
  }
  return false;
}
