/**
 * How the store lays out keys and values in LMDB.
 *
 * Keys are raw big-endian bytes so that LMDB's byte order is the order we scan in: a group's log
 * entries sit next to each other by index, a group's KV records by key. Values of the hot paths
 * (log entries, KV records) use a small fixed header instead of CBOR: on an SD card every byte
 * written per entry counts, and the entry payload stays a `Uint8Array` without re-encoding.
 * Rarely written records (hard state, snapshot metadata, membership) are CBOR maps.
 */
import { CompactEncoder } from "../cbor/encoder.js";
import type { ConfState, Entry, EntryType, GroupId, HardState, SnapshotMetadata } from "../raft/types.js";
import { StoreCorruptError } from "./errors.js";

/** Raft indexes and terms are JS numbers; above 2^53 they would silently lose precision. */
export const MAX_INDEX = Number.MAX_SAFE_INTEGER;
export const MAX_GROUP_ID = 0xffff_ffff;
export const MAX_GENERATION = 0xffff_ffff;

const TWO_32 = 0x1_0000_0000;

export function assertGroupId(group: GroupId): void {
  if (!Number.isInteger(group) || group < 0 || group > MAX_GROUP_ID) {
    throw new RangeError(`group id must be an integer in [0, ${MAX_GROUP_ID}], got ${group}`);
  }
}

export function assertIndex(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_INDEX) {
    throw new RangeError(`${what} must be an integer in [0, 2^53), got ${n}`);
  }
}

function writeU64(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_32), offset);
  buf.writeUInt32BE(n % TWO_32, offset + 4);
}

/**
 * Big-endian integers read byte by byte: a `DataView` made per call cost the open's log scan (a
 * read per record) more than the scan itself. Out of bounds is a `RangeError`, as it was there.
 */
function readU32(buf: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > buf.byteLength)
    throw new RangeError(`no 4 bytes at ${offset} of ${buf.byteLength}`);
  return buf[offset]! * 0x100_0000 + ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!);
}

function readU64(buf: Uint8Array, offset: number): number {
  return readU32(buf, offset) * TWO_32 + readU32(buf, offset + 4);
}

/** Returns a plain `Uint8Array` view (not a `Buffer`) so callers compare it like any other bytes. */
function plainView(buf: Uint8Array, start: number, end: number = buf.byteLength): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + start, end - start);
}

// ---------------------------------------------------------------------------------------------
// Log, format 1 (read only to move it to format 2): key = group u32 | index u64, value = a log
// value (below).

export const LOG_KEY_BYTES = 12;
const LOG_HEADER_BYTES = 9;

export function logKey(group: GroupId, index: number): Buffer {
  const key = Buffer.allocUnsafe(LOG_KEY_BYTES);
  key.writeUInt32BE(group, 0);
  writeU64(key, 4, index);
  return key;
}

export function logKeyIndex(key: Uint8Array): number {
  if (key.byteLength !== LOG_KEY_BYTES) throw new StoreCorruptError(`log key of ${key.byteLength} bytes`);
  return readU64(key, 4);
}

// ---------------------------------------------------------------------------------------------
// Log, format 2: ONE log for every group of the node, in the order its records were written.
// key = sequence u64, value = group u32 | index u64 | log value (term u64 | type u8 | data).
//
// Why not one key range per group: a turn of the ready loop appends to a few dozen groups, and
// with the group in the key each of them rewrote its own last leaf page (4 KiB copy-on-write per
// group per turn, and as much written to disk). Sequence keys put a whole turn's entries at the
// right edge of ONE B-tree: one or two leaf pages per turn. The store keeps, in memory, which
// sequence holds each live (group, index) (`LogSeqs`), and rebuilds that on open.

export const SEQ_KEY_BYTES = 8;
const RECORD_PLACE_BYTES = 12;

export function seqKey(seq: number): Buffer {
  const key = Buffer.allocUnsafe(SEQ_KEY_BYTES);
  writeU64(key, 0, seq);
  return key;
}

export function seqKeySeq(key: Uint8Array): number {
  if (key.byteLength !== SEQ_KEY_BYTES) throw new StoreCorruptError(`log key of ${key.byteLength} bytes`);
  return readU64(key, 0);
}

/**
 * A buffer of its own, not a slice of Node's shared 8 KiB pool: the store's tail cache keeps a
 * view of it for as long as the entry is cached, and a view of a pool slice pins the whole 8 KiB
 * slab. Measured after c=64 puts with 65 groups of 256 cached entries: the cached entries held
 * 1,711 pool slabs (13.4 MB, heap snapshot), and `process.memoryUsage().arrayBuffers` fell from
 * 35.5 to 24.7 MB per agent with buffers of their own.
 */
export function encodeLogRecord(group: GroupId, e: Entry): Buffer {
  const value = Buffer.allocUnsafeSlow(RECORD_PLACE_BYTES + LOG_HEADER_BYTES + e.data.byteLength);
  value.writeUInt32BE(group, 0);
  writeU64(value, 4, e.index);
  writeU64(value, RECORD_PLACE_BYTES, e.term);
  value[RECORD_PLACE_BYTES + 8] = e.type === "conf" ? 1 : 0;
  value.set(e.data, RECORD_PLACE_BYTES + LOG_HEADER_BYTES);
  return value;
}

/** The record of a format-1 log value. */
export function logRecordOf(group: GroupId, index: number, logValue: Uint8Array): Buffer {
  const value = Buffer.allocUnsafeSlow(RECORD_PLACE_BYTES + logValue.byteLength);
  value.writeUInt32BE(group, 0);
  writeU64(value, 4, index);
  value.set(logValue, RECORD_PLACE_BYTES);
  return value;
}

/**
 * Which group and index a log record holds. `size`: the record's length where `value` is longer
 * (lmdb-js's shared read buffer, `LOG_PLACE_ENCODER`).
 */
export function logRecordPlace(value: Uint8Array, size: number = value.byteLength): LogPlace {
  if (size < RECORD_PLACE_BYTES + LOG_HEADER_BYTES)
    throw new StoreCorruptError(`log record of ${size} bytes`);
  return { group: readU32(value, 0), index: readU64(value, 4) };
}

export interface LogPlace {
  readonly group: GroupId;
  readonly index: number;
}

/**
 * The lmdb-js encoder of a read-only handle on the log that decodes only where each record
 * belongs (`scanLog`, at open): lmdb-js then hands the decoder its own read buffer rather than
 * copying every record out. With byte-arithmetic reads, a store with 96,000 log entries opens in
 * 116-228 ms against 468-608 ms (`node dist/test/bench/storage-bench.js`, "open with").
 */
export const LOG_PLACE_ENCODER = {
  encode(): never {
    throw new Error("the log-place handle is read-only");
  },
  decode: logRecordPlace,
};

/** The entry in a log record, checked to be the one the caller looked for. */
export function decodeLogRecord(group: GroupId, index: number, value: Uint8Array): Entry {
  return decodeLogValue(index, checkedLogValue(group, index, value));
}

export function logRecordTerm(group: GroupId, index: number, value: Uint8Array): number {
  return readU64(checkedLogValue(group, index, value), 0);
}

function checkedLogValue(group: GroupId, index: number, value: Uint8Array): Uint8Array {
  const place = logRecordPlace(value);
  if (place.group !== group || place.index !== index) {
    throw new StoreCorruptError(
      `group ${group}: the record of log entry ${index} holds group ${place.group}'s entry ${place.index}`,
    );
  }
  return plainView(value, RECORD_PLACE_BYTES);
}

function decodeLogValue(index: number, value: Uint8Array): Entry {
  if (value.byteLength < LOG_HEADER_BYTES) throw new StoreCorruptError(`log entry ${index} is truncated`);
  const typeByte = value[8];
  let type: EntryType;
  if (typeByte === 0) type = "normal";
  else if (typeByte === 1) type = "conf";
  else throw new StoreCorruptError(`log entry ${index} has type byte ${String(typeByte)}`);
  return { index, term: readU64(value, 0), type, data: plainView(value, LOG_HEADER_BYTES) };
}

export function keyGroup(key: Uint8Array): GroupId {
  if (key.byteLength < 4) throw new StoreCorruptError(`key of ${key.byteLength} bytes`);
  return readU32(key, 0);
}

// ---------------------------------------------------------------------------------------------
// KV table: key = group u32 | generation u32 | user key, value = version u64 | value bytes.
// The generation lets a snapshot be staged beside the live table and swapped in by changing one
// number (see `installSnapshot`).

export const KV_PREFIX_BYTES = 8;
const KV_HEADER_BYTES = 8;

export function kvKey(group: GroupId, generation: number, userKey: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(KV_PREFIX_BYTES + userKey.byteLength);
  key.writeUInt32BE(group, 0);
  key.writeUInt32BE(generation, 4);
  key.set(userKey, KV_PREFIX_BYTES);
  return key;
}

/** The first key after every key of `group` (the start of the next group's range). */
export function groupEndKey(group: GroupId): Buffer {
  if (group === MAX_GROUP_ID) return Buffer.alloc(5, 0xff);
  const key = Buffer.alloc(4);
  key.writeUInt32BE(group + 1, 0);
  return key;
}

export function groupStartKey(group: GroupId): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32BE(group, 0);
  return key;
}

/** The first key after every key of `(group, generation)`. */
export function generationEndKey(group: GroupId, generation: number): Buffer {
  if (generation === MAX_GENERATION) return groupEndKey(group);
  return kvKey(group, generation + 1, new Uint8Array(0));
}

export function kvKeyGeneration(key: Uint8Array): number {
  if (key.byteLength < KV_PREFIX_BYTES) throw new StoreCorruptError(`kv key of ${key.byteLength} bytes`);
  return readU32(key, 4);
}

export function kvUserKey(key: Uint8Array): Uint8Array {
  return plainView(key, KV_PREFIX_BYTES);
}

export function encodeKvValue(version: number, value: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(KV_HEADER_BYTES + value.byteLength);
  writeU64(out, 0, version);
  out.set(value, KV_HEADER_BYTES);
  return out;
}

export interface KvRecord {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** The Raft index of the entry that wrote this value. */
  readonly version: number;
}

export function decodeKvValue(userKey: Uint8Array, stored: Uint8Array): KvRecord {
  if (stored.byteLength < KV_HEADER_BYTES) throw new StoreCorruptError("kv record is truncated");
  return { key: userKey, version: readU64(stored, 0), value: plainView(stored, KV_HEADER_BYTES) };
}

/** The smallest byte string greater than every string starting with `prefix`, or null if none. */
export function prefixSuccessor(prefix: Uint8Array): Uint8Array | null {
  for (let i = prefix.byteLength - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const out = prefix.slice(0, i + 1);
      out[i] = prefix[i]! + 1;
      return out;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Per-group records: key = group u32 | tag u8, value = CBOR.

export const GroupTag = {
  HardState: 1,
  /** The compaction point: the index and term of the entry just before `firstIndex()`. */
  LogHead: 2,
  Snapshot: 3,
  ConfState: 4,
  Applied: 5,
  /** A tombstone: the group's data is being deleted (see `NodeStore.deleteGroup`). */
  Deleted: 6,
} as const;
export type GroupTag = (typeof GroupTag)[keyof typeof GroupTag];

export function groupKey(group: GroupId, tag: GroupTag): Buffer {
  const key = Buffer.allocUnsafe(5);
  key.writeUInt32BE(group, 0);
  key[4] = tag;
  return key;
}

export function groupKeyTag(key: Uint8Array): number {
  if (key.byteLength !== 5) throw new StoreCorruptError(`group key of ${key.byteLength} bytes`);
  return key[4]!;
}

// Plain CBOR maps (no cbor-x record extension) so any CBOR tool can read a dump of the store.
const cbor = new CompactEncoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

export function encodeRecord(value: unknown): Buffer {
  return cbor.encode(value);
}

export function decodeRecord(what: string, bytes: Uint8Array): unknown {
  try {
    return cbor.decode(bytes);
  } catch (err) {
    throw new StoreCorruptError(`${what}: ${String(err)}`);
  }
}

function field(what: string, obj: unknown, name: string): unknown {
  if (typeof obj !== "object" || obj === null) throw new StoreCorruptError(`${what} is not a map`);
  return (obj as Record<string, unknown>)[name];
}

function numberField(what: string, obj: unknown, name: string): number {
  const v = field(what, obj, name);
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_INDEX) {
    throw new StoreCorruptError(`${what}.${name} is not an index`);
  }
  return v;
}

function stringList(what: string, obj: unknown, name: string): string[] {
  const v = field(what, obj, name);
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new StoreCorruptError(`${what}.${name} is not a list of node ids`);
  }
  return v as string[];
}

export function parseHardState(bytes: Uint8Array): HardState {
  const obj = decodeRecord("hard state", bytes);
  const vote = field("hard state", obj, "vote");
  if (typeof vote !== "string") throw new StoreCorruptError("hard state.vote is not a node id");
  return {
    term: numberField("hard state", obj, "term"),
    vote,
    commit: numberField("hard state", obj, "commit"),
  };
}

export function confStateOf(what: string, obj: unknown): ConfState {
  return { voters: stringList(what, obj, "voters"), learners: stringList(what, obj, "learners") };
}

export function parseConfState(bytes: Uint8Array): ConfState {
  return confStateOf("conf state", decodeRecord("conf state", bytes));
}

export function parseSnapshotMetadata(bytes: Uint8Array): SnapshotMetadata {
  const obj = decodeRecord("snapshot metadata", bytes);
  return {
    index: numberField("snapshot metadata", obj, "index"),
    term: numberField("snapshot metadata", obj, "term"),
    confState: confStateOf("snapshot metadata.confState", field("snapshot metadata", obj, "confState")),
  };
}

export interface LogHead {
  readonly index: number;
  readonly term: number;
}

export function parseLogHead(bytes: Uint8Array): LogHead {
  const obj = decodeRecord("log head", bytes);
  return { index: numberField("log head", obj, "index"), term: numberField("log head", obj, "term") };
}

/** How far the state machine has got, and which generation of the KV table is live. */
export interface AppliedState {
  readonly index: number;
  readonly term: number;
  readonly generation: number;
}

export function parseApplied(bytes: Uint8Array): AppliedState {
  const obj = decodeRecord("applied state", bytes);
  const generation = numberField("applied state", obj, "generation");
  if (generation > MAX_GENERATION) throw new StoreCorruptError("applied state.generation is too large");
  return {
    index: numberField("applied state", obj, "index"),
    term: numberField("applied state", obj, "term"),
    generation,
  };
}

/** CBOR objects must not carry extra properties that a reader would choke on; copy the fields. */
export function hardStateRecord(hs: HardState): Buffer {
  return encodeRecord({ term: hs.term, vote: hs.vote, commit: hs.commit });
}

export function confStateRecord(cs: ConfState): Buffer {
  return encodeRecord({ voters: [...cs.voters], learners: [...cs.learners] });
}

export function snapshotMetadataRecord(m: SnapshotMetadata): Buffer {
  return encodeRecord({
    index: m.index,
    term: m.term,
    confState: { voters: [...m.confState.voters], learners: [...m.confState.learners] },
  });
}

export function logHeadRecord(h: LogHead): Buffer {
  return encodeRecord({ index: h.index, term: h.term });
}

export function appliedRecord(a: AppliedState): Buffer {
  return encodeRecord({ index: a.index, term: a.term, generation: a.generation });
}
