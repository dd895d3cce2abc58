/**
 * An in-memory `KvService` for tests of the HTTP server, the client and the CLI: a sorted map with
 * a version counter, plus switches that make calls fail or hang so the error paths can be reached.
 */
import { EventEmitter, once } from "node:events";
import { ApiServer, type ApiServerOptions } from "../../src/api/server.js";
import { CasMismatchError } from "../../src/api/errors.js";
import type { Consistency, KvItem, KvService } from "../../src/api/service.js";

export const TEST_TOKEN = "test-token-0123456789";

export class FakeKvService implements KvService {
  readonly data = new Map<string, { value: Uint8Array; version: string }>();
  private counter = 0;
  /** Every call, in order, with its method name and key (or prefix). */
  readonly calls: { op: string; key: string; consistency?: Consistency; cas?: string; strategy?: string }[] =
    [];
  /** When set, every KV call throws it. */
  failWith: Error | null = null;
  /** When true, KV calls never finish on their own: they wait for their signal and reject with its reason. */
  hang = false;
  /** Emits "aborted" with the signal's reason when a hanging call sees its signal fire, "called" on every call. */
  readonly events = new EventEmitter();
  health: { ok: boolean; reason?: string } = { ok: true };
  statusView: unknown = { nodes: [] };

  async put(key: string, value: Uint8Array, opts: { cas?: string; signal?: AbortSignal }) {
    await this.enter("put", key, opts.signal, { ...(opts.cas === undefined ? {} : { cas: opts.cas }) });
    this.checkCas(key, opts.cas);
    const version = String(++this.counter);
    this.data.set(key, { value: Uint8Array.from(value), version });
    return { version };
  }

  async get(key: string, opts: { consistency: Consistency; signal?: AbortSignal; strategy?: string }) {
    await this.enter("get", key, opts.signal, {
      consistency: opts.consistency,
      ...(opts.strategy ? { strategy: opts.strategy } : {}),
    });
    return this.data.get(key) ?? null;
  }

  async del(key: string, opts: { cas?: string; signal?: AbortSignal }) {
    await this.enter("del", key, opts.signal, { ...(opts.cas === undefined ? {} : { cas: opts.cas }) });
    this.checkCas(key, opts.cas);
    const version = String(++this.counter);
    return { version, deleted: this.data.delete(key) };
  }

  async scan(opts: {
    prefix: string;
    limit: number;
    after?: string;
    consistency: Consistency;
    signal?: AbortSignal;
  }) {
    await this.enter("scan", opts.prefix, opts.signal, { consistency: opts.consistency });
    const keys = [...this.data.keys()]
      .filter((k) => k.startsWith(opts.prefix) && (opts.after === undefined || k > opts.after))
      .sort();
    const page = keys.slice(0, opts.limit);
    const items: KvItem[] = page.map((key) => {
      const entry = this.data.get(key);
      if (!entry) throw new Error("unreachable: key vanished");
      return { key, value: entry.value, version: entry.version };
    });
    const last = page[page.length - 1];
    return { items, next: keys.length > opts.limit && last !== undefined ? last : null };
  }

  async status(): Promise<unknown> {
    return this.statusView;
  }

  async metrics(): Promise<string> {
    return "# HELP ringleader_up 1 when up\n# TYPE ringleader_up gauge\nringleader_up 1\n";
  }

  healthy() {
    return this.health;
  }

  private checkCas(key: string, cas: string | undefined): void {
    if (cas === undefined) return;
    const current = this.data.get(key)?.version ?? "0";
    if (current !== cas) throw new CasMismatchError(`key ${key} is at version ${current}, not ${cas}`);
  }

  private async enter(
    op: string,
    key: string,
    signal: AbortSignal | undefined,
    extra: object,
  ): Promise<void> {
    this.calls.push({ op, key, ...extra });
    this.events.emit("called", op);
    if (this.failWith) throw this.failWith;
    if (!this.hang) return;
    if (!signal) throw new Error("a hanging call needs a signal to end it");
    if (!signal.aborted) await once(signal, "abort");
    this.events.emit("aborted", signal.reason);
    throw signal.reason;
  }
}

export interface TestServer {
  server: ApiServer;
  service: FakeKvService;
  url: string;
  requests: { route: string; status: number; durationMs: number }[];
  /** Resolves once `count` requests have been reported to `onRequest`, or rejects after `ms`. */
  reported(count: number, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

/** An `ApiServer` on 127.0.0.1 with a free port and a fresh fake service. */
export async function startTestServer(
  options: Partial<Omit<ApiServerOptions, "service">> = {},
): Promise<TestServer> {
  const service = new FakeKvService();
  const requests: TestServer["requests"] = [];
  const hook = new EventEmitter();
  const server = new ApiServer({
    service,
    token: TEST_TOKEN,
    host: "127.0.0.1",
    port: 0,
    onRequest: (route, status, durationMs) => {
      requests.push({ route, status, durationMs });
      hook.emit("request");
    },
    ...options,
  });
  const { port } = await server.start();
  const reported = async (count: number, ms = 5000) => {
    const signal = AbortSignal.timeout(ms);
    while (requests.length < count) await once(hook, "request", { signal });
  };
  return { server, service, url: `http://127.0.0.1:${port}`, requests, reported, stop: () => server.stop() };
}

/** Resolves with the first `event` from `emitter`, or rejects after `ms`. */
export async function eventWithin<T>(emitter: EventEmitter, event: string, ms: number): Promise<T> {
  const [value] = (await once(emitter, event, { signal: AbortSignal.timeout(ms) })) as [T];
  return value;
}
