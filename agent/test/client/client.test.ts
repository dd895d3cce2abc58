import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ServiceUnavailableError as ServiceUnavailable } from "../../src/api/errors.js";
import {
  BadRequestError,
  CasMismatchError,
  EndpointsUnreachableError,
  RingleaderClient,
  ServiceUnavailableError,
  UnauthorizedError,
} from "../../src/client/client.js";
import { eventWithin, startTestServer, TEST_TOKEN, type TestServer } from "../api/fake-service.js";

/** A URL on 127.0.0.1 where nothing listens: a port that was just bound and released. */
async function deadEndpoint(): Promise<string> {
  const t = await startTestServer();
  await t.stop();
  return t.url;
}

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("utf8");

describe("client: operations", () => {
  let t: TestServer;
  let client: RingleaderClient;
  before(async () => {
    t = await startTestServer();
    client = new RingleaderClient({ endpoints: [t.url], token: TEST_TOKEN });
  });
  after(() => t.stop());

  it("puts, gets and deletes, with versions", async () => {
    const { version } = await client.put("k", "v1");
    const got = await client.get("k");
    assert.equal(text(got?.value), "v1");
    assert.equal(got?.version, version);
    const del = await client.del("k");
    assert.equal(del.deleted, true);
    assert.equal(await client.get("k"), null);
    assert.equal((await client.del("k")).deleted, false);
  });

  it("sends keys with any characters intact", async () => {
    const keys = ["a b/c?d#e%f+g&h=i", "température/✓", "/leading/slash", "trailing/", "a//b", "..a", "%2F"];
    for (const key of keys) await client.put(key, key);
    for (const key of keys) {
      assert.equal(text((await client.get(key))?.value), key, key);
      assert.ok(t.service.data.has(key), `the server saw ${key} as it was sent`);
    }
  });

  it("refuses keys that cannot travel in a URL path before sending anything", async () => {
    const before = t.service.calls.length;
    for (const key of ["", ".", ".."]) await assert.rejects(client.put(key, "x"), BadRequestError);
    assert.equal(t.service.calls.length, before);
  });

  it("passes the consistency level", async () => {
    await client.get("k", { consistency: "eventual" });
    assert.equal(t.service.calls.at(-1)?.consistency, "eventual");
  });

  it("cas writes only at the expected version and throws CasMismatchError otherwise", async () => {
    const first = await client.cas("lock", "0", "a");
    await assert.rejects(client.cas("lock", "0", "b"), CasMismatchError);
    const second = await client.cas("lock", first.version, "c");
    assert.equal(text((await client.get("lock"))?.value), "c");
    await assert.rejects(client.del("lock", { cas: first.version }), CasMismatchError);
    assert.equal((await client.del("lock", { cas: second.version })).deleted, true);
  });

  it("scans pages and follows cursors with scanAll", async () => {
    for (let i = 0; i < 25; i++) await client.put(`scan/${String(i).padStart(2, "0")}`, `v${i}`);
    const page = await client.scan({ prefix: "scan/", limit: 10 });
    assert.equal(page.items.length, 10);
    assert.equal(page.items[0]?.key, "scan/00");
    assert.equal(text(page.items[3]?.value), "v3");
    assert.equal(typeof page.next, "string");
    const all: string[] = [];
    for await (const item of client.scanAll({ prefix: "scan/", limit: 10 })) all.push(item.key);
    assert.equal(all.length, 25);
    assert.deepEqual(all, [...all].sort());
    assert.equal(t.service.calls.filter((c) => c.op === "scan").length, 1 + 3);
  });

  it("returns the status document", async () => {
    t.service.statusView = { id: "n1", role: "leader" };
    assert.deepEqual(await client.status(), { id: "n1", role: "leader" });
  });

  it("throws UnauthorizedError for a wrong token, without retrying", async () => {
    // Without learning the cluster's agents, every request the server sees is the GET's.
    const wrong = new RingleaderClient({ endpoints: [t.url, t.url], token: "nope", learnAgents: false });
    const before = t.requests.length;
    await assert.rejects(wrong.get("k"), UnauthorizedError);
    await t.reported(before + 1);
    assert.equal(t.requests.length, before + 1);
  });
});

describe("client: failover", () => {
  let up: TestServer;
  before(async () => (up = await startTestServer()));
  after(() => up.stop());

  it("moves on to the next endpoint when the first refuses connections", async () => {
    const client = new RingleaderClient({ endpoints: [await deadEndpoint(), up.url], token: TEST_TOKEN });
    const { version } = await client.put("failover", "ok");
    assert.equal(up.service.data.get("failover")?.version, version);
    // The dead endpoint is now tried last, so the next request goes straight to the live one.
    assert.equal(text((await client.get("failover"))?.value), "ok");
  });

  it("moves on to the next endpoint on 503", async () => {
    const sick = await startTestServer();
    sick.service.failWith = new ServiceUnavailable("no leader", 1);
    try {
      const client = new RingleaderClient({ endpoints: [sick.url, up.url], token: TEST_TOKEN });
      await client.put("after-503", "ok");
      assert.equal(sick.service.calls.length, 1);
      assert.ok(up.service.data.has("after-503"));
    } finally {
      await sick.stop();
    }
  });

  it("gives up after maxAttempts with the last ServiceUnavailableError, waiting retry-after up to the cap between rounds", async () => {
    const sick = await startTestServer();
    sick.service.failWith = new ServiceUnavailable("no quorum", 30);
    try {
      const client = new RingleaderClient({
        endpoints: [sick.url],
        token: TEST_TOKEN,
        maxAttempts: 3,
        maxRetryAfterMs: 150,
      });
      const started = performance.now();
      const err = await client.get("k").then(
        () => assert.fail("expected a failure"),
        (e: unknown) => e,
      );
      const elapsedMs = performance.now() - started;
      assert.ok(err instanceof ServiceUnavailableError);
      assert.equal(err.message, "no quorum");
      assert.equal(sick.service.calls.length, 3);
      assert.ok(elapsedMs >= 2 * 150 - 20, `waited twice for the capped retry-after (took ${elapsedMs} ms)`);
      assert.ok(elapsedMs < 10_000, "never waited the full 30 s hint");
    } finally {
      await sick.stop();
    }
  });

  it("throws EndpointsUnreachableError when no endpoint answers", async () => {
    const endpoints = [await deadEndpoint(), await deadEndpoint()];
    const client = new RingleaderClient({
      endpoints,
      token: TEST_TOKEN,
      maxAttempts: 4,
      maxRetryAfterMs: 10,
    });
    const err = await client.get("k").then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof EndpointsUnreachableError);
    assert.equal(err.attempts, 4);
    assert.match(err.message, /ECONNREFUSED/);
  });

  it("times out an attempt that hangs and tries the next endpoint", async () => {
    const stuck = await startTestServer({ limits: { requestTimeoutMs: 60_000 } });
    stuck.service.hang = true;
    try {
      const aborted = eventWithin<unknown>(stuck.service.events, "aborted", 5000);
      const client = new RingleaderClient({
        endpoints: [stuck.url, up.url],
        token: TEST_TOKEN,
        timeoutMs: 200,
      });
      await client.put("after-timeout", "ok");
      assert.ok(up.service.data.has("after-timeout"));
      await aborted; // the stuck server saw the client give up
    } finally {
      await stuck.stop();
    }
  });

  it("stops at once when the caller's signal fires, without trying other endpoints", async () => {
    const stuck = await startTestServer({ limits: { requestTimeoutMs: 60_000 } });
    stuck.service.hang = true;
    try {
      const called = eventWithin<string>(stuck.service.events, "called", 5000);
      const client = new RingleaderClient({ endpoints: [stuck.url, up.url], token: TEST_TOKEN });
      const controller = new AbortController();
      const before = up.service.calls.length;
      const pending = client.put("never", "x", { signal: controller.signal });
      await called;
      controller.abort(new Error("caller gave up"));
      await assert.rejects(pending, /caller gave up/);
      assert.equal(up.service.calls.length, before);
    } finally {
      await stuck.stop();
    }
  });
});

describe("client: partition routing", () => {
  it("tries the router's leader first for key operations, and falls back to the endpoints", async () => {
    const leader = await startTestServer();
    const other = await startTestServer();
    const dead = await deadEndpoint();
    try {
      const routes = new Map<string, string>([
        ["routed", leader.url],
        ["gone", dead],
      ]);
      const client = new RingleaderClient({
        endpoints: [other.url],
        token: TEST_TOKEN,
        router: { endpointFor: (key) => routes.get(key) },
      });
      await client.put("routed", "v");
      await client.get("routed", { consistency: "strong" });
      await client.del("routed");
      assert.deepEqual(
        leader.service.calls.map((c) => c.op),
        ["put", "get", "del"],
        "every operation on the routed key went to its leader",
      );
      assert.equal(other.service.calls.length, 0);
      // Eventual reads are for any replica: they keep the client's own spread.
      await client.get("routed", { consistency: "eventual" });
      assert.equal(other.service.calls.length, 1);
      // A leader that does not answer costs one failed attempt, then the endpoints serve.
      await client.put("gone", "v");
      assert.ok(other.service.data.has("gone"));
    } finally {
      await leader.stop();
      await other.stop();
    }
  });
});
