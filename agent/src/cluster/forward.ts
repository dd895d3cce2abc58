/**
 * Forwards a client request to the agent that hosts the key's partition, over the same HTTP API
 * clients use (keep-alive connections, the cluster token). A request carries its hop count; an
 * agent refuses to forward one that has already travelled `MAX_HOPS` times, so a placement that
 * is changing under us cannot make two agents bounce a request between them forever.
 */
import http from "node:http";
import { ServiceUnavailableError, errorFromResponse } from "../api/errors.js";
import { HOPS_HEADER, SERVED_BY_HEADER } from "../api/server.js";

export const MAX_HOPS = 2;

export interface ForwardReply {
  readonly status: number;
  readonly body: Buffer;
  readonly version: string | null;
  /** The node that answered a read (`x-ringleader-served-by`), when it says. */
  readonly servedBy: string | null;
}

export class Forwarder {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly token: string,
    private readonly timeoutMs = 5000,
  ) {}

  async request(
    base: string,
    method: string,
    path: string,
    opts: { body?: Uint8Array; hops: number; signal?: AbortSignal; clientAddress?: string },
  ): Promise<ForwardReply> {
    if (opts.hops >= MAX_HOPS) {
      throw new ServiceUnavailableError(
        "the request was forwarded too often; the placement is changing, retry",
        1,
      );
    }
    const url = new URL(path, base);
    return new Promise<ForwardReply>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.token}`,
            [HOPS_HEADER]: String(opts.hops + 1),
            // The client's own address, for the next agent's ip-hash (trusted on hop requests only).
            ...(opts.clientAddress ? { "x-forwarded-for": opts.clientAddress } : {}),
            ...(opts.body ? { "content-length": String(opts.body.byteLength) } : {}),
          },
          timeout: this.timeoutMs,
          ...(opts.signal ? { signal: opts.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks),
              version: (res.headers["x-ringleader-version"] as string | undefined) ?? null,
              servedBy: (res.headers[SERVED_BY_HEADER] as string | undefined) ?? null,
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer from ${base} in ${this.timeoutMs} ms`)));
      req.on("error", (err) =>
        reject(
          new ServiceUnavailableError(`could not reach the partition's node ${base}: ${err.message}`, 1),
        ),
      );
      req.end(opts.body);
    });
  }

  /** Turns an error reply into the API error it stands for. */
  static fail(reply: ForwardReply): never {
    let code: string | undefined;
    let message = `forwarded request failed with status ${reply.status}`;
    try {
      const parsed = JSON.parse(reply.body.toString("utf8")) as {
        error?: { code?: string; message?: string };
      };
      code = parsed.error?.code;
      message = parsed.error?.message ?? message;
    } catch {
      // Not JSON: keep the generic message.
    }
    throw errorFromResponse(reply.status, code, message, 1);
  }

  close(): void {
    this.agent.destroy();
  }
}
