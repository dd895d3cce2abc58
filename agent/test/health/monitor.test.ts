/**
 * The health monitor's cluster view with peers answering over real HTTP: records pulled with the
 * token, clock skew estimated from the sender's clock and the round trip, a peer that stops
 * answering becomes unreachable, warnings for full disks, throttling, skew and under-replicated
 * partitions, and the `least-loaded` score.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ActivityTracker } from "../../src/health/activity.js";
import type { BoardHealth } from "../../src/health/board.js";
import { HealthMonitor, type MemberRef } from "../../src/health/monitor.js";
import { parseHealthRecord, HealthRecordError, type HealthRecord } from "../../src/health/record.js";
import { throttleFromWord } from "../../src/health/throttle.js";
import { loadScore } from "../../src/health/view.js";
import { HELD_WARN_MS, partitionWarnings } from "../../src/health/warnings.js";
import { collectGarbage, within } from "../../../test/support/gc.js";

const TOKEN = "monitor-test-token-0123";

function board(over: Partial<BoardHealth> = {}): BoardHealth {
  return {
    sampledAt: 0,
    cpuLoadPct: 10,
    load1: 0.2,
    cpus: 4,
    tempC: 45,
    memTotalBytes: 4e9,
    memAvailableBytes: 3e9,
    diskTotalBytes: 32e9,
    diskFreeBytes: 20e9,
    dataDirBytes: 1e6,
    lmdbBytes: 9e5,
    uptimeSec: 100,
    agentUptimeSec: 50,
    rssBytes: 6e7,
    processWrittenBytes: 0,
    throttle: throttleFromWord(0),
    throttleSource: "sysfs",
    sd: null,
    sampleCpuMs: 1,
    sampleWallMs: 2,
    ...over,
  };
}

/** A peer's `/v1/health/local` with a record the test sets, and a clock offset. */
class FakePeer {
  record: Omit<HealthRecord, "sentAt"> | null = null;
  clockOffsetMs = 0;
  answering = true;
  /** Takes the request and never answers (a frozen board whose kernel still accepts). */
  hanging = false;
  requests = 0;
  private readonly server = http.createServer((req, res) => {
    this.requests++;
    if (this.hanging) return;
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
    if (!this.answering || !this.record) return void res.writeHead(503).end();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...this.record, sentAt: Date.now() + this.clockOffsetMs }));
  });
  url = "";
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe("health monitor", () => {
  const p2 = new FakePeer();
  const p3 = new FakePeer();
  before(async () => {
    await p2.start();
    await p3.start();
  });
  after(async () => {
    await p2.stop();
    await p3.stop();
  });

  function monitor(
    local: BoardHealth,
    opts: { now?: () => number; monotonic?: () => number; pullTimeoutMs?: number } = {},
  ) {
    const members: MemberRef[] = [
      { id: "n1", api: "http://127.0.0.1:1", state: "up" },
      { id: "n2", api: p2.url, state: "up" },
      { id: "n3", api: p3.url, state: "up" },
    ];
    return new HealthMonitor({
      nodeId: "n1",
      sampler: { sample: async () => local },
      token: TOKEN,
      members: () => members,
      leads: () => [
        {
          partition: 0,
          term: 3,
          voters: ["n1", "n2", "n3"],
          learners: [],
          active: ["n1", "n2", "n3"],
          commit: 9,
        },
      ],
      placement: () => ({
        replicationFactor: 3,
        replicas: [
          ["n1", "n2", "n3"],
          ["n2", "n3", "n1"],
        ],
      }),
      intervalMs: 1000,
      ...opts,
    });
  }

  it("pulls every peer's record, measures skew, and lists partitions with their leaders", async () => {
    p2.record = {
      v: 1,
      node: "n2",
      board: board({ cpuLoadPct: 80 }),
      leads: [
        { partition: 1, term: 2, voters: ["n1", "n2", "n3"], learners: [], active: ["n2", "n3"], commit: 4 },
      ],
    };
    p3.record = { v: 1, node: "n3", board: board({ diskFreeBytes: 1e8 }), leads: [] };
    p2.clockOffsetMs = 0;
    p3.clockOffsetMs = 5000;
    const m = monitor(board());
    await m.round();
    const v = m.view();
    const n2 = v.nodes.find((n) => n.id === "n2")!;
    const n3 = v.nodes.find((n) => n.id === "n3")!;
    assert.equal(n2.reachable, true);
    assert.ok(Math.abs(n2.skewMs!) < 500, `n2 skew ${n2.skewMs}`);
    assert.ok(Math.abs(n3.skewMs! - 5000) < 500, `n3 skew ${n3.skewMs}`);
    assert.ok(n2.rttMs! >= 0);
    assert.equal(n2.leads, 1);
    assert.deepEqual(
      v.partitions.map((p) => [p.partition, p.leader]),
      [
        [0, "n1"],
        [1, "n2"],
      ],
    );
    const kinds = v.warnings.map((w) => `${w.kind}:${w.node ?? w.partition}`).sort();
    assert.deepEqual(kinds, ["clock-skew:n3", "disk-full:n3", "under-replicated:1"]);
    // n2 is busier than n1: the least-loaded score says so.
    assert.ok(m.loadOf("n2")! > m.loadOf("n1")!);
    assert.equal(m.loadOf("nobody"), undefined);
    await m.stop();
  });

  it("marks a peer that stops answering unreachable, and forgets its load once stale", async () => {
    p2.record = { v: 1, node: "n2", board: board(), leads: [] };
    p3.record = { v: 1, node: "n3", board: board(), leads: [] };
    p3.clockOffsetMs = 0;
    let mono = 0;
    const m = monitor(board(), { monotonic: () => mono });
    await m.round();
    assert.equal(m.view().nodes.find((n) => n.id === "n3")!.reachable, true);
    assert.notEqual(m.loadOf("n3"), undefined);
    p3.answering = false;
    mono += 500;
    await m.round();
    const n3 = m.view().nodes.find((n) => n.id === "n3")!;
    assert.equal(n3.reachable, false);
    assert.match(n3.error ?? "", /503/);
    assert.ok(m.view().warnings.some((w) => w.kind === "unreachable" && w.node === "n3"));
    // Its last record still counts for load until it is older than three intervals.
    assert.notEqual(m.loadOf("n3"), undefined);
    mono += 3500;
    assert.equal(m.loadOf("n3"), undefined);
    p3.answering = true;
    await m.stop();
  });

  it("gives up on a peer that takes the request and never answers, garbage collection or not", async () => {
    p2.record = { v: 1, node: "n2", board: board(), leads: [] };
    p3.record = { v: 1, node: "n3", board: board(), leads: [] };
    p3.hanging = true;
    const m = monitor(board(), { pullTimeoutMs: 200 });
    try {
      const round = m.round();
      // A collection while the pull waits: AbortSignal.any([.., AbortSignal.timeout()]) loses its
      // timeout to it, and the round, which every later round waits for, never ended.
      await new Promise((r) => setImmediate(r));
      collectGarbage();
      await within("the round", 5000, round);
      const n3 = m.view().nodes.find((n) => n.id === "n3")!;
      assert.equal(n3.reachable, false);
      assert.match(n3.error ?? "", /timeout|aborted/i);
      assert.equal(m.view().nodes.find((n) => n.id === "n2")!.reachable, true);
    } finally {
      p3.hanging = false;
      await m.stop();
    }
  });

  it("warns about throttling and heat from a peer's flags", async () => {
    p2.record = {
      v: 1,
      node: "n2",
      board: board({ throttle: throttleFromWord(0x50005), tempC: 82 }),
      leads: [],
    };
    p3.record = { v: 1, node: "n3", board: board(), leads: [] };
    const m = monitor(board());
    await m.round();
    const w = m
      .view()
      .warnings.filter((x) => x.node === "n2")
      .map((x) => x.kind);
    assert.deepEqual(w.sort(), ["hot", "throttled", "throttled"]);
    // A throttled hot board scores over 2; a cool idle one about 0.1.
    assert.ok(m.loadOf("n2")! > 2, String(m.loadOf("n2")));
    await m.stop();
  });

  it("warns about a replica a node keeps for want of a leader's confirmation, naming node and partition", async () => {
    p2.record = {
      v: 1,
      node: "n2",
      board: board(),
      leads: [],
      held: [
        { partition: 7, waitingMs: HELD_WARN_MS + 5000 },
        { partition: 8, waitingMs: 4000 }, // Normal: the next question will settle it.
      ],
    };
    // n3 runs an agent from before the field: no `held`.
    p3.record = { v: 1, node: "n3", board: board(), leads: [] };
    const m = new HealthMonitor({
      nodeId: "n1",
      sampler: { sample: async () => board() },
      token: TOKEN,
      members: () => [
        { id: "n1", api: "http://127.0.0.1:1", state: "up" },
        { id: "n2", api: p2.url, state: "up" },
        { id: "n3", api: p3.url, state: "joining" },
      ],
      leads: () => [],
      held: () => [{ partition: 3, waitingMs: 120_000 }],
      placement: () => null,
      intervalMs: 1000,
    });
    await m.round();
    const view = m.view();
    const held = view.warnings.filter((w) => w.kind === "replica-held");
    assert.deepEqual(held.map((w) => `${w.node}:${w.partition}`).sort(), ["n1:3", "n2:7"]);
    assert.match(held.find((w) => w.node === "n2")!.message, /n2 keeps its replica of partition 7/);
    assert.deepEqual(m.record().held, [{ partition: 3, waitingMs: 120_000 }]);
    assert.equal(view.nodes.find((n) => n.id === "n3")!.state, "joining");
    await m.stop();
  });
});

describe("health record and warnings", () => {
  it("refuses malformed records with a clear error", () => {
    const good = { v: 1, node: "n1", sentAt: 5, board: null, leads: [] };
    assert.equal(parseHealthRecord(good).node, "n1");
    for (const bad of [
      null,
      [],
      { ...good, v: 2 },
      { ...good, node: "" },
      { ...good, sentAt: -1 },
      { ...good, leads: {} },
      { ...good, leads: [{ partition: "x" }] },
      { ...good, held: {} },
      { ...good, held: [{ partition: 1, waitingMs: -5 }] },
    ]) {
      assert.throws(() => parseHealthRecord(bad), HealthRecordError);
    }
  });

  it("scores load from busy share, heat and throttling", () => {
    assert.equal(loadScore(board({ cpuLoadPct: 20, tempC: 50 })), 0.2);
    assert.equal(loadScore(board({ cpuLoadPct: 20, tempC: 70 })), 0.7);
    assert.equal(loadScore(board({ cpuLoadPct: 20, tempC: 50, throttle: throttleFromWord(0x4) })), 1.2);
    assert.equal(loadScore(board({ cpuLoadPct: null, load1: 2, cpus: 4, tempC: null, throttle: null })), 0.5);
  });

  it("says a partition has no leader only when every node was heard", () => {
    const p = {
      partition: 7,
      leader: null,
      term: 0,
      voters: [],
      learners: [],
      active: [],
      replicas: ["a", "b", "c"],
    };
    assert.deepEqual(partitionWarnings([p], 3, false), []);
    assert.equal(partitionWarnings([p], 3, true)[0]?.kind, "no-leader");
    const short = { ...p, leader: "a", voters: ["a", "b"], active: ["a", "b"] };
    assert.match(
      partitionWarnings([short], 3, true)[0]?.message ?? "",
      /2 of 3 replicas healthy \(rebuilding\)/,
    );
  });

  it("keeps a follower active through the core's periodic reset of its flag", () => {
    let mono = 0;
    let active = new Set(["n1", "n2", "n3"]);
    const t = new ActivityTracker(
      "n1",
      () => [
        { partition: 0, term: 1, commit: 1, voters: ["n1", "n2", "n3"], learners: [], recentActive: active },
      ],
      { checkMs: 100, graceMs: 1000, monotonic: () => mono },
    );
    t.check();
    active = new Set(["n1"]); // right after the election-timeout reset
    mono += 200;
    assert.deepEqual(t.leads()[0]?.active, ["n1", "n2", "n3"]);
    active = new Set(["n1", "n2"]); // n3 really stopped answering
    mono += 1200;
    assert.deepEqual(t.leads()[0]?.active, ["n1", "n2"]);
  });
});

describe("per-group snapshot metric", () => {
  it("counts sends by group and leaves out groups that sent none", async () => {
    const { Registry } = await import("prom-client");
    const { registerGroupSnapshotMetrics } = await import("../../src/health/metrics.js");
    const registry = new Registry();
    const sent = new Map<number, number>([[5, 2]]);
    registerGroupSnapshotMetrics(registry, () => sent);
    const text = await registry.metrics();
    assert.match(text, /^ringleader_raft_snapshots_sent_total\{group="5"\} 2$/m);
    assert.doesNotMatch(text, /group="0"/);
    sent.set(5, 3);
    assert.match(await registry.metrics(), /^ringleader_raft_snapshots_sent_total\{group="5"\} 3$/m);
  });
});
