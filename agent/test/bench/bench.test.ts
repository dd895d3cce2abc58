import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ServiceUnavailableError } from "../../src/api/errors.js";
import { runBench, type BenchOptions } from "../../src/bench/engine.js";
import { MixError, parseMix, pickOp } from "../../src/bench/mix.js";
import { formatBenchResult } from "../../src/bench/report.js";
import { EtcdTarget, RingleaderTarget, type BenchTarget } from "../../src/bench/targets.js";
import { startTestServer, TEST_TOKEN, type TestServer } from "../api/fake-service.js";

const HTTP = { maxSockets: 8, timeoutMs: 5000, maxResponseBytes: 1024 * 1024 };

function options(target: BenchOptions["target"], overrides: Partial<BenchOptions>): BenchOptions {
  return {
    target,
    concurrency: 8,
    warmupMs: 0,
    valueSize: 64,
    keySpace: 100,
    keyPrefix: "bench/",
    mix: parseMix("put=1"),
    preload: false,
    ops: 100,
    ...overrides,
  };
}

describe("bench: mix", () => {
  it("parses weights by name, with get meaning a strong get", () => {
    assert.deepEqual(parseMix("put=1,get=3,weak=0.5"), {
      put: 1,
      "get-strong": 3,
      "get-weak": 0.5,
      "get-eventual": 0,
    });
    assert.deepEqual(parseMix("eventual=2"), { put: 0, "get-strong": 0, "get-weak": 0, "get-eventual": 2 });
  });

  it("rejects unknown names, repeats, bad numbers and an all-zero mix", () => {
    for (const bad of ["put=1,scan=1", "put=1,put=2", "put=-1", "put=x", "put", "put=0,get=0", ""]) {
      assert.throws(() => parseMix(bad), MixError, bad);
    }
  });

  it("picks each kind in proportion to its weight", () => {
    const mix = parseMix("put=1,get=3");
    assert.equal(pickOp(mix, 0), "put");
    assert.equal(pickOp(mix, 0.2499), "put");
    assert.equal(pickOp(mix, 0.25), "get-strong");
    assert.equal(pickOp(mix, 0.999999), "get-strong");
  });
});

describe("bench: the generator's own CPU", () => {
  it("counts what the generator used while measuring, not in the preload or the warm-up", async () => {
    // A fake clock of CPU time: each answered operation costs a known amount of it.
    let cpu = 0;
    const target: BenchTarget = {
      name: "fake",
      endpoints: ["memory"],
      put: () => ((cpu += 250), Promise.resolve()),
      get: () => ((cpu += 100), Promise.resolve("hit")),
      close: () => {},
    };
    const result = await runBench(
      options(target, {
        ops: 40,
        warmupMs: 20,
        preload: true,
        mix: parseMix("put=1,get=1"),
        cpuUs: () => cpu,
      }),
    );
    const puts = result.ops.put?.count ?? 0;
    const gets = result.ops["get-strong"]?.count ?? 0;
    assert.equal(puts + gets, 40);
    assert.equal(result.generatorCpuUs, puts * 250 + gets * 100);
    assert.ok(cpu >= result.generatorCpuUs + 100 * 250, "the preload's 100 puts are not counted");
    const perOp = Math.round(result.generatorCpuUs / 40);
    assert.match(formatBenchResult(result), new RegExp(`generator CPU: ${perOp} us per op`));
  });
});

describe("bench: the measure hook", () => {
  it("runs once the warm-up has drained, before the first measured operation", async () => {
    let answered = 0;
    let inFlight = 0;
    const slowPut = async () => {
      inFlight++;
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      answered++;
    };
    const target: BenchTarget = {
      name: "fake",
      endpoints: ["memory"],
      put: slowPut,
      get: () => Promise.resolve("hit"),
      close: () => {},
    };
    const atHook: { answered: number; inFlight: number }[] = [];
    const result = await runBench(
      options(target, {
        ops: 50,
        warmupMs: 30,
        onMeasure: async () => {
          atHook.push({ answered, inFlight });
          await new Promise((resolve) => setTimeout(resolve, 5));
          assert.equal(answered, atHook[0]!.answered, "no operation is issued while the hook runs");
        },
      }),
    );
    assert.equal(atHook.length, 1);
    assert.equal(atHook[0]!.inFlight, 0, "nothing is in flight when the hook runs");
    assert.ok(atHook[0]!.answered > 0, "the warm-up ran before the hook");
    assert.equal(answered - atHook[0]!.answered, 50, "every measured operation comes after the hook");
    assert.equal(result.ops.put?.count, 50);
  });
});

describe("bench: against the Ringleader API", () => {
  let t: TestServer;
  before(async () => (t = await startTestServer()));
  after(() => t.stop());

  it("runs for a second with every kind of operation and no errors", async () => {
    const target = new RingleaderTarget([t.url], TEST_TOKEN, HTTP);
    const progress: string[] = [];
    try {
      const result = await runBench(
        options(target, {
          ops: undefined,
          durationMs: 1000,
          mix: parseMix("put=1,get=1,weak=1,eventual=1"),
          preload: true,
          onProgress: (p) => progress.push(p.phase),
          progressEveryMs: 200,
        }),
      );
      assert.ok(result.totalOps > 0);
      assert.equal(result.totalErrors, 0);
      assert.deepEqual(result.errorsByKind, {});
      assert.ok(result.measuredSeconds >= 1 && result.measuredSeconds < 5);
      for (const kind of ["put", "get-strong", "get-weak", "get-eventual"] as const) {
        const op = result.ops[kind];
        assert.ok(op && op.count > 0, kind);
        assert.equal(op.misses, 0, `${kind}: the preload wrote every key`);
        assert.ok(op.latencyUs.p50 > 0 && op.latencyUs.p50 <= op.latencyUs.p99, kind);
        assert.ok(op.latencyUs.p99 <= op.latencyUs.p999 && op.latencyUs.p999 <= op.latencyUs.max, kind);
      }
      const counted = Object.values(result.ops).reduce((sum, op) => sum + (op?.count ?? 0), 0);
      assert.equal(counted, result.totalOps);
      // The server saw the preload (one put per key) and gets at each consistency level.
      assert.equal(t.service.data.size, 100);
      for (const level of ["strong", "weak", "eventual"]) {
        assert.ok(
          t.service.calls.some((c) => c.op === "get" && c.consistency === level),
          level,
        );
      }
      assert.ok(progress.includes("measure"), "progress was reported while measuring");
      assert.ok(result.generatorCpuUs > 0, "the generator's own CPU was read");
      assert.match(formatBenchResult(result), /get-eventual/);
    } finally {
      target.close();
    }
  });

  it("measures exactly --ops operations", async () => {
    const target = new RingleaderTarget([t.url], TEST_TOKEN, HTTP);
    try {
      const result = await runBench(options(target, { ops: 137, warmupMs: 100 }));
      assert.equal(result.totalOps, 137);
      assert.equal(result.ops.put?.count, 137);
    } finally {
      target.close();
    }
  });

  it("counts misses of absent keys apart from errors", async () => {
    const target = new RingleaderTarget([t.url], TEST_TOKEN, HTTP);
    try {
      const result = await runBench(
        options(target, { mix: parseMix("get=1"), keyPrefix: "absent/", ops: 50 }),
      );
      assert.equal(result.ops["get-strong"]?.misses, 50);
      assert.equal(result.totalErrors, 0);
    } finally {
      target.close();
    }
  });

  it("counts errors by kind and records no latency for them", async () => {
    const sick = await startTestServer();
    sick.service.failWith = new ServiceUnavailableError("no leader");
    const target = new RingleaderTarget([sick.url], TEST_TOKEN, HTTP);
    try {
      const result = await runBench(options(target, { ops: 20, concurrency: 2 }));
      assert.equal(result.totalOps, 0);
      assert.equal(result.totalErrors, 20);
      assert.deepEqual(result.errorsByKind, { "503 unavailable": 20 });
      assert.equal(result.ops.put?.latencyUs.max, 0);
    } finally {
      target.close();
      await sick.stop();
    }
  });

  it("counts a wrong token as 401 errors", async () => {
    const target = new RingleaderTarget([t.url], "wrong", HTTP);
    try {
      const result = await runBench(options(target, { ops: 5, concurrency: 1 }));
      assert.deepEqual(result.errorsByKind, { "401 unauthorized": 5 });
    } finally {
      target.close();
    }
  });
});

interface EtcdRequest {
  path: string;
  body: Record<string, unknown>;
}

/** Just enough of etcd 3.4's JSON gateway: put and range on a map, every request recorded. */
async function startFakeEtcd(): Promise<{
  url: string;
  requests: EtcdRequest[];
  data: Map<string, string>;
  close(): Promise<void>;
}> {
  const requests: EtcdRequest[] = [];
  const data = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      requests.push({ path: req.url ?? "", body });
      const reply = (status: number, value: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      const header = { cluster_id: "1", member_id: "2", revision: String(data.size), raft_term: "2" };
      if (req.method !== "POST" || req.headers["content-type"] !== "application/json") {
        reply(400, { error: "bad request", code: 3 });
      } else if (
        req.url === "/v3/kv/put" &&
        typeof body["key"] === "string" &&
        typeof body["value"] === "string"
      ) {
        data.set(body["key"], body["value"]);
        reply(200, { header });
      } else if (req.url === "/v3/kv/range" && typeof body["key"] === "string") {
        const value = data.get(body["key"]);
        // Like the real gateway, empty fields are left out: a miss has no kvs.
        reply(
          200,
          value === undefined
            ? { header }
            : { header, kvs: [{ key: body["key"], value, version: "1" }], count: "1" },
        );
      } else {
        reply(404, { error: "Not Found", code: 5 });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    data,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("bench: against etcd's JSON gateway", () => {
  it("sends base64 keys and values, linearizable ranges for strong gets and serializable ones otherwise", async () => {
    const etcd = await startFakeEtcd();
    const target = new EtcdTarget([etcd.url], HTTP);
    try {
      const result = await runBench(
        options(target, {
          ops: 400,
          mix: parseMix("put=1,get=1,weak=1,eventual=1"),
          preload: true,
          keySpace: 20,
        }),
      );
      assert.equal(result.totalErrors, 0, JSON.stringify(result.errorsByKind));
      assert.equal(result.totalOps, 400);
      assert.equal(result.target, "etcd");

      const puts = etcd.requests.filter((r) => r.path === "/v3/kv/put");
      const ranges = etcd.requests.filter((r) => r.path === "/v3/kv/range");
      assert.ok(puts.length >= 20 && ranges.length > 0);
      for (const put of puts) {
        assert.deepEqual(Object.keys(put.body).sort(), ["key", "value"]);
        assert.match(Buffer.from(String(put.body["key"]), "base64").toString("utf8"), /^bench\/[0-9]{2}$/);
        assert.equal(Buffer.from(String(put.body["value"]), "base64").length, 64);
      }
      const linearizable = ranges.filter((r) => !("serializable" in r.body)).length;
      const serializable = ranges.filter((r) => r.body["serializable"] === true).length;
      assert.equal(linearizable + serializable, ranges.length);
      assert.equal(linearizable, result.ops["get-strong"]?.count);
      assert.equal(
        serializable,
        (result.ops["get-weak"]?.count ?? 0) + (result.ops["get-eventual"]?.count ?? 0),
      );
      assert.equal(result.ops["get-strong"]?.misses, 0, "ranges of preloaded keys find them");
    } finally {
      target.close();
      await etcd.close();
    }
  });
});
