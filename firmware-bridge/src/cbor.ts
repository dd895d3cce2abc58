/**
 * The CBOR subset of the link (PROTOCOL.md, "Payload"): unsigned and negative integers, float16,
 * float32 and float64, UTF-8 text, arrays, false/true/null. Byte strings, maps, tags and
 * indefinite lengths are refused. Ours rather than cbor-x: the firmware implements exactly this
 * subset, and a strict decoder that refuses everything else (including trailing bytes) is what
 * turns a corrupted frame that slipped past the CRC into a clear error.
 */
import { MalformedFrameError } from "./errors.js";

/** A float32 to encode: the firmware sends its floats this way, and tests that play a device do too. */
export class Float32 {
  constructor(readonly value: number) {}
}

export type CborItem = number | string | boolean | null | Float32 | CborItem[];

const MAX_DEPTH = 4;
const MAX_ITEMS = 64;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

class Writer {
  private readonly bytes: number[] = [];

  head(major: number, value: number): void {
    const m = major << 5;
    if (value < 24) this.bytes.push(m | value);
    else if (value <= 0xff) this.bytes.push(m | 24, value);
    else if (value <= 0xffff) this.bytes.push(m | 25, value >>> 8, value & 0xff);
    else if (value <= 0xffffffff)
      this.bytes.push(m | 26, value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    else {
      const big = BigInt(value);
      this.bytes.push(m | 27);
      for (let shift = 56n; shift >= 0n; shift -= 8n) this.bytes.push(Number((big >> shift) & 0xffn));
    }
  }

  item(v: CborItem, depth: number): void {
    if (depth > MAX_DEPTH) throw new RangeError("CBOR nesting too deep");
    if (v === null) this.bytes.push(0xf6);
    else if (v === false) this.bytes.push(0xf4);
    else if (v === true) this.bytes.push(0xf5);
    else if (typeof v === "string") {
      const b = utf8.encode(v);
      this.head(3, b.length);
      for (const x of b) this.bytes.push(x);
    } else if (v instanceof Float32) {
      this.bytes.push(0xfa);
      const buf = new DataView(new ArrayBuffer(4));
      buf.setFloat32(0, v.value);
      for (let i = 0; i < 4; i++) this.bytes.push(buf.getUint8(i));
    } else if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const x of v) this.item(x, depth + 1);
    } else if (Number.isSafeInteger(v)) {
      if (v >= 0) this.head(0, v);
      else this.head(1, -1 - v);
    } else {
      this.bytes.push(0xfb);
      const buf = new DataView(new ArrayBuffer(8));
      buf.setFloat64(0, v);
      for (let i = 0; i < 8; i++) this.bytes.push(buf.getUint8(i));
    }
  }

  done(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export function encodeCbor(value: CborItem): Uint8Array {
  const w = new Writer();
  w.item(value, 0);
  return w.done();
}

/**
 * The shortest decimal that reads back as the same float32: a sensor's 21.3f arrives as
 * 21.299999237060547 in float64, and people want to see 21.3.
 */
export function shortestFloat32(f: number): number {
  if (!Number.isFinite(f)) return f;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

class Reader {
  private pos = 0;
  private items = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(what: string): never {
    throw new MalformedFrameError("cbor", `CBOR: ${what} at byte ${this.pos}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) this.fail("unexpected end");
  }

  private argument(info: number): number {
    if (info < 24) return info;
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) this.fail(`additional information ${info} is not in the subset`);
    this.need(size);
    let v: number;
    if (size === 1) v = this.view.getUint8(this.pos);
    else if (size === 2) v = this.view.getUint16(this.pos);
    else if (size === 4) v = this.view.getUint32(this.pos);
    else {
      const big = this.view.getBigUint64(this.pos);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) this.fail("an integer beyond 2^53");
      v = Number(big);
    }
    this.pos += size;
    return v;
  }

  item(depth: number): CborItem {
    if (++this.items > MAX_ITEMS) this.fail("too many items");
    this.need(1);
    const initial = this.bytes[this.pos++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case 0:
        return this.argument(info);
      case 1:
        return -1 - this.argument(info);
      case 3: {
        const n = this.argument(info);
        this.need(n);
        const slice = this.bytes.subarray(this.pos, this.pos + n);
        this.pos += n;
        try {
          return utf8Strict.decode(slice);
        } catch {
          return this.fail("text that is not UTF-8");
        }
      }
      case 4: {
        if (depth >= MAX_DEPTH) this.fail("arrays nested too deep");
        const n = this.argument(info);
        if (n > MAX_ITEMS) this.fail("an array too long");
        const out: CborItem[] = [];
        for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 7:
        return this.simple(info);
      default:
        return this.fail(`major type ${major} is not in the subset`);
    }
  }

  private simple(info: number): CborItem {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 25: {
        this.need(2);
        const v = halfToNumber(this.view.getUint16(this.pos));
        this.pos += 2;
        return v;
      }
      case 26: {
        this.need(4);
        const v = shortestFloat32(this.view.getFloat32(this.pos));
        this.pos += 4;
        return v;
      }
      case 27: {
        this.need(8);
        const v = this.view.getFloat64(this.pos);
        this.pos += 8;
        return v;
      }
      default:
        return this.fail(`simple value ${info} is not in the subset`);
    }
  }

  end(): void {
    if (this.pos !== this.bytes.length) this.fail(`${this.bytes.length - this.pos} trailing bytes`);
  }
}

/** Decodes exactly one item that fills `bytes`; throws `MalformedFrameError` otherwise. */
export function decodeCbor(bytes: Uint8Array): CborItem {
  const r = new Reader(bytes);
  const v = r.item(0);
  r.end();
  return v;
}
