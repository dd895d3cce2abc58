/**
 * The messages of link protocol version 1 (PROTOCOL.md, "Messages"). Each payload is one CBOR
 * array whose first item is the message type; fields follow in a fixed order, and fields a newer
 * peer appends after them are ignored. Both directions are here so tests can play the device.
 */
import { decodeCbor, encodeCbor, Float32, type CborItem } from "./cbor.js";
import { MalformedFrameError, UnknownMessageError } from "./errors.js";
import { MAX_PAYLOAD_BYTES } from "./framing.js";

export const PROTOCOL_VERSION = 1;

export const MessageType = {
  hello: 0,
  reading: 1,
  ack: 2,
  nack: 3,
  time: 4,
  timeReply: 5,
  who: 6,
  config: 7,
  configReply: 8,
  stats: 9,
  statsRequest: 10,
} as const;

export const AckStatus = { committed: 0, buffered: 1 } as const;
export const NackStatus = { rejected: 2, retry: 3 } as const;

/** Device ids and sensor names: safe inside a key and its `{hash tag}`, and short. */
export const NAME_PATTERN = /^[A-Za-z0-9._-]{1,16}$/;

export interface Hello {
  type: "hello";
  protocol: number;
  device: string;
  boot: number;
  firmware: string;
  uptimeMs: number;
  intervalMs: number;
  window: number;
  sensors: string[];
}
export interface Reading {
  type: "reading";
  boot: number;
  seq: number;
  sensor: string;
  /** NaN and infinities are decoded as such; the bridge refuses them (JSON cannot hold them). */
  value: number;
  uptimeMs: number;
}
export interface Ack {
  type: "ack";
  boot: number;
  seq: number;
  status: keyof typeof AckStatus;
}
export interface Nack {
  type: "nack";
  boot: number;
  seq: number;
  status: keyof typeof NackStatus;
  reason: string;
}
export interface Time {
  type: "time";
  token: number;
  epochMs: number;
}
export interface TimeReply {
  type: "time-reply";
  boot: number;
  token: number;
  uptimeMs: number;
}
export interface Who {
  type: "who";
}
export interface Config {
  type: "config";
  token: number;
  intervalMs: number;
}
export interface ConfigReply {
  type: "config-reply";
  boot: number;
  token: number;
  intervalMs: number;
}
export interface Stats {
  type: "stats";
  boot: number;
  nextSeq: number;
  unacked: number;
  retransmits: number;
  rejected: number;
  dropped: number;
  rxBad: number;
  rxIgnored: number;
  intervalMs: number;
  uptimeMs: number;
}
export interface StatsRequest {
  type: "stats-request";
}

export type DeviceMessage = Hello | Reading | TimeReply | ConfigReply | Stats;
export type BridgeMessage = Ack | Nack | Time | Who | Config | StatsRequest;
export type Message = DeviceMessage | BridgeMessage;

/** Reads fields in order and says which one was wrong. */
class Fields {
  private i = 1;
  constructor(
    private readonly items: CborItem[],
    private readonly what: string,
  ) {}

  private next(): CborItem {
    if (this.i >= this.items.length) this.fail("too few fields");
    return this.items[this.i++]!;
  }

  private fail(detail: string): never {
    throw new MalformedFrameError("message", `${this.what}: ${detail} (field ${this.i})`);
  }

  uint(): number {
    const v = this.next();
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) this.fail("expected an unsigned integer");
    return v;
  }

  number(): number {
    const v = this.next();
    if (typeof v !== "number") this.fail("expected a number");
    return v;
  }

  text(maxLength = 64): string {
    const v = this.next();
    if (typeof v !== "string" || v.length > maxLength) this.fail(`expected text of at most ${maxLength}`);
    return v;
  }

  texts(maxLength: number): string[] {
    const v = this.next();
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x.length > maxLength)) {
      this.fail("expected a list of texts");
    }
    return v as string[];
  }
}

export function decodeMessage(payload: Uint8Array): Message {
  const root = decodeCbor(payload);
  if (!Array.isArray(root) || root.length === 0) {
    throw new MalformedFrameError("message", "a payload must be a non-empty array");
  }
  const type = root[0];
  if (typeof type !== "number" || !Number.isSafeInteger(type) || type < 0) {
    throw new MalformedFrameError("message", "the message type is not an unsigned integer");
  }
  const name = Object.entries(MessageType).find(([, v]) => v === type)?.[0];
  if (name === undefined) throw new UnknownMessageError(type);
  const f = new Fields(root, name);
  switch (type) {
    case MessageType.hello:
      return {
        type: "hello",
        protocol: f.uint(),
        device: f.text(),
        boot: f.uint(),
        firmware: f.text(),
        uptimeMs: f.uint(),
        intervalMs: f.uint(),
        window: f.uint(),
        sensors: f.texts(64),
      };
    case MessageType.reading:
      return {
        type: "reading",
        boot: f.uint(),
        seq: f.uint(),
        sensor: f.text(),
        value: f.number(),
        uptimeMs: f.uint(),
      };
    case MessageType.ack:
    case MessageType.nack: {
      const boot = f.uint();
      const seq = f.uint();
      const status = f.uint();
      if (type === MessageType.ack) {
        if (status !== AckStatus.committed && status !== AckStatus.buffered) {
          throw new MalformedFrameError("message", `ack: unknown status ${status}`);
        }
        return { type: "ack", boot, seq, status: status === AckStatus.committed ? "committed" : "buffered" };
      }
      if (status !== NackStatus.rejected && status !== NackStatus.retry) {
        throw new MalformedFrameError("message", `nack: unknown status ${status}`);
      }
      return {
        type: "nack",
        boot,
        seq,
        status: status === NackStatus.rejected ? "rejected" : "retry",
        reason: f.text(),
      };
    }
    case MessageType.time:
      return { type: "time", token: f.uint(), epochMs: f.uint() };
    case MessageType.timeReply:
      return { type: "time-reply", boot: f.uint(), token: f.uint(), uptimeMs: f.uint() };
    case MessageType.who:
      return { type: "who" };
    case MessageType.config:
      return { type: "config", token: f.uint(), intervalMs: f.uint() };
    case MessageType.configReply:
      return { type: "config-reply", boot: f.uint(), token: f.uint(), intervalMs: f.uint() };
    case MessageType.stats:
      return {
        type: "stats",
        boot: f.uint(),
        nextSeq: f.uint(),
        unacked: f.uint(),
        retransmits: f.uint(),
        rejected: f.uint(),
        dropped: f.uint(),
        rxBad: f.uint(),
        rxIgnored: f.uint(),
        intervalMs: f.uint(),
        uptimeMs: f.uint(),
      };
    case MessageType.statsRequest:
      return { type: "stats-request" };
    default:
      throw new UnknownMessageError(type);
  }
}

function items(m: Message): CborItem[] {
  switch (m.type) {
    case "hello":
      return [
        MessageType.hello,
        m.protocol,
        m.device,
        m.boot,
        m.firmware,
        m.uptimeMs,
        m.intervalMs,
        m.window,
        m.sensors,
      ];
    case "reading":
      // Integers stay integers; anything else goes as a float32, as the firmware sends it.
      return [
        MessageType.reading,
        m.boot,
        m.seq,
        m.sensor,
        // The int32 range, -2^31 included (a float32 would print it as -2147483600).
        Number.isSafeInteger(m.value) && m.value >= -(2 ** 31) && m.value < 2 ** 31
          ? m.value
          : new Float32(m.value),
        m.uptimeMs,
      ];
    case "ack":
      return [MessageType.ack, m.boot, m.seq, AckStatus[m.status]];
    case "nack":
      return [MessageType.nack, m.boot, m.seq, NackStatus[m.status], m.reason];
    case "time":
      return [MessageType.time, m.token, m.epochMs];
    case "time-reply":
      return [MessageType.timeReply, m.boot, m.token, m.uptimeMs];
    case "who":
      return [MessageType.who];
    case "config":
      return [MessageType.config, m.token, m.intervalMs];
    case "config-reply":
      return [MessageType.configReply, m.boot, m.token, m.intervalMs];
    case "stats":
      return [
        MessageType.stats,
        m.boot,
        m.nextSeq,
        m.unacked,
        m.retransmits,
        m.rejected,
        m.dropped,
        m.rxBad,
        m.rxIgnored,
        m.intervalMs,
        m.uptimeMs,
      ];
    case "stats-request":
      return [MessageType.statsRequest];
  }
}

export function encodeMessage(m: Message): Uint8Array {
  const payload = encodeCbor(items(m));
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`a ${m.type} message of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
  return payload;
}
