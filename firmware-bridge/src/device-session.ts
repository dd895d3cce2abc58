/**
 * One serial port's conversation with one device: bytes in, frames out. It knows nothing about
 * serial ports (the caller feeds `receive()` and provides `send`), so tests drive it with bytes.
 *
 * The handshake: on open the bridge sends WHO; the device answers HELLO (it also says HELLO on
 * its own after a reset); the bridge sends TIME; the device answers TIME_REPLY, which gives the
 * anchor that maps the device's uptime to wall-clock time. Readings before that get NACK `retry`
 * and are sent again. Each reading is then written through the sink and acknowledged with its
 * outcome: ACK `committed` only once the cluster committed it, ACK `buffered` once it is durable in
 * the outbox, NACK `rejected` for a reading that can never be stored, NACK `retry` otherwise.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../../agent/src/node/logger.js";
import { BurstCounter } from "./burst-log.js";
import { MalformedFrameError, UnknownMessageError } from "./errors.js";
import { encodeFrame, FrameDecoder, MAX_DOWNLINK_FRAME_BYTES, type RejectReason } from "./framing.js";
import {
  decodeMessage,
  encodeMessage,
  NAME_PATTERN,
  PROTOCOL_VERSION,
  type BridgeMessage,
  type ConfigReply,
  type Hello,
  type Message,
  type Reading,
  type Stats,
  type TimeReply,
} from "./messages.js";
import type { BridgeMetrics } from "./metrics.js";
import type { WriteOutcome } from "./sink.js";
import type { OutboxEntry } from "./outbox.js";
import { epochOf, shouldAnchor, timestampText, type Anchor } from "./time-map.js";

export interface AnchorStore {
  anchors(device: string, boot: number): Anchor[];
  saveAnchors(device: string, boot: number, anchors: readonly Anchor[]): void;
}

export interface ReadingSubmitter {
  submit(w: OutboxEntry): Promise<WriteOutcome>;
}

export interface SessionOptions {
  /** Sampling interval to configure on every device that says HELLO; undefined leaves theirs. */
  intervalMs: number | undefined;
  /** How often TIME is sent again to catch clock drift. */
  timeSyncEveryMs: number;
  /** A TIME exchange slower than this is not precise enough to anchor on; it is retried. */
  maxTimeRttMs: number;
  /** Drift beyond which a new anchor is recorded. */
  anchorToleranceMs: number;
  /** How long to wait for HELLO, TIME_REPLY, CONFIG_REPLY or STATS before asking again. */
  replyTimeoutMs: number;
  /** Outcomes remembered per device to answer resends without a round trip to the cluster. */
  recentReadings: number;
  /** A burst of link or protocol errors ends after this long without one; one log line each. */
  logQuietMs: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = {
  intervalMs: undefined,
  timeSyncEveryMs: 5 * 60_000,
  maxTimeRttMs: 1000,
  anchorToleranceMs: 1000,
  replyTimeoutMs: 1000,
  recentReadings: 4096,
  logQuietMs: 10_000,
};

export interface DeviceInfo {
  id: string;
  boot: number;
  firmware: string;
  protocol: number;
  sensors: string[];
  window: number;
  intervalMs: number;
}

export interface AckEvent {
  device: string;
  boot: number;
  seq: number;
  sensor: string;
  status: "committed" | "buffered" | "rejected" | "retry";
  duplicate: boolean;
  key: string;
  /** From the moment the reading was taken to this acknowledgement. */
  latencyMs: number;
  /** From the moment the bridge got the reading to this acknowledgement. */
  bridgeMs: number;
  /** Bytes the reading's frame took on the wire, delimiter included. */
  wireBytes: number;
}

export interface SessionEvents {
  hello: [DeviceInfo];
  time: [Anchor];
  ack: [AckEvent];
  stats: [Stats];
  config: [ConfigReply];
}

type Remembered = "inflight" | WriteOutcome;

interface Waiter<T> {
  accept: (m: Message) => T | undefined;
  resolve: (v: T) => void;
}

export class DeviceSession extends EventEmitter<SessionEvents> {
  private readonly decoder = new FrameDecoder();
  private info: DeviceInfo | null = null;
  private anchors: Anchor[] = [];
  private token = 0;
  private pendingTime: { token: number; sentAt: number } | null = null;
  private readonly recent = new Map<string, Remembered>();
  private readonly waiters = new Set<Waiter<unknown>>();
  private lastWhoAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private nextTimeSyncAt = Infinity;
  private closed = false;
  private readonly linkLog: BurstCounter;
  private readonly protocolLog: BurstCounter;

  constructor(
    readonly port: string,
    private readonly sendBytes: (bytes: Uint8Array) => boolean,
    private readonly sink: ReadingSubmitter,
    private readonly store: AnchorStore,
    private readonly metrics: BridgeMetrics,
    private readonly logger: Logger,
    private readonly options: SessionOptions = DEFAULT_SESSION_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {
    super();
    const quietMs = options.logQuietMs;
    this.linkLog = new BurstCounter(logger, "dropped frames on the serial link", { port }, quietMs, now);
    this.protocolLog = new BurstCounter(
      logger,
      "ignored frames the bridge does not take",
      { port },
      quietMs,
      now,
    );
  }

  get device(): DeviceInfo | null {
    return this.info;
  }

  get decoderStats(): FrameDecoder["stats"] {
    return this.decoder.stats;
  }

  /** The port is open: ask the device who it is, and keep the handshake moving. */
  start(): void {
    this.askWho(true);
    this.timer = setInterval(() => this.tick(), Math.max(50, this.options.replyTimeoutMs / 2));
    this.timer.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.linkLog.flush(true);
    this.protocolLog.flush(true);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.waiters.clear();
  }

  /** Feeds bytes read from the port. */
  receive(chunk: Uint8Array): void {
    for (const event of this.decoder.push(chunk)) {
      if (event.kind === "reject") {
        this.noteReject(event.reason, event.bytes);
        continue;
      }
      if (event.kind === "zeros") {
        this.metrics.zeroRuns.inc();
        this.linkLog.note("zeros", { bytes: event.bytes });
        continue;
      }
      let message: Message;
      try {
        message = decodeMessage(event.payload);
      } catch (err) {
        const unknown = err instanceof UnknownMessageError;
        if (!unknown && !(err instanceof MalformedFrameError)) throw err;
        const kind = unknown ? "unknown_type" : "malformed";
        this.metrics.unknownMessages.inc({ kind });
        this.protocolLog.note(kind);
        continue;
      }
      this.handle(message, event.wireBytes);
    }
  }

  /** Sets the device's sampling interval (0 pauses sampling); resolves with what it applied. */
  configure(intervalMs: number, timeoutMs = 5000): Promise<ConfigReply> {
    const token = this.nextToken();
    return this.ask(
      () => this.send({ type: "config", token, intervalMs }),
      (m) => (m.type === "config-reply" && m.token === token ? m : undefined),
      timeoutMs,
    );
  }

  /** Asks the device for its counters. */
  requestStats(timeoutMs = 5000): Promise<Stats> {
    return this.ask(
      () => this.send({ type: "stats-request" }),
      (m) => (m.type === "stats" && m.boot === this.info?.boot ? m : undefined),
      timeoutMs,
    );
  }

  private async ask<T>(
    send: () => void,
    accept: (m: Message) => T | undefined,
    timeoutMs: number,
  ): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    while (!this.closed) {
      const waitMs = Math.min(this.options.replyTimeoutMs, deadline - performance.now());
      if (waitMs <= 0) break;
      let waiter: Waiter<T> | undefined;
      let timer: NodeJS.Timeout | undefined;
      const reply = await new Promise<T | null>((resolve) => {
        waiter = { accept, resolve };
        this.waiters.add(waiter as Waiter<unknown>);
        timer = setTimeout(() => resolve(null), waitMs);
        send();
      });
      clearTimeout(timer);
      this.waiters.delete(waiter as Waiter<unknown>);
      if (reply !== null) return reply;
    }
    throw new Error(`${this.port}: no answer from the device within ${timeoutMs} ms`);
  }

  private nextToken(): number {
    this.token = (this.token + 1) % 0x10000;
    return this.token;
  }

  private tick(): void {
    if (this.closed) return;
    this.linkLog.flush();
    this.protocolLog.flush();
    const t = this.now();
    if (this.info === null) this.askWho(false);
    else if (this.pendingTime && t - this.pendingTime.sentAt > this.options.replyTimeoutMs) this.sendTime();
    else if (!this.pendingTime && t >= this.nextTimeSyncAt) this.sendTime();
  }

  private askWho(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastWhoAt < this.options.replyTimeoutMs) return;
    this.lastWhoAt = t;
    this.send({ type: "who" });
  }

  private send(m: BridgeMessage): void {
    if (this.closed) return;
    const frame = encodeFrame(encodeMessage(m));
    // The firmware's receive buffer bounds what we may send; a longer frame is a bug here.
    if (frame.length - 2 > MAX_DOWNLINK_FRAME_BYTES) throw new RangeError(`a ${m.type} frame is too long`);
    if (!this.sendBytes(frame)) this.metrics.downlinkDropped.inc();
  }

  private noteReject(reason: RejectReason, bytes: number): void {
    this.linkLog.note(reason, { bytes });
  }

  private handle(m: Message, wireBytes: number): void {
    for (const w of this.waiters) {
      const v = w.accept(m);
      if (v !== undefined) w.resolve(v);
    }
    switch (m.type) {
      case "hello":
        return this.onHello(m);
      case "time-reply":
        return this.onTimeReply(m);
      case "reading":
        void this.onReading(m, wireBytes);
        return;
      case "stats":
        this.emit("stats", m);
        return;
      case "config-reply":
        if (this.info && m.boot === this.info.boot) this.info.intervalMs = m.intervalMs;
        this.emit("config", m);
        return;
      default:
        // A bridge-bound message coming from the device: a loop-back cable, or a confused peer.
        this.metrics.unknownMessages.inc({ kind: "unexpected" });
        this.protocolLog.note(`unexpected_${m.type}`);
    }
  }

  private onHello(m: Hello): void {
    if (m.protocol !== PROTOCOL_VERSION) {
      this.logger.error("the device speaks another protocol version; ignoring it", {
        port: this.port,
        device: m.device,
        protocol: m.protocol,
      });
      return;
    }
    if (!NAME_PATTERN.test(m.device)) {
      this.logger.error("the device id is not usable in a key; ignoring the device", {
        port: this.port,
        device: m.device,
      });
      return;
    }
    const same = this.info?.id === m.device && this.info.boot === m.boot;
    if (!same) {
      this.anchors = this.store.anchors(m.device, m.boot);
      this.recent.clear();
      this.logger.info("device connected", {
        port: this.port,
        device: m.device,
        boot: m.boot,
        firmware: m.firmware,
        sensors: m.sensors.join(","),
      });
    }
    this.info = {
      id: m.device,
      boot: m.boot,
      firmware: m.firmware,
      protocol: m.protocol,
      sensors: m.sensors,
      window: m.window,
      intervalMs: m.intervalMs,
    };
    this.emit("hello", this.info);
    this.sendTime();
    const wanted = this.options.intervalMs;
    if (wanted !== undefined && wanted !== m.intervalMs) {
      this.configure(wanted).catch((err: unknown) =>
        this.logger.warn("could not configure the device", { port: this.port, error: String(err) }),
      );
    }
  }

  /** Measures the device clock now (the session also does so every `timeSyncEveryMs`). */
  syncTime(): void {
    if (this.info) this.sendTime();
  }

  private sendTime(): void {
    const token = this.nextToken();
    const sentAt = this.now();
    this.pendingTime = { token, sentAt };
    this.send({ type: "time", token, epochMs: sentAt });
  }

  private onTimeReply(m: TimeReply): void {
    const info = this.info;
    const pending = this.pendingTime;
    if (!info || !pending || m.token !== pending.token || m.boot !== info.boot) return;
    this.pendingTime = null;
    const receivedAt = this.now();
    const rttMs = receivedAt - pending.sentAt;
    if (rttMs > this.options.maxTimeRttMs) {
      this.nextTimeSyncAt = receivedAt; // too slow to be precise: try again at the next tick
      return;
    }
    const measured: Anchor = { uptimeMs: m.uptimeMs, epochMs: Math.round((pending.sentAt + receivedAt) / 2) };
    if (shouldAnchor(this.anchors, measured, this.options.anchorToleranceMs)) {
      const next = [...this.anchors, measured];
      // Durable before any reading is keyed with it.
      this.store.saveAnchors(info.id, info.boot, next);
      this.anchors = next;
    }
    this.nextTimeSyncAt = receivedAt + this.options.timeSyncEveryMs;
    this.emit("time", measured);
  }

  private async onReading(m: Reading, wireBytes: number): Promise<void> {
    const info = this.info;
    if (!info || m.boot !== info.boot || this.anchors.length === 0) {
      // We do not know this boot (the bridge restarted, or its HELLO was lost) or its clock yet.
      if (!info || m.boot !== info.boot) this.askWho(false);
      this.reply(m, { status: "retry", reason: info && m.boot === info.boot ? "no_time" : "no_hello" });
      this.metrics.readingsDeferred.inc({ reason: "handshake" });
      return;
    }
    const id = `${m.boot}:${m.seq}`;
    const prior = this.recent.get(id);
    if (prior !== undefined) {
      this.metrics.retransmits.inc();
      if (prior === "inflight") return; // its outcome is on the way
      if (prior.status === "committed" || prior.status === "buffered") this.metrics.readingsDuplicate.inc();
      this.reply(m, prior);
      return;
    }
    if (!NAME_PATTERN.test(m.sensor)) return this.refuse(m, "bad_sensor");
    if (!Number.isFinite(m.value)) return this.refuse(m, "not_finite");

    // Everything that decides the key happens before the first await, in frame order.
    const epochMs = epochOf(this.anchors, m.uptimeMs);
    const time = timestampText(epochMs);
    const key = `sensors/{${info.id}}/${m.sensor}/${time}`;
    const value = JSON.stringify({
      device: info.id,
      sensor: m.sensor,
      value: m.value,
      time,
      boot: m.boot,
      seq: m.seq,
      uptimeMs: m.uptimeMs,
    });
    this.remember(id, "inflight");
    const receivedAt = performance.now();
    const outcome = await this.sink.submit({ key, value, device: info.id, boot: m.boot, seq: m.seq });
    if (outcome.status === "retry") {
      this.recent.delete(id); // a resend must be tried again
      this.metrics.readingsDeferred.inc({ reason: outcome.reason });
    } else {
      this.remember(id, outcome);
    }
    if (outcome.status === "committed" && outcome.duplicate) this.metrics.readingsDuplicate.inc();
    if (outcome.status === "rejected") this.metrics.readingsRejected.inc({ reason: outcome.reason });
    const latencyMs = this.now() - epochMs;
    if (outcome.status === "committed") this.metrics.commitLatencyMs.observe(latencyMs);
    this.reply(m, outcome);
    this.emit("ack", {
      device: info.id,
      boot: m.boot,
      seq: m.seq,
      sensor: m.sensor,
      status: outcome.status,
      duplicate: outcome.status === "committed" && outcome.duplicate,
      key: outcome.status === "committed" ? outcome.key : key,
      latencyMs,
      bridgeMs: performance.now() - receivedAt,
      wireBytes,
    });
  }

  private refuse(m: Reading, reason: string): void {
    const outcome: WriteOutcome = { status: "rejected", reason };
    this.remember(`${m.boot}:${m.seq}`, outcome);
    this.metrics.readingsRejected.inc({ reason });
    this.reply(m, outcome);
  }

  private remember(id: string, r: Remembered): void {
    this.recent.delete(id);
    this.recent.set(id, r);
    if (this.recent.size > this.options.recentReadings) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
  }

  private reply(m: Reading, outcome: WriteOutcome): void {
    if (outcome.status === "committed" || outcome.status === "buffered") {
      this.send({ type: "ack", boot: m.boot, seq: m.seq, status: outcome.status });
    } else {
      this.send({ type: "nack", boot: m.boot, seq: m.seq, status: outcome.status, reason: outcome.reason });
    }
  }
}
