/**
 * A device session against a scripted device and an in-memory cluster: the handshake, keys from
 * time anchors, acknowledgements, de-duplication, and what the session refuses.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { encodeCbor } from "../src/cbor.js";
import { createLogger, type Logger } from "../../agent/src/node/logger.js";
import {
  DEFAULT_SESSION_OPTIONS,
  DeviceSession,
  type AckEvent,
  type SessionOptions,
} from "../src/device-session.js";
import { encodeFrame } from "../src/framing.js";
import type { Hello, Reading } from "../src/messages.js";
import { BridgeMetrics } from "../src/metrics.js";
import { Outbox } from "../src/outbox.js";
import { DEFAULT_SINK_OPTIONS, ReadingSink } from "../src/sink.js";
import { FakeCluster, FakeDevice, atBaud, tempDir, testLogger, until } from "./support.js";

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
  const open = (opts: { options?: Partial<SessionOptions>; logger?: Logger } = {}) => {
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
      opts.logger ?? testLogger(),
      { ...DEFAULT_SESSION_OPTIONS, ...opts.options },
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

  it("takes a board at the wrong baud rate as counted garbage, and resynchronises once it is right", async () => {
    const cases = [
      [9600, 115_200], // a sketch that kept 9600: each 0 bit is a break, read as runs of 0x00
      [57600, 115_200],
      [230400, 115_200],
      [115_200, 9600], // the bridge started with --baud 9600
    ] as const;
    for (const [boardBaud, bridgeBaud] of cases) {
      const what = `board ${boardBaud}, bridge ${bridgeBaud}`;
      const w = world();
      const link = w.open();
      link.session.start();
      link.device.take();
      // The board boots and streams HELLO and readings at its own baud; the bridge listens at its own.
      const sent = [HELLO, ...Array.from({ length: 20 }, (_, i) => reading(i, 6000 + i * 100))].map((m) =>
        link.device.frame(m),
      );
      const heard = atBaud(Uint8Array.from([0, ...sent.flatMap((f) => [...f])]), boardBaud, bridgeBaud);
      assert.ok(heard.length > 0, `${what}: the line carried something`);
      for (let i = 0; i < heard.length; i += 7) link.session.receive(heard.subarray(i, i + 7));
      const stats = { ...link.session.decoderStats };
      assert.equal(stats.framesOk, 0, `${what}: no garbage passes the CRC`);
      assert.equal(link.session.device, null, `${what}: no HELLO was taken from the garbage`);
      assert.equal(w.cluster.puts, 0);

      // Flashed again at 115200 (no lone 0x00 first, so the garbage's tail may swallow one frame):
      // the device repeats HELLO until it hears TIME, as it does when WHO goes unanswered.
      let time: ReturnType<FakeDevice["take"]>[number] | undefined;
      for (let tries = 0; tries < 2 && !time; tries++) {
        link.session.receive(link.device.frame(HELLO));
        time = link.device.take().find((m) => m.type === "time");
      }
      if (time?.type !== "time") throw new Error(`${what}: no TIME after two HELLOs`);
      assert.ok(link.session.decoderStats.resyncs - stats.resyncs <= 1);
      // Counted: garbage as dropped frames (at the latest when the first delimiter came), a slow
      // board as runs of zeros.
      const counter = async (name: string) =>
        Number(/_total (\d+)$/m.exec(await w.metrics.registry.getSingleMetricAsString(name))?.[1]);
      const resyncs = await counter("ringleader_bridge_resyncs_total");
      const zeroRuns = await counter("ringleader_bridge_zero_runs_total");
      assert.equal(resyncs, link.session.decoderStats.resyncs);
      assert.ok(resyncs + zeroRuns > 0, `${what}: counted (${JSON.stringify(stats)}, ${zeroRuns} zero runs)`);
      if (boardBaud < bridgeBaud / 4) assert.ok(zeroRuns > 0, `${what}: a slow board reads as zero runs`);
      else assert.ok(resyncs > 0 && link.session.decoderStats.bytesDropped > 0, what);
      w.clock.now += 10;
      link.session.receive(
        link.device.frame({ type: "time-reply", boot: 7, token: time.token, uptimeMs: 5000 }),
      );
      link.session.receive(link.device.frame(reading(0, 6000)));
      await until("the ACK", () => link.acks.length === 1);
      assert.equal(link.acks[0]!.status, "committed");
      assert.equal(w.cluster.data.size, 1);
    }
  });

  it("logs a burst of garbage as one line with its count, and a later burst again", async () => {
    const w = world();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: "info",
      format: "json",
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    const link = w.open({ logger, options: { replyTimeoutMs: 100, logQuietMs: 10_000 } });
    handshake(w, link);
    const dropped = () => lines.filter((l) => l["msg"] === "dropped frames on the serial link");
    const garbage = (n: number) => {
      for (let i = 0; i < n; i++) {
        link.session.receive(Uint8Array.from([0x02, 0x11, 0x22, i + 1, 0x00])); // bad COBS
        w.clock.now += 50;
      }
    };
    // A burst of 30 bad frames over 1.5 s, with a good reading in the middle of it.
    garbage(15);
    link.session.receive(link.device.frame(reading(0, 6000)));
    await until("the ACK", () => link.acks.length === 1);
    garbage(15);
    assert.equal(dropped().length, 0, "nothing is logged while the burst goes on");
    w.clock.now += 10_000;
    await until("the burst's line", () => dropped().length === 1);
    assert.equal(dropped()[0]!["count"], 30);
    assert.equal(dropped()[0]!["kinds"], "cobs=30");
    assert.equal(dropped()[0]!["bytes"], 30 * 4);
    assert.equal(dropped()[0]!["port"], "/dev/fake0");

    // Minutes later, another burst: one more line, with its own count.
    w.clock.now += 120_000;
    garbage(4);
    w.clock.now += 10_000;
    await until("the second burst's line", () => dropped().length === 2);
    assert.equal(dropped()[1]!["count"], 4);
    link.session.close();
    assert.equal(dropped().length, 2, "closing logs nothing more: both bursts were logged");
    assert.ok(lines.every((l) => l["level"] !== "error"));
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
