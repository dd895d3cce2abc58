/**
 * `httpFetch`, the HTTP client of the agent, the bridge and the CLI, against a real HTTP server
 * on 127.0.0.1: what it sends, what it reads, its bounds, its signal, and its kept-alive
 * connections.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { HttpAnswerTooLargeError, httpFetch } from "../../src/net/http-fetch.js";

type Behaviour = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

describe("httpFetch", () => {
  let server: http.Server;
  let base = "";
  let behave: Behaviour = (_req, res) => res.end();
  let connections = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => behave(req, res, Buffer.concat(chunks)));
    });
    server.on("connection", () => connections++);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("sends the method, headers and body, and reads status, headers and body", async () => {
    let seen: { method?: string; auth?: string; length?: string; body?: string } = {};
    behave = (req, res, body) => {
      seen = {
        method: req.method,
        auth: req.headers.authorization,
        length: req.headers["content-length"],
        body: body.toString(),
      };
      res.writeHead(201, { "x-thing": "a", "content-type": "application/json" }).end('{"ok":true}');
    };
    const res = await httpFetch(`${base}/v1/x`, {
      method: "PUT",
      headers: { authorization: "Bearer t" },
      body: "héllo",
    });
    assert.deepEqual(seen, { method: "PUT", auth: "Bearer t", length: "6", body: "héllo" });
    assert.equal(res.status, 201);
    assert.equal(res.ok, true);
    assert.equal(res.headers.get("X-Thing"), "a");
    assert.equal(res.headers.get("x-missing"), null);
    assert.deepEqual(await res.json(), { ok: true });
    assert.equal(new TextDecoder().decode(await res.arrayBuffer()), '{"ok":true}');

    behave = (_req, res) => res.writeHead(404).end("no");
    const missing = await httpFetch(new URL("/v1/y", base));
    assert.equal(missing.ok, false);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "no");
  });

  it("reuses a kept-alive connection for the next request", async () => {
    behave = (_req, res) => res.end("x");
    await (await httpFetch(`${base}/a`)).text();
    const before = connections;
    for (let i = 0; i < 5; i++) assert.equal(await (await httpFetch(`${base}/a`)).text(), "x");
    assert.equal(connections, before);
  });

  it("refuses an answer over maxBytes, declared or streamed", async () => {
    behave = (_req, res) => res.end("y".repeat(101));
    await assert.rejects(httpFetch(`${base}/big`, { maxBytes: 100 }), HttpAnswerTooLargeError);
    assert.equal(await (await httpFetch(`${base}/big`, { maxBytes: 101 })).text(), "y".repeat(101));
    // No content-length: chunked, the bound holds as the bytes arrive.
    behave = (_req, res) => {
      res.write("z".repeat(60));
      setImmediate(() => res.end("z".repeat(60)));
    };
    await assert.rejects(httpFetch(`${base}/chunked`, { maxBytes: 100 }), HttpAnswerTooLargeError);
    behave = (_req, res) => res.end("fine");
    assert.equal(await (await httpFetch(`${base}/after`)).text(), "fine", "the client still works");
  });

  it("rejects with the signal's reason when it aborts, before or during the request", async () => {
    const reason = new Error("stop");
    const ac = new AbortController();
    ac.abort(reason);
    await assert.rejects(httpFetch(`${base}/`, { signal: ac.signal }), (err) => err === reason);
    behave = () => {}; // never answers
    await assert.rejects(httpFetch(`${base}/slow`, { signal: AbortSignal.timeout(100) }), {
      name: "TimeoutError",
    });
  });

  it("rejects when the connection is refused or lost half way through the answer", async () => {
    const closed = http.createServer();
    closed.listen(0, "127.0.0.1");
    await once(closed, "listening");
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, "close");
    await assert.rejects(httpFetch(`http://127.0.0.1:${port}/`), { code: "ECONNREFUSED" });
    behave = (_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("{");
      setImmediate(() => res.destroy());
    };
    await assert.rejects(httpFetch(`${base}/cut`));
  });

  it("refuses a URL that is not http or https", async () => {
    await assert.rejects(httpFetch("file:///etc/passwd"), TypeError);
  });
});
