/**
 * Applied KV writes that are not in LMDB yet: the state machine's write-back buffer.
 *
 * Applying an entry only changes memory here; `NodeStore` writes a group's buffered records,
 * with its applied index, in one transaction later (a flush: every `applyFlushMs`, when the
 * buffers hold `applyFlushRecords` records or `applyFlushBytes` bytes, before a snapshot or
 * compaction, and on close). Readers see the buffer over the table, so the applied state is
 * readable at once.
 *
 * Why: the KV table is a B-tree keyed by key, and a put of a random key dirties its own leaf
 * page. Committed one turn at a time (a few puts each under load), nearly every put cost LMDB a
 * 4 KiB page copy and write: ~8 KB of the cluster's disk writes and ~80 us of its CPU per put at
 * 10,000 keys (test/bench/put-cost.sh, KEYS=100 against 10,000). Flushed once a second, the puts
 * of that second to one leaf share its write, and a key written twice is written once.
 *
 * Crash safety is unchanged: LMDB still only ever holds a table and the applied index that agree.
 * What a crash loses from the buffer was applied from log entries that are still in the log (a
 * group's log is compacted only up to its flushed applied index), and the node applies them
 * again after its restart, as it does for any entry committed but not yet applied.
 */
import type { ConfState, GroupId } from "../raft/types.js";
import { decodeKvValue, encodeKvValue, kvKey, kvUserKey, type AppliedState, type KvRecord } from "./codec.js";
import { StoreLimitError } from "./errors.js";
import type { ApplyContext, KeyInput } from "./types.js";

/**
 * A buffered write: the LMDB key and value the flush will put, or a null value for a delete. The
 * value is stored as the table stores it (version and bytes, `encodeKvValue`), made when the
 * entry applies: a write is buffered for up to a second, long enough for V8 to move whatever it
 * holds to the old generation, which only full collections free, so each write keeps two
 * objects there instead of a record, its key and value copies and their buffers (on the leader
 * at c=64 the buffer was the largest share of what the old generation took in, sampled with
 * V8's heap profiler). Measured with the heap capped at 1 GiB (30 s of c=64 puts, two
 * interleaved pairs), a follower's old generation took in 0.88-0.97 KB per put against
 * 1.15-1.27, the leader's 1.81-1.86 against 2.03-2.13. Readers decode a record when they ask.
 */
export interface OverlayWrite {
  /** The full LMDB key (group, generation, user key). */
  readonly key: Buffer;
  readonly value: Buffer | null;
}

/** The record a buffered write leaves, or undefined for a delete (its key a view of the LMDB key). */
export function overlayRecord(w: OverlayWrite): KvRecord | undefined {
  return w.value === null ? undefined : decodeKvValue(kvUserKey(w.key), w.value);
}

/** One group's buffer: writes keyed by their LMDB key in latin1, and the state they lead to. */
export class KvOverlay {
  readonly writes = new Map<string, OverlayWrite>();
  /** Payload bytes held (keys and values), for the flush threshold. */
  bytes = 0;

  constructor(
    /** The applied state with every buffered write (its generation is the table's). */
    public applied: AppliedState,
    public confState: ConfState,
    /** Whether an entry applied since the last flush changed the membership. */
    public confChanged = false,
  ) {}

  get(key: Buffer): OverlayWrite | undefined {
    return this.writes.get(key.toString("latin1"));
  }

  /** `slot`: the write's key in latin1 (as `OverlayApply` stages it). */
  set(slot: string, write: OverlayWrite): void {
    const old = this.writes.get(slot);
    if (old) this.bytes -= writeBytes(old);
    this.writes.set(slot, write);
    this.bytes += writeBytes(write);
  }

  /** After a flush committed: forgets the writes it carried, unless written again since. */
  forget(flushed: ReadonlyMap<string, OverlayWrite>): void {
    for (const [slot, w] of flushed) {
      if (this.writes.get(slot) === w) {
        this.writes.delete(slot);
        this.bytes -= writeBytes(w);
      }
    }
  }

  /** The buffered writes with keys in [start, end), in key order. */
  range(start: Buffer, end: Buffer): OverlayWrite[] {
    const out: OverlayWrite[] = [];
    for (const w of this.writes.values()) {
      if (Buffer.compare(w.key, start) >= 0 && Buffer.compare(w.key, end) < 0) out.push(w);
    }
    return out.sort((a, b) => Buffer.compare(a.key, b.key));
  }
}

function writeBytes(w: OverlayWrite): number {
  return w.key.byteLength + (w.value?.byteLength ?? 0);
}

/** What applying needs from the store (one object for all groups and applies). */
export interface OverlayAccess {
  readonly maxValueBytes: number;
  /** Validates a key and returns its bytes. */
  keyBytes(key: KeyInput): Uint8Array;
  /** The record as it stands now: the group's buffer, else the table. */
  read(group: GroupId, key: Buffer, userKey: Uint8Array): KvRecord | undefined;
}

/**
 * The context of one entry's apply. Writes go to `staged`, shared by the entries of one
 * `applyEntries` call and moved into the buffer only when every entry of the call applied: a
 * state machine that throws leaves nothing behind.
 */
export class OverlayApply implements ApplyContext {
  confState: ConfState | null = null;

  constructor(
    private readonly store: OverlayAccess,
    private readonly staged: Map<string, OverlayWrite>,
    private readonly group: GroupId,
    /** The generation of the group's live table. */
    private readonly generation: number,
    readonly index: number,
  ) {}

  get(key: KeyInput): KvRecord | undefined {
    return this.current(this.locate(key));
  }

  put(key: KeyInput, value: Uint8Array): void {
    const { k, slot } = this.locate(key);
    if (value.byteLength > this.store.maxValueBytes) {
      throw new StoreLimitError("value length", value.byteLength, this.store.maxValueBytes);
    }
    this.staged.set(slot, { key: k, value: encodeKvValue(this.index, value) });
  }

  delete(key: KeyInput): boolean {
    const at = this.locate(key);
    const existed = this.current(at) !== undefined;
    if (existed) this.staged.set(at.slot, { key: at.k, value: null });
    return existed;
  }

  /** A key's bytes, its LMDB key and that key in latin1 (the buffers' map key). */
  private locate(key: KeyInput): { userKey: Uint8Array; k: Buffer; slot: string } {
    const userKey = this.store.keyBytes(key);
    const k = kvKey(this.group, this.generation, userKey);
    return { userKey, k, slot: k.toString("latin1") };
  }

  /** The record at a located key: staged by this call, else buffered, else in the table. */
  private current(at: { userKey: Uint8Array; k: Buffer; slot: string }): KvRecord | undefined {
    const w = this.staged.get(at.slot);
    if (w) return overlayRecord(w);
    return this.store.read(this.group, at.k, at.userKey);
  }

  setConfState(cs: ConfState): void {
    this.confState = { voters: [...cs.voters], learners: [...cs.learners] };
  }
}
