/**
 * Sensor readings: a live feed of each series' latest value, and a chart per series over the
 * chosen window. The server downsamples (`/v1/series`, buckets of count/avg/min/max), so a week
 * of readings is as cheap to draw as an hour.
 */
import { useEffect, useState } from "preact/hooks";
import { getJson, type SensorLatest, type SeriesDoc } from "./api.js";
import { ago, num } from "./format.js";

export const WINDOWS: readonly [label: string, seconds: number][] = [
  ["15 min", 900],
  ["1 h", 3600],
  ["6 h", 6 * 3600],
  ["24 h", 86400],
  ["7 d", 7 * 86400],
];

export function Feed(props: { series: SensorLatest[]; now: number }) {
  if (props.series.length === 0) {
    return (
      <div class="empty">No sensor readings yet. The bridge writes them under sensors/{"{device}"}/…</div>
    );
  }
  return (
    <table class="feed">
      <thead>
        <tr>
          <th>device</th>
          <th>sensor</th>
          <th class="num">latest</th>
          <th>when</th>
        </tr>
      </thead>
      <tbody>
        {props.series.map((s) => (
          <tr key={s.prefix} data-testid="sensor-row" data-prefix={s.prefix}>
            <td>{s.device}</td>
            <td>{s.sensor}</td>
            <td class="num" data-testid="sensor-value">
              {s.reading ? num(s.reading.value) : "–"}
            </td>
            <td class="muted">{s.reading ? ago(props.now - Date.parse(s.reading.time)) : "quiet"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const W = 360;
const H = 150;
const PAD = { l: 38, r: 8, t: 10, b: 20 };

function timeLabel(t: number, spanSec: number): string {
  const d = new Date(t);
  return spanSec > 86400
    ? d.toLocaleDateString([], { month: "short", day: "numeric" })
    : d.toTimeString().slice(0, 5);
}

export function Chart(props: { prefix: string; label: string; windowSec: number; tick: number }) {
  const [doc, setDoc] = useState<SeriesDoc | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    const q = new URLSearchParams({ prefix: props.prefix, from: `-${props.windowSec}s`, buckets: "90" });
    getJson<SeriesDoc>(`/v1/series?${q}`, ctl.signal).then(
      (d) => {
        setDoc(d);
        setError(null);
      },
      (e: unknown) => {
        if (!ctl.signal.aborted) setError(e instanceof Error ? e.message : String(e));
      },
    );
    return () => ctl.abort();
  }, [props.prefix, props.windowSec, props.tick]);

  const from = doc ? Date.parse(doc.from) : 0;
  const to = doc ? Date.parse(doc.to) : 1;
  const bs = doc?.buckets ?? [];
  let lo = Math.min(...bs.map((b) => b.min));
  let hi = Math.max(...bs.map((b) => b.max));
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 1, hi + 1];
  const margin = (hi - lo) * 0.08;
  lo -= margin;
  hi += margin;
  const x = (t: number) => PAD.l + ((t - from) / (to - from)) * (W - PAD.l - PAD.r);
  const y = (v: number) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  const mid = (b: { t: number }) => b.t + (doc?.bucketMs ?? 0) / 2;
  const line = bs
    .map((b, i) => `${i === 0 ? "M" : "L"}${x(mid(b)).toFixed(1)},${y(b.avg).toFixed(1)}`)
    .join(" ");
  const band =
    bs.length > 0
      ? bs.map((b, i) => `${i === 0 ? "M" : "L"}${x(mid(b)).toFixed(1)},${y(b.max).toFixed(1)}`).join(" ") +
        " " +
        [...bs]
          .reverse()
          .map((b) => `L${x(mid(b)).toFixed(1)},${y(b.min).toFixed(1)}`)
          .join(" ") +
        " Z"
      : "";
  const last = bs[bs.length - 1];
  return (
    <figure class="chart" data-testid="chart" data-prefix={props.prefix} data-readings={doc?.readings ?? 0}>
      <figcaption>
        <span>{props.label}</span>
        <span class="muted">
          {error ? (
            <span class="err">{error}</span>
          ) : doc ? (
            `${doc.readings} readings${last ? ` · last avg ${num(last.avg)}` : ""}`
          ) : (
            "loading…"
          )}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`chart of ${props.label}`}>
        {[0, 0.5, 1].map((f) => {
          const v = lo + margin + f * (hi - lo - 2 * margin);
          return (
            <g key={f}>
              <line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} class="grid" />
              <text x={PAD.l - 6} y={y(v) + 4} class="axis" text-anchor="end">
                {num(v)}
              </text>
            </g>
          );
        })}
        <text x={PAD.l} y={H - 4} class="axis">
          {doc ? timeLabel(from, props.windowSec) : ""}
        </text>
        <text x={W - PAD.r} y={H - 4} class="axis" text-anchor="end">
          {doc ? timeLabel(to, props.windowSec) : ""}
        </text>
        {band ? <path d={band} class="band" /> : null}
        {line ? <path d={line} class="line" /> : null}
        {bs.length === 1 && last ? <circle cx={x(mid(last))} cy={y(last.avg)} r={3} class="dot" /> : null}
        {bs.length === 0 && doc ? (
          <text x={W / 2} y={H / 2} class="axis" text-anchor="middle">
            no readings in this window
          </text>
        ) : null}
      </svg>
    </figure>
  );
}
