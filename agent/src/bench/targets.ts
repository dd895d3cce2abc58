/**
 * What `ringleader bench` drives: the Ringleader HTTP API, or etcd 3.4's v3 JSON gateway for
 * comparison. Both speak HTTP/1.1 through `http.request` with a keep-alive agent sized to the
 * concurrency: `fetch` costs several times more CPU per request, which would measure the load
 * generator rather than the cluster.
 */
import http from "node:http";
import https from "node:https";
import type { PartitionRouter } from "../routing/router.js";
import type { Consistency } from "../api/service.js";

/** One failed operation; `kind` is what the summary counts errors by (`timeout`, `503 unavailable`, ...). */
export class BenchOpError extends Error {
  override readonly name = "BenchOpError";
  constructor(
    readonly kind: string,
    message: string = kind,
  ) {
    super(message);
  }
}

export interface BenchTarget {
  /** `ringleader` or `etcd`, for the summary. */
  readonly name: string;
  readonly endpoints: readonly string[];
  put(key: string, value: Uint8Array): Promise<void>;
  /** `hit` when the key exists, `miss` when it does not (not an error). */
  get(key: string, consistency: Consistency): Promise<"hit" | "miss">;
  /** Closes the kept-alive connections. */
  close(): void;
}

export interface HttpTargetOptions {
  endpoints: readonly string[];
  /** Sockets per endpoint; at least the bench's concurrency so no request queues in the agent. */
  maxSockets: number;
  /** A request fails when its socket is idle this long (connecting, or waiting for the answer). */
  timeoutMs: number;
  /** Largest response body read; bigger ones are an error. */
  maxResponseBytes: number;
}

interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** Round-robin over endpoints on kept-alive connections, with a timeout and a bounded response. */
class HttpPool {
  private readonly urls: URL[];
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly parsed = new Map<string, URL>();
  private next = 0;

  constructor(private readonly options: HttpTargetOptions) {
    if (options.endpoints.length === 0) throw new Error("a bench target needs at least one endpoint");
    this.urls = options.endpoints.map((e) => new URL(e));
    const agentOptions = {
      keepAlive: true,
      maxSockets: options.maxSockets,
      maxFreeSockets: options.maxSockets,
    };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
  }

  /** `endpoint` (an API base URL) overrides the round-robin choice for this one request. */
  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: Uint8Array,
    endpoint?: string,
  ): Promise<HttpAnswer> {
    let base: URL;
    if (endpoint !== undefined) {
      base = this.parsed.get(endpoint) ?? new URL(endpoint);
      this.parsed.set(endpoint, base);
    } else {
      base = this.urls[this.next] as URL;
      this.next = (this.next + 1) % this.urls.length;
    }
    const secure = base.protocol === "https:";
    const basePath = base.pathname.replace(/\/+$/, "");
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = (secure ? https : http).request(
        {
          protocol: base.protocol,
          hostname: base.hostname,
          port: base.port,
          method,
          path: basePath + path,
          agent: secure ? this.httpsAgent : this.httpAgent,
          headers: body ? { ...headers, "content-length": String(body.byteLength) } : headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let total = 0;
          res.on("data", (chunk: Buffer) => {
            total += chunk.length;
            if (total > this.options.maxResponseBytes) {
              req.destroy(new BenchOpError("response too large"));
              return;
            }
            chunks.push(chunk);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks, total) }));
          res.on("error", (err) => reject(toOpError(err)));
        },
      );
      req.setTimeout(this.options.timeoutMs, () => req.destroy(new BenchOpError("timeout")));
      req.on("error", (err) => reject(toOpError(err)));
      req.end(body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

function toOpError(err: Error): BenchOpError {
  if (err instanceof BenchOpError) return err;
  const code = "code" in err && typeof err.code === "string" ? err.code : "error";
  return new BenchOpError(`connection ${code}`, err.message);
}

/** `503 unavailable` from `{"error":{"code":"unavailable"}}`, or `http 502` when the body says nothing. */
function httpError(answer: HttpAnswer): BenchOpError {
  let code: string | undefined;
  try {
    const data: unknown = JSON.parse(answer.body.toString("utf8"));
    if (typeof data === "object" && data !== null && "error" in data) {
      const error: unknown = data.error;
      if (typeof error === "object" && error !== null && "code" in error) code = String(error.code);
      else if (typeof error === "string") code = error;
    }
  } catch {
    // Not JSON; the status alone names the error.
  }
  // Bounded and tidy, since error kinds become keys of the summary.
  const tidy = code?.replace(/[^A-Za-z0-9_ -]/g, "").slice(0, 40);
  return new BenchOpError(tidy ? `${answer.status} ${tidy}` : `http ${answer.status}`);
}

/**
 * The Ringleader API. With a `PartitionRouter` (the default in `ringleader bench`), writes and
 * strong or weak reads go straight to the key's partition leader, as the CLI client does;
 * eventual reads, and keys whose leader is not known yet, go round-robin over the endpoints.
 */
export class RingleaderTarget implements BenchTarget {
  readonly name = "ringleader";
  private readonly pool: HttpPool;
  private readonly headers: Record<string, string>;

  constructor(
    readonly endpoints: readonly string[],
    token: string,
    options: Omit<HttpTargetOptions, "endpoints">,
    private readonly router: PartitionRouter | null = null,
  ) {
    this.pool = new HttpPool({ ...options, endpoints });
    this.headers = { authorization: `Bearer ${token}` };
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const headers = { ...this.headers, "content-type": "application/octet-stream" };
    const path = `/v1/kv/${encodeURIComponent(key)}`;
    const answer = await this.pool.request("PUT", path, headers, value, this.router?.endpointFor(key));
    if (answer.status !== 200) throw httpError(answer);
  }

  async get(key: string, consistency: Consistency): Promise<"hit" | "miss"> {
    const query = consistency === "strong" ? "" : `?consistency=${consistency}`;
    const endpoint = consistency === "eventual" ? undefined : this.router?.endpointFor(key);
    const path = `/v1/kv/${encodeURIComponent(key)}${query}`;
    const answer = await this.pool.request("GET", path, this.headers, undefined, endpoint);
    if (answer.status === 200) return "hit";
    if (answer.status === 404) return "miss";
    throw httpError(answer);
  }

  close(): void {
    this.router?.stop();
    this.pool.close();
  }
}

/**
 * etcd 3.4's gRPC-gateway: `POST /v3/kv/put` and `POST /v3/kv/range` with base64 keys and
 * values. A range is linearizable unless `serializable` is set, which is etcd's nearest match for
 * both weak and eventual reads (any member's local state).
 */
export class EtcdTarget implements BenchTarget {
  readonly name = "etcd";
  private readonly pool: HttpPool;
  private readonly headers: Record<string, string>;

  constructor(
    readonly endpoints: readonly string[],
    options: Omit<HttpTargetOptions, "endpoints"> & { token?: string },
  ) {
    this.pool = new HttpPool({ ...options, endpoints });
    this.headers = { "content-type": "application/json" };
    // etcd's gateway takes the token from its auth API in a bare Authorization header.
    if (options.token) this.headers["authorization"] = options.token;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const body = JSON.stringify({ key: base64(key), value: base64(value) });
    const answer = await this.pool.request("POST", "/v3/kv/put", this.headers, Buffer.from(body));
    if (answer.status !== 200) throw httpError(answer);
  }

  async get(key: string, consistency: Consistency): Promise<"hit" | "miss"> {
    const request =
      consistency === "strong" ? { key: base64(key) } : { key: base64(key), serializable: true };
    const answer = await this.pool.request(
      "POST",
      "/v3/kv/range",
      this.headers,
      Buffer.from(JSON.stringify(request)),
    );
    if (answer.status !== 200) throw httpError(answer);
    let data: unknown;
    try {
      data = JSON.parse(answer.body.toString("utf8"));
    } catch {
      throw new BenchOpError("bad response", "etcd range answer is not JSON");
    }
    // The gateway leaves out empty fields, so a miss has no `kvs` at all.
    const kvs = typeof data === "object" && data !== null && "kvs" in data ? data.kvs : undefined;
    return Array.isArray(kvs) && kvs.length > 0 ? "hit" : "miss";
  }

  close(): void {
    this.pool.close();
  }
}

function base64(value: string | Uint8Array): string {
  return typeof value === "string"
    ? Buffer.from(value, "utf8").toString("base64")
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
}
