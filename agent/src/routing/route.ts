/** `GET /v1/routing`: this node's routing claims (see `table.ts`). */
import { json, type ExtraRoute } from "../api/extra-routes.js";
import { META_GROUP, groupPartition, type MetaView } from "../cluster/meta.js";
import type { RaftHost } from "../node/host.js";
import type { NodeId } from "../raft/index.js";
import type { RoutingTable } from "./table.js";

export function routingTable(nodeId: NodeId, host: RaftHost, meta: MetaView): RoutingTable | null {
  const ring = meta.ring();
  if (!ring) return null;
  const members: Record<NodeId, string> = {};
  for (const m of meta.members()) if (m.api) members[m.id] = m.api;
  const groups = host
    .groups()
    .filter((g) => g !== META_GROUP)
    .map((g) => {
      const s = host.status(g);
      return { partition: groupPartition(g), leader: s.leader || null, term: s.term };
    });
  return { node: nodeId, partitions: ring.partitions, members, groups };
}

export function routingRoute(table: () => RoutingTable | null): ExtraRoute {
  return {
    template: "/v1/routing",
    authenticated: true,
    methods: {
      GET: async () => {
        const t = table();
        if (!t) {
          return json(
            503,
            { error: { code: "unavailable", message: "this node does not know the ring yet" } },
            {
              "retry-after": "1",
            },
          );
        }
        return json(200, t);
      },
    },
  };
}
