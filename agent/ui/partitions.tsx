/** Every partition as a tile in its leader's colour, with its replication state. */
import type { ClusterHealth } from "./api.js";
import { colourOf } from "./format.js";

export function Partitions(props: { health: ClusterHealth }) {
  const ids = props.health.nodes.map((n) => n.id);
  const rf = props.health.replicationFactor ?? 3;
  return (
    <div class="tiles">
      {props.health.partitions.map((p) => {
        const healthy = p.voters.filter((v) => p.active.includes(v)).length;
        const state =
          p.leader === null
            ? "none"
            : healthy < Math.min(rf, Math.max(1, p.replicas.length))
              ? "under"
              : "ok";
        return (
          <div
            key={p.partition}
            class={`tile ${state}`}
            style={{ background: colourOf(ids, p.leader) }}
            title={`partition ${p.partition} · leader ${p.leader ?? "unknown"} · ${healthy}/${rf} replicas healthy · voters ${p.voters.join(", ") || "?"}`}
            data-testid="partition-tile"
          >
            {p.partition}
          </div>
        );
      })}
    </div>
  );
}
