/**
 * A device session against a scripted device and an in-memory cluster: the handshake, keys from
 * time anchors, acknowledgements, de-duplication, and what the session refuses.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { encodeCbor } from "../src/cbor.js";
import { DEFAULT_SESSION_OPTIONS, DeviceSession, type AckEvent } from "../src/device-session.js";
import { encodeFrame } from "../src/framing.js";
import type { Hello, Reading } from "../src/messages.js";
import { BridgeMetrics } from "../src/metrics.js";
import { Outbox } from "../src/outbox.js";
import { DEFAULT_SINK_OPTIONS, ReadingSink } from "../src/sink.js";
import { FakeCluster, FakeDevice, tempDir, testLogger, until } from "./support.js";

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5, 0);
const HELLO: Hello = {
  type: "hello",
  protocol: 1,
  device: "kitchen",
  boot: 7,
  firmware: "test/1",
  uptimeMs: 4000,
  intervalMs: 1000,
  window: 16,
  sensors: ["temp"],
};

function reading(seq: number, uptimeMs: number, extra: Partial<Reading> = {}): Reading {
  return { type: "reading", boot: 7, seq, sensor: "temp", value: 20 + seq / 10, uptimeMs, ...extra };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function world() {
  const tmp = tempDir("rl-session-");
  const outbox = Outbox.open({ dir: tmp.dir, limits: { maxEntries: 1000, maxBytes: 1 << 20 } });
  const cluster = new FakeCluster();
  const clock = { now: T0 };
  const sessions: DeviceSession[] = [];
  const metrics = new BridgeMetrics({
    outboxDepth: () => outbox.depth,
    outboxBytes: () => outbox.bytes,
    devices: () => 1,
    decoderStats: () => sessions[0]!.decoderStats,
  });
  const sink = new ReadingSink(cluster, outbox, metrics, testLogger(), {
    ...DEFAULT_SINK_OPTIONS,
    retryBaseMs: 5,
    retryMaxMs: 20,
  });
  cleanups.push(() => tmp.remove());
  cleanups.push(() => outbox.close());
  cleanups.push(() => sink.stop());
  const open = () => {
    const device = new FakeDevice();
    const acks: AckEvent[] = [];
    const session = new DeviceSession(
      "/dev/fake0",
      (bytes) => {
        device.hear(bytes);
        return true;
      },
      sink,
      outbox,
      metrics,
      testLogger(),
      DEFAULT_SESSION_OPTIONS,
      () => clock.now,
    );
    session.on("ack", (e) => acks.push(e));
    sessions.push(session);
    cleanups.push(() => session.close());
    return { device, session, acks };
  };
  return { outbox, cluster, clock, metrics, sink, open };
}

/** Runs the handshake: WHO, HELLO, TIME, TIME_REPLY at device uptime `uptimeMs`, 10 ms round trip. */
function handshake(
  w: ReturnType<typeof world>,
  link: ReturnType<ReturnType<typeof world>["open"]>,
  uptimeMs = 5000,
) {
  link.session.start();
  assert.deepEqual(link.device.take(), [{ type: "who" }]);
  link.session.receive(link.device.frame({ ...HELLO, uptimeMs: uptimeMs - 1 }));
  const [time] = link.device.take();
  assert.equal(time?.type, "time");
  if (time?.type !== "time") throw new Error("unreachable");
  assert.equal(time.epochMs, w.clock.now);
  w.clock.now += 10;
  link.session.receive(link.device.frame({ type: "time-reply", boot: 7, token: time.token, uptimeMs }));
}

describe("device session", () => {
  it("maps uptime to wall-clock time through the TIME anchor and acknowledges a committed reading", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link, 5000);
    // The anchor is the midpoint of the exchange: uptime 5000 = T0 + 5 ms.
    assert.deepEqual(w.outbox.anchors("kitchen", 7), [{ uptimeMs: 5000, epochMs: T0 + 5 }]);
    link.session.receive(link.device.frame(reading(0, 6250)));
    await until("the ACK", () => link.acks.length === 1);
    const key = "sensors/{kitchen}/temp/" + new Date(T0 + 5 + 1250).toISOString();
    assert.deepEqual(link.device.take(), [{ type: "ack", boot: 7, seq: 0, status: "committed" }]);
    assert.deepEqual(JSON.parse(w.cluster.data.get(key)!), {
      device: "kitchen",
      sensor: "temp",
      value: 20,
      time: new Date(T0 + 1255).toISOString(),
      boot: 7,
      seq: 0,
      uptimeMs: 6250,
    });
  });

  it("asks for the handshake before it takes readings", async () => {
    const w = world();
    const link = w.open();
    link.session.start();
    link.device.take();
    link.session.receive(link.device.frame(reading(0, 100)));
    await until("a NACK", () => link.device.received.length > 0);
    const sent = link.device.take();
    assert.ok(sent.some((m) => m.type === "nack" && m.status === "retry" && m.reason === "no_hello"));
    link.session.receive(link.device.frame(HELLO));
    link.device.take();
    link.session.receive(link.device.frame(reading(1, 100)));
    await until("a NACK", () => link.device.received.length > 0);
    assert.deepEqual(link.device.take(), [
      { type: "nack", boot: 7, seq: 1, status: "retry", reason: "no_time" },
    ]);
    assert.equal(w.cluster.puts, 0);
  });

  it("writes a reading once however often it is resent, and answers resends from memory", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link);
    const frame = link.device.frame(reading(3, 7000));
    link.session.receive(frame);
    link.session.receive(frame); // resent while the first write is in flight
    await until("the ACK", () => link.acks.length === 1);
    link.session.receive(frame); // resent after the ACK was lost
    await until("the second ACK", () => link.device.received.length === 2);
    assert.equal(w.cluster.puts, 1);
    assert.equal(w.cluster.data.size, 1);
    assert.deepEqual(
      link.device.take().map((m) => m.type),
      ["ack", "ack"],
    );
    const metrics = await w.metrics.registry.getSingleMetricAsString("ringleader_bridge_retransmits_total");
    assert.match(metrics, /ringleader_bridge_retransmits_total 2/);
  });

  it("gives a resent reading the same key after the bridge restarted (anchors are durable)", async () => {
    const w = world();
    const first = w.open();
    handshake(w, first, 5000);
    first.session.receive(first.device.frame(reading(0, 9000)));
    await until("the ACK", () => first.acks.length === 1);
    first.session.close();

    // A new session (the bridge restarted) measures the clock again a little differently; the
    // drift stays within tolerance, so the old anchor holds and the key is the same.
    w.clock.now += 60_000;
    const second = w.open();
    handshake(w, second, 65_000 + 300);
    second.session.receive(second.device.frame(reading(0, 9000)));
    await until("the ACK", () => second.acks.length === 1);
    assert.equal(w.cluster.data.size, 1);
    assert.equal(second.acks[0]!.duplicate, true);
    assert.equal(second.acks[0]!.key, first.acks[0]!.key);
    assert.deepEqual(second.device.take().slice(-1), [{ type: "ack", boot: 7, seq: 0, status: "committed" }]);
  });

  it("adds an anchor when the device clock drifted, and keeps old readings on the old one", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link, 5000);
    link.session.receive(link.device.frame(reading(0, 6000)));
    await until("the ACK", () => link.acks.length === 1);
    // 100 s later by the wall clock, but the device counted only 98 s: it runs 2 % slow.
    w.clock.now += 100_000;
    link.session.syncTime();
    const time = link.device.take().find((m) => m.type === "time");
    if (time?.type !== "time") throw new Error("no TIME sent");
    link.session.receive(
      link.device.frame({ type: "time-reply", boot: 7, token: time.token, uptimeMs: 103_000 }),
    );
    assert.equal(w.outbox.anchors("kitchen", 7).length, 2);
    // A reading taken before the new anchor (held back in the device's window) keeps the old one.
    link.session.receive(link.device.frame(reading(1, 6500)));
    link.session.receive(link.device.frame(reading(2, 104_000)));
    await until("the ACKs", () => link.acks.length === 3);
    assert.equal(link.acks[1]!.key, "sensors/{kitchen}/temp/" + new Date(T0 + 5 + 1500).toISOString());
    assert.equal(link.acks[2]!.key, "sensors/{kitchen}/temp/" + new Date(T0 + 100_010 + 1000).toISOString());
  });

  it("refuses readings that can never be stored", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link);
    link.session.receive(link.device.frame(reading(1, 6000, { value: NaN })));
    link.session.receive(link.device.frame(reading(2, 6000, { sensor: "bad/name" })));
    await until("two NACKs", () => link.device.received.length === 2);
    assert.deepEqual(link.device.take(), [
      { type: "nack", boot: 7, seq: 1, status: "rejected", reason: "not_finite" },
      { type: "nack", boot: 7, seq: 2, status: "rejected", reason: "bad_sensor" },
    ]);
    assert.equal(w.cluster.puts, 0);
  });

  it("stores two readings of one sensor in the same millisecond under distinct keys", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link);
    link.session.receive(link.device.frame(reading(1, 6000)));
    await until("the ACK", () => link.acks.length === 1);
    link.session.receive(link.device.frame(reading(2, 6000)));
    await until("the ACK", () => link.acks.length === 2);
    assert.equal(link.acks[1]!.key, `${link.acks[0]!.key}~7.2`);
    assert.equal(w.cluster.data.size, 2);
    // The alternate key sorts right after the first one.
    assert.ok(link.acks[0]!.key < link.acks[1]!.key);
  });

  it("survives garbage, bad CRCs and unknown messages between frames", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link);
    const good = link.device.frame(reading(0, 6000));
    const badCrc = link.device.frame(reading(1, 6000));
    badCrc[3] = badCrc[3]! ^ 0x40;
    const garbage = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);
    link.session.receive(Uint8Array.from([...garbage, 0, ...badCrc, ...good]));
    await until("the ACK", () => link.acks.length === 1);
    assert.ok(link.session.decoderStats.resyncs >= 2);
    assert.equal(link.session.decoderStats.badCrc, 1);
    assert.equal(link.acks[0]!.seq, 0);
    link.session.receive(encodeFrame(encodeCbor([42, "from the future"])));
    const text = await w.metrics.registry.getSingleMetricAsString("ringleader_bridge_unknown_messages_total");
    assert.match(text, /kind="unknown_type"} 1/);
  });

  it("configures the sampling interval and reads the device's counters", async () => {
    const w = world();
    const link = w.open();
    handshake(w, link);
    link.device.take();
    const configured = link.session.configure(250, 2000);
    await until("CONFIG", () => link.device.received.length > 0);
    const [config] = link.device.take();
    if (config?.type !== "config") throw new Error("no CONFIG sent");
    assert.equal(config.intervalMs, 250);
    link.session.receive(
      link.device.frame({ type: "config-reply", boot: 7, token: config.token, intervalMs: 250 }),
    );
    assert.deepEqual(await configured, {
      type: "config-reply",
      boot: 7,
      token: config.token,
      intervalMs: 250,
    });
    assert.equal(link.session.device?.intervalMs, 250);
  });
});
