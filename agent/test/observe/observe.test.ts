/**
 * The dashboard's endpoints on a real API server with an in-memory service: the read-only token
 * reads but never writes, `/ui/` serves the built files without a token and nothing outside
 * them, the sensor feed and the downsampled series read bridge-style JSON values, the bridge's
 * metrics are relabelled and filtered, and `status`'s overview renders a recorded view.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { finishAggregate } from "../../src/api/aggregate.js";
import type { KvService } from "../../src/api/service.js";
import { ANSI, renderOverview } from "../../src/cli/observe/overview.js";
import { frameFor } from "../../src/cli/commands/top.js";
import { relabelBridgeText } from "../../src/health/bridge-metrics.js";
import { HealthMonitor } from "../../src/health/monitor.js";
import { ConfigError, newClusterConfig, readClusterConfig } from "../../src/node/cluster-config.js";
import type { ClusterHealth } from "../../src/health/view.js";
import { observeRoutes } from "../../src/observe/routes.js";
import { SensorReader, parseSensorKey, readingValue } from "../../src/observe/sensors.js";
import { UiAssets } from "../../src/observe/ui-assets.js";
import { addNode, createRing } from "../../src/ring/index.js";
import { aggregatePartition } from "../../src/node/partition-aggregate.js";
import { TEST_TOKEN, startTestServer, type TestServer } from "../api/fake-service.js";
import { mapRows } from "../api/memory-rows.js";

const READ_TOKEN = "read-only-token-0123456789";
const enc = new TextEncoder();

describe("observation endpoints", () => {
  let t: TestServer;
  let uiDir: string;
  before(async () => {
    uiDir = await mkdtemp(join(tmpdir(), "rl-ui-"));
    await writeFile(join(uiDir, "index.html"), "<!doctype html><title>rl</title>");
    await writeFile(join(uiDir, "app.js"), "console.log(1)");
    await writeFile(join(uiDir, "secret.txt"), "not served: not a known type");
    // The fake service has no partitions: its whole map is one partition's table.
    const lazy: Pick<KvService, "scan"> & Required<Pick<KvService, "aggregate">> = {
      scan: (o) => t.service.scan(o),
      aggregate: async (o) => {
        const part = await aggregatePartition(mapRows(t.service.data), {
          prefix: o.prefix,
          maxRows: 1_000_000,
          ...(o.window ? { window: o.window } : {}),
        });
        return finishAggregate(o.fn, part, 1, o.window);
      },
    };
    const monitor = new HealthMonitor({
      nodeId: "n1",
      sampler: { sample: async () => Promise.reject(new Error("unused")) },
      token: TEST_TOKEN,
      members: () => [{ id: "n1", api: "http://127.0.0.1:1", state: "up" }],
      leads: () => [],
      placement: () => null,
    });
    t = await startTestServer({
      readToken: READ_TOKEN,
      extraRoutes: observeRoutes({
        health: monitor,
        ring: () => addNode(createRing({ partitions: 8, replicationFactor: 1 }), { id: "n1" }),
        sensors: new SensorReader(lazy, () => 1),
        ui: new UiAssets(uiDir),
      }),
    });
  });
  after(async () => {
    await t?.stop();
    await rm(uiDir, { recursive: true, force: true });
  });

  const get = (path: string, token?: string, method = "GET") =>
    fetch(t.url + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it("takes the read-only token for reads and refuses it for writes", async () => {
    assert.equal((await get("/v1/health", READ_TOKEN)).status, 200);
    assert.equal((await get("/v1/kv/a", READ_TOKEN)).status, 404);
    assert.equal((await get("/v1/kv/a", READ_TOKEN, "PUT")).status, 401);
    assert.equal((await get("/v1/kv/a", READ_TOKEN, "DELETE")).status, 401);
    assert.equal((await get("/v1/kv/a", TEST_TOKEN, "PUT")).status, 200);
    assert.equal((await get("/v1/health")).status, 401);
    assert.equal((await get("/v1/health", "wrong-token-000000000")).status, 401);
  });

  it("serves the dashboard without a token, only its own files, with a strict policy", async () => {
    const page = await get("/ui/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    assert.equal((await get("/ui/app.js")).headers.get("content-type"), "text/javascript; charset=utf-8");
    const bare = await fetch(t.url + "/ui", { redirect: "manual" });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get("location"), "/ui/");
    for (const bad of ["/ui/secret.txt", "/ui/..%2Fpackage.json", "/ui/nope.js", "/ui/a/b.js"]) {
      assert.equal((await get(bad)).status, 404, bad);
    }
    assert.ok(
      t.requests.some((r) => r.route === "GET /ui/*"),
      "one metric label for every dashboard file",
    );
  });

  it("draws the ring from tokens and partition ranges", async () => {
    const ring = (await (await get("/v1/ring", READ_TOKEN)).json()) as {
      partitions: number;
      nodes: { id: string; tokens: number[] }[];
      ranges: { partition: number; start: number; end: number; replicas: string[] }[];
    };
    assert.equal(ring.partitions, 8);
    assert.equal(ring.nodes[0]?.tokens.length, 16);
    assert.equal(ring.ranges.length, 8);
    assert.equal(ring.ranges[0]?.start, 0);
    assert.equal(ring.ranges[7]?.end, 2 ** 32);
    assert.deepEqual(ring.ranges[3]?.replicas, ["n1"]);
  });

  it("lists series with their latest reading and downsamples one into buckets", async () => {
    const base = Date.parse("2026-01-01T00:00:00Z");
    const now = Date.now();
    for (let i = 0; i < 12; i++) {
      const time = new Date(base + i * 10_000).toISOString();
      t.service.data.set(`sensors/{kitchen}/temp/${time}`, {
        value: enc.encode(JSON.stringify({ value: i, time })),
        version: "1",
      });
    }
    t.service.data.set(`sensors/{kitchen}/temp/${new Date(now - 5000).toISOString()}`, {
      value: enc.encode("42.5"),
      version: "1",
    });
    t.service.data.set(`sensors/{garage}/door/${new Date(now - 1000).toISOString()}`, {
      value: enc.encode('{"value":1}'),
      version: "1",
    });
    t.service.data.set(`sensors/{garage}/door/${new Date(now - 500).toISOString()}`, {
      value: enc.encode("not a number"),
      version: "1",
    });
    t.service.data.set("sensors/badkey", { value: enc.encode("1"), version: "1" });

    const feed = (await (await get("/v1/sensors?window=60", READ_TOKEN)).json()) as {
      series: { prefix: string; reading: { value: number } | null }[];
    };
    assert.deepEqual(
      feed.series.map((s) => [s.prefix, s.reading?.value ?? null]),
      [
        ["sensors/{garage}/door/", 1],
        ["sensors/{kitchen}/temp/", 42.5],
      ],
    );
    const q = new URLSearchParams({
      prefix: "sensors/{kitchen}/temp/",
      from: new Date(base).toISOString(),
      to: new Date(base + 120_000).toISOString(),
      buckets: "4",
    });
    const series = (await (await get(`/v1/series?${q}`, READ_TOKEN)).json()) as {
      bucketMs: number;
      readings: number;
      buckets: { t: number; count: number; avg: number; min: number; max: number }[];
    };
    assert.equal(series.bucketMs, 30_000);
    assert.equal(series.readings, 12);
    assert.deepEqual(
      series.buckets.map((b) => [b.t - base, b.count, b.avg, b.min, b.max]),
      [
        [0, 3, 1, 0, 2],
        [30_000, 3, 4, 3, 5],
        [60_000, 3, 7, 6, 8],
        [90_000, 3, 10, 9, 11],
      ],
    );
    for (const bad of [
      "prefix=sensors%2Fx",
      "prefix=other%2F",
      "prefix=sensors%2F%7Bk%7D%2Ft%2F&buckets=0",
      "prefix=sensors%2F%7Bk%7D%2Ft%2F&from=yesterday",
    ]) {
      assert.equal((await get(`/v1/series?${bad}`, READ_TOKEN)).status, 400, bad);
    }
  });

  it("parses sensor keys and values", () => {
    assert.deepEqual(parseSensorKey("sensors/{a b}/temp/2026-01-01T00:00:00.000Z"), {
      prefix: "sensors/{a b}/temp/",
      device: "a b",
      sensor: "temp",
      time: "2026-01-01T00:00:00.000Z",
    });
    assert.equal(parseSensorKey("sensors/nobrace/temp/x"), null);
    assert.equal(readingValue(enc.encode(" 3.5 ")), 3.5);
    assert.equal(readingValue(enc.encode('{"value":"3"}')), null);
    assert.equal(readingValue(enc.encode("{bad json")), null);
    assert.equal(readingValue(enc.encode("")), null);
  });
});

describe("bridge metrics folded into the agent's", () => {
  it("adds the node label and drops anything that is not the bridge's", () => {
    const text = [
      "# HELP ringleader_bridge_outbox_depth Readings waiting",
      "# TYPE ringleader_bridge_outbox_depth gauge",
      "ringleader_bridge_outbox_depth 3",
      'ringleader_bridge_readings_rejected_total{reason="bad_sensor"} 2',
      "ringleader_raft_term 99",
      "# HELP evil_metric x",
      "evil_metric 1",
      "",
    ].join("\n");
    assert.equal(
      relabelBridgeText(text, "n1"),
      [
        "# HELP ringleader_bridge_outbox_depth Readings waiting",
        "# TYPE ringleader_bridge_outbox_depth gauge",
        'ringleader_bridge_outbox_depth{node="n1"} 3',
        'ringleader_bridge_readings_rejected_total{node="n1",reason="bad_sensor"} 2',
        "",
      ].join("\n"),
    );
  });
});

describe("status overview", () => {
  const view: ClusterHealth = {
    observer: "n1",
    at: 0,
    intervalMs: 10_000,
    replicationFactor: 3,
    nodes: [
      {
        id: "n1",
        api: "http://10.0.0.1:7000",
        state: "up",
        reachable: true,
        ageMs: 1000,
        rttMs: 0,
        skewMs: 0,
        error: null,
        board: null,
        leads: 2,
        replicas: 2,
        load: null,
      },
      {
        id: "n2",
        api: "http://10.0.0.2:7000",
        state: "up",
        reachable: false,
        ageMs: 40_000,
        rttMs: null,
        skewMs: null,
        error: "fetch failed",
        board: null,
        leads: 0,
        replicas: 2,
        load: null,
      },
    ],
    partitions: [
      {
        partition: 0,
        leader: "n1",
        term: 1,
        voters: ["n1", "n2"],
        learners: [],
        active: ["n1"],
        replicas: ["n1", "n2"],
      },
      {
        partition: 1,
        leader: "n1",
        term: 1,
        voters: ["n1", "n2"],
        learners: [],
        active: ["n1"],
        replicas: ["n1", "n2"],
      },
    ],
    warnings: [
      { kind: "unreachable", node: "n2", message: "n2 unreachable for 40 s (fetch failed)" },
      {
        kind: "under-replicated",
        partition: 0,
        message: "partition 0: 1 of 2 replicas healthy (n2 not responding)",
      },
    ],
  };
  it("shows nodes, leaders, under-replicated partitions and warnings", () => {
    const lines = renderOverview({
      api: "http://10.0.0.1:7000",
      health: view,
      statuses: new Map(),
      cluster: "home",
    });
    const text = lines.join("\n");
    assert.match(text, /^cluster home · 2 nodes · 2 partitions × 3 replicas · seen from n1/);
    assert.match(text, /^n2\s+10\.0\.0\.2:7000\s+unreachable/m);
    assert.match(text, /partitions\s+2\/2 have a leader \(n1 2\)/);
    assert.match(text, /1 under-replicated, 0 without a leader: 0/);
    assert.match(text, /! n2 unreachable for 40 s/);
  });
  it("cuts frames to the terminal without breaking colour codes", () => {
    const lines = renderOverview(
      { api: "http://10.0.0.1:7000", health: view, statuses: new Map(), cluster: "home" },
      { style: ANSI },
    );
    const frame = frameFor(lines, 5, 20);
    const rows = frame.split("\n").slice(0, -1);
    assert.equal(rows.length, 4, "rows - 1 lines, leaving the last for the cursor");
    for (const r of rows) {
      // eslint-disable-next-line no-control-regex -- measuring without ANSI escapes.
      assert.ok(r.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").length <= 20, r);
    }
    assert.ok(frame.startsWith("\x1b[H") && frame.endsWith("\x1b[J"));
  });
});

describe("the read-only token in the cluster config", () => {
  it("is made by init, optional in older configs, and never the same as the token", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rl-config-"));
    try {
      const cfg = newClusterConfig("home", new Date());
      assert.ok(cfg.readToken && cfg.readToken.length >= 16 && cfg.readToken !== cfg.token);
      const path = join(dir, "ringleader.json");
      const write = async (value: unknown) => {
        await writeFile(path, JSON.stringify(value));
        await chmod(path, 0o600);
      };
      await write(cfg);
      assert.equal((await readClusterConfig(path)).readToken, cfg.readToken);
      const { readToken: _drop, ...older } = cfg;
      await write(older);
      assert.equal((await readClusterConfig(path)).readToken, undefined);
      await write({ ...cfg, readToken: cfg.token });
      await assert.rejects(readClusterConfig(path), ConfigError);
      await write({ ...cfg, readToken: "short" });
      await assert.rejects(readClusterConfig(path), ConfigError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
