/**
 * The meta group's state machine in the multi-Raft simulator: versioned records, written by the
 * same commands (`kv/commands.ts`: CBOR, compare-and-set on versions) and decided by the same
 * `decide` as the real agent, so the real `MetaView` and `ClusterController` read and write it
 * unchanged. The version of a record is the log index that wrote it, as in the LMDB store.
 */
import { decide, decodeCommand, ABSENT_VERSION, type KvResult } from "../../kv/commands.js";
import type { KvRecord } from "../../node/ports.js";
import { hashBytes, hashString } from "../hash.js";
import type { ReplicaMachine } from "../node.js";

/** Called on every replica for every applied command; the proposing node settles its promise. */
export type MetaResultHook = (commandId: string, key: string, result: KvResult) => void;

interface ImageRecord {
  readonly k: string;
  readonly v: string;
  readonly ver: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Stamps of every machine of the run, so that no two states share one. */
let lastStamp = 0;

export class MetaMachine implements ReplicaMachine {
  private readonly records = new Map<string, KvRecord>();
  /**
   * Changes whenever the records may have (a new machine, an apply): what the board's `MetaView`
   * caches its member table by, where the real store gives the meta group's applied index.
   */
  stamp = ++lastStamp;

  constructor(
    image: Uint8Array,
    private readonly onResult: MetaResultHook,
  ) {
    if (image.byteLength === 0) return; // The bootstrap snapshot holds no image.
    const parsed = JSON.parse(decoder.decode(image)) as ImageRecord[];
    for (const r of parsed) {
      this.records.set(r.k, { value: Buffer.from(r.v, "base64"), version: r.ver });
    }
  }

  apply(data: Uint8Array, index: number): null {
    this.stamp = ++lastStamp;
    // A payload that does not decode is skipped by every replica alike, as the real host does.
    let cmd;
    try {
      cmd = decodeCommand(data);
    } catch {
      return null;
    }
    const key = cmd.key;
    const result = decide(cmd, () => this.records.get(key)?.version ?? ABSENT_VERSION, index);
    if (result.ok) {
      if (cmd.op === "del") this.records.delete(cmd.key);
      else this.records.set(cmd.key, { value: cmd.value, version: result.version });
    }
    this.onResult(cmd.id, cmd.key, result);
    return null;
  }

  get(key: string): string | null {
    const r = this.records.get(key);
    return r === undefined ? null : decoder.decode(r.value);
  }

  record(key: string): KvRecord | null {
    return this.records.get(key) ?? null;
  }

  /** Records under `prefix`, in key order, at most `limit`. */
  scan(prefix: string, limit: number): { key: string; record: KvRecord }[] {
    return [...this.records.keys()]
      .filter((k) => k.startsWith(prefix))
      .sort()
      .slice(0, limit)
      .map((key) => ({ key, record: this.records.get(key)! }));
  }

  digest(): number {
    let h = 0;
    for (const [k, r] of this.records) h ^= hashBytes(r.value, hashString(`${k}\u0000${r.version}`));
    return h >>> 0;
  }

  encode(): Uint8Array {
    const out: ImageRecord[] = [...this.records.keys()].sort().map((k) => {
      const r = this.records.get(k)!;
      return { k, v: Buffer.from(r.value).toString("base64"), ver: r.version };
    });
    return encoder.encode(JSON.stringify(out));
  }
}
