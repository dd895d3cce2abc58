/**
 * Which endpoint a client request goes to first, and in which order the others are tried when it
 * fails. Endpoints that just failed are tried last for a while, so one dead board does not cost
 * every request a connection timeout.
 */
import {
  Balancer,
  LocalLoadTracker,
  ownAddress,
  ReportedLoad,
  type LoadSource,
  type ReportedLoadSource,
  type Strategy,
} from "../balance/index.js";
import { ClientConfigError } from "./errors.js";

/** How a client spreads requests over the endpoints it knows (the agent's strategies, `agent/src/balance/`). */
export { STRATEGIES, type Strategy } from "../balance/index.js";

/** Most endpoints one client holds; a home lab has a handful of boards. */
export const MAX_ENDPOINTS = 256;

/** Checks one endpoint URL and returns it without a trailing slash. */
export function normalizeEndpoint(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ClientConfigError(`endpoint "${raw}" is not a URL (expected e.g. http://127.0.0.1:7001)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ClientConfigError(`endpoint "${raw}" must be http:// or https://`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new ClientConfigError(`endpoint "${raw}" must not have a query or fragment`);
  }
  return url.toString().replace(/\/+$/, "");
}

/** Parses a comma-separated endpoint list such as `--endpoints` or `RINGLEADER_ENDPOINTS`. */
export function parseEndpointList(raw: string): string[] {
  const parts = raw
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  if (parts.length > MAX_ENDPOINTS) throw new ClientConfigError(`more than ${MAX_ENDPOINTS} endpoints`);
  return parts.map(normalizeEndpoint);
}

export interface EndpointSelectorOptions {
  strategy?: Strategy;
  /** Returns values in [0, 1); injected so tests are repeatable. */
  random?: () => number;
  /** Milliseconds from an arbitrary origin. */
  now?: () => number;
  /** How long an endpoint that failed is tried after the others. */
  downForMs?: number;
  /** What `ip-hash` hashes (default: this machine's first non-internal address). */
  clientAddress?: string;
  /**
   * Scores for `least-loaded` (default: the agents' reported scores when `agents` has them, else
   * in-flight requests and latency seen by this client).
   */
  load?: LoadSource;
  /** The cluster's own list of agents and their scores (`ClusterAgents`), once it has one. */
  agents?: LearnedAgents;
}

/** What the selector asks of the agents a client learned from the cluster. */
export interface LearnedAgents extends ReportedLoadSource {
  /** API URLs of the serving agents; empty while none are known. */
  agents(): string[];
}

/**
 * The agents a request may enter by: those the cluster reported (`agents`), or the configured
 * endpoints while it has reported none. Configured endpoints the cluster does not name (a name
 * behind a load balancer, an alias) stay at the very end, as the last resort of a failover.
 */
export class EndpointSelector {
  /** The configured endpoints, normalized. */
  readonly endpoints: readonly string[];
  private readonly agents: LearnedAgents | undefined;
  private readonly strategy: Strategy;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly downForMs: number;
  private readonly balancer: Balancer;
  private readonly clientAddress: string;
  /** In-flight requests and latency per endpoint, as this client saw them. */
  readonly tracker = new LocalLoadTracker();
  /** Endpoint → time until which it is tried last. */
  private readonly downUntil = new Map<string, number>();

  constructor(endpoints: readonly string[], options: EndpointSelectorOptions = {}) {
    if (endpoints.length === 0) throw new ClientConfigError("no endpoints given");
    if (endpoints.length > MAX_ENDPOINTS) throw new ClientConfigError(`more than ${MAX_ENDPOINTS} endpoints`);
    this.endpoints = [...new Set(endpoints.map(normalizeEndpoint))];
    this.strategy = options.strategy ?? "round-robin";
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => Date.now());
    this.downForMs = options.downForMs ?? 5000;
    this.clientAddress = options.clientAddress ?? (this.strategy === "ip-hash" ? ownAddress() : "");
    this.agents = options.agents;
    const defaultLoad = this.agents ? new ReportedLoad(this.agents, this.tracker) : this.tracker;
    this.balancer = new Balancer({
      strategy: this.strategy,
      random: this.random,
      load: options.load ?? defaultLoad,
    });
  }

  /** The agents the strategy chooses among: the learned ones, else the configured endpoints. */
  candidates(): readonly string[] {
    const learned = this.agents?.agents() ?? [];
    return learned.length > 0 ? learned : this.endpoints;
  }

  /** The endpoints in the order one request should try them: the strategy's pick first. */
  order(): string[] {
    const candidates = this.candidates();
    const rotated = this.balancer.order(candidates, { clientAddress: this.clientAddress });
    const all = [...rotated, ...this.endpoints.filter((e) => !candidates.includes(e))];
    const now = this.now();
    const up = all.filter((e) => (this.downUntil.get(e) ?? 0) <= now);
    const down = all.filter((e) => (this.downUntil.get(e) ?? 0) > now);
    return [...up, ...down];
  }

  /** Records that `endpoint` failed to answer; it goes to the back of the order for a while. */
  markDown(endpoint: string): void {
    this.downUntil.set(endpoint, this.now() + this.downForMs);
  }

  /** Records that `endpoint` answered. */
  markUp(endpoint: string): void {
    this.downUntil.delete(endpoint);
  }

  /** A request to `endpoint` starts (for `least-loaded`); call the result when it ends. */
  begin(endpoint: string): () => void {
    return this.tracker.begin(endpoint);
  }
}
