/**
 * The client HTTP API: `/v1/kv`, `/v1/status`, `/healthz` and `/metrics` on Node's `http`,
 * translating each request into one `KvService` call. The contract (paths, codes, headers) is
 * written out in `README.md` next to this file; tools outside this code rely on it.
 *
 * Authentication: every `/v1` request needs `Authorization: Bearer <token>`. `/healthz` and
 * `/metrics` need none, so load balancers and Prometheus can poll them; they reveal no keys or
 * values, only counts and timings.
 */
import { timingSafeEqual } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { hasBody, readBoundedBody, RequestAbortedError } from "./body.js";
import {
  ApiError,
  BadRequestError,
  InternalServerError,
  MethodNotAllowedError,
  NotFoundError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "./errors.js";
import type { ExtraRoute } from "./extra-routes.js";
import { DEFAULT_API_LIMITS, type ApiLimits } from "./limits.js";
import { InFlight, InFlightList } from "./in-flight.js";
import { clientAddress } from "../balance/address.js";
import {
  decodeKey,
  parseBoundedText,
  parseCas,
  parseConsistency,
  parseLimit,
  parseQuery,
  parseStrategyParam,
} from "./parse.js";
import type { KvService } from "./service.js";
import { AGGREGATE_PARAMS, parseAggregateParams } from "./aggregate.js";
import { snapshotReply } from "./snapshot-route.js";

/** The part of the agent's logger the server uses; any structured logger fits. */
export interface ApiLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Called once per request when its response is done. `route` is a template such as
 * `PUT /v1/kv/:key` (never the key itself, so a metric labelled by it stays small); `status` is
 * 499 when the client went away before the answer.
 */
export type RequestHook = (route: string, status: number, durationMs: number) => void;

export interface ApiServerOptions {
  service: KvService;
  /** The bearer token every `/v1` request must carry. */
  token: string;
  /** A second token that is accepted for GET and HEAD only (dashboards, monitoring). */
  readToken?: string;
  /** Routes added by other parts of the agent (dashboard, health); see `extra-routes.ts`. */
  extraRoutes?: readonly ExtraRoute[];
  host: string;
  /** 0 picks a free port; `start()` returns the one chosen. */
  port: number;
  limits?: Partial<ApiLimits>;
  logger?: ApiLogger;
  onRequest?: RequestHook;
  /** Milliseconds from an arbitrary origin, for request durations. */
  now?: () => number;
  /**
   * Answers `POST /v1/discovery` (see `agent/src/discovery/wire.ts`): no bearer token, the body
   * proves the cluster secret itself. Absent: the route answers 404.
   */
  discovery?: (body: string, remote: string | undefined) => Promise<{ status: number; body: string }>;
}

/** The status reported to `onRequest` when the client disconnected first (nginx's convention). */
export const CLIENT_CLOSED_STATUS = 499;
/** How long a stopping server lets in-flight responses finish before it cuts their connections. */
const STOP_GRACE_MS = 1000;
/**
 * After answering a request whose body was left unread (413, or an error before the body was
 * needed), the server keeps reading and discarding for this long (or this many bytes) before it
 * closes the socket. Closing at once would send a TCP reset that can destroy the answer in the
 * client's receive buffer before the client reads it.
 */
const LINGER_MS = 2000;
/**
 * How long an idle kept-alive client connection stays open. Node's default, 5 s, is shorter than
 * most clients keep idle connections for reuse (Go 90 s, curl 118 s, Node's http.Agent without a
 * `timeout` forever): a client that reuses a connection just as the server closes it gets a
 * reset instead of an answer. `ringleader bench` saw 2 such resets in 12,000 puts. Outliving the
 * clients' own idle limits leaves the close to them.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 125_000;
const LINGER_MAX_BYTES = 4 * 1024 * 1024;
/** Methods that get their own route label; any other becomes `OTHER` so labels stay bounded. */
const LABELLED_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"];

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array;
}

interface RequestContext {
  req: IncomingMessage;
  /** What follows `?` in the URL, still encoded. */
  query: string;
  /** What follows `/v1/kv/` in the path, still encoded. */
  rawKey: string;
  signal: AbortSignal;
  /** Set once the body has been read to its end, so the connection can be kept alive. */
  bodyConsumed: boolean;
}

type Handler = (ctx: RequestContext) => Promise<Reply>;

interface Route {
  template: string;
  /** Matches every path that starts with `template`; the rest is passed as `rawKey`. */
  prefix?: boolean;
  /** `/v1` routes need the bearer token. */
  authenticated: boolean;
  methods: Partial<Record<string, Handler>>;
}

const silentLogger: ApiLogger = { debug: () => {}, warn: () => {}, error: () => {} };

function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
    body: JSON.stringify(value),
  };
}

function errorReply(err: ApiError): Reply {
  const headers: Record<string, string> = {};
  if (err instanceof ServiceUnavailableError) headers["retry-after"] = String(err.retryAfterSeconds);
  if (err instanceof MethodNotAllowedError) headers["allow"] = err.allow.join(", ");
  if (err instanceof UnauthorizedError) headers["www-authenticate"] = 'Bearer realm="ringleader"';
  return jsonReply(err.status, { error: { code: err.code, message: err.message } }, headers);
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * Whether the presented token is `expected`, in a time that does not depend on where they
 * differ. The time does show whether the lengths match, but a token's length is no secret: every
 * token `ringleader init` makes is `rl_` and 32 base64url characters. Hashing both sides first
 * would hide the length as well, at the cost of one SHA-256 per request (about 2 % of an agent's
 * CPU under load).
 */
function sameToken(presented: string, expected: Buffer): boolean {
  if (Buffer.byteLength(presented, "utf8") !== expected.length) return false;
  return timingSafeEqual(Buffer.from(presented, "utf8"), expected);
}

export class ApiServer {
  private readonly service: KvService;
  private readonly token: Buffer;
  private readonly readToken: Buffer | null;
  private readonly extraRoutes: readonly ExtraRoute[];
  private readonly host: string;
  private readonly port: number;
  private readonly limits: ApiLimits;
  private readonly logger: ApiLogger;
  private readonly onRequest: RequestHook | undefined;
  private readonly discovery: ApiServerOptions["discovery"];
  private readonly now: () => number;
  private readonly server: http.Server;
  private readonly routes: Route[];
  /**
   * Requests being served, in arrival order, which is also their deadline order (one timeout for
   * all): one timer, for the oldest, times them out (see `expire`).
   */
  private readonly inFlight = new InFlightList();
  private expiry: NodeJS.Timeout | null = null;
  /** Open connections and how many requests each is serving; `stop()` closes the quiet ones at once. */
  private readonly sockets = new Map<Socket, number>();
  private stopping = false;
  private stopped: Promise<void> | undefined;

  constructor(options: ApiServerOptions) {
    if (options.token.length === 0) throw new Error("ApiServer needs a non-empty token");
    this.service = options.service;
    this.token = Buffer.from(options.token, "utf8");
    this.readToken = options.readToken ? Buffer.from(options.readToken, "utf8") : null;
    this.extraRoutes = options.extraRoutes ?? [];
    this.host = options.host;
    this.port = options.port;
    this.limits = { ...DEFAULT_API_LIMITS, ...options.limits };
    this.logger = options.logger ?? silentLogger;
    this.onRequest = options.onRequest;
    this.discovery = options.discovery;
    this.now = options.now ?? (() => performance.now());
    this.routes = this.buildRoutes();
    this.server = http.createServer(
      {
        // Node's own bounds on receiving a request; the handler has its own, shorter timeout.
        headersTimeout: 10_000,
        requestTimeout: Math.max(10_000, this.limits.requestTimeoutMs * 2),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.maxConnections = this.limits.maxConnections;
    this.server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.server.on("connection", (socket: Socket) => {
      this.sockets.set(socket, 0);
      socket.once("close", () => this.sockets.delete(socket));
    });
  }

  /** Starts listening; resolves with the port actually bound (useful with port 0). */
  start(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      this.server.listen(this.port, this.host, () => {
        this.server.off("error", onError);
        resolve({ port: (this.server.address() as AddressInfo).port });
      });
    });
  }

  /**
   * Stops accepting connections, answers requests still running with 503 (their service calls see
   * their signal fire), and resolves once every connection is closed.
   */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    if (!this.server.listening) return Promise.resolve();
    this.stopped = this.close();
    return this.stopped;
  }

  private async close(): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Node's closeIdleConnections() spares connections that have not sent a request yet (clients
    // open spare ones), so quiet connections are closed here by their request count.
    for (const [socket, requests] of this.sockets) if (requests === 0) socket.destroy();
    for (const request of this.inFlight) request.abort(new ServiceUnavailableError("the server is stopping"));
    const grace = setTimeout(() => this.server.closeAllConnections(), STOP_GRACE_MS);
    try {
      await closed;
    } finally {
      clearTimeout(grace);
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const startedMs = this.now();
    const socket = req.socket;
    this.sockets.set(socket, (this.sockets.get(socket) ?? 0) + 1);
    const request = new InFlight(performance.now() + this.limits.requestTimeoutMs);
    this.inFlight.add(request);
    this.expiry ??= setTimeout(this.expire, this.limits.requestTimeoutMs);
    const url = req.url ?? "/";
    const queryAt = url.indexOf("?");
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    const ctx: RequestContext = {
      req,
      query: queryAt < 0 ? "" : url.slice(queryAt + 1),
      rawKey: "",
      signal: request.signal,
      bodyConsumed: false,
    };
    const match = this.match(path);
    if (match) ctx.rawKey = match.rawKey;
    const template = match ? match.route.template + (match.route.prefix ? "*" : "") : "";
    const routeLabel = match ? `${this.methodLabel(req.method)} ${template}` : "unmatched";

    res.once("close", () => {
      this.inFlight.delete(request);
      if (this.inFlight.size === 0 && this.expiry !== null) {
        clearTimeout(this.expiry);
        this.expiry = null;
      }
      const requests = this.sockets.get(socket);
      if (requests !== undefined) this.sockets.set(socket, Math.max(0, requests - 1));
      if (this.stopping && requests === 1) socket.destroySoon();
      const finished = res.writableFinished;
      if (!finished) request.abort(new RequestAbortedError());
      this.report(routeLabel, finished ? res.statusCode : CLIENT_CLOSED_STATUS, this.now() - startedMs);
    });

    void this.respond(request, ctx, res, path, match?.route);
  }

  /** Times out the requests past their deadline, then waits for the oldest of the others. */
  private readonly expire = (): void => {
    this.expiry = null;
    const now = performance.now();
    for (const request of this.inFlight) {
      if (request.deadlineMs > now) {
        this.expiry = setTimeout(this.expire, request.deadlineMs - now);
        return;
      }
      const ms = this.limits.requestTimeoutMs;
      request.abort(new ServiceUnavailableError(`the request did not complete within ${ms} ms`));
    }
  };

  private async respond(
    request: InFlight,
    ctx: RequestContext,
    res: ServerResponse,
    path: string,
    route: Route | undefined,
  ) {
    let reply: Reply | null;
    try {
      reply = await request.until(this.dispatch(ctx, path, route));
    } catch (err) {
      reply = this.replyForError(err, ctx);
    }
    if (reply === null || res.headersSent || res.destroyed) {
      if (reply === null) res.destroy();
      return;
    }
    try {
      this.send(ctx, res, reply);
    } catch (err) {
      // A header the service handed us that HTTP cannot carry (a version with a newline, say).
      this.logger.error("api response failed", { error: err instanceof Error ? err.message : String(err) });
      res.destroy();
    }
  }

  private async dispatch(ctx: RequestContext, path: string, route: Route | undefined): Promise<Reply> {
    const needsToken = route ? route.authenticated : path === "/v1" || path.startsWith("/v1/");
    if (needsToken && !this.authorized(ctx.req.headers.authorization, ctx.req.method)) {
      throw new UnauthorizedError();
    }
    if (!route) throw new NotFoundError(`no route for ${path.slice(0, 200)}`);
    const method = ctx.req.method ?? "";
    const handler = route.methods[method] ?? (method === "HEAD" ? route.methods["GET"] : undefined);
    if (!handler) {
      const allow = Object.keys(route.methods);
      if (allow.includes("GET")) allow.push("HEAD");
      throw new MethodNotAllowedError(`${route.template} does not take ${method.slice(0, 20)}`, allow);
    }
    return handler(ctx);
  }

  private replyForError(err: unknown, ctx: RequestContext): Reply | null {
    if (err instanceof ApiError) return errorReply(err);
    // The client is gone: nobody to answer.
    if (err instanceof RequestAbortedError) return null;
    this.logger.error("api request failed", {
      method: ctx.req.method,
      url: ctx.req.url?.slice(0, 200),
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    return errorReply(new InternalServerError());
  }

  private send(ctx: RequestContext, res: ServerResponse, reply: Reply): void {
    const bodyLeftUnread = hasBody(ctx.req) && !ctx.bodyConsumed;
    for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
    res.setHeader("content-length", String(Buffer.byteLength(reply.body)));
    if (bodyLeftUnread || this.stopping) res.setHeader("connection", "close");
    res.statusCode = reply.status;
    if (bodyLeftUnread) res.once("finish", () => this.linger(ctx.req));
    res.end(reply.body);
  }

  /** Discards what is left of an unread body for a bounded time and size, then closes the socket. */
  private linger(req: IncomingMessage): void {
    const socket = req.socket;
    let discarded = 0;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
    req.on("data", (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > LINGER_MAX_BYTES) socket.destroy();
    });
    req.resume();
  }

  private report(route: string, status: number, durationMs: number): void {
    if (!this.onRequest) return;
    try {
      this.onRequest(route, status, durationMs);
    } catch (err) {
      this.logger.warn("onRequest hook threw", { error: err instanceof Error ? err.message : String(err) });
    }
  }

  private authorized(header: string | undefined, method: string | undefined): boolean {
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    const presented = match?.[1];
    if (presented === undefined) return false;
    if (sameToken(presented, this.token)) return true;
    // The read-only token reads; anything that could change state needs the full token.
    const reads = method === "GET" || method === "HEAD";
    return reads && this.readToken !== null && sameToken(presented, this.readToken);
  }

  private methodLabel(method: string | undefined): string {
    return method !== undefined && LABELLED_METHODS.includes(method) ? method : "OTHER";
  }

  private match(path: string): { route: Route; rawKey: string } | null {
    const KEY_PREFIX = "/v1/kv/";
    if (path.startsWith(KEY_PREFIX)) {
      const keyRoute = this.routes.find((r) => r.template === "/v1/kv/:key");
      return keyRoute ? { route: keyRoute, rawKey: path.slice(KEY_PREFIX.length) } : null;
    }
    const MEMBER_PREFIX = "/v1/members/";
    if (path.startsWith(MEMBER_PREFIX)) {
      const memberRoute = this.routes.find((r) => r.template === "/v1/members/:id");
      return memberRoute ? { route: memberRoute, rawKey: path.slice(MEMBER_PREFIX.length) } : null;
    }
    const route = this.routes.find((r) => r.template === path);
    if (route) return { route, rawKey: "" };
    const prefixed = this.routes.find((r) => r.prefix && path.startsWith(r.template));
    return prefixed ? { route: prefixed, rawKey: path.slice(prefixed.template.length) } : null;
  }

  private buildRoutes(): Route[] {
    return [
      {
        template: "/v1/kv/:key",
        authenticated: true,
        methods: { GET: this.getKey, PUT: this.putKey, DELETE: this.delKey },
      },
      { template: "/v1/kv", authenticated: true, methods: { GET: this.scan } },
      { template: "/v1/status", authenticated: true, methods: { GET: this.status } },
      { template: "/v1/aggregate", authenticated: true, methods: { GET: this.aggregate } },
      {
        template: "/v1/members",
        authenticated: true,
        methods: { GET: this.listMembers, POST: this.joinMember },
      },
      {
        template: "/v1/members/:id",
        authenticated: true,
        methods: { POST: this.memberAction, DELETE: this.removeMember },
      },
      {
        template: "/v1/snapshot",
        authenticated: true,
        methods: { GET: (ctx) => snapshotReply(this.service, ctx.query, ctx.signal, forwardHops(ctx.req)) },
      },
      { template: "/v1/discovery", authenticated: false, methods: { POST: this.discover } },
      { template: "/healthz", authenticated: false, methods: { GET: this.healthz } },
      { template: "/metrics", authenticated: false, methods: { GET: this.metrics } },
      ...this.extraRoutes.map((r) => this.adaptRoute(r)),
    ];
  }

  private adaptRoute(r: ExtraRoute): Route {
    const methods: Partial<Record<string, Handler>> = {};
    for (const [method, handler] of Object.entries(r.methods)) {
      if (!handler) continue;
      methods[method] = (ctx) =>
        handler({
          method: ctx.req.method ?? "",
          query: ctx.query,
          rest: ctx.rawKey,
          headers: ctx.req.headers,
          signal: ctx.signal,
        });
    }
    return {
      template: r.template,
      authenticated: r.authenticated,
      methods,
      ...(r.prefix ? { prefix: true } : {}),
    };
  }

  private readonly putKey: Handler = async (ctx) => {
    const cas = parseCas(parseQuery(ctx.query, ["cas"]).get("cas"));
    const key = decodeKey(ctx.rawKey, this.limits.maxKeyBytes);
    const value = await readBoundedBody(ctx.req, this.limits.maxValueBytes);
    ctx.bodyConsumed = true;
    const opts =
      cas === undefined
        ? { signal: ctx.signal, hops: forwardHops(ctx.req) }
        : { cas, signal: ctx.signal, hops: forwardHops(ctx.req) };
    const { version } = await this.service.put(key, value, opts);
    return jsonReply(200, { version }, { "x-ringleader-version": version });
  };

  private readonly getKey: Handler = async (ctx) => {
    const params = parseQuery(ctx.query, ["consistency", "strategy"]);
    const consistency = parseConsistency(params.get("consistency"));
    const strategy = parseStrategyParam(params.get("strategy"));
    const key = decodeKey(ctx.rawKey, this.limits.maxKeyBytes);
    const hops = forwardHops(ctx.req);
    const found = await this.service.get(key, {
      consistency,
      signal: ctx.signal,
      hops,
      ...(strategy ? { strategy } : {}),
      // Only another agent sets the hop header; only then is its x-forwarded-for believed.
      clientAddress: clientAddress(
        ctx.req.socket.remoteAddress,
        ctx.req.headers["x-forwarded-for"],
        hops > 0,
      ),
    });
    if (found === null) throw new NotFoundError(`key ${JSON.stringify(key)} not found`);
    return {
      status: 200,
      headers: {
        "content-type": "application/octet-stream",
        "x-ringleader-version": found.version,
        ...(found.servedBy ? { [SERVED_BY_HEADER]: found.servedBy } : {}),
      },
      body: found.value,
    };
  };

  private readonly delKey: Handler = async (ctx) => {
    const cas = parseCas(parseQuery(ctx.query, ["cas"]).get("cas"));
    const key = decodeKey(ctx.rawKey, this.limits.maxKeyBytes);
    const opts =
      cas === undefined
        ? { signal: ctx.signal, hops: forwardHops(ctx.req) }
        : { cas, signal: ctx.signal, hops: forwardHops(ctx.req) };
    const { version, deleted } = await this.service.del(key, opts);
    return jsonReply(200, { version, deleted }, { "x-ringleader-version": version });
  };

  private readonly scan: Handler = async (ctx) => {
    const params = parseQuery(ctx.query, ["prefix", "limit", "after", "consistency", "partition"]);
    const partition = parsePartition(params.get("partition"));
    const prefix = parseBoundedText(params.get("prefix"), "prefix", this.limits.maxKeyBytes) ?? "";
    const limit = parseLimit(params.get("limit"), this.limits);
    const after = parseBoundedText(params.get("after"), "after", this.limits.maxCursorBytes);
    const consistency = parseConsistency(params.get("consistency"));
    const page = await this.service.scan({
      prefix,
      limit,
      consistency,
      signal: ctx.signal,
      hops: forwardHops(ctx.req),
      ...(after === undefined || after === "" ? {} : { after }),
      ...(partition === undefined ? {} : { partition }),
    });
    const items = page.items.map((item) => ({
      key: item.key,
      value: toBase64(item.value),
      version: item.version,
    }));
    return jsonReply(200, { items, next: page.next });
  };

  private readonly status: Handler = async (ctx) => {
    parseQuery(ctx.query, []);
    return jsonReply(200, await this.service.status());
  };

  private readonly aggregate: Handler = async (ctx) => {
    const params = parseQuery(ctx.query, AGGREGATE_PARAMS);
    if (!this.service.aggregate) throw new NotFoundError("this service has no aggregation");
    const opts = parseAggregateParams(params, this.limits.maxKeyBytes);
    const result = await this.service.aggregate({ ...opts, signal: ctx.signal, hops: forwardHops(ctx.req) });
    return jsonReply(200, result);
  };

  private readonly listMembers: Handler = async (ctx) => {
    parseQuery(ctx.query, []);
    if (!this.service.members) throw new NotFoundError("this service has no membership");
    return jsonReply(200, { members: await this.service.members.list() });
  };

  private readonly discover: Handler = async (ctx) => {
    if (!this.discovery) throw new NotFoundError("discovery is off on this node");
    const body = await readBoundedBody(ctx.req, 64 * 1024);
    ctx.bodyConsumed = true;
    const reply = await this.discovery(Buffer.from(body).toString("utf8"), ctx.req.socket.remoteAddress);
    return {
      status: reply.status,
      headers: { "content-type": "application/json; charset=utf-8" },
      body: reply.body,
    };
  };

  private readonly joinMember: Handler = async (ctx) => {
    parseQuery(ctx.query, []);
    if (!this.service.members) throw new NotFoundError("this service has no membership");
    const body = await readBoundedBody(ctx.req, 64 * 1024);
    ctx.bodyConsumed = true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body).toString("utf8"));
    } catch {
      throw new BadRequestError("the body must be JSON: {id, peer, api, weight}");
    }
    return jsonReply(200, await this.service.members.join(parsed, ctx.signal));
  };

  private readonly memberAction: Handler = async (ctx) => {
    parseQuery(ctx.query, []);
    if (!this.service.members) throw new NotFoundError("this service has no membership");
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/(drain|step-down)$/.exec(ctx.rawKey);
    if (!m) throw new NotFoundError("member actions: POST /v1/members/<id>/drain or /step-down");
    if (m[2] === "step-down") {
      if (!this.service.members.stepDown) throw new NotFoundError("this service cannot step down");
      return jsonReply(200, await this.service.members.stepDown(m[1]!, ctx.signal, forwardHops(ctx.req)));
    }
    return jsonReply(200, await this.service.members.drain(m[1]!, ctx.signal));
  };

  private readonly removeMember: Handler = async (ctx) => {
    const force = parseQuery(ctx.query, ["force"]).get("force") === "true";
    if (!this.service.members) throw new NotFoundError("this service has no membership");
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(ctx.rawKey)) throw new BadRequestError("bad member id");
    return jsonReply(200, await this.service.members.remove(ctx.rawKey, force, ctx.signal));
  };

  private readonly healthz: Handler = async () => {
    const health = this.service.healthy();
    if (health.ok) return jsonReply(200, { ok: true });
    const reason = health.reason ?? "unhealthy";
    // Both shapes: `ok`/`reason` for health checkers, `error` like every other error body.
    return jsonReply(
      503,
      { ok: false, reason, error: { code: "unavailable", message: reason } },
      { "retry-after": "1" },
    );
  };

  private readonly metrics: Handler = async () => {
    const text = await this.service.metrics();
    return {
      status: 200,
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      body: text,
    };
  };
}

/** Requests forwarded between agents carry their hop count, so a misrouted one cannot loop. */
export const HOPS_HEADER = "x-ringleader-hops";
/** The node whose replica answered a read (`GET /v1/kv/:key`). */
export const SERVED_BY_HEADER = "x-ringleader-served-by";

function forwardHops(req: IncomingMessage): number {
  const raw = req.headers[HOPS_HEADER];
  const n = typeof raw === "string" ? Number(raw) : 0;
  return Number.isInteger(n) && n >= 0 && n <= 16 ? n : 16;
}

function parsePartition(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,4}$/.test(raw)) throw new BadRequestError("partition must be a partition number");
  return Number(raw);
}
