/**
 * Talking to the agent from the page. A browser cannot put a bearer header on a page load, so the
 * page itself carries no secret: the token arrives in the URL fragment (`/ui/#token=...`, which
 * browsers never send to the server), is moved to sessionStorage (gone when the tab closes) and
 * removed from the address bar, and every `fetch` sends it as `Authorization: Bearer`. Without
 * one, the page asks for it. The read-only token from `ringleader init` is enough.
 */
const KEY = "ringleader.token";

export class AuthError extends Error {
  override readonly name = "AuthError";
}

export function takeTokenFromUrl(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]!));
  history.replaceState(null, "", location.pathname + location.search);
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const t = token();
  if (!t) throw new AuthError("no token");
  const res = await fetch(path, { headers: { authorization: `Bearer ${t}` }, ...(signal ? { signal } : {}) });
  if (res.status === 401) throw new AuthError("the token was refused");
  if (!res.ok) {
    let message = `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { error?: { message?: string } };
      if (body.error?.message) message = body.error.message;
    } catch {
      // Not JSON: keep the status.
    }
    throw new Error(`${path.split("?")[0]}: ${message}`);
  }
  return (await res.json()) as T;
}

// ---- Shapes of the agent's answers (see agent/src/health/view.ts and agent/src/observe/) ----

export interface Throttle {
  underVoltageNow: boolean;
  throttledNow: boolean;
  freqCappedNow: boolean;
  softTempLimitNow: boolean;
  underVoltageOccurred: boolean;
}

export interface Board {
  cpuLoadPct: number | null;
  load1: number;
  cpus: number;
  tempC: number | null;
  memTotalBytes: number;
  memAvailableBytes: number;
  diskTotalBytes: number | null;
  diskFreeBytes: number | null;
  dataDirBytes: number | null;
  uptimeSec: number;
  rssBytes: number;
  throttle: Throttle | null;
  throttleSource: string;
}

export interface NodeHealth {
  id: string;
  api: string | null;
  state: string;
  reachable: boolean;
  ageMs: number | null;
  rttMs: number | null;
  skewMs: number | null;
  error: string | null;
  board: Board | null;
  leads: number;
  replicas: number;
  load: number | null;
}

export interface PartitionState {
  partition: number;
  leader: string | null;
  term: number;
  voters: string[];
  learners: string[];
  active: string[];
  replicas: string[];
}

export interface Warning {
  kind: string;
  node?: string;
  partition?: number;
  message: string;
}

export interface ClusterHealth {
  observer: string;
  at: number;
  intervalMs: number;
  replicationFactor: number | null;
  nodes: NodeHealth[];
  partitions: PartitionState[];
  warnings: Warning[];
}

export interface RingDoc {
  ringSize: number;
  partitions: number;
  replicationFactor: number;
  nodes: { id: string; weight: number; tokens: number[] }[];
  ranges: { partition: number; start: number; end: number; replicas: string[] }[];
}

export interface SensorLatest {
  prefix: string;
  device: string;
  sensor: string;
  reading: { time: string; value: number } | null;
}

export interface Bucket {
  t: number;
  count: number;
  avg: number;
  min: number;
  max: number;
}

export interface SeriesDoc {
  prefix: string;
  from: string;
  to: string;
  bucketMs: number;
  buckets: Bucket[];
  readings: number;
  truncated: boolean;
}
