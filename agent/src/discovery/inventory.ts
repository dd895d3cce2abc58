/**
 * Ansible dynamic inventory from what discovery or the cluster knows. The JSON shape is a
 * contract with `provisioning/inventory/` (and documented in `ringleader inventory --help`):
 *
 *   {
 *     "_meta": { "hostvars": { "<node id>": {
 *         "ansible_host": "10.0.0.5", "ringleader_node_id": "n1", "ringleader_cluster": "lab",
 *         "ringleader_cluster_id": "3fa1c2d0", "ringleader_api_port": 7000,
 *         "ringleader_peer_port": 7100, "ringleader_state": "up", "ringleader_role": "leader",
 *         "ringleader_version": "0.1.0" } } },
 *     "all": { "children": ["ringleader", "ungrouped"] },
 *     "ringleader": { "hosts": [every node] },
 *     "leaders": {...}, "followers": {...},            (by meta-group role)
 *     "joining": {...}, "up": {...}, "draining": {...}, "down": {...},   (by member state)
 *     "new": {...}                                      (on the LAN, not yet in a cluster)
 *   }
 *
 * Every group is always present (maybe with no hosts), host lists are sorted, and hosts are
 * named by node id (stable across address changes; `ansible_host` holds the address).
 */
export interface InventoryNode {
  readonly id: string;
  readonly host: string;
  readonly apiPort: number;
  readonly peerPort: number;
  readonly cluster: string;
  readonly clusterId: string;
  /** joining | up | draining | down | removed (member state), or new (discovered, no cluster yet). */
  readonly state: string;
  readonly role: "leader" | "follower" | "none";
  readonly version: string;
}

export const INVENTORY_GROUPS = [
  "ringleader",
  "leaders",
  "followers",
  "joining",
  "up",
  "draining",
  "down",
  "new",
] as const;

export interface AnsibleInventory {
  _meta: { hostvars: Record<string, Record<string, string | number>> };
  all: { children: string[] };
  [group: string]: unknown;
}

export function buildInventory(nodes: readonly InventoryNode[]): AnsibleInventory {
  const sorted = [...nodes].sort((a, b) => a.id.localeCompare(b.id));
  const hostvars: Record<string, Record<string, string | number>> = {};
  const groups: Record<string, string[]> = Object.fromEntries(INVENTORY_GROUPS.map((g) => [g, []]));
  for (const n of sorted) {
    hostvars[n.id] = {
      ansible_host: n.host,
      ringleader_node_id: n.id,
      ringleader_cluster: n.cluster,
      ringleader_cluster_id: n.clusterId,
      ringleader_api_port: n.apiPort,
      ringleader_peer_port: n.peerPort,
      ringleader_state: n.state,
      ringleader_role: n.role,
      ringleader_version: n.version,
    };
    groups["ringleader"]!.push(n.id);
    if (n.role === "leader") groups["leaders"]!.push(n.id);
    if (n.role === "follower") groups["followers"]!.push(n.id);
    if (groups[n.state]) groups[n.state]!.push(n.id);
  }
  const inv: AnsibleInventory = { _meta: { hostvars }, all: { children: ["ringleader", "ungrouped"] } };
  for (const g of INVENTORY_GROUPS) inv[g] = { hosts: groups[g] };
  return inv;
}

/** The member list of `/v1/status` as inventory nodes. */
export function nodesFromStatus(status: {
  cluster?: string;
  clusterId?: string | null;
  leader?: string | null;
  members?: { id: string; peer: string; api: string; state: string }[];
}): InventoryNode[] {
  return (status.members ?? []).map((m) => {
    const api = safeUrl(m.api);
    const peerPort = Number(/:(\d+)$/.exec(m.peer)?.[1] ?? 0);
    return {
      id: m.id,
      host: api?.hostname.replace(/^\[(.*)\]$/, "$1") ?? "",
      apiPort: api ? Number(api.port || 80) : 0,
      peerPort,
      cluster: status.cluster ?? "",
      clusterId: (status.clusterId ?? "").slice(0, 8),
      state: m.state,
      role: status.leader === m.id ? "leader" : "follower",
      version: "",
    };
  });
}

function safeUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}
