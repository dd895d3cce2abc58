import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { TwoLabelCounter } from "../../src/node/metrics.js";

describe("TwoLabelCounter", () => {
  it("exposes each label pair's count, the same at every scrape", async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ node: "n1" });
    const c = new TwoLabelCounter<string, number>("t_requests_total", "test", ["route", "status"], registry);
    c.inc("PUT /v1/kv/:key", 200);
    c.inc("PUT /v1/kv/:key", 200);
    c.inc("PUT /v1/kv/:key", 409);
    c.inc("GET /v1/kv/:key", 200);
    for (let scrape = 0; scrape < 2; scrape++) {
      const lines = (await registry.metrics()).split("\n").filter((l) => l.startsWith("t_requests_total{"));
      assert.deepEqual(lines.sort(), [
        't_requests_total{route="GET /v1/kv/:key",status="200",node="n1"} 1',
        't_requests_total{route="PUT /v1/kv/:key",status="200",node="n1"} 2',
        't_requests_total{route="PUT /v1/kv/:key",status="409",node="n1"} 1',
      ]);
    }
  });
});
