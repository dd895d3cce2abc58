/**
 * The commands of the key-value state machine, as they travel inside Raft log entries. They are
 * CBOR maps with short field names: a Raft log on an SD card pays for every byte.
 */
import { Decoder } from "cbor-x";
import { CompactEncoder } from "../cbor/encoder.js";

/** A write as a client asks for it. */
export type KvCommandInput =
  | { readonly op: "put"; readonly key: string; readonly value: Uint8Array; readonly cas: string | null }
  | { readonly op: "del"; readonly key: string; readonly cas: string | null };

/** A write as it is logged: with a request id, unique per node, that lets the proposer find its result. */
export type KvCommand = KvCommandInput & { readonly id: string };

export type KvResult =
  | { readonly ok: true; readonly version: string; readonly deleted?: boolean }
  | { readonly ok: false; readonly code: "cas_mismatch"; readonly current: string };

export class BadCommandError extends Error {
  override readonly name = "BadCommandError";
  constructor(message: string) {
    super(message);
  }
}

/** Plain maps only: no shared structures or records, so any version can read any entry. */
const encoder = new CompactEncoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export const MAX_KEY_BYTES = 1024;

export function encodeCommand(cmd: KvCommand): Uint8Array {
  const wire: Record<string, unknown> = { o: cmd.op === "put" ? 1 : 2, k: cmd.key, i: cmd.id };
  if (cmd.cas !== null) wire.c = cmd.cas;
  if (cmd.op === "put") wire.v = cmd.value;
  return encoder.encode(wire);
}

export function decodeCommand(data: Uint8Array): KvCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(data);
  } catch (err) {
    throw new BadCommandError(`command is not valid CBOR: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null) throw new BadCommandError("command is not a map");
  const w = raw as Record<string, unknown>;
  const key = w.k;
  const id = w.i;
  const cas = w.c ?? null;
  if (typeof key !== "string" || typeof id !== "string") throw new BadCommandError("command lacks key or id");
  if (cas !== null && typeof cas !== "string") throw new BadCommandError("command cas must be a string");
  if (w.o === 1) {
    if (!(w.v instanceof Uint8Array)) throw new BadCommandError("put lacks a byte value");
    // Copy: decoded bytes may alias the entry's buffer, which the log may reuse.
    return { op: "put", key, value: Uint8Array.prototype.slice.call(w.v), cas, id };
  }
  if (w.o === 2) return { op: "del", key, cas, id };
  throw new BadCommandError(`unknown command op ${String(w.o)}`);
}

/** The version a key has when it is absent: `cas=0` means "only if absent". */
export const ABSENT_VERSION = "0";

/**
 * What a command does to a key whose current version `current()` returns (ABSENT_VERSION when
 * absent), when applied at log index `index`. Pure, so every replica decides the same. The
 * version is asked for only by a CAS or a delete: a plain put, most of the traffic, does not
 * depend on it and costs no read.
 */
export function decide(cmd: KvCommand, current: () => string, index: number): KvResult {
  if (cmd.cas !== null) {
    const now = current();
    if (cmd.cas !== now) return { ok: false, code: "cas_mismatch", current: now };
  }
  if (cmd.op === "del") return { ok: true, version: String(index), deleted: current() !== ABSENT_VERSION };
  return { ok: true, version: String(index) };
}
