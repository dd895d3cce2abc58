/**
 * The client learns the cluster's agents and their reported load from `GET /v1/health`, and
 * `least-loaded` picks the entry agent by those scores: read at a bounded rate, ignored once
 * stale, and replaced by the client's own in-flight and latency figures when none can be had.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LocalLoadTracker, ReportedLoad } from "../../src/balance/index.js";
import { ClusterAgents, parseHealthView } from "../../src/client/agents.js";
import { RingleaderClient } from "../../src/client/client.js";
import { BadResponseError } from "../../src/client/errors.js";
import { EndpointSelector } from "../../src/client/endpoints.js";

const A = "http://127.0.0.1:7001";
const B = "http://127.0.0.1:7002";
const C = "http://127.0.0.1:7003";
const SEED = "http://seed.local:7000";
const TOKEN = "rl_test";

interface Node {
  id: string;
  api: string | null;
  state: string;
  load: number | null;
}

const node = (id: string, api: string | null, load: number | null, state = "up"): Node => ({
  id,
  api,
  state,
  load,
});

/** A cluster behind a fake `fetch`: `/v1/health` answers `view()`, a GET of a key names the agent. */
function fakeCluster(view: () => Node[] | number) {
  const healthReads: string[] = [];
  const kvHits: string[] = [];
  const tokens = new Set<string>();
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const auth = new Headers(init?.headers).get("authorization");
    if (auth) tokens.add(auth);
    if (url.pathname === "/v1/health") {
      healthReads.push(url.origin);
      const v = view();
      if (typeof v === "number") return new Response('{"error":{"code":"x","message":"no"}}', { status: v });
      return Response.json({ observer: "n1", nodes: v });
    }
    kvHits.push(url.origin);
    return new Response("v", { status: 200, headers: { "x-ringleader-version": "1" } });
  }) as typeof fetch;
  return { fetch: fetchImpl, healthReads, kvHits, tokens };
}

describe("client: the cluster's agents, from its health view", () => {
  it("keeps serving members with a usable address, and their scores", () => {
    const view = parseHealthView({
      nodes: [
        node("n1", `${A}/`, 0.4),
        node("n2", B, null),
        node("n3", C, 1.5, "draining"),
        node("n4", "http://127.0.0.1:7004", 0.1, "removed"),
        node("n5", "http://127.0.0.1:7005", 0.1, "down"),
        node("n6", null, 0.1),
        node("n7", "ftp://x", 0.1),
        node("n8", "http://127.0.0.1:7008", -3),
        "junk",
      ],
    });
    assert.deepEqual(view, [
      { id: "n1", api: A, state: "up", load: 0.4 },
      { id: "n2", api: B, state: "up", load: null },
      { id: "n3", api: C, state: "draining", load: 1.5 },
      { id: "n8", api: "http://127.0.0.1:7008", state: "up", load: null },
    ]);
    assert.throws(() => parseHealthView({ status: "ok" }), BadResponseError);
    assert.throws(() => parseHealthView([]), BadResponseError);
  });

  it("reads at most once per refresh interval, failures included, one read at a time", async () => {
    let now = 0;
    let status: number | null = null;
    const fake = fakeCluster(() => status ?? [node("n1", A, 0.2)]);
    const agents = new ClusterAgents([SEED], {
      token: TOKEN,
      fetch: fake.fetch,
      now: () => now,
      refreshMs: 1000,
    });
    assert.deepEqual(agents.agents(), []);
    const first = agents.refreshIfDue();
    assert.ok(first);
    assert.equal(agents.refreshIfDue(), first, "a second caller joins the read under way");
    await first;
    assert.deepEqual(agents.agents(), [A]);
    assert.deepEqual([...fake.tokens], [`Bearer ${TOKEN}`]);
    for (let i = 0; i < 100; i++) assert.equal(agents.refreshIfDue(), null);
    assert.equal(fake.healthReads.length, 1);

    now = 1000;
    status = 503;
    await agents.refreshIfDue();
    assert.equal(agents.counts.failures, 1);
    assert.match(agents.lastError ?? "", /HTTP 503/);
    assert.deepEqual(agents.agents(), [A], "a failed read keeps the addresses it had");
    const reads = fake.healthReads.length;
    now = 1500;
    assert.equal(agents.refreshIfDue(), null, "a failed read waits out the interval too");
    assert.equal(fake.healthReads.length, reads);
  });

  it("asks the learned agents, then the configured ones, until one answers", async () => {
    const down = new Set([A]);
    const fetchImpl = (async (input: string | URL | Request) => {
      const origin = new URL(String(input)).origin;
      if (down.has(origin)) throw new TypeError("fetch failed");
      return Response.json({ nodes: [node("n1", A, 0.1), node("n2", B, 0.2)] });
    }) as typeof fetch;
    let now = 0;
    const agents = new ClusterAgents([SEED], {
      token: TOKEN,
      fetch: fetchImpl,
      now: () => now,
      refreshMs: 10,
    });
    down.add(SEED);
    await agents.refreshIfDue();
    assert.equal(agents.known, false);
    down.delete(SEED);
    now = 10;
    await agents.refreshIfDue();
    assert.deepEqual(agents.agents(), [A, B]);
    // The seed is gone now and A is down: B, learned from the cluster, answers.
    down.add(SEED);
    now = 20;
    await agents.refreshIfDue();
    assert.equal(agents.counts.refreshes, 2);
    assert.equal(agents.lastError, null);
  });

  it("gives scores only while the view is fresh", async () => {
    let now = 0;
    const fake = fakeCluster(() => [node("n1", A, 0.3), node("n2", B, null)]);
    const agents = new ClusterAgents([A], {
      token: TOKEN,
      fetch: fake.fetch,
      now: () => now,
      refreshMs: 1000,
      staleAfterMs: 3000,
    });
    assert.equal(agents.hasScores(), false);
    await agents.refreshIfDue();
    assert.equal(agents.loadOf(A), 0.3);
    assert.equal(agents.loadOf(B), undefined);
    assert.equal(agents.loadOf(C), undefined);
    assert.equal(agents.hasScores(), true);
    now = 3001;
    assert.equal(agents.loadOf(A), undefined);
    assert.equal(agents.hasScores(), false);
    assert.deepEqual(agents.agents(), [A, B], "addresses outlive the scores");
  });
});

describe("client: least-loaded by reported scores", () => {
  /** A stand-in for `ClusterAgents` with fixed agents and scores. */
  function learned(scores: Record<string, number | undefined>) {
    return {
      agents: () => Object.keys(scores),
      loadOf: (e: string) => scores[e],
      hasScores: () => Object.values(scores).some((s) => s !== undefined),
    };
  }

  it("picks the agent with the lowest reported score, an overloaded one last, among the learned agents", () => {
    const s = new EndpointSelector([SEED], {
      strategy: "least-loaded",
      agents: learned({ [A]: 2.6, [B]: 0.7, [C]: 0.2 }),
    });
    for (let i = 0; i < 5; i++) assert.deepEqual(s.order(), [C, B, A, SEED]);
    assert.deepEqual(s.candidates(), [A, B, C]);
  });

  it("adds this client's own requests in flight, so a burst does not all land on one board", () => {
    const s = new EndpointSelector([A], {
      strategy: "least-loaded",
      agents: learned({ [A]: 0.3, [B]: 0.5 }),
    });
    const ends = Array.from({ length: 4 }, () => s.begin(A));
    // 4 of 16 in flight to A adds 0.25: 0.55 against B's 0.5.
    assert.equal(s.order()[0], B);
    for (const end of ends) end();
    assert.equal(s.order()[0], A);
  });

  it("falls back to the client's own figures when no agent has a score", () => {
    const s = new EndpointSelector([A, B], {
      strategy: "least-loaded",
      agents: learned({ [A]: undefined, [B]: undefined }),
    });
    const end = s.begin(A);
    for (let i = 0; i < 4; i++) assert.equal(s.order()[0], B, "A has a request in flight");
    end();
  });

  it("keeps random, round-robin and ip-hash as they were, over the learned agents", () => {
    const agents = learned({ [A]: 0.1, [B]: 3, [C]: 0.2 });
    const rr = new EndpointSelector([SEED], { strategy: "round-robin", agents });
    assert.deepEqual([rr.order()[0], rr.order()[0], rr.order()[0], rr.order()[0]], [A, B, C, A]);
    const picks = [0.5];
    const random = new EndpointSelector([SEED], {
      strategy: "random",
      agents,
      random: () => picks.shift() ?? 0,
    });
    assert.equal(random.order()[0], B, "random ignores the load");
    const hash = new EndpointSelector([SEED], { strategy: "ip-hash", agents, clientAddress: "10.0.0.9" });
    const first = hash.order()[0];
    assert.ok(first !== SEED);
    for (let i = 0; i < 5; i++) assert.equal(hash.order()[0], first);
  });

  it("ReportedLoad never mixes a reported score with a local guess", () => {
    const local = new LocalLoadTracker();
    local.begin(B);
    const load = new ReportedLoad(learned({ [A]: 0.5, [B]: undefined }), local);
    assert.equal(load.loadOf(A), 0.5);
    assert.equal(load.loadOf(B), undefined, "B has no report: unknown, not its local figure");
    const none = new ReportedLoad(learned({ [A]: undefined }), local);
    assert.equal(none.loadOf(B), local.loadOf(B));
  });
});

describe("client: RingleaderClient learns the agents before choosing by load", () => {
  it("sends least-loaded requests to the board that reports the lowest load", async () => {
    const fake = fakeCluster(() => [node("n1", A, 2.4), node("n2", B, 0.9), node("n3", C, 0.3)]);
    const client = new RingleaderClient({
      endpoints: [A],
      token: TOKEN,
      strategy: "least-loaded",
      fetch: fake.fetch,
    });
    for (let i = 0; i < 20; i++) await client.get(`k${i}`, { consistency: "eventual" });
    assert.deepEqual(new Set(fake.kvHits), new Set([C]));
    assert.deepEqual(client.knownAgents(), [A, B, C]);
    assert.equal(fake.healthReads.length, 1, "one read per refresh interval, not per request");
  });

  it("without a health view (an older agent), spreads over the configured endpoints by its own figures", async () => {
    const fake = fakeCluster(() => 404);
    const client = new RingleaderClient({
      endpoints: [A, B],
      token: TOKEN,
      strategy: "least-loaded",
      fetch: fake.fetch,
    });
    for (let i = 0; i < 6; i++) await client.get(`k${i}`);
    assert.deepEqual(client.knownAgents(), [A, B]);
    assert.deepEqual(new Set(fake.kvHits), new Set([A, B]), "equal local figures take turns");
    assert.deepEqual(fake.healthReads, [A, B], "one round over the endpoints, then not again this interval");
  });

  it("reads the view again once the interval has passed, and follows the new scores", async () => {
    let hot = C;
    const fake = fakeCluster(() => [node("n1", A, hot === A ? 3 : 0.5), node("n3", C, hot === C ? 3 : 0.2)]);
    const client = new RingleaderClient({
      endpoints: [A],
      token: TOKEN,
      strategy: "least-loaded",
      fetch: fake.fetch,
      agentsRefreshMs: 20,
    });
    const started = Date.now();
    await client.get("k");
    assert.equal(fake.kvHits.at(-1), A);
    hot = A;
    const deadline = Date.now() + 5000;
    while (fake.kvHits.at(-1) !== C && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      await client.get("k");
    }
    assert.equal(fake.kvHits.at(-1), C);
    const elapsed = Date.now() - started;
    assert.ok(
      fake.healthReads.length <= elapsed / 20 + 1,
      `${fake.healthReads.length} reads in ${elapsed} ms`,
    );
  });

  it("other strategies do not wait for the view, and a one-shot client can do without it", async () => {
    const fake = fakeCluster(() => [node("n1", A, 0.1), node("n2", B, 0.1)]);
    const client = new RingleaderClient({ endpoints: [SEED], token: TOKEN, fetch: fake.fetch });
    await client.get("k");
    assert.deepEqual(fake.kvHits, [SEED], "the first request goes out before the view is in");
    await client.get("k");
    await client.get("k");
    assert.deepEqual(fake.kvHits.slice(1).sort(), [A, B], "then round-robin over the learned agents");
    const plain = fakeCluster(() => [node("n1", A, 0.1)]);
    const oneShot = new RingleaderClient({
      endpoints: [SEED],
      token: TOKEN,
      fetch: plain.fetch,
      learnAgents: false,
    });
    await oneShot.get("k");
    assert.equal(plain.healthReads.length, 0);
    assert.deepEqual(plain.kvHits, [SEED]);
  });
});
