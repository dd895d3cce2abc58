/**
 * The client library of the HTTP API: one method per operation, typed errors, and failover. A
 * request that meets a 503 or cannot connect is tried on the next endpoint; after a full round
 * over the endpoints the client waits (honouring `retry-after`, up to a cap) and goes round
 * again, up to `maxAttempts` attempts in all.
 *
 * Unless `learnAgents` is off, the client also learns the cluster's agents from the cluster itself
 * (`GET /v1/health`, at most once per `agentsRefreshMs`) and spreads requests over all of them;
 * `least-loaded` then goes by the load score each board reports (CPU, temperature, throttling),
 * and by this client's own in-flight requests and latency only while no score can be had.
 *
 * A write that failed with a timeout or a lost connection may still have been applied. Retrying
 * an unconditional put or delete is harmless (the value ends up the same), but a retried `cas`
 * can then report `CasMismatchError` although its first attempt succeeded: read the key to know.
 */
import {
  ApiError,
  BadRequestError,
  CasMismatchError,
  errorFromResponse,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "../api/errors.js";
import type { Consistency, KvItem } from "../api/service.js";
import type { LoadSource } from "../balance/index.js";
import { ClusterAgents } from "./agents.js";
import { EndpointSelector, normalizeEndpoint, type Strategy } from "./endpoints.js";
import { BadResponseError, ClientConfigError, EndpointsUnreachableError } from "./errors.js";
import { deadline } from "../node/deadline.js";
import { HttpAnswerTooLargeError, httpFetch, type HttpAnswer, type HttpFetch } from "../net/http-fetch.js";

export {
  ApiError,
  BadRequestError,
  BadResponseError,
  CasMismatchError,
  ClientConfigError,
  EndpointsUnreachableError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnauthorizedError,
};
export type { Consistency, KvItem, Strategy };

export interface RingleaderClientOptions {
  endpoints: string[];
  token: string;
  strategy?: Strategy;
  /** Time one attempt (connect, send, receive) may take. */
  timeoutMs?: number;
  /** Attempts per operation across all endpoints, the first included. */
  maxAttempts?: number;
  /** The longest `retry-after` the client waits for; longer hints are cut to this. */
  maxRetryAfterMs?: number;
  /** Largest response body accepted (a scan page of big values can be large). */
  maxResponseBytes?: number;
  /** Injected for tests (the global `fetch` fits); `httpFetch` otherwise. */
  fetch?: HttpFetch;
  random?: () => number;
  /** What `ip-hash` hashes to pick the entry agent (default: this machine's first non-internal address). */
  clientAddress?: string;
  /**
   * Load scores for `least-loaded` (default: the scores the boards report, from the cluster's
   * health view, else requests in flight and latency this client saw).
   */
  load?: LoadSource;
  /**
   * Learn every member's API address and load score from the cluster (`GET /v1/health`) and
   * choose the entry agent among them, the configured endpoints only where to start (default
   * true). A one-shot command that does not balance by load saves the extra request by turning it off.
   */
  learnAgents?: boolean;
  /** Least time between two reads of the cluster's agents (default 10 s, the agents' health interval). */
  agentsRefreshMs?: number;
  /**
   * Names the agent that leads a key's partition (`PartitionRouter`); writes and strong or weak
   * reads of that key try it first, which saves the hop a follower would add. Long-running
   * clients (the serial bridge) use it; a one-shot command does not pay for the table.
   */
  router?: { endpointFor(key: string): string | undefined };
}

export interface ScanOptions {
  prefix?: string;
  /** Items per page (the server's default is 100, its maximum 1000). */
  limit?: number;
  /** The cursor from the previous page's `next`. */
  after?: string;
  consistency?: Consistency;
  signal?: AbortSignal;
}

interface RawResponse {
  status: number;
  headers: HttpAnswer["headers"];
  body: Uint8Array;
}

interface RequestInit {
  body?: Uint8Array;
  signal?: AbortSignal | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RETRY_AFTER_MS = 2000;
const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
/** A read of the cluster's agents is small; a board that takes longer is not a good entry anyway. */
const AGENTS_READ_TIMEOUT_MS = 2000;
/** First wait between rounds; it doubles per round up to `maxRetryAfterMs`. */
const ROUND_BACKOFF_BASE_MS = 100;
/** Cap on `maxAttempts` whatever the caller asks: failover is for riding out an election, not an outage. */
const MAX_ATTEMPTS_CAP = 32;

const utf8 = new TextEncoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === "string" ? utf8.encode(value) : value;
}

/** The path of one key: every byte outside unreserved characters is escaped, `/` included. */
function keyPath(key: string): string {
  if (key.length === 0) throw new BadRequestError("the key is empty");
  // URL libraries and proxies resolve these as path segments, so they can never reach the server intact.
  if (key === "." || key === "..") throw new BadRequestError(`the key "${key}" cannot be sent in a URL path`);
  return `/v1/kv/${encodeURIComponent(key)}`;
}

function queryString(params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params)
    .filter((entry): entry is [string, string | number] => entry[1] !== undefined)
    .map(([name, value]) => `${name}=${encodeURIComponent(String(value))}`);
  return parts.length === 0 ? "" : `?${parts.join("&")}`;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The answer's body, refused past `maxBytes` (`httpFetch` stops reading there; a `fetch` does not). */
async function readLimited(res: HttpAnswer, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new BadResponseError(`response of ${declared} bytes exceeds ${maxBytes}`);
  }
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.byteLength > maxBytes) throw new BadResponseError(`response exceeds ${maxBytes} bytes`);
  return body;
}

function parseJson(res: RawResponse, what: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(res.body).toString("utf8"));
  } catch {
    throw new BadResponseError(`${what}: the response is not JSON (HTTP ${res.status})`);
  }
  if (!isRecord(data)) throw new BadResponseError(`${what}: expected a JSON object`);
  return data;
}

function stringField(data: Record<string, unknown>, name: string, what: string): string {
  const value = data[name];
  if (typeof value !== "string") throw new BadResponseError(`${what}: "${name}" is not a string`);
  return value;
}

/** The typed error of a non-2xx response, from its JSON body when it has one. */
function errorOf(res: RawResponse): ApiError {
  let code: string | undefined;
  let message = `HTTP ${res.status}`;
  try {
    const data: unknown = JSON.parse(Buffer.from(res.body).toString("utf8"));
    const error = isRecord(data) ? data["error"] : undefined;
    if (isRecord(error)) {
      if (typeof error["code"] === "string") code = error["code"];
      if (typeof error["message"] === "string") message = error["message"];
    }
  } catch {
    // Not our JSON (a proxy's error page): the status alone has to do.
  }
  const retryAfter = Number(res.headers.get("retry-after") ?? NaN);
  return errorFromResponse(res.status, code, message, Number.isFinite(retryAfter) ? retryAfter : undefined);
}

export class RingleaderClient {
  private readonly selector: EndpointSelector;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly maxRetryAfterMs: number;
  private readonly maxResponseBytes: number;
  private readonly fetch: HttpFetch;
  private readonly router: RingleaderClientOptions["router"];
  private readonly agents: ClusterAgents | undefined;
  private readonly strategy: Strategy;

  constructor(options: RingleaderClientOptions) {
    if (options.token.length === 0) throw new ClientConfigError("the client needs a token");
    this.strategy = options.strategy ?? "round-robin";
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetch = options.fetch ?? httpFetch;
    this.agents =
      (options.learnAgents ?? true) && options.endpoints.length > 0
        ? new ClusterAgents([...new Set(options.endpoints.map(normalizeEndpoint))], {
            token: options.token,
            fetch: this.fetch,
            timeoutMs: Math.min(this.timeoutMs, AGENTS_READ_TIMEOUT_MS),
            ...(options.agentsRefreshMs !== undefined ? { refreshMs: options.agentsRefreshMs } : {}),
          })
        : undefined;
    this.selector = new EndpointSelector(options.endpoints, {
      strategy: options.strategy ?? "round-robin",
      ...(options.random ? { random: options.random } : {}),
      ...(options.clientAddress !== undefined ? { clientAddress: options.clientAddress } : {}),
      ...(options.load ? { load: options.load } : {}),
      ...(this.agents ? { agents: this.agents } : {}),
    });
    this.token = options.token;
    const defaultAttempts = Math.max(3, 2 * this.selector.endpoints.length);
    this.maxAttempts = Math.min(MAX_ATTEMPTS_CAP, Math.max(1, options.maxAttempts ?? defaultAttempts));
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.router = options.router;
  }

  /** The configured endpoints. */
  get endpoints(): readonly string[] {
    return this.selector.endpoints;
  }

  /** The agents requests are spread over: those the cluster reported, else the configured ones. */
  knownAgents(): readonly string[] {
    return this.selector.candidates();
  }

  /** Writes `value`; with `cas`, only if the key is at that version (`"0"`: only if absent). */
  async put(
    key: string,
    value: Uint8Array | string,
    opts: { cas?: string; signal?: AbortSignal } = {},
  ): Promise<{ version: string }> {
    const path = keyPath(key) + queryString({ cas: opts.cas });
    const leader = this.router?.endpointFor(key);
    const res = await this.request("PUT", path, { body: toBytes(value), signal: opts.signal }, leader);
    if (res.status !== 200) throw errorOf(res);
    return { version: stringField(parseJson(res, "put"), "version", "put") };
  }

  /** Writes `value` only if the key is at `expectedVersion` (`"0"`: only if absent). */
  cas(
    key: string,
    expectedVersion: string,
    value: Uint8Array | string,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ version: string }> {
    return this.put(key, value, { ...opts, cas: expectedVersion });
  }

  /** The value and version of `key`, or null when it is absent. */
  async get(
    key: string,
    opts: { consistency?: Consistency; strategy?: Strategy; signal?: AbortSignal } = {},
  ): Promise<{ value: Uint8Array; version: string; servedBy?: string } | null> {
    // `strategy` asks the agent how to pick the replica of an eventual read (`?strategy=`).
    const path = keyPath(key) + queryString({ consistency: opts.consistency, strategy: opts.strategy });
    const leader = opts.consistency === "eventual" ? undefined : this.router?.endpointFor(key);
    const res = await this.request("GET", path, { signal: opts.signal }, leader);
    if (res.status === 404) {
      const err = errorOf(res);
      if (err.code === "not_found") return null;
      throw err;
    }
    if (res.status !== 200) throw errorOf(res);
    const version = res.headers.get("x-ringleader-version");
    if (version === null) throw new BadResponseError("get: no x-ringleader-version header");
    const servedBy = res.headers.get("x-ringleader-served-by");
    return servedBy === null ? { value: res.body, version } : { value: res.body, version, servedBy };
  }

  /** Deletes `key`; with `cas`, only if it is at that version. `deleted` is false when it was absent. */
  async del(
    key: string,
    opts: { cas?: string; signal?: AbortSignal } = {},
  ): Promise<{ version: string; deleted: boolean }> {
    const path = keyPath(key) + queryString({ cas: opts.cas });
    const res = await this.request("DELETE", path, { signal: opts.signal }, this.router?.endpointFor(key));
    if (res.status !== 200) throw errorOf(res);
    const data = parseJson(res, "del");
    const deleted = data["deleted"];
    if (typeof deleted !== "boolean") throw new BadResponseError('del: "deleted" is not a boolean');
    return { version: stringField(data, "version", "del"), deleted };
  }

  /** One page of keys in order; pass `next` back as `after` for the following page. */
  async scan(opts: ScanOptions = {}): Promise<{ items: KvItem[]; next: string | null }> {
    const query = queryString({
      prefix: opts.prefix,
      limit: opts.limit,
      after: opts.after,
      consistency: opts.consistency,
    });
    const res = await this.request("GET", `/v1/kv${query}`, { signal: opts.signal });
    if (res.status !== 200) throw errorOf(res);
    const data = parseJson(res, "scan");
    const rawItems = data["items"];
    const next = data["next"];
    if (!Array.isArray(rawItems)) throw new BadResponseError('scan: "items" is not a list');
    if (next !== null && typeof next !== "string")
      throw new BadResponseError('scan: "next" is not a string or null');
    const items = rawItems.map((raw: unknown): KvItem => {
      if (!isRecord(raw)) throw new BadResponseError("scan: an item is not an object");
      const value = Buffer.from(stringField(raw, "value", "scan item"), "base64");
      return {
        key: stringField(raw, "key", "scan item"),
        value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
        version: stringField(raw, "version", "scan item"),
      };
    });
    return { items, next };
  }

  /**
   * Every item under the prefix, page by page. A server that hands back the cursor it was given
   * would loop forever; that is reported as a `BadResponseError` instead.
   */
  async *scanAll(opts: Omit<ScanOptions, "after"> = {}): AsyncGenerator<KvItem, void, undefined> {
    let after: string | undefined;
    for (;;) {
      const page = await this.scan({ ...opts, ...(after === undefined ? {} : { after }) });
      yield* page.items;
      if (page.next === null) return;
      if (page.next === after) throw new BadResponseError("scan: the cursor did not advance");
      after = page.next;
    }
  }

  /** The cluster view of `GET /v1/status`, as the agent returns it. */
  async status(opts: { signal?: AbortSignal } = {}): Promise<unknown> {
    const res = await this.request("GET", "/v1/status", { signal: opts.signal });
    if (res.status !== 200) throw errorOf(res);
    try {
      return JSON.parse(Buffer.from(res.body).toString("utf8")) as unknown;
    } catch {
      throw new BadResponseError("status: the response is not JSON");
    }
  }

  /**
   * Sends one request with failover: a 503 or a failed connection moves on to the next endpoint;
   * any other answer (success or error) is returned to the caller.
   */
  private async request(
    method: string,
    path: string,
    init: RequestInit,
    preferred?: string,
  ): Promise<RawResponse> {
    await this.learnAgents();
    const spread = this.selector.order();
    const order = preferred ? [preferred, ...spread.filter((e) => e !== preferred)] : spread;
    let lastFailure: unknown = undefined;
    let retryAfterMs = 0;
    let attempt = 0;
    for (; attempt < this.maxAttempts; attempt++) {
      if (attempt > 0 && attempt % order.length === 0) {
        const round = attempt / order.length;
        const backoffMs = Math.min(this.maxRetryAfterMs, ROUND_BACKOFF_BASE_MS * 2 ** (round - 1));
        await sleep(Math.max(backoffMs, Math.min(retryAfterMs, this.maxRetryAfterMs)), init.signal);
        retryAfterMs = 0;
      }
      const endpoint = order[attempt % order.length] as string;
      let res: RawResponse;
      const done = this.selector.begin(endpoint);
      try {
        res = await this.attempt(endpoint, method, path, init);
      } catch (err) {
        done();
        if (init.signal?.aborted) throw init.signal.reason;
        if (err instanceof BadResponseError) throw err;
        this.selector.markDown(endpoint);
        lastFailure = err;
        continue;
      }
      done();
      if (res.status !== 503) {
        this.selector.markUp(endpoint);
        return res;
      }
      const unavailable = errorOf(res);
      lastFailure = unavailable;
      if (unavailable instanceof ServiceUnavailableError) {
        retryAfterMs = Math.max(retryAfterMs, unavailable.retryAfterSeconds * 1000);
      }
    }
    if (lastFailure instanceof ApiError) throw lastFailure;
    throw new EndpointsUnreachableError(order, attempt, lastFailure);
  }

  /**
   * Reads the cluster's agents when a read is due. Only `least-loaded` waits for it, and only
   * until a first view has arrived: without one it has nothing to choose by. Other strategies
   * carry on with what they know and use the view from the next request on.
   */
  private async learnAgents(): Promise<void> {
    const reading = this.agents?.refreshIfDue();
    if (reading && this.strategy === "least-loaded" && !this.agents!.known) await reading;
  }

  private async attempt(
    endpoint: string,
    method: string,
    path: string,
    init: RequestInit,
  ): Promise<RawResponse> {
    const signal = init.signal ? deadline(this.timeoutMs, init.signal) : deadline(this.timeoutMs);
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (init.body) headers["content-type"] = "application/octet-stream";
    let res: HttpAnswer;
    try {
      res = await this.fetch(endpoint + path, {
        method,
        headers,
        signal,
        maxBytes: this.maxResponseBytes,
        ...(init.body ? { body: init.body } : {}),
      });
    } catch (err) {
      if (err instanceof HttpAnswerTooLargeError)
        throw new BadResponseError(`response exceeds ${err.maxBytes} bytes`);
      throw err;
    }
    const body = await readLimited(res, this.maxResponseBytes);
    return { status: res.status, headers: res.headers, body };
  }
}
