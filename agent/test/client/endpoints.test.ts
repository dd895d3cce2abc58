import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EndpointSelector, normalizeEndpoint, parseEndpointList } from "../../src/client/endpoints.js";
import { ClientConfigError } from "../../src/client/errors.js";

const A = "http://127.0.0.1:7001";
const B = "http://127.0.0.1:7002";
const C = "http://127.0.0.1:7003";

describe("endpoint selection", () => {
  it("round-robin starts each request at the next endpoint and lists the others after it", () => {
    const s = new EndpointSelector([A, B, C], { strategy: "round-robin" });
    assert.deepEqual(s.order(), [A, B, C]);
    assert.deepEqual(s.order(), [B, C, A]);
    assert.deepEqual(s.order(), [C, A, B]);
    assert.deepEqual(s.order(), [A, B, C]);
  });

  it("random starts where the injected random number points", () => {
    const picks = [0.0, 0.5, 0.99];
    const s = new EndpointSelector([A, B, C], { strategy: "random", random: () => picks.shift() ?? 0 });
    assert.equal(s.order()[0], A);
    assert.equal(s.order()[0], B);
    assert.equal(s.order()[0], C);
  });

  it("ip-hash without an address, and least-loaded between equal loads, take turns", () => {
    for (const strategy of ["ip-hash", "least-loaded"] as const) {
      const s = new EndpointSelector([A, B], { strategy, clientAddress: "" });
      assert.deepEqual([s.order()[0], s.order()[0], s.order()[0]], [A, B, A]);
    }
  });

  it("ip-hash with an address always starts at the same endpoint", () => {
    const s = new EndpointSelector([A, B, C], { strategy: "ip-hash", clientAddress: "10.0.0.8" });
    const first = s.order()[0];
    assert.deepEqual([s.order()[0], s.order()[0], s.order()[0]], [first, first, first]);
  });

  it("tries an endpoint that just failed last until its time is up", () => {
    let now = 1000;
    const s = new EndpointSelector([A, B, C], { strategy: "round-robin", now: () => now, downForMs: 500 });
    s.markDown(A);
    assert.deepEqual(s.order(), [B, C, A]);
    assert.deepEqual(s.order(), [B, C, A]);
    now = 1500;
    assert.deepEqual(s.order(), [C, A, B]);
    s.markDown(B);
    s.markUp(B);
    assert.deepEqual(s.order(), [A, B, C]);
  });

  it("normalises URLs and rejects what is not an http(s) endpoint", () => {
    assert.equal(normalizeEndpoint("http://127.0.0.1:7001/"), A);
    assert.deepEqual(parseEndpointList(` ${A}, ${B}/ ,`), [A, B]);
    for (const bad of ["127.0.0.1:7001", "ftp://x", "http://x/?a=1", "not a url"]) {
      assert.throws(() => normalizeEndpoint(bad), ClientConfigError, bad);
    }
    assert.throws(() => new EndpointSelector([]), ClientConfigError);
  });
});
