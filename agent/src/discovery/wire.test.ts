import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BootstrapProtocol } from "./protocol.js";
import {
  DiscoveryWireError,
  MAX_DISCOVERY_BODY_BYTES,
  ProofError,
  checkAnswer,
  checkRequest,
  discoveryKey,
  open,
  probe,
  seal,
} from "./wire.js";

const key = discoveryKey("a-secret-of-at-least-16-bytes", "lab");
const card = { id: "n1", api: "http://10.0.0.1:7000", apiPort: 7000, peerPort: 7100, version: "0.1.0" };

test("a sealed probe opens with the same secret and cluster name only", () => {
  const body = seal(key, { v: 1, cluster: "lab", nonce: "abc", from: card });
  assert.equal(checkRequest(open(key, body), "lab").from.id, "n1");
  assert.throws(() => open(discoveryKey("another-secret-of-16-bytes!", "lab"), body), ProofError);
  assert.throws(() => open(discoveryKey("a-secret-of-at-least-16-bytes", "lab2"), body), ProofError);
});

test("a tampered payload fails the proof; junk is a wire error, not a crash", () => {
  const body = JSON.parse(seal(key, { v: 1, cluster: "lab", nonce: "abc", from: card })) as {
    p: string;
    mac: string;
  };
  const tampered = JSON.stringify({ p: body.p.replace("n1", "n9"), mac: body.mac });
  assert.throws(() => open(key, tampered), ProofError);
  assert.throws(() => open(key, "{not json"), DiscoveryWireError);
  assert.throws(() => open(key, JSON.stringify({ p: 1 })), DiscoveryWireError);
  assert.throws(
    () => checkRequest(open(key, seal(key, { v: 1, cluster: "lab", nonce: "x" })), "lab"),
    DiscoveryWireError,
  );
});

test("an answer to another request (a replay) is refused", () => {
  const answer = {
    v: 1,
    cluster: "lab",
    nonce: "old",
    node: card,
    report: { id: "n1", state: "new", known: [] },
    peers: [],
  };
  assert.throws(() => checkAnswer(open(key, seal(key, answer)), "lab", "fresh"), ProofError);
  assert.equal(checkAnswer(open(key, seal(key, answer)), "lab", "old").node.id, "n1");
});

test("expect 1: a lone new node founds a single-board cluster by itself", () => {
  const p = new BootstrapProtocol({
    id: "solo",
    expect: 1,
    settleTicks: 2,
    prepareTimeoutTicks: 10,
    reportTtlTicks: 10,
    random: () => 0.5,
  });
  for (let i = 0; i < 5; i++) p.tick();
  const out = p.outcome();
  assert.equal(out?.type, "found");
  assert.deepEqual(out?.type === "found" ? out.attempt.founders : [], ["solo"]);
});

test("a locked node ignores an answer to a probe sent before it locked", () => {
  const m = new BootstrapProtocol({
    id: "b",
    expect: 2,
    settleTicks: 2,
    prepareTimeoutTicks: 10,
    reportTtlTicks: 10,
    random: () => 0.5,
  });
  const early = m.probeToken();
  const attempt = { coordinator: "a", nonce: "n", founders: ["a", "b"] };
  assert.equal(m.onPrepare(attempt).granted, true);
  // The coordinator's answer from before its attempt says "new": it proves nothing now.
  m.observe({ id: "a", state: "new", known: ["a", "b"] }, early);
  assert.equal(m.report().state, "locked");
  m.observe({ id: "a", state: "new", known: ["a", "b"] }, m.probeToken());
  assert.equal(m.report().state, "new", "a fresh answer releases the lock");
});

test("probe: over HTTP, a proven answer, a refusal, junk, an oversized or silent peer, a cut answer", async () => {
  // What the peer does with the next request.
  let behave: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = () => {};
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => behave(req, res, body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const request = { v: 1, cluster: "lab", nonce: "fresh", from: card };
  try {
    behave = (req, res, body) => {
      assert.equal(req.url, "/v1/discovery");
      const asked = checkRequest(open(key, body), "lab");
      const report = { id: "n1", state: "member", known: [] };
      res.end(seal(key, { v: 1, cluster: "lab", nonce: asked.nonce, node: card, report, peers: [] }));
    };
    // Twice: the second rides the kept-alive connection.
    for (let i = 0; i < 2; i++) assert.equal((await probe(url, key, request, 2000)).report.state, "member");

    behave = (_req, res) => res.writeHead(403).end();
    await assert.rejects(probe(url, key, request, 2000), ProofError);
    behave = (_req, res) => res.writeHead(500).end("boom");
    await assert.rejects(probe(url, key, request, 2000), /HTTP 500: boom/);
    behave = (_req, res) => res.end("{not json");
    await assert.rejects(probe(url, key, request, 2000), DiscoveryWireError);
    behave = (_req, res) => res.end("x".repeat(MAX_DISCOVERY_BODY_BYTES + 1));
    await assert.rejects(probe(url, key, request, 2000), /the answer is too large/);

    // Unreachable is not rogue: a plain error, not a wire or proof error.
    behave = () => {};
    await assert.rejects(probe(url, key, request, 200), (err: Error) => {
      assert.match(err.message, /no answer within 200 ms/);
      assert.ok(!(err instanceof DiscoveryWireError) && !(err instanceof ProofError));
      return true;
    });
    behave = (_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("{");
      setImmediate(() => res.destroy());
    };
    await assert.rejects(probe(url, key, request, 2000));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
