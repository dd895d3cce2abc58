/**
 * The Ringleader dashboard: one page served by every agent at `/ui/`. It polls the agent it was
 * loaded from (any node works: each knows the whole cluster's health) every two seconds.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import {
  AuthError,
  getJson,
  setToken,
  takeTokenFromUrl,
  token,
  type ClusterHealth,
  type RingDoc,
  type SensorLatest,
} from "./api.js";
import { Nodes } from "./nodes.js";
import { Partitions } from "./partitions.js";
import { Ring } from "./ring.js";
import { Chart, Feed, WINDOWS } from "./sensors.js";

const POLL_MS = 2000;

function Login(props: { onToken: (t: string) => void; reason: string | null }) {
  const [value, setValue] = useState("");
  return (
    <form
      class="login card"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) props.onToken(value.trim());
      }}
    >
      <h2>Sign in</h2>
      <p class="muted">
        Paste the cluster's read-only token (<code>readToken</code> in ringleader.json), or open{" "}
        <code>/ui/#token=…</code>.
      </p>
      {props.reason ? <p class="err">{props.reason}</p> : null}
      <input
        type="password"
        autocomplete="current-password"
        placeholder="token"
        value={value}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        aria-label="token"
      />
      <button type="submit">Open dashboard</button>
    </form>
  );
}

function App() {
  const [authed, setAuthed] = useState(token() !== null);
  const [authReason, setAuthReason] = useState<string | null>(null);
  const [health, setHealth] = useState<ClusterHealth | null>(null);
  const [ring, setRing] = useState<RingDoc | null>(null);
  const [sensors, setSensors] = useState<SensorLatest[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [updated, setUpdated] = useState(0);
  const [windowSec, setWindowSec] = useState(3600);
  const [slowTick, setSlowTick] = useState(0);

  useEffect(() => {
    if (!authed) return;
    let stopped = false;
    let polls = 0;
    const poll = async (): Promise<void> => {
      try {
        const [h, s] = await Promise.all([
          getJson<ClusterHealth>("/v1/health"),
          getJson<{ series: SensorLatest[] }>("/v1/sensors?window=3600"),
        ]);
        // The ring changes only when boards join or leave.
        if (polls % 5 === 0) setRing(await getJson<RingDoc>("/v1/ring"));
        if (polls % 15 === 0) setSlowTick(polls);
        polls++;
        if (stopped) return;
        setHealth(h);
        setSensors(s.series);
        setError(null);
        setUpdated(Date.now());
      } catch (e) {
        if (stopped) return;
        if (e instanceof AuthError) {
          setToken(null);
          setAuthReason(e.message);
          setAuthed(false);
          return;
        }
        setError(e instanceof Error ? e.message : String(e));
      }
    };
    void poll();
    const t = setInterval(() => void poll(), POLL_MS);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [authed]);

  if (!authed) {
    return (
      <Login
        reason={authReason}
        onToken={(t) => {
          setToken(t);
          setAuthReason(null);
          setAuthed(true);
        }}
      />
    );
  }
  const warnings = health?.warnings ?? [];
  const down = health?.nodes.filter((n) => !n.reachable).length ?? 0;
  return (
    <>
      <header class="top">
        <h1>
          <span class="logo">◎</span> Ringleader
        </h1>
        <div class="summary" data-testid="summary" data-updated={updated}>
          {health ? (
            <>
              <span class={`pill ${down > 0 ? "bad" : warnings.length > 0 ? "warn" : "ok"}`}>
                {down > 0 ? `${down} down` : warnings.length > 0 ? `${warnings.length} warnings` : "healthy"}
              </span>
              <span class="muted">
                {health.nodes.length} nodes · via {health.observer} · {new Date(updated).toLocaleTimeString()}
              </span>
            </>
          ) : (
            <span class="muted">connecting…</span>
          )}
          <button
            class="link"
            onClick={() => {
              setToken(null);
              setAuthed(false);
            }}
          >
            sign out
          </button>
        </div>
      </header>
      {error ? <div class="banner err">{error} — retrying</div> : null}
      <main>
        <section class="card ring-card">
          <h2>Ring</h2>
          <Ring ring={ring} health={health} />
        </section>
        <section class="card nodes-card">
          <h2>Nodes</h2>
          {health ? (
            <Nodes nodes={health.nodes} observer={health.observer} />
          ) : (
            <div class="empty">loading…</div>
          )}
        </section>
        <section class="card warn-card">
          <h2>Warnings</h2>
          {warnings.length === 0 ? (
            <div class="ok-line">
              No warnings: every board is healthy and every partition fully replicated.
            </div>
          ) : (
            <ul class="warnings" data-testid="warnings">
              {warnings.map((w, i) => (
                <li key={i} class={`w-${w.kind}`}>
                  <span class="pill warn">{w.kind}</span> {w.message}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section class="card parts-card">
          <h2>
            Partitions <span class="muted">coloured by leader</span>
          </h2>
          {health ? <Partitions health={health} /> : null}
        </section>
        <section class="card feed-card">
          <h2>Latest readings</h2>
          <Feed series={sensors} now={updated || Date.now()} />
        </section>
        <section class="card charts-card">
          <div class="charts-head">
            <h2>Sensor history</h2>
            <div class="windows" role="group" aria-label="time window">
              {WINDOWS.map(([label, sec]) => (
                <button key={sec} class={sec === windowSec ? "on" : ""} onClick={() => setWindowSec(sec)}>
                  {label}
                </button>
              ))}
            </div>
          </div>
          <div class="charts">
            {sensors.map((s) => (
              <Chart
                key={s.prefix}
                prefix={s.prefix}
                label={`${s.device} · ${s.sensor}`}
                windowSec={windowSec}
                tick={(s.reading ? Date.parse(s.reading.time) : 0) + slowTick}
              />
            ))}
          </div>
        </section>
      </main>
    </>
  );
}

takeTokenFromUrl();
render(<App />, document.getElementById("app")!);
