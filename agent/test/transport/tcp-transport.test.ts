import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { afterEach, describe, it } from "node:test";
import type { Message } from "../../src/raft/types.js";
import { encodeFrame, FrameDecoder } from "../../src/transport/codec.js";
import { clientTlsOptions, derivePsk, serverTlsOptions } from "../../src/transport/security.js";
import { PeerTransport } from "../../src/transport/tcp-transport.js";
import { appendWith, CLUSTER, heartbeat, msg, SECRET, TestCluster, until } from "./helpers.js";

let cluster = new TestCluster();
afterEach(async () => {
  await cluster.stopAll();
  cluster = new TestCluster();
});

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A client that passes the TLS handshake with the right secret and then writes what it likes. */
async function authenticatedClient(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: "127.0.0.1",
    port,
    ...clientTlsOptions(derivePsk(SECRET, CLUSTER), CLUSTER),
  });
  await once(socket, "secureConnect");
  return socket;
}

async function closedWithin(socket: net.Socket, timeoutMs = 5000): Promise<void> {
  socket.on("error", () => {});
  if (socket.closed) return;
  // Not events.once: it rejects on the 'error' that often comes just before the close.
  await Promise.race([
    new Promise<void>((resolve) => socket.once("close", () => resolve())),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error("socket was not closed")), timeoutMs).unref(),
    ),
  ]);
}

function portOf(nodeId: string): number {
  return cluster.addresses.get(nodeId)!.port;
}

describe("peer transport over TLS on 127.0.0.1", () => {
  it("two transports exchange messages in both directions, intact and in order", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const toB = [
      heartbeat("a", "b", 1),
      appendWith("a", "b", 10, 100, 3),
      msg("vote", "a", "b", { term: 2, logTerm: 1 }),
    ];
    const toA = [
      msg("appResp", "b", "a", { term: 3, index: 13, reject: true, rejectHint: 9, rejectTerm: 2 }),
    ];
    for (const m of toB) a.transport.send("b", m);
    for (const m of toA) b.transport.send("a", m);
    await b.inbox.waitForCount(3);
    await a.inbox.waitForCount(1);
    assert.deepStrictEqual(b.inbox.from("a"), toB);
    assert.deepStrictEqual(a.inbox.from("b"), toA);
    assert.equal(a.transport.stats().messagesSent, 3);
    assert.deepEqual(a.transport.stats().messagesSentByType, { heartbeat: 1, app: 1, vote: 1 });
    assert.deepEqual(b.transport.stats().messagesSentByType, { appResp: 1 });
    assert.equal(b.transport.stats().messagesReceived, 3);
    assert.equal(a.transport.stats().rejectedPeers + b.transport.stats().badFrames, 0);
    for (const id of ["a", "b"]) {
      const noisy = cluster.loggers.get(id)!.lines.filter((l) => l.level === "warn" || l.level === "error");
      assert.deepEqual(noisy, [], `${id} logged no warnings`);
    }
  });

  it("three transports all reach each other", async () => {
    const ids = ["n1", "n2", "n3"];
    for (const id of ids) await cluster.add(id);
    for (const from of ids) {
      for (const to of ids) {
        if (from !== to) cluster.transports.get(from)!.send(to, heartbeat(from, to, 7, ids.indexOf(to)));
      }
    }
    for (const id of ids) {
      const inbox = cluster.inboxes.get(id)!;
      await inbox.waitForCount(2);
      const senders = inbox.batches.map((b) => b.from).sort();
      assert.deepEqual(
        senders,
        ids.filter((x) => x !== id),
      );
      for (const m of inbox.messages) assert.equal(m.to, id);
    }
  });

  it("messages sent in one event-loop turn to one peer travel in one frame", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    a.transport.send("b", heartbeat("a", "b", 1));
    await b.inbox.waitForCount(1);
    const framesBefore = b.transport.stats().framesReceived;
    const sentBefore = a.transport.stats().framesSent;
    for (let g = 0; g < 500; g++) a.transport.send("b", heartbeat("a", "b", 2, g));
    await b.inbox.waitForCount(501);
    assert.equal(b.transport.stats().framesReceived - framesBefore, 1);
    assert.equal(a.transport.stats().framesSent - sentBefore, 1);
    const last = b.inbox.batches.at(-1)!;
    assert.equal(last.msgs.length, 500);
    assert.deepEqual(
      last.msgs.map((m) => m.group),
      Array.from({ length: 500 }, (_, g) => g),
    );
  });

  it("messages queued before the connection is up also leave as one frame", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    for (let g = 0; g < 50; g++) a.transport.send("b", heartbeat("a", "b", 1, g));
    await b.inbox.waitForCount(50);
    assert.equal(b.inbox.batches.length, 1);
  });

  it("a peer with the wrong secret cannot connect: refused, counted, logged once, nothing delivered", async () => {
    const a = await cluster.add("a");
    const intruder = await cluster.add("intruder", { secret: "a different secret of enough length" });
    intruder.transport.send("a", heartbeat("intruder", "a", 99));
    await until(() => a.transport.stats().rejectedPeers >= 3, "three rejected handshakes");
    await until(() => (cluster.unreachable.get("intruder") ?? []).length >= 3, "unreachable reports");
    assert.equal(a.inbox.messages.length, 0);
    assert.equal(intruder.transport.stats().messagesSent, 0);
    assert.equal(intruder.transport.stats().queueDepth, 1, "the message waits, it is not sent in clear");
    assert.equal(a.transport.stats().badFrames, 0, "no frame was ever read");
    assert.equal(cluster.loggers.get("a")!.count("warn", "TLS handshake"), 1);
    assert.ok(intruder.transport.stats().reconnects >= 2);
  });

  it("a peer of another cluster name (same secret) cannot connect either", async () => {
    const a = await cluster.add("a");
    const other = await cluster.add("other", { clusterName: "neighbours-lab" });
    other.transport.send("a", heartbeat("other", "a", 1));
    await until(() => a.transport.stats().rejectedPeers >= 1, "a rejected handshake");
    assert.equal(a.inbox.messages.length, 0);
  });

  it("TLS 1.2, even with the right key, is refused (only TLS 1.3 with forward secrecy is spoken)", async () => {
    const a = await cluster.add("a");
    const socket = tls.connect({
      host: "127.0.0.1",
      port: portOf("a"),
      ...clientTlsOptions(derivePsk(SECRET, CLUSTER), CLUSTER),
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
      ciphers: "PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305",
    });
    let secured = false;
    let failure = "";
    socket.on("secureConnect", () => (secured = true));
    socket.on("error", (err: NodeJS.ErrnoException) => (failure = err.code ?? err.message));
    await closedWithin(socket);
    assert.equal(secured, false);
    assert.equal(failure, "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION");
    await until(() => a.transport.stats().rejectedPeers >= 1, "the rejection to be counted");
  });

  it("a raw TCP client writing garbage is disconnected; a good peer keeps being served", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const raw = net.connect(portOf("a"), "127.0.0.1");
    await once(raw, "connect");
    raw.write(Buffer.from("GET / HTTP/1.1\r\nHost: ringleader\r\n\r\n\x00\xff\x13garbage"));
    await closedWithin(raw);
    await until(() => a.transport.stats().rejectedPeers >= 1, "the rejection to be counted");
    b.transport.send("a", heartbeat("b", "a", 4));
    await a.inbox.waitForCount(1);
    assert.equal(a.inbox.from("b").length, 1);
  });

  it("an authenticated client sending a non-CBOR frame is disconnected and counted", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    b.transport.send("a", heartbeat("b", "a", 1));
    await a.inbox.waitForCount(1);
    const client = await authenticatedClient(portOf("a"));
    client.write(encodeFrame({ v: 1, hello: { nodeId: "mallory", clusterName: CLUSTER } }));
    client.write(Buffer.from([0, 0, 0, 3, 0xff, 0xff, 0xff]));
    await closedWithin(client);
    await until(() => a.transport.stats().badFrames >= 1, "the bad frame to be counted");
    b.transport.send("a", heartbeat("b", "a", 2));
    await a.inbox.waitForCount(2);
    assert.equal(a.inbox.messages.filter((m) => m.from === "mallory").length, 0);
    assert.equal(cluster.loggers.get("a")!.lines.filter((l) => l.fields?.["code"] === "bad_cbor").length, 1);
  });

  it("a client announcing a 2 GiB frame is disconnected at once; the node keeps serving", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    const client = await authenticatedClient(portOf("a"));
    client.write(encodeFrame({ v: 1, hello: { nodeId: "mallory", clusterName: CLUSTER } }));
    client.write(Buffer.from([0x80, 0, 0, 0, 1, 2, 3]));
    await closedWithin(client);
    await until(() => a.transport.stats().badFrames >= 1, "the bad frame to be counted");
    assert.equal(cluster.loggers.get("a")!.lines.filter((l) => l.fields?.["code"] === "too_large").length, 1);
    b.transport.send("a", heartbeat("b", "a", 2));
    await a.inbox.waitForCount(1);
  });

  it("a batch before HELLO, or from another node than the HELLO named, closes the connection", async () => {
    const a = await cluster.add("a");
    const early = await authenticatedClient(portOf("a"));
    early.write(encodeFrame({ v: 1, from: "b", to: "a", msgs: [heartbeat("b", "a", 1)] }));
    await closedWithin(early);
    const spoof = await authenticatedClient(portOf("a"));
    spoof.write(encodeFrame({ v: 1, hello: { nodeId: "b", clusterName: CLUSTER } }));
    spoof.write(encodeFrame({ v: 1, from: "c", to: "a", msgs: [heartbeat("c", "a", 1)] }));
    await closedWithin(spoof);
    const misrouted = await authenticatedClient(portOf("a"));
    misrouted.write(encodeFrame({ v: 1, hello: { nodeId: "b", clusterName: CLUSTER } }));
    misrouted.write(encodeFrame({ v: 1, from: "b", to: "z", msgs: [heartbeat("b", "z", 1)] }));
    await closedWithin(misrouted);
    await until(() => a.transport.stats().badFrames >= 3, "three protocol errors");
    assert.equal(a.inbox.messages.length, 0);
  });

  it("an authenticated client that never says HELLO is dropped after the timeout", async () => {
    await cluster.add("a", { limits: { helloTimeoutMs: 100 } });
    const silent = await authenticatedClient(portOf("a"));
    await closedWithin(silent);
    assert.equal(cluster.transports.get("a")!.stats().badFrames, 1);
  });

  it("reconnects after the peer restarts on the same port, and delivers what was queued", async () => {
    const a = await cluster.add("a");
    const b = await cluster.add("b");
    a.transport.send("b", heartbeat("a", "b", 1));
    await b.inbox.waitForCount(1);
    const port = portOf("b");
    await b.transport.stop();
    await until(() => (cluster.unreachable.get("a") ?? []).includes("b"), "a to report b unreachable");
    for (let i = 0; i < 5; i++) a.transport.send("b", heartbeat("a", "b", 10 + i));
    // Let at least one dial fail while b is down, so the restart is really a reconnect.
    const failuresBefore = cluster.unreachable.get("a")!.length;
    await until(() => cluster.unreachable.get("a")!.length > failuresBefore, "a failed dial while b is down");
    const b2 = await cluster.add("b", {}, port);
    await b2.inbox.waitForCount(5);
    assert.deepEqual(
      b2.inbox.messages.map((m) => m.term),
      [10, 11, 12, 13, 14],
    );
    assert.ok(a.transport.stats().reconnects >= 1);
    assert.equal(cluster.loggers.get("a")!.count("info", "reachable again"), 1);
  });

  it("while the peer is down the queue bound holds; the newest messages survive", async () => {
    const port = await freePort();
    const a = await cluster.add("a", {
      limits: { backoffBaseMs: 10, backoffMaxMs: 50, maxQueueMessages: 100 },
    });
    cluster.addresses.set("b", { host: "127.0.0.1", port });
    for (let t = 1; t <= 1000; t++) a.transport.send("b", heartbeat("a", "b", t));
    let stats = a.transport.stats();
    assert.equal(stats.queueDepth, 100);
    assert.equal(stats.droppedMessages, 900);
    await until(() => (cluster.unreachable.get("a") ?? []).length >= 2, "failed dials");
    stats = a.transport.stats();
    assert.equal(stats.queueDepth, 100);
    assert.equal(stats.messagesSent, 0);
    const b = await cluster.add("b", {}, port);
    await b.inbox.waitForCount(100);
    assert.deepEqual(
      b.inbox.messages.map((m) => m.term),
      Array.from({ length: 100 }, (_, i) => 901 + i),
    );
    assert.equal(a.transport.stats().queueDepth, 0);
  });

  it("the byte bound of the queue holds too", async () => {
    const port = await freePort();
    const a = await cluster.add("a", { limits: { maxQueueBytes: 100_000 } });
    cluster.addresses.set("b", { host: "127.0.0.1", port });
    for (let i = 0; i < 100; i++) a.transport.send("b", appendWith("a", "b", i, 10_000));
    const stats = a.transport.stats();
    assert.ok(stats.queueBytes <= 100_000, `queueBytes ${stats.queueBytes}`);
    assert.ok(stats.queueDepth >= 9 && stats.queueDepth < 10, `queueDepth ${stats.queueDepth}`);
    assert.equal(stats.droppedMessages + stats.queueDepth, 100);
    a.transport.removePeer("b");
    assert.equal(a.transport.stats().queueDepth, 0);
    assert.equal(a.transport.stats().droppedMessages, 100);
  });

  it("respects TCP backpressure: stops framing while the peer does not read, resumes on drain", async () => {
    // A stand-in peer that completes the handshake and then does not read for a while.
    const psk = derivePsk(SECRET, CLUSTER);
    let peerSocket: tls.TLSSocket | null = null;
    const decoder = new FrameDecoder();
    const received: Message[] = [];
    const server = tls.createServer(serverTlsOptions(psk, CLUSTER, 2000), (socket) => {
      peerSocket = socket;
      socket.pause();
      socket.on("data", (chunk: Buffer) => {
        for (const f of decoder.push(chunk)) if ("msgs" in f) received.push(...f.msgs);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const { port } = server.address() as net.AddressInfo;
      const total = 600;
      const a = await cluster.add("a", { limits: { maxQueueMessages: 200, maxBatchBytes: 64 * 1024 } });
      cluster.addresses.set("b", { host: "127.0.0.1", port });
      a.transport.send("b", heartbeat("a", "b", 0));
      await until(() => peerSocket !== null, "the stand-in peer to accept");
      // 600 appends of 64 KiB: about 38 MiB, far more than socket buffers hold.
      for (let i = 1; i < total; i++) {
        a.transport.send("b", appendWith("a", "b", i, 64 * 1024));
        if (i % 50 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const stalled = a.transport.stats();
      assert.ok(stalled.messagesSent < total, `all ${stalled.messagesSent} were framed with nobody reading`);
      assert.ok(stalled.queueDepth > 0 && stalled.queueDepth <= 200, `queueDepth ${stalled.queueDepth}`);
      assert.ok(stalled.droppedMessages > 0);
      peerSocket!.resume();
      await until(() => a.transport.stats().queueDepth === 0, "the queue to drain", 20_000);
      const done = a.transport.stats();
      assert.equal(done.messagesSent + done.droppedMessages, total);
      await until(() => received.length === done.messagesSent, "every framed message to arrive", 20_000);
      const indexes = received.map((m) => m.index);
      assert.deepEqual(
        indexes,
        [...indexes].sort((x, y) => x - y),
        "in order",
      );
    } finally {
      await cluster.stopAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("an unresolvable peer is reported unreachable (outside send) and retried", async () => {
    const a = await cluster.add("a");
    let inSend = false;
    const reports: string[] = [];
    const t = new PeerTransport({
      nodeId: "x",
      listen: { host: "127.0.0.1", port: 0 },
      secret: SECRET,
      clusterName: CLUSTER,
      resolve: (id) => (reports.length >= 2 ? cluster.addresses.get(id) : undefined),
      onMessages: () => {},
      unreachable: (id) => {
        assert.equal(inSend, false, "unreachable must not be called from inside send()");
        reports.push(id);
      },
      limits: { backoffBaseMs: 5, backoffMaxMs: 20 },
    });
    await t.start();
    try {
      inSend = true;
      t.send("a", heartbeat("x", "a", 1));
      inSend = false;
      await a.inbox.waitForCount(1);
      assert.deepEqual(reports, ["a", "a"]);
    } finally {
      await t.stop();
    }
  });

  it("an address with an impossible port (from the network) is a failed dial, not a crash", async () => {
    const a = await cluster.add("a");
    cluster.addresses.set("b", { host: "127.0.0.1", port: 70000 });
    a.transport.send("b", heartbeat("a", "b", 1));
    await until(() => (cluster.unreachable.get("a") ?? []).length >= 1, "b reported unreachable");
    assert.equal(a.transport.stats().queueDepth, 1);
  });

  it("refuses what can never be sent, and drops (counting) what is sent after stop", async () => {
    const a = await cluster.add("a");
    assert.throws(() => a.transport.send("b", msg("hup", "a", "b")), /local-only/);
    assert.throws(() => a.transport.send("b", heartbeat("a", "c", 1)), /cannot be sent/);
    assert.throws(() => a.transport.send("a", heartbeat("a", "a", 1)), /cannot be sent/);
    await a.transport.stop();
    await a.transport.stop();
    a.transport.send("b", heartbeat("a", "b", 1));
    assert.equal(a.transport.stats().droppedMessages, 1);
  });
});
