import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { ServiceUnavailableError } from "../../src/api/errors.js";
import { KEEP_ALIVE_TIMEOUT_MS } from "../../src/api/server.js";
import { eventWithin, startTestServer, TEST_TOKEN, type TestServer } from "./fake-service.js";

const auth = { authorization: `Bearer ${TEST_TOKEN}` };

interface ErrorBody {
  error: { code: string; message: string };
}

async function call(
  t: TestServer,
  method: string,
  path: string,
  init: { body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Response> {
  return fetch(t.url + path, {
    method,
    headers: init.headers ?? auth,
    ...(init.body === undefined ? {} : { body: init.body }),
  });
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as ErrorBody;
  assert.equal(typeof body.error.message, "string");
  return body.error.code;
}

async function putValue(t: TestServer, key: string, value: string, query = ""): Promise<Response> {
  return call(t, "PUT", `/v1/kv/${encodeURIComponent(key)}${query}`, { body: value });
}

describe("api server: authentication", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer()));
  after(() => t.stop());

  it("answers 401 unauthorized without a token, with a wrong token and with a wrong scheme", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: `Basic ${TEST_TOKEN}` },
      { authorization: `Bearer ${TEST_TOKEN}x` },
      // The same length, one character off: the byte comparison itself must refuse it.
      { authorization: `Bearer ${TEST_TOKEN.slice(0, -1)}${TEST_TOKEN.endsWith("A") ? "B" : "A"}` },
    ];
    for (const headers of attempts) {
      const res = await call(t, "GET", "/v1/kv/a", { headers });
      assert.equal(res.status, 401);
      assert.equal(await errorCode(res), "unauthorized");
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    }
    assert.equal(t.service.calls.length, 0, "the service is never reached without the token");
  });

  it("answers 401 before 404 on unknown /v1 routes, so routes are not revealed", async () => {
    const res = await call(t, "GET", "/v1/secret", { headers: {} });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });

  it("serves /healthz and /metrics without a token", async () => {
    const health = await call(t, "GET", "/healthz", { headers: {} });
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    const metrics = await call(t, "GET", "/metrics", { headers: {} });
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.match(await metrics.text(), /^ringleader_up 1$/m);
  });

  it("answers /healthz with 503 and the reason when the service is unhealthy", async () => {
    t.service.health = { ok: false, reason: "disk full" };
    try {
      const res = await call(t, "GET", "/healthz", { headers: {} });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { ok: boolean; reason: string } & ErrorBody;
      assert.equal(body.ok, false);
      assert.equal(body.reason, "disk full");
      assert.equal(body.error.code, "unavailable");
    } finally {
      t.service.health = { ok: true };
    }
  });
});

describe("api server: keys and values", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer({ limits: { maxValueBytes: 64 * 1024, maxKeyBytes: 64 } })));
  after(() => t.stop());

  it("stores a value with PUT and returns it raw with GET, with its version", async () => {
    const put = await putValue(t, "greeting", "hello");
    assert.equal(put.status, 200);
    const { version } = (await put.json()) as { version: string };
    assert.match(version, /^[0-9]+$/);
    const get = await call(t, "GET", "/v1/kv/greeting");
    assert.equal(get.status, 200);
    assert.equal(get.headers.get("content-type"), "application/octet-stream");
    assert.equal(get.headers.get("x-ringleader-version"), version);
    assert.equal(await get.text(), "hello");
  });

  it("keeps binary values byte for byte", async () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal((await call(t, "PUT", "/v1/kv/bin", { body: bytes })).status, 200);
    const got = new Uint8Array(await (await call(t, "GET", "/v1/kv/bin")).arrayBuffer());
    assert.deepEqual(got, bytes);
  });

  it("percent-decodes keys, which may hold slashes and any UTF-8", async () => {
    const key = "sensors/{kitchen}/température ✓";
    assert.equal((await putValue(t, key, "21.5")).status, 200);
    assert.equal(t.service.data.get(key)?.value.length, 4);
    // The slash may also travel unescaped.
    const res = await call(t, "GET", `/v1/kv/sensors/{kitchen}/${encodeURIComponent("température ✓")}`);
    assert.equal(await res.text(), "21.5");
  });

  it("answers 404 not_found for an absent key", async () => {
    const res = await call(t, "GET", "/v1/kv/nope");
    assert.equal(res.status, 404);
    assert.equal(await errorCode(res), "not_found");
  });

  it("passes the consistency level to the service, strong by default", async () => {
    for (const level of ["strong", "weak", "eventual"] as const) {
      await (await call(t, "GET", `/v1/kv/greeting?consistency=${level}`)).arrayBuffer();
      assert.equal(t.service.calls.at(-1)?.consistency, level);
    }
    await (await call(t, "GET", "/v1/kv/greeting")).arrayBuffer();
    assert.equal(t.service.calls.at(-1)?.consistency, "strong");
  });

  it("answers 400 bad_request for malformed keys and parameters", async () => {
    const cases: [string, string][] = [
      ["GET", "/v1/kv/"], // empty key
      ["GET", "/v1/kv/%FF%FE"], // not UTF-8
      ["GET", "/v1/kv/%ED%A0%80"], // an encoded surrogate is not UTF-8 either
      ["GET", "/v1/kv/a%G1"], // broken escape
      ["GET", "/v1/kv/a%2"], // truncated escape
      ["GET", `/v1/kv/${"k".repeat(65)}`], // one byte over the key limit
      ["GET", `/v1/kv/${"é".repeat(33)}`], // 66 bytes of UTF-8 in 33 characters
      ["GET", "/v1/kv/a?consistency=linearizable"],
      ["GET", "/v1/kv/a?consistancy=weak"], // unknown parameter
      ["GET", "/v1/kv/a?consistency=weak&consistency=strong"],
      ["PUT", "/v1/kv/a?cas=abc"],
      ["PUT", "/v1/kv/a?cas=-1"],
      ["PUT", "/v1/kv/a?cas="],
      ["DELETE", "/v1/kv/a?cas=1.5"],
    ];
    const before = t.service.calls.length;
    for (const [method, path] of cases) {
      const res = await call(t, method, path, method === "PUT" ? { body: "x" } : {});
      assert.equal(res.status, 400, `${method} ${path}`);
      assert.equal(await errorCode(res), "bad_request", `${method} ${path}`);
    }
    assert.equal(t.service.calls.length, before, "bad requests never reach the service");
  });

  it("accepts a key of exactly the byte limit", async () => {
    assert.equal((await putValue(t, "k".repeat(64), "v")).status, 200);
  });

  it("accepts a value of exactly the size limit", async () => {
    const res = await call(t, "PUT", "/v1/kv/big", { body: new Uint8Array(64 * 1024) });
    assert.equal(res.status, 200);
    assert.equal(t.service.data.get("big")?.value.length, 64 * 1024);
  });

  it("deletes a key, and says whether it existed", async () => {
    await putValue(t, "doomed", "x");
    const first = await call(t, "DELETE", "/v1/kv/doomed");
    assert.equal(first.status, 200);
    const body = (await first.json()) as { version: string; deleted: boolean };
    assert.equal(body.deleted, true);
    assert.match(body.version, /^[0-9]+$/);
    const second = (await (await call(t, "DELETE", "/v1/kv/doomed")).json()) as { deleted: boolean };
    assert.equal(second.deleted, false);
    assert.equal((await call(t, "GET", "/v1/kv/doomed")).status, 404);
  });
});

describe("api server: compare-and-set", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer()));
  after(() => t.stop());

  it("cas=0 writes only if the key is absent", async () => {
    assert.equal((await putValue(t, "lock", "me", "?cas=0")).status, 200);
    const again = await putValue(t, "lock", "you", "?cas=0");
    assert.equal(again.status, 409);
    assert.equal(await errorCode(again), "cas_mismatch");
    assert.equal(Buffer.from(t.service.data.get("lock")?.value ?? []).toString(), "me");
  });

  it("cas=<version> writes only if the key is at that version", async () => {
    const first = (await (await putValue(t, "counter", "1")).json()) as { version: string };
    const second = await putValue(t, "counter", "2", `?cas=${first.version}`);
    assert.equal(second.status, 200);
    const { version } = (await second.json()) as { version: string };
    assert.notEqual(version, first.version);
    const stale = await putValue(t, "counter", "3", `?cas=${first.version}`);
    assert.equal(stale.status, 409);
    assert.equal(await errorCode(stale), "cas_mismatch");
    assert.equal(t.service.calls.at(-1)?.cas, first.version, "the expected version reaches the service");
  });

  it("a delete with a stale cas answers 409 and keeps the key", async () => {
    const { version } = (await (await putValue(t, "keep", "x")).json()) as { version: string };
    await putValue(t, "keep", "y");
    const res = await call(t, "DELETE", `/v1/kv/keep?cas=${version}`);
    assert.equal(res.status, 409);
    assert.equal(await errorCode(res), "cas_mismatch");
    assert.ok(t.service.data.has("keep"));
  });
});

/** Streams `chunk` repeatedly as a chunked PUT until the response arrives; returns it and the bytes sent. */
function streamUntilAnswered(
  url: string,
  path: string,
  chunk: Buffer,
  maxBytes: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; sent: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let ended = false;
    const req = http.request(url + path, { method: "PUT", headers: { ...auth, ...headers } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (text: string) => (body += text));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body, sent, ended });
        req.destroy();
      });
    });
    req.on("error", reject);
    const pump = () => {
      while (sent < maxBytes && !req.destroyed) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      if (sent >= maxBytes && !ended) {
        ended = true;
        req.end();
      }
    };
    pump();
  });
}

describe("api server: oversized values", () => {
  let t: TestServer;
  const limit = 64 * 1024;
  before(async () => (t = await startTestServer({ limits: { maxValueBytes: limit } })));
  after(() => t.stop());

  it("answers 413 too_large to a streamed body while it is still arriving, without calling the service", async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const cap = 512 * 1024 * 1024; // far more than any socket buffer could hold
    const result = await streamUntilAnswered(t.url, "/v1/kv/huge", chunk, cap);
    assert.equal(result.status, 413);
    assert.equal((JSON.parse(result.body) as ErrorBody).error.code, "too_large");
    assert.equal(result.ended, false, "the answer came before the client finished sending");
    assert.ok(result.sent < cap);
    assert.equal(t.service.calls.length, 0);
  });

  it("answers 413 at once when content-length announces too much", async () => {
    const result = await streamUntilAnswered(t.url, "/v1/kv/huge", Buffer.alloc(1024), 1024 * 1024 * 1024, {
      "content-length": String(1024 * 1024 * 1024),
    });
    assert.equal(result.status, 413);
    assert.equal(result.ended, false);
    assert.equal(t.service.calls.length, 0);
  });

  it("keeps serving after refusing a large body", async () => {
    const res = await call(t, "GET", "/v1/kv/huge");
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });
});

describe("api server: unavailability and timeouts", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer({ limits: { requestTimeoutMs: 300 } })));
  after(() => t.stop());

  it("maps ServiceUnavailableError to 503 unavailable with its retry-after", async () => {
    t.service.failWith = new ServiceUnavailableError("no leader for partition 7", 7);
    try {
      const res = await call(t, "GET", "/v1/kv/a");
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "7");
      const body = (await res.json()) as ErrorBody;
      assert.deepEqual(body.error, { code: "unavailable", message: "no leader for partition 7" });
    } finally {
      t.service.failWith = null;
    }
  });

  it("answers 503 with retry-after when the service takes longer than the request timeout, and aborts it", async () => {
    t.service.hang = true;
    try {
      const aborted = eventWithin<unknown>(t.service.events, "aborted", 5000);
      const started = performance.now();
      const res = await putValue(t, "slow", "x");
      assert.equal(res.status, 503);
      assert.equal(await errorCode(res), "unavailable");
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      assert.ok(performance.now() - started < 4000, "answered near the 300 ms timeout, not later");
      assert.ok((await aborted) instanceof ServiceUnavailableError, "the service's signal fired");
    } finally {
      t.service.hang = false;
    }
  });

  it("times each request out at its own deadline: a later one waits its full timeout", async () => {
    t.service.hang = true;
    try {
      const first = putValue(t, "slow-1", "x");
      // The second arrives 100 ms into the first: timed out with the first, it would be answered
      // after ~200 ms.
      await eventWithin<string>(t.service.events, "called", 5000);
      await delay(100);
      const started = performance.now();
      const second = putValue(t, "slow-2", "x");
      assert.equal((await first).status, 503);
      const res = await second;
      assert.equal(res.status, 503);
      assert.equal(await errorCode(res), "unavailable");
      assert.ok(performance.now() - started >= 280, "not timed out with the first request");
    } finally {
      t.service.hang = false;
    }
  });

  it("fires the service's signal when the client disconnects, and reports status 499", async () => {
    const server = await startTestServer({ limits: { requestTimeoutMs: 60_000 } });
    server.service.hang = true;
    try {
      const called = eventWithin<string>(server.service.events, "called", 5000);
      const aborted = eventWithin<unknown>(server.service.events, "aborted", 5000);
      const controller = new AbortController();
      const pending = fetch(`${server.url}/v1/kv/a`, { headers: auth, signal: controller.signal });
      await called;
      controller.abort();
      await assert.rejects(pending);
      await aborted;
      await server.reported(1);
      assert.deepEqual(
        server.requests.map((r) => [r.route, r.status]),
        [["GET /v1/kv/:key", 499]],
      );
      // fetch opens a spare connection after an abort; stop() must not wait for it to time out.
      const stopping = performance.now();
      await server.stop();
      assert.ok(performance.now() - stopping < 900, "stop() closed the spare connection at once");
    } finally {
      await server.stop();
    }
  });

  it("answers 500 internal for unexpected service errors without leaking their text", async () => {
    t.service.failWith = new Error("secret detail of a bug");
    try {
      const res = await call(t, "GET", "/v1/kv/a");
      assert.equal(res.status, 500);
      const body = (await res.json()) as ErrorBody;
      assert.equal(body.error.code, "internal");
      assert.doesNotMatch(body.error.message, /secret/);
    } finally {
      t.service.failWith = null;
    }
  });

  it("keeps an idle kept-alive connection open past Node's default, and says how long", async () => {
    const server = await startTestServer();
    const socket = net.connect(Number(new URL(server.url).port), "127.0.0.1");
    const closed = new Promise<string>((resolve) => socket.once("close", () => resolve("closed")));
    try {
      let received = "";
      socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
      const answered = async (n: number): Promise<void> => {
        while ((received.match(/HTTP\/1\.1 200 /g) ?? []).length < n)
          assert.notEqual(await Promise.race([once(socket, "data"), closed]), "closed", "the server closed");
      };
      const ask = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
      socket.write(ask);
      await answered(1);
      const hint = /^keep-alive: timeout=(\d+)/im.exec(received);
      assert.ok(hint, `the answer announces its keep-alive timeout:\n${received}`);
      assert.equal(Number(hint[1]) * 1000, KEEP_ALIVE_TIMEOUT_MS);
      // The idle time is what is under test: a client's pool keeps connections idle this long.
      // Node's default closes them after 6 s (5 s announced, plus a second of grace).
      const idle = new Promise<string>((resolve) => setTimeout(() => resolve("idle"), 7000));
      assert.equal(await Promise.race([closed, idle]), "idle", "the server closed the idle connection");
      socket.write(ask);
      await answered(2);
    } finally {
      socket.destroy();
      await server.stop();
    }
  });

  it("stop() closes idle and spare keep-alive connections at once", async () => {
    const server = await startTestServer();
    await (await fetch(`${server.url}/healthz`)).arrayBuffer(); // leaves a kept-alive connection
    const started = performance.now();
    await server.stop();
    assert.ok(performance.now() - started < 900, "no wait for the grace period");
    await assert.rejects(fetch(`${server.url}/healthz`));
  });

  it("stop() answers in-flight requests with 503 and resolves", async () => {
    const server = await startTestServer({ limits: { requestTimeoutMs: 60_000 } });
    server.service.hang = true;
    const called = eventWithin<string>(server.service.events, "called", 5000);
    const pending = fetch(`${server.url}/v1/kv/a`, { headers: auth });
    await called;
    await server.stop();
    const res = await pending;
    assert.equal(res.status, 503);
    assert.equal(await errorCode(res), "unavailable");
  });
});

describe("api server: scan", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
    for (let i = 0; i < 150; i++)
      t.service.data.set(`p/${String(i).padStart(3, "0")}`, {
        value: Buffer.from(`v${i}`),
        version: String(i + 1),
      });
    t.service.data.set("q/other", { value: Buffer.from("x"), version: "999" });
  });
  after(() => t.stop());

  interface Page {
    items: { key: string; value: string; version: string }[];
    next: string | null;
  }

  it("pages through a prefix with cursors, in key order, values in base64", async () => {
    const keys: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const query: string = `?prefix=p%2F&limit=40${after === null ? "" : `&after=${encodeURIComponent(after)}`}`;
      const res = await call(t, "GET", `/v1/kv${query}`);
      assert.equal(res.status, 200);
      const page = (await res.json()) as Page;
      assert.ok(page.items.length <= 40);
      for (const item of page.items) {
        const index = Number(item.key.slice(2));
        assert.equal(Buffer.from(item.value, "base64").toString(), `v${index}`);
        assert.equal(item.version, String(index + 1));
        keys.push(item.key);
      }
      after = page.next;
      pages++;
    } while (after !== null && pages < 10);
    assert.equal(pages, 4);
    assert.equal(keys.length, 150);
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(!keys.includes("q/other"));
  });

  it("returns 100 items by default and 1000 at most", async () => {
    const page = (await (await call(t, "GET", "/v1/kv")).json()) as Page;
    assert.equal(page.items.length, 100);
    assert.equal(typeof page.next, "string");
    const all = (await (await call(t, "GET", "/v1/kv?limit=1000")).json()) as Page;
    assert.equal(all.items.length, 151);
    assert.equal(all.next, null);
  });

  it("answers 400 for a limit out of range or not a number, or an unknown consistency", async () => {
    for (const query of ["limit=0", "limit=1001", "limit=ten", "limit=1e2", "limit=", "consistency=fast"]) {
      const res = await call(t, "GET", `/v1/kv?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal(await errorCode(res), "bad_request");
    }
  });
});

describe("api server: routes and the request hook", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer()));
  after(() => t.stop());

  it("answers 404 not_found for unknown routes and 405 for wrong methods", async () => {
    const unknown = await call(t, "GET", "/v2/kv/a");
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), "not_found");
    const wrong = await call(t, "POST", "/v1/kv/a", { body: "x" });
    assert.equal(wrong.status, 405);
    assert.equal(await errorCode(wrong), "method_not_allowed");
    assert.match(wrong.headers.get("allow") ?? "", /PUT/);
  });

  it("answers HEAD wherever GET works, with headers and no body", async () => {
    await (await putValue(t, "head", "12345")).arrayBuffer();
    const res = await call(t, "HEAD", "/v1/kv/head");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "5");
    assert.equal(res.headers.get("x-ringleader-version"), t.service.data.get("head")?.version);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
    assert.equal((await call(t, "HEAD", "/healthz", { headers: {} })).status, 200);
  });

  it("serves the service's status as JSON", async () => {
    t.service.statusView = { nodes: [{ id: "n1", role: "leader" }] };
    const res = await call(t, "GET", "/v1/status");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { nodes: [{ id: "n1", role: "leader" }] });
  });

  it("reports each request with its route template, status and duration", async () => {
    t.requests.length = 0;
    await (await putValue(t, "a/b", "1")).arrayBuffer();
    await (await call(t, "GET", "/v1/kv/a%2Fb")).arrayBuffer();
    await (await call(t, "GET", "/v1/kv/missing")).arrayBuffer();
    await (await call(t, "GET", "/v1/kv?limit=5")).arrayBuffer();
    await (await call(t, "GET", "/nowhere")).arrayBuffer();
    await t.reported(5);
    assert.deepEqual(
      t.requests.map((r) => `${r.route} ${r.status}`),
      [
        "PUT /v1/kv/:key 200",
        "GET /v1/kv/:key 200",
        "GET /v1/kv/:key 404",
        "GET /v1/kv 200",
        "unmatched 404",
      ],
    );
    for (const r of t.requests) assert.ok(r.durationMs >= 0 && r.durationMs < 5000);
  });
});
