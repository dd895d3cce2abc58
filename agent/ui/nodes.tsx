/** A card per node: state, gauges for CPU, temperature, memory and disk, and what it holds. */
import type { NodeHealth } from "./api.js";
import { ago, bytes, colourOf, duration } from "./format.js";

function level(v: number, warn: number, bad: number): string {
  return v >= bad ? "bad" : v >= warn ? "warn" : "ok";
}

function Gauge(props: {
  label: string;
  value: number | null;
  text: string;
  warn: number;
  bad: number;
  max?: number;
}) {
  const max = props.max ?? 100;
  const v = props.value;
  const pct = v === null ? 0 : Math.max(0, Math.min(100, (100 * v) / max));
  return (
    <div class="gauge" data-testid={`gauge-${props.label.toLowerCase()}`}>
      <div class="gauge-head">
        <span>{props.label}</span>
        <span class="gauge-val">{props.text}</span>
      </div>
      <div class="bar">
        <div
          class={`fill ${v === null ? "none" : level(v, props.warn, props.bad)}`}
          style={{ width: `${pct}%` }}
        />
      </div>
    </div>
  );
}

export function Nodes(props: { nodes: NodeHealth[]; observer: string }) {
  const ids = props.nodes.map((n) => n.id);
  return (
    <div class="nodes">
      {props.nodes.map((n) => {
        const b = n.board;
        const memUsed = b && b.memTotalBytes > 0 ? 100 - (100 * b.memAvailableBytes) / b.memTotalBytes : null;
        const diskUsed =
          b && b.diskTotalBytes && b.diskFreeBytes !== null
            ? 100 - (100 * b.diskFreeBytes) / b.diskTotalBytes
            : null;
        const t = b?.throttle;
        const throttled = t && (t.throttledNow || t.underVoltageNow || t.freqCappedNow || t.softTempLimitNow);
        return (
          <article
            class={`node ${n.reachable ? "" : "down"}`}
            key={n.id}
            data-testid="node-card"
            data-node={n.id}
          >
            <header>
              <span class="swatch" style={{ background: colourOf(ids, n.id) }} />
              <h3>{n.id}</h3>
              <span class={`pill ${n.reachable ? (throttled ? "warn" : "ok") : "bad"}`}>
                {n.reachable ? (throttled ? "throttled" : n.state) : "unreachable"}
              </span>
              {n.id === props.observer ? <span class="pill muted">this node</span> : null}
            </header>
            <div class="addr muted">{n.api ? new URL(n.api).host : "–"}</div>
            <Gauge
              label="CPU"
              value={b?.cpuLoadPct ?? null}
              text={typeof b?.cpuLoadPct === "number" ? `${Math.round(b.cpuLoadPct)}%` : "–"}
              warn={70}
              bad={90}
            />
            <Gauge
              label="Temp"
              value={b?.tempC ?? null}
              text={typeof b?.tempC === "number" ? `${b.tempC.toFixed(1)} °C` : "n/a"}
              warn={70}
              bad={80}
              max={90}
            />
            <Gauge
              label="Memory"
              value={memUsed}
              text={b ? `${bytes(b.memAvailableBytes)} free` : "–"}
              warn={85}
              bad={95}
            />
            <Gauge
              label="Disk"
              value={diskUsed}
              text={b ? `${bytes(b.diskFreeBytes)} free` : "–"}
              warn={85}
              bad={92}
            />
            <dl class="facts">
              <div>
                <dt>replicas</dt>
                <dd data-testid="replicas">{n.replicas}</dd>
              </div>
              <div>
                <dt>leads</dt>
                <dd>{n.leads}</dd>
              </div>
              <div>
                <dt>data</dt>
                <dd>{bytes(b?.dataDirBytes)}</dd>
              </div>
              <div>
                <dt>up</dt>
                <dd>{b ? duration(b.uptimeSec) : "–"}</dd>
              </div>
            </dl>
            <footer class="muted">
              {n.ageMs === null ? "not heard yet" : `seen ${ago(n.ageMs)}`}
              {n.skewMs !== null && n.id !== props.observer
                ? ` · clock ${n.skewMs >= 0 ? "+" : ""}${n.skewMs} ms`
                : ""}
              {t === null || t === undefined ? " · throttling n/a" : ""}
            </footer>
          </article>
        );
      })}
    </div>
  );
}
