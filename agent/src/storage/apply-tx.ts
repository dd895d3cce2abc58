/**
 * What the state machine sees while `applyEntries` runs: reads of the group's live KV table
 * overlaid with the writes of earlier entries in the same batch, and writes that become part of
 * the batch (versioned with the entry's index).
 */
import type { ConfState, GroupId } from "../raft/types.js";
import { encodeKvValue, kvKey, type KvRecord } from "./codec.js";
import { StoreLimitError } from "./errors.js";
import type { ApplyContext, KeyInput } from "./types.js";
import type { BinaryDb, JobTx } from "./write-batch.js";

/** The parts of the store an apply needs. */
export interface KvAccess {
  readonly kv: BinaryDb;
  readonly maxValueBytes: number;
  /** Validates a key and returns its bytes. */
  keyBytes(key: KeyInput): Uint8Array;
  /** Reads a committed record (through the store's pinned read transaction). */
  read(key: Buffer, userKey: Uint8Array): KvRecord | undefined;
}

/** The per-entry context of `applyEntries`; writes stay visible to later entries of the batch. */
export class ApplyTx implements ApplyContext {
  confState: ConfState | null = null;

  constructor(
    private readonly store: KvAccess,
    private readonly tx: JobTx,
    private readonly group: GroupId,
    private readonly generation: number,
    readonly index: number,
  ) {}

  get(key: KeyInput): KvRecord | undefined {
    const userKey = this.store.keyBytes(key);
    const k = kvKey(this.group, this.generation, userKey);
    return this.tx.read<KvRecord | null>(kvSlot(k), () => this.store.read(k, userKey) ?? null) ?? undefined;
  }

  put(key: KeyInput, value: Uint8Array): void {
    const userKey = this.store.keyBytes(key);
    if (value.byteLength > this.store.maxValueBytes) {
      throw new StoreLimitError("value length", value.byteLength, this.store.maxValueBytes);
    }
    const k = kvKey(this.group, this.generation, userKey);
    this.tx.put(this.store.kv, k, encodeKvValue(this.index, value));
    this.tx.write<KvRecord | null>(kvSlot(k), {
      key: new Uint8Array(userKey),
      value: new Uint8Array(value),
      version: this.index,
    });
  }

  delete(key: KeyInput): boolean {
    const existed = this.get(key) !== undefined;
    const k = kvKey(this.group, this.generation, this.store.keyBytes(key));
    if (existed) this.tx.remove(this.store.kv, k);
    this.tx.write<KvRecord | null>(kvSlot(k), null);
    return existed;
  }

  setConfState(cs: ConfState): void {
    this.confState = { voters: [...cs.voters], learners: [...cs.learners] };
  }
}

function kvSlot(key: Buffer): string {
  return `k${key.toString("latin1")}`;
}
