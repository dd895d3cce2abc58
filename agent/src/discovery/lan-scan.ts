/**
 * What `ringleader discover` and `ringleader inventory` read from the LAN: every advertised
 * Ringleader agent, from its mDNS record alone (no secret needed; nothing here is trusted, it
 * is a listing for an operator).
 */
import { BonjourMdns, type Mdns, type SeenService } from "./mdns.js";

export interface LanNode {
  readonly cluster: string;
  readonly node: string;
  readonly address: string;
  readonly apiPort: number;
  readonly peerPort: number;
  readonly version: string;
  /** new | locked | preparing | committed | joining | member. */
  readonly state: string;
  /** Cluster-id fingerprint (8 hex digits), or "" before the node has a cluster. */
  readonly clusterId: string;
}

export function lanNodeOf(s: SeenService): LanNode | null {
  const t = s.txt;
  if (!t["cluster"] || !t["id"]) return null;
  const apiPort = Number(t["api"] ?? s.port);
  const peerPort = Number(t["peer"]);
  return {
    cluster: t["cluster"],
    node: t["id"],
    address: s.addresses[0] ?? "",
    apiPort: Number.isInteger(apiPort) ? apiPort : 0,
    peerPort: Number.isInteger(peerPort) ? peerPort : 0,
    version: t["ver"] ?? "",
    state: t["state"] ?? "",
    clusterId: t["cid"] ?? "",
  };
}

/** Browses for `timeoutMs` (re-querying once a second) and returns what answered, sorted. */
export async function scanLan(timeoutMs: number, mdns: Mdns = new BonjourMdns()): Promise<LanNode[]> {
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
      mdns.refresh();
    }
    const nodes = mdns
      .services()
      .map(lanNodeOf)
      .filter((n): n is LanNode => n !== null);
    return nodes.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.node.localeCompare(b.node));
  } finally {
    await mdns.stop();
  }
}
