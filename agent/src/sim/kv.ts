/**
 * The replicated state machine of the simulation: a small string map, the command format the
 * clients propose, and the snapshot image. It follows the checker's model exactly (get, put, del,
 * compare-and-set with `null` meaning "only if absent"), so what the cluster answers can be held
 * against a sequential map.
 */
import type { KvInput, KvOutput } from "../check/linearizability.js";
import { hashString } from "./hash.js";

/** A command or snapshot that does not decode: some node applied bytes nobody wrote. */
export class KvDecodeError extends Error {
  override readonly name = "KvDecodeError";
  constructor(message: string) {
    super(message);
  }
}

/** One client operation as it travels through the Raft log. */
export interface KvCommand {
  /** The operation's id in the client history; lets the proposing node find its answer. */
  readonly opId: number;
  readonly clientId: number;
  readonly input: KvInput;
}

/** Bound on a decoded command or snapshot, far above what the simulator writes. */
const MAX_ENCODED_BYTES = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify([cmd.opId, cmd.clientId, cmd.input]));
}

/**
 * Decoded commands by payload. Every replica applies the same entry, and the simulated network
 * passes payloads by reference, so each command is parsed once rather than once per replica.
 */
const decoded = new WeakMap<Uint8Array, KvCommand>();

export function decodeCommand(data: Uint8Array): KvCommand {
  const known = decoded.get(data);
  if (known !== undefined) return known;
  const cmd = parseCommand(data);
  decoded.set(data, cmd);
  return cmd;
}

function parseCommand(data: Uint8Array): KvCommand {
  if (data.byteLength > MAX_ENCODED_BYTES) throw new KvDecodeError(`command of ${data.byteLength} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch {
    throw new KvDecodeError("command is not JSON");
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw new KvDecodeError("command is not a triple");
  const [opId, clientId, input] = parsed as [unknown, unknown, unknown];
  if (typeof opId !== "number" || typeof clientId !== "number")
    throw new KvDecodeError("command ids are not numbers");
  if (!isKvInput(input)) throw new KvDecodeError("command input is malformed");
  return { opId, clientId, input };
}

function isKvInput(x: unknown): x is KvInput {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  if (typeof o.key !== "string") return false;
  switch (o.kind) {
    case "get":
    case "del":
      return true;
    case "put":
      return typeof o.value === "string";
    case "cas":
      return typeof o.value === "string" && (o.expected === null || typeof o.expected === "string");
    default:
      return false;
  }
}

function pairHash(key: string, value: string): number {
  return hashString(value, hashString(key) ^ 0x9e3779b9);
}

/**
 * The map plus an order-independent fingerprint of its contents (XOR of per-pair hashes), kept
 * up to date on every write so that comparing two replicas' states costs nothing per entry.
 */
export class KvStore {
  private readonly map = new Map<string, string>();
  private fingerprint = 0;

  get size(): number {
    return this.map.size;
  }

  get(key: string): string | null {
    return this.map.get(key) ?? null;
  }

  /** The fingerprint of the current contents; equal maps always give equal fingerprints. */
  digest(): number {
    return this.fingerprint >>> 0;
  }

  apply(input: KvInput): KvOutput {
    switch (input.kind) {
      case "get":
        return { kind: "get", value: this.get(input.key) };
      case "put":
        this.set(input.key, input.value);
        return { kind: "ok" };
      case "del":
        this.delete(input.key);
        return { kind: "ok" };
      case "cas": {
        const ok = this.get(input.key) === input.expected;
        if (ok) this.set(input.key, input.value);
        return { kind: "cas", ok };
      }
    }
  }

  /** The snapshot image: sorted pairs, so equal maps give equal bytes. */
  encode(): Uint8Array {
    const pairs = [...this.map.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return encoder.encode(JSON.stringify(pairs));
  }

  static decode(data: Uint8Array): KvStore {
    const kv = new KvStore();
    if (data.byteLength === 0) return kv; // The bootstrap snapshot holds no image.
    if (data.byteLength > MAX_ENCODED_BYTES) throw new KvDecodeError(`snapshot of ${data.byteLength} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(decoder.decode(data));
    } catch {
      throw new KvDecodeError("snapshot is not JSON");
    }
    if (!Array.isArray(parsed)) throw new KvDecodeError("snapshot is not a list of pairs");
    for (const pair of parsed as unknown[]) {
      if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
        throw new KvDecodeError("snapshot pair is malformed");
      }
      kv.set(pair[0], pair[1]);
    }
    return kv;
  }

  private set(key: string, value: string): void {
    const old = this.map.get(key);
    if (old !== undefined) this.fingerprint ^= pairHash(key, old);
    this.map.set(key, value);
    this.fingerprint ^= pairHash(key, value);
  }

  private delete(key: string): void {
    const old = this.map.get(key);
    if (old === undefined) return;
    this.fingerprint ^= pairHash(key, old);
    this.map.delete(key);
  }
}
