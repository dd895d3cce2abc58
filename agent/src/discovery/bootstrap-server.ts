/**
 * While a new node discovers its peers, the agent is not running yet; this small HTTP server
 * holds the API port meanwhile and answers only what discovery needs: `POST /v1/discovery`, and
 * `GET /healthz` with 503 "discovering" so a load balancer or a test sees what is going on.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { DISCOVERY_PATH, MAX_DISCOVERY_BODY_BYTES } from "./wire.js";

export type DiscoveryResponder = (
  body: string,
  remote: string | undefined,
) => Promise<{ status: number; body: string }>;

export class BootstrapServer {
  private readonly server: http.Server;

  constructor(private readonly respond: DiscoveryResponder) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  async start(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: string): void => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", connection: "close" });
      res.end(body);
    };
    if (path === "/healthz") return send(503, JSON.stringify({ ok: false, reason: "discovering peers" }));
    if (path !== DISCOVERY_PATH || req.method !== "POST")
      return send(
        503,
        JSON.stringify({
          error: { code: "discovering", message: "this node is still discovering its cluster" },
        }),
      );
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > MAX_DISCOVERY_BODY_BYTES)
          return send(413, JSON.stringify({ error: { code: "too_large" } }));
        chunks.push(chunk as Buffer);
      }
    } catch {
      return;
    }
    const reply = await this.respond(Buffer.concat(chunks).toString("utf8"), req.socket.remoteAddress);
    send(reply.status, reply.body);
  }
}
