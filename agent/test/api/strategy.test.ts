import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Consistency } from "../../src/api/service.js";
import { startTestServer, TEST_TOKEN, type TestServer } from "./fake-service.js";

interface SeenGet {
  consistency: Consistency;
  strategy?: string;
  clientAddress?: string;
  hops?: number;
}

describe("api server: ?strategy= on reads", () => {
  let t: TestServer;
  const seen: SeenGet[] = [];
  before(async () => {
    t = await startTestServer();
    t.service.data.set("k", { value: new TextEncoder().encode("v"), version: "7" });
    const original = t.service.get.bind(t.service);
    t.service.get = async (key, opts) => {
      seen.push(opts as SeenGet);
      const found = await original(key, opts);
      return found && { ...found, servedBy: "n2" };
    };
  });
  after(() => t.stop());

  async function get(query: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${t.url}/v1/kv/k${query}`, {
      headers: { authorization: `Bearer ${TEST_TOKEN}`, ...headers },
    });
  }

  it("passes the strategy and the client's address to the service, and names the serving node", async () => {
    const res = await get("?consistency=eventual&strategy=ip-hash");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "v");
    assert.equal(res.headers.get("x-ringleader-served-by"), "n2");
    const last = seen.at(-1)!;
    assert.equal(last.consistency, "eventual");
    assert.equal(last.strategy, "ip-hash");
    assert.equal(last.clientAddress, "127.0.0.1");
  });

  it("leaves the strategy to the node when the request names none", async () => {
    const res = await get("?consistency=eventual");
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(seen.at(-1)!.strategy, undefined);
  });

  it("answers 400 bad_request for an unknown strategy, naming the choices, and counts it", async () => {
    const reportedBefore = t.requests.length;
    const before = t.requests.filter((r) => r.status === 400).length;
    const calls = seen.length;
    const res = await get("?consistency=eventual&strategy=fastest");
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "bad_request");
    assert.match(body.error.message, /strategy must be one of random, round-robin, ip-hash, least-loaded/);
    assert.equal(seen.length, calls, "the service is not called");
    await t.reported(reportedBefore + 1);
    assert.equal(t.requests.filter((r) => r.status === 400).length, before + 1);
  });

  it("believes x-forwarded-for only from another agent (a request with the hop header)", async () => {
    const direct = await get("?consistency=eventual&strategy=ip-hash", { "x-forwarded-for": "10.9.9.9" });
    await direct.arrayBuffer();
    assert.equal(seen.at(-1)!.clientAddress, "127.0.0.1");
    const hop = await get("?consistency=eventual&strategy=ip-hash", {
      "x-forwarded-for": "10.9.9.9",
      "x-ringleader-hops": "1",
    });
    await hop.arrayBuffer();
    assert.equal(seen.at(-1)!.clientAddress, "10.9.9.9");
  });
});
