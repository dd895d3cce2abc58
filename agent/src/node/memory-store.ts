/**
 * An in-memory `DurableStore` for unit tests of the host: the same contract as the LMDB store,
 * with nothing on disk. Never used by a running agent.
 */
import {
  MemoryStorage,
  decodeConfChange,
  nextConfState,
  type ConfState,
  type GroupId,
  type SnapshotMetadata,
} from "../raft/index.js";
import type { DurableStore, GroupUpdate, GroupApply, KvRecord } from "./ports.js";

interface GroupState {
  storage: MemoryStorage;
  applied: number;
  appliedTerm: number;
  appliedConf: ConfState;
  kv: Map<string, KvRecord>;
  staged: { metadata: SnapshotMetadata; kv: Map<string, KvRecord> } | null;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export class MemoryDurableStore implements DurableStore {
  private readonly groups = new Map<GroupId, GroupState>();
  saves = 0;

  groupIds(): GroupId[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  hasGroup(group: GroupId): boolean {
    return this.groups.has(group);
  }

  async bootstrap(
    group: GroupId,
    voters: readonly string[],
    learners: readonly string[] = [],
  ): Promise<void> {
    this.groups.set(group, this.fresh(MemoryStorage.bootstrap(voters, learners)));
  }

  private fresh(storage: MemoryStorage): GroupState {
    return {
      storage,
      applied: 0,
      appliedTerm: 0,
      appliedConf: { voters: [], learners: [] },
      kv: new Map(),
      staged: null,
    };
  }

  private state(group: GroupId): GroupState {
    let g = this.groups.get(group);
    if (!g) {
      g = this.fresh(new MemoryStorage());
      this.groups.set(group, g);
    }
    return g;
  }

  storage(group: GroupId): MemoryStorage {
    return this.state(group).storage;
  }

  async saveBatch(updates: readonly GroupUpdate[]): Promise<void> {
    this.saves++;
    for (const u of updates) {
      const g = this.state(u.group);
      if (u.snapshot) {
        const m = u.snapshot.metadata;
        if (!g.staged || g.staged.metadata.index !== m.index || g.staged.metadata.term !== m.term) {
          throw new Error(`snapshot ${m.index}/${m.term} saved without a staged image`);
        }
        g.storage.applySnapshot(u.snapshot);
        g.kv = g.staged.kv;
        g.applied = m.index;
        g.appliedTerm = m.term;
        g.appliedConf = m.confState;
        g.staged = null;
      }
      g.storage.append(u.entries);
      if (u.hardState) g.storage.setHardState(u.hardState);
    }
  }

  appliedIndex(group: GroupId): number {
    return this.state(group).applied;
  }

  async apply(batch: readonly GroupApply[]): Promise<void> {
    for (const { group, entries, decide } of batch) {
      const g = this.state(group);
      for (const e of entries) {
        if (e.index <= g.applied) continue;
        if (e.type === "conf") g.appliedConf = nextConfState(g.appliedConf, decodeConfChange(e.data));
        else {
          const w = decide(e, (key) => g.kv.get(key) ?? null);
          if (w.kind === "put") g.kv.set(w.key, { value: w.value, version: w.version });
          else if (w.kind === "del") g.kv.delete(w.key);
        }
        g.applied = e.index;
        g.appliedTerm = e.term;
      }
    }
  }

  get(group: GroupId, key: string): KvRecord | null {
    return this.state(group).kv.get(key) ?? null;
  }

  scan(
    group: GroupId,
    opts: { prefix: string; after?: string; limit: number },
  ): { key: string; record: KvRecord }[] {
    const kv = this.state(group).kv;
    const keys = [...kv.keys()]
      .filter((k) => k.startsWith(opts.prefix) && (opts.after === undefined || k > opts.after))
      .sort();
    return keys.slice(0, opts.limit).map((key) => ({ key, record: kv.get(key)! }));
  }

  async createSnapshot(
    group: GroupId,
    index: number,
    confState: ConfState,
    retainEntries: number,
  ): Promise<void> {
    const s = this.state(group).storage;
    s.createSnapshot(index, confState, new Uint8Array(0));
    const upTo = index - retainEntries;
    if (upTo >= s.firstIndex()) s.compact(upTo);
  }

  async *snapshotChunks(group: GroupId, _maxChunkBytes: number): AsyncIterable<Uint8Array> {
    const g = this.state(group);
    const header = { index: g.applied, term: g.appliedTerm, confState: g.appliedConf };
    const rows = [...g.kv].map(([k, r]) => [k, Buffer.from(r.value).toString("base64"), r.version]);
    yield enc.encode(JSON.stringify({ header }));
    yield enc.encode(JSON.stringify({ rows }));
  }

  readSnapshotHeader(chunk: Uint8Array): SnapshotMetadata {
    const parsed = JSON.parse(dec.decode(chunk)) as { header?: SnapshotMetadata };
    if (!parsed.header) throw new Error("not a snapshot header");
    return parsed.header;
  }

  async stageSnapshot(
    group: GroupId,
    metadata: SnapshotMetadata,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const kv = new Map<string, KvRecord>();
    let first = true;
    for await (const chunk of chunks) {
      if (first) {
        first = false;
        const h = this.readSnapshotHeader(chunk);
        if (h.index !== metadata.index || h.term !== metadata.term)
          throw new Error("snapshot header mismatch");
        continue;
      }
      const { rows } = JSON.parse(dec.decode(chunk)) as { rows: [string, string, string][] };
      for (const [k, v, version] of rows) kv.set(k, { value: Buffer.from(v, "base64"), version });
    }
    this.state(group).staged = { metadata, kv };
  }

  discardStagedSnapshot(group: GroupId): void {
    this.state(group).staged = null;
  }

  async deleteGroup(group: GroupId): Promise<void> {
    this.groups.delete(group);
  }

  isDeleting(): boolean {
    return false;
  }
}
