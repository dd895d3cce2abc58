/**
 * Link framing (PROTOCOL.md, "Frames"): `COBS(payload ‖ CRC-32 little-endian) ‖ 0x00`.
 *
 * `FrameDecoder` is a state machine fed with whatever chunks the serial port delivers. It never
 * throws on input: every byte sequence ends up as frames, or as rejects that say why, and the
 * decoder is back in step at the next 0x00. Its memory is bounded by `MAX_ENCODED_BYTES`.
 */
import { crc32 } from "./crc32.js";
import { MalformedFrameError } from "./errors.js";

/** Largest payload a frame may carry; payload and CRC together stay within 128 bytes. */
export const MAX_PAYLOAD_BYTES = 124;
const CRC_BYTES = 4;
/** Largest COBS-encoded frame without its delimiter (one code byte per 254 bytes, plus one). */
export const MAX_ENCODED_BYTES = MAX_PAYLOAD_BYTES + CRC_BYTES + 1;
/** The largest frame the bridge sends: the firmware's receive buffer holds 48 decoded bytes. */
export const MAX_DOWNLINK_FRAME_BYTES = 48;
/**
 * Zero bytes in a row that a device never sends (a frame ends with one, a boot adds one more).
 * A UART reading faster than the sender sees each 0 bit as a break and delivers it as 0x00, so a
 * board at a lower baud rate arrives as runs of zeros: reported once per run of this length.
 */
export const ZERO_RUN_BYTES = 16;

export function cobsEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + Math.floor(data.length / 254) + 1);
  let o = 0;
  let i = 0;
  for (;;) {
    let j = i;
    while (j < data.length && data[j] !== 0 && j - i < 254) j++;
    const block = j - i;
    out[o++] = block + 1;
    out.set(data.subarray(i, j), o);
    o += block;
    if (block === 254) {
      i = j;
      if (i === data.length) break;
      continue;
    }
    if (j === data.length) break;
    i = j + 1; // the zero this block stands for
  }
  return out.subarray(0, o);
}

/** Decodes one COBS frame (without delimiter); throws `MalformedFrameError` when it is not valid COBS. */
export function cobsDecode(encoded: Uint8Array): Uint8Array {
  const out = new Uint8Array(encoded.length);
  let o = 0;
  let i = 0;
  while (i < encoded.length) {
    const code = encoded[i++]!;
    if (code === 0) throw new MalformedFrameError("cobs", "a zero byte inside a COBS frame");
    const end = i + code - 1;
    if (end > encoded.length) throw new MalformedFrameError("cobs", "a COBS block runs past the frame");
    for (; i < end; i++) {
      const b = encoded[i]!;
      if (b === 0) throw new MalformedFrameError("cobs", "a zero byte inside a COBS frame");
      out[o++] = b;
    }
    if (code < 0xff && i < encoded.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

/** The bytes that go on the wire for one payload, delimiter included. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length > MAX_PAYLOAD_BYTES) {
    throw new RangeError(`a payload must have 1 to ${MAX_PAYLOAD_BYTES} bytes, not ${payload.length}`);
  }
  const raw = new Uint8Array(payload.length + CRC_BYTES);
  raw.set(payload);
  new DataView(raw.buffer).setUint32(payload.length, crc32(payload), true);
  const encoded = cobsEncode(raw);
  const wire = new Uint8Array(encoded.length + 1);
  wire.set(encoded);
  return wire;
}

/** Checks the CRC of a decoded frame and returns its payload. */
export function checkFrame(decoded: Uint8Array): Uint8Array {
  if (decoded.length < 1 + CRC_BYTES) throw new MalformedFrameError("short", "a frame shorter than 5 bytes");
  const n = decoded.length - CRC_BYTES;
  const view = new DataView(decoded.buffer, decoded.byteOffset, decoded.byteLength);
  if (view.getUint32(n, true) !== crc32(decoded, 0, n)) throw new MalformedFrameError("crc", "bad CRC");
  return decoded.slice(0, n);
}

export type RejectReason = "oversized" | "cobs" | "short" | "crc";

export type FrameEvent =
  | { kind: "frame"; payload: Uint8Array; wireBytes: number }
  | { kind: "reject"; reason: RejectReason; bytes: number }
  | { kind: "zeros"; bytes: number };

export interface FrameDecoderStats {
  framesOk: number;
  /** Frames dropped for any reason: each is one resynchronisation at the next delimiter. */
  resyncs: number;
  badCrc: number;
  oversized: number;
  malformed: number;
  bytesIn: number;
  bytesDropped: number;
}

export class FrameDecoder {
  private readonly buf = new Uint8Array(MAX_ENCODED_BYTES);
  private len = 0;
  /** Bytes beyond the bound were seen: everything up to the next delimiter is dropped. */
  private overflow = 0;
  /** Zero bytes in a row, the delimiter that ended the last frame included. */
  private zeroRun = 0;
  readonly stats: FrameDecoderStats = {
    framesOk: 0,
    resyncs: 0,
    badCrc: 0,
    oversized: 0,
    malformed: 0,
    bytesIn: 0,
    bytesDropped: 0,
  };

  /** Feeds a chunk; returns the frames and rejects it completed, in order. */
  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    this.stats.bytesIn += chunk.length;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b !== 0) {
        this.zeroRun = 0;
        if (this.len < this.buf.length) this.buf[this.len++] = b;
        else this.overflow++;
        continue;
      }
      if (this.len === 0 && this.overflow === 0) {
        // Delimiters in a row: an idle line, or a long run of them, a sender at a lower baud rate.
        if (++this.zeroRun === ZERO_RUN_BYTES) events.push({ kind: "zeros", bytes: ZERO_RUN_BYTES });
        continue;
      }
      this.zeroRun = 1;
      events.push(this.complete());
      this.len = 0;
      this.overflow = 0;
    }
    return events;
  }

  /** Bytes held for a frame whose delimiter has not come yet (a truncated frame stays here). */
  get pendingBytes(): number {
    return this.len + this.overflow;
  }

  private complete(): FrameEvent {
    if (this.overflow > 0) return this.reject("oversized", this.len + this.overflow);
    try {
      const payload = checkFrame(cobsDecode(this.buf.subarray(0, this.len)));
      this.stats.framesOk++;
      return { kind: "frame", payload, wireBytes: this.len + 1 };
    } catch (err) {
      if (!(err instanceof MalformedFrameError)) throw err;
      return this.reject(err.reason === "crc" ? "crc" : err.reason === "short" ? "short" : "cobs", this.len);
    }
  }

  private reject(reason: RejectReason, bytes: number): FrameEvent {
    this.stats.resyncs++;
    this.stats.bytesDropped += bytes + 1;
    if (reason === "crc") this.stats.badCrc++;
    else if (reason === "oversized") this.stats.oversized++;
    else this.stats.malformed++;
    return { kind: "reject", reason, bytes };
  }
}
