/**
 * What a client knows of the cluster beyond the endpoints it was given: every member's API
 * address and its reported load score, from one `GET /v1/health` (the agents' own cluster view:
 * `nodes[].api`, `.state`, `.load`, the score `least-loaded` uses on the agents, see
 * `agent/src/health/view.ts`). The configured endpoints are only where the client starts looking.
 *
 * Reads are lazy and rate-bounded: `refreshIfDue()` asks at most once per `refreshMs`, failed
 * attempts included, one request at a time, so a client never adds more than one small request
 * per interval whatever its own request rate. A view older than `staleAfterMs` gives no scores
 * (the caller then falls back to what it measures itself), but its addresses stay in use until a
 * newer view replaces them: a board's address changes far more rarely than its load.
 */
import type { LoadSource } from "../balance/index.js";
import { MAX_ENDPOINTS, normalizeEndpoint } from "./endpoints.js";
import { BadResponseError, describeFailure } from "./errors.js";
import { httpFetch, type HttpFetch } from "../net/http-fetch.js";

/** One member as the health view reports it. */
export interface AgentView {
  readonly id: string;
  readonly api: string;
  readonly state: string;
  /** The board's load score (lower is better), null when the reporting agent has none fresh. */
  readonly load: number | null;
}

export interface ClusterAgentsOptions {
  readonly token: string;
  /** Least time between two reads of the view (default 10 s, the agents' own health interval). */
  readonly refreshMs?: number;
  /** Age after which a view's scores are no longer used (default 3 × `refreshMs`). */
  readonly staleAfterMs?: number;
  /** Time one read may take. */
  readonly timeoutMs?: number;
  /** Agents asked, in turn, before a read counts as failed. */
  readonly triesPerRefresh?: number;
  readonly fetch?: HttpFetch;
  /** Milliseconds from an arbitrary origin. */
  readonly now?: () => number;
}

/** Largest health view accepted; a member's entry is well under 2 KiB. */
const MAX_VIEW_BYTES = 1024 * 1024;
/** Member states whose agent does not serve (gone for good, or known dead). */
const NOT_SERVING = new Set(["removed", "down"]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The serving members of a `GET /v1/health` body, with normalized API URLs. Members without a
 * usable address are left out; a body that is not a health view is a `BadResponseError`.
 */
export function parseHealthView(data: unknown): AgentView[] {
  if (!isRecord(data) || !Array.isArray(data["nodes"])) {
    throw new BadResponseError('health view: no "nodes" list');
  }
  const out: AgentView[] = [];
  for (const raw of data["nodes"].slice(0, MAX_ENDPOINTS)) {
    if (!isRecord(raw)) continue;
    const { id, api, state, load } = raw;
    if (typeof id !== "string" || typeof api !== "string" || typeof state !== "string") continue;
    if (NOT_SERVING.has(state)) continue;
    let url: string;
    try {
      url = normalizeEndpoint(api);
    } catch {
      continue;
    }
    const score = typeof load === "number" && Number.isFinite(load) && load >= 0 ? load : null;
    out.push({ id, api: url, state, load: score });
  }
  return out;
}

export class ClusterAgents implements LoadSource {
  private readonly seeds: readonly string[];
  private readonly token: string;
  private readonly refreshMs: number;
  private readonly staleAfterMs: number;
  private readonly timeoutMs: number;
  private readonly triesPerRefresh: number;
  private readonly fetch: HttpFetch;
  private readonly now: () => number;
  private view: readonly AgentView[] = [];
  private viewAt: number | null = null;
  private lastAttemptAt: number | null = null;
  private inFlight: Promise<void> | null = null;
  /** Reads that succeeded and that failed (every agent asked in that round failed). */
  readonly counts = { refreshes: 0, failures: 0 };
  /** Why the last read failed, for `--verbose` and tests; null after a success. */
  lastError: string | null = null;

  constructor(seeds: readonly string[], opts: ClusterAgentsOptions) {
    if (seeds.length === 0) throw new RangeError("ClusterAgents needs at least one endpoint to ask");
    this.seeds = seeds;
    this.token = opts.token;
    this.refreshMs = opts.refreshMs ?? 10_000;
    this.staleAfterMs = opts.staleAfterMs ?? 3 * this.refreshMs;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.triesPerRefresh = Math.max(1, opts.triesPerRefresh ?? 3);
    this.fetch = opts.fetch ?? httpFetch;
    this.now = opts.now ?? (() => performance.now());
    if (!(this.refreshMs > 0 && this.staleAfterMs > 0 && this.timeoutMs > 0)) {
      throw new RangeError("ClusterAgents: refreshMs, staleAfterMs and timeoutMs must be positive");
    }
  }

  /** The serving agents' API URLs from the latest view; empty until one was read. */
  agents(): string[] {
    return this.view.map((a) => a.api);
  }

  /** Whether any view was ever read. */
  get known(): boolean {
    return this.viewAt !== null;
  }

  /** The reported score of the agent at `endpoint`, while the view is fresh. */
  loadOf(endpoint: string): number | undefined {
    if (!this.fresh()) return undefined;
    return this.view.find((a) => a.api === endpoint)?.load ?? undefined;
  }

  /** Whether the fresh view holds a score for at least one agent. */
  hasScores(): boolean {
    return this.fresh() && this.view.some((a) => a.load !== null);
  }

  /**
   * Starts a read when the last attempt is `refreshMs` old (or none was made) and none is under
   * way; returns the read under way, if any, so a caller that cannot choose without it can wait.
   */
  refreshIfDue(): Promise<void> | null {
    if (this.inFlight) return this.inFlight;
    const now = this.now();
    if (this.lastAttemptAt !== null && now - this.lastAttemptAt < this.refreshMs) return null;
    this.lastAttemptAt = now;
    this.inFlight = this.read().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private fresh(): boolean {
    return this.viewAt !== null && this.now() - this.viewAt <= this.staleAfterMs;
  }

  /** Asks the known agents, then the configured endpoints, until one answers with a view. */
  private async read(): Promise<void> {
    const candidates = [...new Set([...this.agents(), ...this.seeds])].slice(0, this.triesPerRefresh);
    let failure = "no agent to ask";
    for (const endpoint of candidates) {
      try {
        this.view = await this.readFrom(endpoint);
        this.viewAt = this.now();
        this.counts.refreshes++;
        this.lastError = null;
        return;
      } catch (err) {
        failure = `${endpoint}: ${describeFailure(err)}`;
      }
    }
    this.counts.failures++;
    this.lastError = failure;
  }

  private async readFrom(endpoint: string): Promise<AgentView[]> {
    const res = await this.fetch(`${endpoint}/v1/health`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(this.timeoutMs),
      maxBytes: MAX_VIEW_BYTES,
    });
    const declared = Number(res.headers.get("content-length") ?? NaN);
    if (!res.ok || declared > MAX_VIEW_BYTES) {
      await res.body?.cancel();
      throw new BadResponseError(res.ok ? "health view too large" : `HTTP ${res.status}`);
    }
    const text = await res.text();
    if (text.length > MAX_VIEW_BYTES) throw new BadResponseError("health view too large");
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new BadResponseError("health view is not JSON");
    }
    const agents = parseHealthView(data);
    if (agents.length === 0) throw new BadResponseError("health view names no serving agent");
    return agents;
  }
}
