/**
 * An in-memory `DurableStore` for unit tests of the host: the same contract as the LMDB store,
 * with nothing on disk. Never used by a running agent.
 */
import { MemoryStorage, type Entry, type GroupId } from "../raft/index.js";
import type { DurableStore, GroupUpdate, KvRecord, KvWrite } from "./ports.js";

interface GroupState {
  storage: MemoryStorage;
  applied: number;
  kv: Map<string, KvRecord>;
}

export class MemoryDurableStore implements DurableStore {
  private readonly groups = new Map<GroupId, GroupState>();
  saves = 0;

  hasGroup(group: GroupId): boolean {
    return this.groups.has(group);
  }

  async bootstrap(group: GroupId, voters: readonly string[]): Promise<void> {
    this.groups.set(group, { storage: MemoryStorage.bootstrap(voters), applied: 0, kv: new Map() });
  }

  private state(group: GroupId): GroupState {
    let g = this.groups.get(group);
    if (!g) {
      g = { storage: new MemoryStorage(), applied: 0, kv: new Map() };
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
      const s = this.state(u.group).storage;
      if (u.snapshot) s.applySnapshot(u.snapshot);
      s.append(u.entries);
      if (u.hardState) s.setHardState(u.hardState);
    }
  }

  appliedIndex(group: GroupId): number {
    return this.state(group).applied;
  }

  async apply(
    group: GroupId,
    entries: readonly Entry[],
    decide: (entry: Entry, read: (key: string) => KvRecord | null) => KvWrite,
  ): Promise<void> {
    const g = this.state(group);
    for (const e of entries) {
      const w = decide(e, (key) => g.kv.get(key) ?? null);
      if (w.kind === "put") g.kv.set(w.key, { value: w.value, version: w.version });
      else if (w.kind === "del") g.kv.delete(w.key);
      g.applied = e.index;
    }
  }

  get(group: GroupId, key: string): KvRecord | null {
    return this.state(group).kv.get(key) ?? null;
  }

  scan(
    group: GroupId,
    opts: { prefix: string; after?: string; limit: number },
  ): { key: string; record: KvRecord }[] {
    const keys = [...this.state(group).kv.keys()]
      .filter((k) => k.startsWith(opts.prefix) && (opts.after === undefined || k > opts.after))
      .sort();
    return keys.slice(0, opts.limit).map((key) => ({ key, record: this.state(group).kv.get(key)! }));
  }
}
