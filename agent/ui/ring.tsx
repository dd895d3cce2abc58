/**
 * The ring as a circle: the outer ring holds every node's tokens as ticks in the node's colour
 * (a token is a position on the 2^32 ring), the inner ring holds the partitions as arcs coloured
 * by their current leader, outlined in red when under-replicated.
 */
import type { ClusterHealth, RingDoc } from "./api.js";
import { colourOf } from "./format.js";

const SIZE = 320;
const C = SIZE / 2;
const R_TOKENS = 146;
const R_OUT = 126;
const R_IN = 92;

function point(r: number, frac: number): [number, number] {
  const a = frac * 2 * Math.PI - Math.PI / 2;
  return [C + r * Math.cos(a), C + r * Math.sin(a)];
}

function arc(start: number, end: number): string {
  const [x1, y1] = point(R_OUT, start);
  const [x2, y2] = point(R_OUT, end);
  const [x3, y3] = point(R_IN, end);
  const [x4, y4] = point(R_IN, start);
  const large = end - start > 0.5 ? 1 : 0;
  const f = (n: number) => n.toFixed(2);
  return (
    `M${f(x1)},${f(y1)} A${R_OUT},${R_OUT} 0 ${large} 1 ${f(x2)},${f(y2)} ` +
    `L${f(x3)},${f(y3)} A${R_IN},${R_IN} 0 ${large} 0 ${f(x4)},${f(y4)} Z`
  );
}

export function Ring(props: { ring: RingDoc | null; health: ClusterHealth | null }) {
  const { ring, health } = props;
  if (!ring) return <div class="empty">waiting for the ring…</div>;
  const ids = ring.nodes.map((n) => n.id);
  const byPartition = new Map(health?.partitions.map((p) => [p.partition, p]) ?? []);
  const under = new Set(
    health?.warnings.filter((w) => w.kind === "under-replicated").map((w) => w.partition) ?? [],
  );
  return (
    <div class="ring">
      <svg viewBox={`0 0 ${SIZE} ${SIZE}`} role="img" aria-label="hash ring" data-testid="ring-svg">
        <circle cx={C} cy={C} r={R_TOKENS} class="ring-track" />
        {ring.ranges.map((r) => {
          const p = byPartition.get(r.partition);
          const leader = p?.leader ?? null;
          return (
            <path
              key={r.partition}
              d={arc(r.start / ring.ringSize, r.end / ring.ringSize)}
              fill={colourOf(ids, leader)}
              class={under.has(r.partition) ? "arc under" : "arc"}
              data-testid="partition-arc"
              data-leader={leader ?? ""}
            >
              <title>
                {`partition ${r.partition}: leader ${leader ?? "unknown"}, replicas ${r.replicas.join(", ")}`}
              </title>
            </path>
          );
        })}
        {ring.nodes.flatMap((n) =>
          n.tokens.map((t) => {
            const [x1, y1] = point(R_TOKENS - 7, t / ring.ringSize);
            const [x2, y2] = point(R_TOKENS + 7, t / ring.ringSize);
            return (
              <line
                key={`${n.id}-${t}`}
                x1={x1}
                y1={y1}
                x2={x2}
                y2={y2}
                stroke={colourOf(ids, n.id)}
                class="token"
                data-testid="token"
              />
            );
          }),
        )}
        <text x={C} y={C - 6} class="ring-big">
          {ring.partitions}
        </text>
        <text x={C} y={C + 16} class="ring-small">
          {`partitions × ${ring.replicationFactor}`}
        </text>
      </svg>
      <ul class="legend">
        {ring.nodes.map((n) => (
          <li key={n.id}>
            <span class="swatch" style={{ background: colourOf(ids, n.id) }} />
            {n.id}
            <span class="muted">
              {` ${n.tokens.length} tokens · leads ${health?.partitions.filter((p) => p.leader === n.id).length ?? 0}`}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}
