/**
 * The byte format of a streamed group snapshot: what `NodeStore.snapshotChunks` yields and
 * `NodeStore.installSnapshot` consumes. Every chunk is [kind u8][body][crc32 u32] (the CRC covers
 * kind and body, so a damaged chunk is caught wherever the damage happened):
 *
 *   1 header   CBOR { format, index, term, confState }: the point the image was read at
 *   2 records  repeated [keyLen u16][valueLen u32][version u64][key][value], keys ascending
 *   3 trailer  CBOR { records, bytes }: totals, so a stream cut short is never installed
 *
 * The header comes from the same read transaction as the records, so it names exactly the
 * applied index of the image (which may be later than the log's snapshot point). The reader is
 * a state machine fed one chunk at a time with no I/O inside; it bounds every length and rejects
 * bad input with `SnapshotCorruptError`.
 */
import * as zlib from "node:zlib";
import type { SnapshotMetadata } from "../raft/types.js";
import { confStateOf, decodeRecord, encodeRecord, MAX_INDEX, type KvRecord } from "./codec.js";
import { SnapshotCorruptError } from "./errors.js";

export const SNAPSHOT_FORMAT = 1;
const KIND_HEADER = 1;
const KIND_RECORDS = 2;
const KIND_TRAILER = 3;
const RECORD_HEADER_BYTES = 14;
/** What one record adds to a chunk besides its key and value bytes. */
export const RECORD_OVERHEAD_BYTES = RECORD_HEADER_BYTES;
const CRC_BYTES = 4;
const TWO_32 = 0x1_0000_0000;

export function encodeSnapshotHeader(m: SnapshotMetadata): Uint8Array {
  const body = encodeRecord({
    format: SNAPSHOT_FORMAT,
    index: m.index,
    term: m.term,
    confState: { voters: [...m.confState.voters], learners: [...m.confState.learners] },
  });
  return withKind(KIND_HEADER, body);
}

/** Reads the metadata from the first chunk of a stream (what a `snap` message should carry). */
export function readSnapshotHeader(chunk: Uint8Array): SnapshotMetadata {
  const body = checkedBody(chunk);
  if (chunk[0] !== KIND_HEADER) throw new SnapshotCorruptError("the first chunk is not a header");
  const obj = decodeBody("header", body);
  if (typeof obj !== "object" || obj === null) throw new SnapshotCorruptError("header is not a map");
  const rec = obj as Record<string, unknown>;
  if (rec["format"] !== SNAPSHOT_FORMAT)
    throw new SnapshotCorruptError(`unknown format ${String(rec["format"])}`);
  const index = rec["index"];
  const term = rec["term"];
  if (!isIndex(index) || !isIndex(term))
    throw new SnapshotCorruptError("header index or term is not an index");
  try {
    return { index, term, confState: confStateOf("header.confState", rec["confState"]) };
  } catch (err) {
    throw new SnapshotCorruptError(String(err));
  }
}

export function encodeSnapshotTrailer(records: number, bytes: number): Uint8Array {
  return withKind(KIND_TRAILER, encodeRecord({ records, bytes }));
}

/** Collects records into one chunk. */
export class RecordChunkBuilder {
  private parts: Buffer[] = [];
  private size = 1 + CRC_BYTES;
  count = 0;

  /** The size of the chunk `take()` would return now. */
  get byteLength(): number {
    return this.size;
  }

  add(key: Uint8Array, version: number, value: Uint8Array): void {
    const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    head.writeUInt16BE(key.byteLength, 0);
    head.writeUInt32BE(value.byteLength, 2);
    head.writeUInt32BE(Math.floor(version / TWO_32), 6);
    head.writeUInt32BE(version % TWO_32, 10);
    this.parts.push(head, Buffer.from(key.buffer, key.byteOffset, key.byteLength));
    this.parts.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    this.size += RECORD_HEADER_BYTES + key.byteLength + value.byteLength;
    this.count++;
  }

  /** Returns the chunk and starts a new one. */
  take(): Uint8Array {
    const chunk = Buffer.concat([Buffer.of(KIND_RECORDS), ...this.parts], this.size);
    chunk.writeUInt32BE(crc32(chunk.subarray(0, this.size - CRC_BYTES)), this.size - CRC_BYTES);
    this.parts = [];
    this.size = 1 + CRC_BYTES;
    this.count = 0;
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

export interface SnapshotReaderLimits {
  readonly maxChunkBytes: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
}

/** Validates a stream chunk by chunk: header, then records in ascending key order, then trailer. */
export class SnapshotReader {
  private state: "header" | "records" | "done" = "header";
  private lastKey: Uint8Array | null = null;
  private records = 0;
  private bytes = 0;
  metadata: SnapshotMetadata | null = null;

  constructor(private readonly limits: SnapshotReaderLimits) {}

  /** Returns the records of a record chunk (none for the header and the trailer). */
  feed(chunk: Uint8Array): KvRecord[] {
    if (chunk.byteLength > this.limits.maxChunkBytes) {
      throw new SnapshotCorruptError(
        `chunk of ${chunk.byteLength} bytes exceeds ${this.limits.maxChunkBytes}`,
      );
    }
    const body = checkedBody(chunk);
    if (this.state === "header") {
      this.metadata = readSnapshotHeader(chunk);
      this.state = "records";
      return [];
    }
    if (this.state === "done") throw new SnapshotCorruptError("data after the trailer");
    if (chunk[0] === KIND_TRAILER) {
      this.checkTrailer(body);
      this.state = "done";
      return [];
    }
    if (chunk[0] !== KIND_RECORDS) throw new SnapshotCorruptError(`unknown chunk kind ${String(chunk[0])}`);
    return this.parseRecords(body);
  }

  /** Throws unless the trailer arrived: a stream that just stops is incomplete. */
  finish(): SnapshotMetadata {
    if (this.state !== "done" || this.metadata === null) throw new SnapshotCorruptError("stream ended early");
    return this.metadata;
  }

  private parseRecords(body: Uint8Array): KvRecord[] {
    const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const out: KvRecord[] = [];
    let at = 0;
    while (at < buf.byteLength) {
      if (buf.byteLength - at < RECORD_HEADER_BYTES)
        throw new SnapshotCorruptError("truncated record header");
      const keyLen = buf.readUInt16BE(at);
      const valueLen = buf.readUInt32BE(at + 2);
      const version = buf.readUInt32BE(at + 6) * TWO_32 + buf.readUInt32BE(at + 10);
      at += RECORD_HEADER_BYTES;
      if (keyLen === 0 || keyLen > this.limits.maxKeyBytes)
        throw new SnapshotCorruptError(`key of ${keyLen} bytes`);
      if (valueLen > this.limits.maxValueBytes) throw new SnapshotCorruptError(`value of ${valueLen} bytes`);
      if (buf.byteLength - at < keyLen + valueLen) throw new SnapshotCorruptError("truncated record");
      if (version > (this.metadata?.index ?? 0)) {
        throw new SnapshotCorruptError(`record version ${version} is past the snapshot index`);
      }
      const key = buf.subarray(at, at + keyLen);
      if (this.lastKey !== null && Buffer.compare(this.lastKey, key) >= 0) {
        throw new SnapshotCorruptError("keys are not in ascending order");
      }
      const ownKey = plain(key);
      this.lastKey = ownKey;
      const value = buf.subarray(at + keyLen, at + keyLen + valueLen);
      at += keyLen + valueLen;
      out.push({ key: ownKey, value: plain(value), version });
      this.records++;
      this.bytes += keyLen + valueLen;
    }
    return out;
  }

  private checkTrailer(body: Uint8Array): void {
    const obj = decodeBody("trailer", body);
    if (typeof obj !== "object" || obj === null) throw new SnapshotCorruptError("trailer is not a map");
    const rec = obj as Record<string, unknown>;
    if (rec["records"] !== this.records || rec["bytes"] !== this.bytes) {
      throw new SnapshotCorruptError(
        `trailer says ${String(rec["records"])} records / ${String(rec["bytes"])} bytes, ` +
          `received ${this.records} / ${this.bytes}`,
      );
    }
  }
}

function withKind(kind: number, body: Uint8Array): Uint8Array {
  const out = Buffer.alloc(1 + body.byteLength + CRC_BYTES);
  out[0] = kind;
  out.set(body, 1);
  out.writeUInt32BE(crc32(out.subarray(0, 1 + body.byteLength)), 1 + body.byteLength);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Checks the CRC and returns the body (between the kind byte and the CRC). */
function checkedBody(chunk: Uint8Array): Uint8Array {
  if (chunk.byteLength < 1 + CRC_BYTES) throw new SnapshotCorruptError(`chunk of ${chunk.byteLength} bytes`);
  const end = chunk.byteLength - CRC_BYTES;
  const stored = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(end);
  if (crc32(chunk.subarray(0, end)) !== stored) throw new SnapshotCorruptError("chunk checksum mismatch");
  return chunk.subarray(1, end);
}

function decodeBody(what: string, body: Uint8Array): unknown {
  try {
    return decodeRecord(what, body);
  } catch (err) {
    throw new SnapshotCorruptError(String(err));
  }
}

/** zlib's CRC-32 (Node 20.15+), with a table-driven fallback for older Node 20 releases. */
const crc32: (data: Uint8Array) => number =
  typeof zlib.crc32 === "function" ? (data) => zlib.crc32(data) >>> 0 : tableCrc32;

let crcTable: Uint32Array | null = null;

function tableCrc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_INDEX;
}

/** Copies out of the chunk so the caller's chunk buffer can be reused or freed. */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}
