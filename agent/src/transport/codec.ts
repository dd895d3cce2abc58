/**
 * The wire codec between agents: length-prefixed CBOR frames.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload, one CBOR map encoded by
 * cbor-x with plain maps only (no records, no shared structures, no structured clone), so that
 * nothing learnt from one frame or one peer changes how the next frame decodes.
 *
 * Two kinds of frame exist:
 *  - HELLO `{ v: 1, hello: { nodeId, clusterName } }`, the first frame on every connection;
 *  - a batch `{ v: 1, from, to, msgs: [...] }` holding every message queued for one peer in one
 *    event-loop turn. Because `from` and `to` are the same for the whole batch they travel once
 *    in the frame and are left out of each message; and any message field equal to its zero value
 *    (0, false, empty bytes, no entries, no snapshot) is left out too. That halves the size of a
 *    heartbeat, the most common message; the decoder puts the zero values back.
 *
 * Decoding is strict: every field is checked for type and bounds, unknown fields are refused, and
 * byte strings are copied out of the receive buffer. Anything wrong raises `FrameError` with a
 * `code` and a message that says where.
 */
import { CompactEncoder } from "../cbor/encoder.js";
import {
  EMPTY_BYTES,
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  type MessageType,
  type NodeId,
  type Snapshot,
} from "../raft/types.js";
import { DEFAULT_CODEC_LIMITS, type CodecLimits } from "./types.js";

export const PROTOCOL_VERSION = 1;
export const LENGTH_PREFIX_BYTES = 4;
/** The length prefix is a uint32, so no configuration may allow more. */
const MAX_REPRESENTABLE_FRAME_BYTES = 0xffffffff;

export type FrameErrorCode =
  /** The length prefix (or, when sending, the encoded frame) is over `maxFrameBytes`. */
  | "too_large"
  /** A zero-length frame; never produced by a correct peer. */
  | "empty"
  /** The payload is not one well-formed CBOR item. */
  | "bad_cbor"
  /** The frame's protocol version is not one we speak. */
  | "bad_version"
  /** Well-formed CBOR of the wrong shape: missing, unknown or out-of-bounds fields. */
  | "bad_message"
  /** A valid frame out of place: a batch before HELLO, a second HELLO, the wrong cluster or node. */
  | "protocol";

/** A frame that cannot be accepted. The connection it came from must be closed. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface Hello {
  readonly nodeId: NodeId;
  readonly clusterName: string;
}

export interface HelloFrame {
  readonly v: typeof PROTOCOL_VERSION;
  readonly hello: Hello;
}

export interface BatchFrame {
  readonly v: typeof PROTOCOL_VERSION;
  readonly from: NodeId;
  readonly to: NodeId;
  /** Every message has `from` and `to` equal to the frame's. */
  readonly msgs: readonly Message[];
}

export type Frame = HelloFrame | BatchFrame;

export function isHelloFrame(frame: Frame): frame is HelloFrame {
  return "hello" in frame;
}

/** Message types that only ever travel inside one process, from the application to its core. */
const LOCAL_MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>(["hup", "beat", "unreachable"]);

/** Message types that travel between nodes. */
export const WIRE_TYPES: readonly MessageType[] = [
  "prop",
  "app",
  "appResp",
  "vote",
  "voteResp",
  "preVote",
  "preVoteResp",
  "snap",
  "heartbeat",
  "heartbeatResp",
  "readIndex",
  "readIndexResp",
  "transferLeader",
  "timeoutNow",
  // Between hosts it acknowledges a chunk of a snapshot stream (agent/src/node/snapshot-transfer.ts);
  // the core itself only ever receives it locally.
  "snapStatus",
];

const WIRE_MESSAGE_TYPES: ReadonlySet<string> = new Set<string>(WIRE_TYPES);

/** Whether a message of this type may be sent to another node. */
export function isWireMessageType(type: string): type is MessageType {
  return WIRE_MESSAGE_TYPES.has(type);
}

/** Checks limits once, where they are configured; a bad limit is a programmer error. */
export function assertCodecLimits(limits: CodecLimits): void {
  const positive = (name: keyof CodecLimits): void => {
    const value = limits[name];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`codec limit ${name} must be a positive integer, got ${value}`);
    }
  };
  positive("maxFrameBytes");
  positive("maxMessagesPerFrame");
  positive("maxEntriesPerMessage");
  positive("maxIdLength");
  positive("maxMembers");
  if (limits.maxFrameBytes > MAX_REPRESENTABLE_FRAME_BYTES) {
    throw new RangeError(`maxFrameBytes ${limits.maxFrameBytes} does not fit the 4-byte length prefix`);
  }
}

// The options the brief fixes, plus `variableMapSize` so small maps get a one-byte header rather
// than cbor-x's default three. The instance holds no state between calls with these options, so
// one per module is as good as one per connection.
const cbor = new CompactEncoder({
  useRecords: false,
  structuredClone: false,
  tagUint8Array: false,
  mapsAsObjects: true,
  variableMapSize: true,
});

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes one frame with its length prefix into a buffer of its own (cbor-x returns views of a
 * shared scratch buffer, which a socket that queues writes must not hold on to).
 * Throws `FrameError("too_large")` when the payload is over `maxFrameBytes`.
 */
export function encodeFrame(
  frame: Frame,
  maxFrameBytes: number = DEFAULT_CODEC_LIMITS.maxFrameBytes,
): Buffer {
  const payload = cbor.encode(isHelloFrame(frame) ? frame : toWireBatch(frame));
  if (payload.length > maxFrameBytes) {
    throw new FrameError(
      "too_large",
      `frame of ${payload.length} bytes is over the ${maxFrameBytes}-byte limit`,
    );
  }
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, LENGTH_PREFIX_BYTES);
  return out;
}

function toWireBatch(frame: BatchFrame): Record<string, unknown> {
  const msgs = frame.msgs.map((m) => {
    // A message in someone else's batch is a bug in the caller, not something to put on the wire.
    if (m.from !== frame.from || m.to !== frame.to) {
      throw new Error(`message ${m.from}->${m.to} does not belong in a batch ${frame.from}->${frame.to}`);
    }
    return toWireMessage(m);
  });
  return { v: frame.v, from: frame.from, to: frame.to, msgs };
}

function toWireMessage(m: Message): Record<string, unknown> {
  const w: Record<string, unknown> = { type: m.type };
  if (m.group !== 0) w.group = m.group;
  if (m.term !== 0) w.term = m.term;
  if (m.logTerm !== 0) w.logTerm = m.logTerm;
  if (m.index !== 0) w.index = m.index;
  if (m.entries.length > 0) w.entries = m.entries.map(toWireEntry);
  if (m.commit !== 0) w.commit = m.commit;
  if (m.reject) w.reject = true;
  if (m.rejectHint !== 0) w.rejectHint = m.rejectHint;
  if (m.rejectTerm !== 0) w.rejectTerm = m.rejectTerm;
  if (m.context.length > 0) w.context = m.context;
  if (m.snapshot !== null) w.snapshot = m.snapshot;
  return w;
}

function toWireEntry(e: Entry): Record<string, unknown> {
  const w: Record<string, unknown> = {};
  if (e.term !== 0) w.term = e.term;
  if (e.index !== 0) w.index = e.index;
  if (e.type !== "normal") w.type = e.type;
  if (e.data.length > 0) w.data = e.data;
  return w;
}

/** An upper bound on the CBOR bytes of a batch frame apart from its messages. */
export function frameOverheadBytes(limits: CodecLimits): number {
  // Map header, "v", "from", "to", "msgs" with their headers, and two ids of up to 3 UTF-8 bytes
  // per UTF-16 unit.
  return 64 + 2 * 3 * limits.maxIdLength;
}

/**
 * An upper bound on the encoded size of one message, computed without encoding it, so that the
 * sender can cut batches and account queue bytes cheaply. Each scalar field is counted at its
 * widest (key plus a 9-byte integer), so the bound holds for any values.
 */
export function estimateMessageBytes(m: Message): number {
  let bytes = 200 + m.context.length;
  for (const e of m.entries) bytes += 64 + e.data.length;
  if (m.snapshot !== null) {
    const { voters, learners } = m.snapshot.metadata.confState;
    bytes += 96 + m.snapshot.data.length;
    for (const id of voters) bytes += 9 + 3 * id.length;
    for (const id of learners) bytes += 9 + 3 * id.length;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Decodes and validates one frame payload (without its length prefix). */
export function decodePayload(payload: Uint8Array, limits: CodecLimits = DEFAULT_CODEC_LIMITS): Frame {
  if (payload.length === 0) throw new FrameError("empty", "empty frame");
  if (payload.length > limits.maxFrameBytes) {
    throw new FrameError(
      "too_large",
      `frame of ${payload.length} bytes is over the ${limits.maxFrameBytes}-byte limit`,
    );
  }
  let raw: unknown;
  try {
    raw = cbor.decode(payload);
  } catch (err) {
    // cbor-x throws plain Errors and RangeErrors (including stack overflow on absurd nesting);
    // all of them mean the same thing here.
    const why = err instanceof Error ? err.message : String(err);
    throw new FrameError("bad_cbor", `frame is not valid CBOR: ${why}`);
  }
  return validateFrame(raw, limits);
}

/**
 * Turns decoded CBOR into a typed frame, or throws `FrameError`. Byte strings in the result are
 * fresh copies: they never share memory with the buffer the CBOR was decoded from.
 */
export function validateFrame(raw: unknown, limits: CodecLimits = DEFAULT_CODEC_LIMITS): Frame {
  const root = asMap(raw, "frame");
  if (root.v !== PROTOCOL_VERSION) {
    throw new FrameError("bad_version", `frame version ${describe(root.v)} is not ${PROTOCOL_VERSION}`);
  }
  if (root.hello !== undefined) {
    onlyKeys(root, HELLO_FRAME_KEYS, 2, "hello frame");
    const hello = asMap(root.hello, "hello");
    onlyKeys(hello, HELLO_KEYS, 2, "hello");
    return {
      v: PROTOCOL_VERSION,
      hello: {
        nodeId: id(hello.nodeId, limits, "hello.nodeId"),
        clusterName: id(hello.clusterName, limits, "hello.clusterName"),
      },
    };
  }
  onlyKeys(root, BATCH_FRAME_KEYS, 4, "batch frame");
  const from = id(root.from, limits, "from");
  const to = id(root.to, limits, "to");
  const msgs = array(root.msgs, limits.maxMessagesPerFrame, "msgs");
  if (msgs.length === 0)
    throw new FrameError("bad_message", "msgs: a batch frame holds at least one message");
  return { v: PROTOCOL_VERSION, from, to, msgs: msgs.map((m, i) => message(m, from, to, limits, i)) };
}

const HELLO_FRAME_KEYS: ReadonlySet<string> = new Set(["v", "hello"]);
const HELLO_KEYS: ReadonlySet<string> = new Set(["nodeId", "clusterName"]);
const BATCH_FRAME_KEYS: ReadonlySet<string> = new Set(["v", "from", "to", "msgs"]);
const MESSAGE_KEYS: ReadonlySet<string> = new Set([
  "type",
  "group",
  "term",
  "logTerm",
  "index",
  "entries",
  "commit",
  "reject",
  "rejectHint",
  "rejectTerm",
  "context",
  "snapshot",
]);
const ENTRY_KEYS: ReadonlySet<string> = new Set(["term", "index", "type", "data"]);
const SNAPSHOT_KEYS: ReadonlySet<string> = new Set(["metadata", "data"]);
const METADATA_KEYS: ReadonlySet<string> = new Set(["index", "term", "confState"]);
const CONF_STATE_KEYS: ReadonlySet<string> = new Set(["voters", "learners"]);

type WireMap = Record<string, unknown>;

function message(raw: unknown, from: NodeId, to: NodeId, limits: CodecLimits, i: number): Message {
  const at = `msgs[${i}]`;
  const m = asMap(raw, at);
  onlyKeys(m, MESSAGE_KEYS, -1, at);
  const type = m.type;
  if (typeof type !== "string" || !WIRE_MESSAGE_TYPES.has(type)) {
    const why = typeof type === "string" && LOCAL_MESSAGE_TYPES.has(type) ? "a local-only" : "an unknown";
    throw new FrameError("bad_message", `${at}.type: ${describe(type)} is ${why} message type`);
  }
  const entries =
    m.entries === undefined ? [] : array(m.entries, limits.maxEntriesPerMessage, `${at}.entries`);
  return {
    type: type as MessageType,
    group: uintOr0(m.group, at, "group"),
    from,
    to,
    term: uintOr0(m.term, at, "term"),
    logTerm: uintOr0(m.logTerm, at, "logTerm"),
    index: uintOr0(m.index, at, "index"),
    entries: entries.map((e, j) => entry(e, `${at}.entries[${j}]`)),
    commit: uintOr0(m.commit, at, "commit"),
    reject: m.reject === undefined ? false : bool(m.reject, at, "reject"),
    rejectHint: uintOr0(m.rejectHint, at, "rejectHint"),
    rejectTerm: uintOr0(m.rejectTerm, at, "rejectTerm"),
    context: m.context === undefined ? EMPTY_BYTES : bytes(m.context, at, "context"),
    snapshot: m.snapshot === undefined ? null : snapshot(m.snapshot, limits, `${at}.snapshot`),
  };
}

function entry(raw: unknown, at: string): Entry {
  const e = asMap(raw, at);
  onlyKeys(e, ENTRY_KEYS, -1, at);
  let type: EntryType = "normal";
  if (e.type !== undefined) {
    if (e.type !== "normal" && e.type !== "conf") {
      throw new FrameError("bad_message", `${at}.type: ${describe(e.type)} is not an entry type`);
    }
    type = e.type;
  }
  return {
    term: uintOr0(e.term, at, "term"),
    index: uintOr0(e.index, at, "index"),
    type,
    data: e.data === undefined ? EMPTY_BYTES : bytes(e.data, at, "data"),
  };
}

function snapshot(raw: unknown, limits: CodecLimits, at: string): Snapshot {
  const s = asMap(raw, at);
  onlyKeys(s, SNAPSHOT_KEYS, 2, at);
  const md = asMap(s.metadata, `${at}.metadata`);
  onlyKeys(md, METADATA_KEYS, 3, `${at}.metadata`);
  return {
    metadata: {
      index: uint(md.index, `${at}.metadata`, "index"),
      term: uint(md.term, `${at}.metadata`, "term"),
      confState: confState(md.confState, limits, `${at}.metadata.confState`),
    },
    data: bytes(s.data, at, "data"),
  };
}

function confState(raw: unknown, limits: CodecLimits, at: string): ConfState {
  const c = asMap(raw, at);
  onlyKeys(c, CONF_STATE_KEYS, 2, at);
  const voters = array(c.voters, limits.maxMembers, `${at}.voters`);
  const learners = array(c.learners, limits.maxMembers - voters.length, `${at}.learners`);
  return {
    voters: voters.map((v, i) => id(v, limits, `${at}.voters[${i}]`)),
    learners: learners.map((v, i) => id(v, limits, `${at}.learners[${i}]`)),
  };
}

// ---------------------------------------------------------------------------------------------
// Field checks. They build their error text only on failure, so the happy path stays cheap.

function asMap(raw: unknown, at: string): WireMap {
  if (typeof raw !== "object" || raw === null || Object.getPrototypeOf(raw) !== Object.prototype) {
    throw new FrameError("bad_message", `${at}: expected a map, got ${describe(raw)}`);
  }
  return raw as WireMap;
}

/**
 * Refuses fields we do not know. `expected` is the exact key count when every key is required,
 * or -1 when keys are optional (then each is looked up).
 */
function onlyKeys(map: WireMap, allowed: ReadonlySet<string>, expected: number, at: string): void {
  const keys = Object.keys(map);
  if (
    expected >= 0 &&
    keys.length === expected &&
    keys.every((k) => allowed.has(k) && map[k] !== undefined)
  ) {
    return;
  }
  for (const k of keys) {
    if (!allowed.has(k)) throw new FrameError("bad_message", `${at}: unexpected field ${JSON.stringify(k)}`);
  }
  if (expected >= 0) {
    const missing = [...allowed].filter((k) => map[k] === undefined);
    throw new FrameError("bad_message", `${at}: missing field(s) ${missing.join(", ")}`);
  }
}

function uint(raw: unknown, at: string, field: string): number {
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) {
    throw new FrameError(
      "bad_message",
      `${at}.${field}: expected a non-negative safe integer, got ${describe(raw)}`,
    );
  }
  return raw;
}

function uintOr0(raw: unknown, at: string, field: string): number {
  return raw === undefined ? 0 : uint(raw, at, field);
}

function bool(raw: unknown, at: string, field: string): boolean {
  if (typeof raw !== "boolean") {
    throw new FrameError("bad_message", `${at}.${field}: expected a boolean, got ${describe(raw)}`);
  }
  return raw;
}

/** Copies, so that nothing we hand out keeps the receive buffer alive or sees it change. */
function bytes(raw: unknown, at: string, field: string): Uint8Array {
  if (!(raw instanceof Uint8Array)) {
    throw new FrameError("bad_message", `${at}.${field}: expected a byte string, got ${describe(raw)}`);
  }
  return raw.length === 0 ? EMPTY_BYTES : new Uint8Array(raw);
}

function id(raw: unknown, limits: CodecLimits, at: string): string {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > limits.maxIdLength) {
    throw new FrameError(
      "bad_message",
      `${at}: expected a string of 1..${limits.maxIdLength} characters, got ${describe(raw)}`,
    );
  }
  return raw;
}

function array(raw: unknown, max: number, at: string): unknown[] {
  if (!Array.isArray(raw))
    throw new FrameError("bad_message", `${at}: expected an array, got ${describe(raw)}`);
  if (raw.length > max) {
    throw new FrameError("bad_message", `${at}: ${raw.length} items is over the limit of ${max}`);
  }
  return raw;
}

/** A short, bounded description of a bad value for error messages (never the whole value). */
function describe(raw: unknown): string {
  if (raw === undefined) return "nothing";
  if (raw === null) return "null";
  if (typeof raw === "string")
    return raw.length > 40 ? `a string of ${raw.length} characters` : JSON.stringify(raw);
  if (typeof raw === "number" || typeof raw === "boolean") return String(raw);
  if (typeof raw === "bigint") return `the big integer ${raw}`;
  if (raw instanceof Uint8Array) return `${raw.length} bytes`;
  if (Array.isArray(raw)) return `an array of ${raw.length}`;
  if (typeof raw === "object") {
    const proto: unknown = Object.getPrototypeOf(raw);
    const ctor =
      proto !== null && typeof proto === "object" ? (proto as { constructor?: { name?: unknown } }) : {};
    const name = typeof ctor.constructor?.name === "string" ? ctor.constructor.name : "object";
    return name === "Object" ? "a map" : `a ${name}`;
  }
  return `a ${typeof raw}`;
}

// ---------------------------------------------------------------------------------------------
// The frame decoder

/**
 * Cuts a byte stream into frames. Fed with chunks of any size (as they come off a socket), it
 * returns the frames that became complete. It holds at most one incomplete frame: the length
 * prefix is checked against `maxFrameBytes` as soon as its four bytes are in, before any of the
 * payload is kept. After a `FrameError` it is spent: every later `push` throws the same error.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private headOffset = 0;
  private buffered = 0;
  /** Payload length of the frame being read, or -1 while reading a length prefix. */
  private expected = -1;
  private failure: FrameError | null = null;

  constructor(private readonly limits: CodecLimits = DEFAULT_CODEC_LIMITS) {
    assertCodecLimits(limits);
  }

  /** Bytes received but not yet part of a returned frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failure !== null) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (this.expected < 0) {
          if (this.buffered < LENGTH_PREFIX_BYTES) break;
          this.expected = this.readLength();
        }
        if (this.buffered < this.expected) break;
        const payload = this.take(this.expected);
        this.expected = -1;
        frames.push(decodePayload(payload, this.limits));
      }
    } catch (err) {
      if (err instanceof FrameError) {
        this.failure = err;
        this.chunks = [];
        this.head = 0;
        this.buffered = 0;
      }
      throw err;
    }
    return frames;
  }

  private readLength(): number {
    const p = this.take(LENGTH_PREFIX_BYTES);
    const length = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
    if (length > this.limits.maxFrameBytes) {
      throw new FrameError(
        "too_large",
        `frame length ${length} is over the ${this.limits.maxFrameBytes}-byte limit`,
      );
    }
    if (length === 0) throw new FrameError("empty", "empty frame");
    return length;
  }

  /** Removes `n <= buffered` bytes; a view when they sit in one chunk, a copy otherwise. */
  private take(n: number): Uint8Array {
    const first = this.chunks[this.head]!;
    if (first.length - this.headOffset >= n) {
      const out = first.subarray(this.headOffset, this.headOffset + n);
      this.consume(first, n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(n - filled, c.length - this.headOffset);
      out.set(c.subarray(this.headOffset, this.headOffset + k), filled);
      filled += k;
      this.consume(c, k);
    }
    return out;
  }

  private consume(chunk: Uint8Array, n: number): void {
    this.headOffset += n;
    this.buffered -= n;
    if (this.headOffset < chunk.length) return;
    this.headOffset = 0;
    this.head += 1;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 64) {
      // Drop the spent prefix now and then so a long frame in many small chunks stays O(n).
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
