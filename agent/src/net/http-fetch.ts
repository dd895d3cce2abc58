/**
 * The HTTP client of every long-running Ringleader process (the agent, the serial bridge, the
 * foreground `cluster up`) and of the CLI: Node's `http`/`https` behind the small part of the
 * `fetch` interface we use.
 *
 * Not the global `fetch`: it is undici, whose HTTP parser is WebAssembly compiled on the first
 * request, and that compilation alone makes V8 malloc ~30 MB that glibc then keeps. An agent's
 * health monitor asks its peers every 10 s, so every agent paid it: a process that loads undici
 * and makes 20 requests to a local server ends at 66 MB resident against 47 for the same requests
 * through `http` (44 before any request). Without it an idle agent of a 3-node cluster holds ~84
 * MB against 87-94, an idle bridge 66 against 77, and agents peak ~6 MB lower at c=64 puts (where
 * the load reuses the memory glibc kept): session 24's notes on issue 3.
 *
 * The answer is read whole before the promise resolves (our answers are small, and bounded by
 * `maxBytes`), so an answer nobody reads never holds its connection.
 */
import http from "node:http";
import https from "node:https";

export interface HttpInit {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Aborting rejects with the signal's reason (a `TimeoutError` for `AbortSignal.timeout`). */
  readonly signal?: AbortSignal;
  /** A longer answer fails with `HttpAnswerTooLargeError`; `DEFAULT_MAX_ANSWER_BYTES` if unset. */
  readonly maxBytes?: number;
}

/** The part of a `fetch` Response the callers read; a real `Response` has it too. */
export interface HttpAnswer {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** Present for `Response` compatibility: the answer is already read, so this does nothing. */
  readonly body: { cancel(): Promise<void> } | null;
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** `httpFetch`'s shape; tests inject a function of this type (the global `fetch` is one). */
export type HttpFetch = (url: string | URL, init?: HttpInit) => Promise<HttpAnswer>;

export const DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** An answer longer than the caller's bound; the connection is closed. */
export class HttpAnswerTooLargeError extends Error {
  override readonly name = "HttpAnswerTooLargeError";
  constructor(readonly maxBytes: number) {
    super(`the answer exceeds ${maxBytes} bytes`);
  }
}

/**
 * Kept-alive connections, closed after 4 s idle: before the 5 s after which Node's servers (the
 * agent's API) close an idle connection, so a request rarely lands on one the server is closing.
 */
const agentOptions = { keepAlive: true, timeout: 4000 };
const httpAgent = new http.Agent(agentOptions);
const httpsAgent = new https.Agent(agentOptions);

class ReadAnswer implements HttpAnswer {
  readonly ok: boolean;
  readonly body = null;
  readonly headers: { get(name: string): string | null };
  constructor(
    readonly status: number,
    rawHeaders: http.IncomingHttpHeaders,
    private readonly bytes: Buffer,
  ) {
    this.ok = status >= 200 && status <= 299;
    this.headers = {
      get: (name) => {
        const v = rawHeaders[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
      },
    };
  }
  text(): Promise<string> {
    return Promise.resolve(this.bytes.toString("utf8"));
  }
  json(): Promise<unknown> {
    return this.text().then((t) => JSON.parse(t) as unknown);
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    const b = this.bytes;
    return Promise.resolve(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  }
}

export const httpFetch: HttpFetch = (url, init = {}) => {
  const target = typeof url === "string" ? new URL(url) : url;
  const secure = target.protocol === "https:";
  if (!secure && target.protocol !== "http:") {
    return Promise.reject(new TypeError(`not an http(s) URL: ${target.href}`));
  }
  const maxBytes = init.maxBytes ?? DEFAULT_MAX_ANSWER_BYTES;
  const { signal } = init;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (err: unknown, answer?: HttpAnswer): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      if (answer) resolve(answer);
      else reject(err);
    };
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers["content-length"] = Buffer.byteLength(init.body);
    const req = (secure ? https : http).request(
      target,
      { method: init.method ?? "GET", headers, agent: secure ? httpsAgent : httpAgent },
      (res) => {
        const declared = Number(res.headers["content-length"] ?? NaN);
        const tooLarge = (): void => {
          finish(new HttpAnswerTooLargeError(maxBytes));
          req.destroy();
        };
        if (declared > maxBytes) {
          tooLarge();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          if (settled) return;
          size += chunk.length;
          if (size > maxBytes) tooLarge();
          else chunks.push(chunk);
        });
        res.on("end", () =>
          finish(null, new ReadAnswer(res.statusCode ?? 0, res.headers, Buffer.concat(chunks, size))),
        );
        // The connection lost half way through the answer.
        res.on("error", (err) => finish(err));
      },
    );
    const onAbort = (): void => {
      finish(signal?.reason);
      req.destroy();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (err) => finish(err));
    req.end(init.body);
  });
};
