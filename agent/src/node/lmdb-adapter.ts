/**
 * Opens the node's LMDB store and presents it as the agent's `DurableStore`. The store keeps
 * versions as Raft indexes (numbers) and keys as bytes; the API speaks strings.
 */
import { NodeStore, readSnapshotHeader, type ApplyContext } from "../storage/index.js";
import {
  decodeConfChange,
  nextConfState,
  type ConfState,
  type Entry,
  type GroupId,
  type SnapshotMetadata,
} from "../raft/index.js";
import type { DurableStore, GroupUpdate, KvRecord, GroupApply, StoreWriteStats } from "./ports.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class LmdbDurableStore implements DurableStore {
  constructor(readonly node: NodeStore) {}

  groupIds(): GroupId[] {
    return this.node.groupIds();
  }

  hasGroup(group: GroupId): boolean {
    return this.node.hasGroup(group);
  }

  bootstrap(group: GroupId, voters: readonly string[], learners: readonly string[] = []): Promise<void> {
    return this.node.bootstrap(group, voters, learners);
  }

  storage(group: GroupId) {
    return this.node.group(group);
  }

  writeStats(): StoreWriteStats {
    return this.node.stats();
  }

  get compactsOwnLog(): boolean {
    return this.node.compactsOwnLog;
  }

  saveBatch(updates: readonly GroupUpdate[]): Promise<void> {
    return this.node.saveBatch(updates);
  }

  appliedIndex(group: GroupId): number {
    return this.node.appliedIndex(group);
  }

  apply(batch: readonly GroupApply[], opts: { lazy?: boolean } = {}): Promise<void> {
    return this.node.applyGroups(
      batch.map(({ group, entries, decide }) => {
        let conf: ConfState | null = null;
        return {
          group,
          entries,
          apply: (entry: Entry, ctx: ApplyContext): void => {
            if (entry.type === "conf") {
              // The applied membership travels in snapshot headers: keep it with the applied index.
              conf = nextConfState(
                conf ?? this.node.appliedState(group).confState,
                decodeConfChange(entry.data),
              );
              ctx.setConfState(conf);
              return;
            }
            const w = decide(entry, (key) => {
              const r = ctx.get(key);
              return r ? { value: r.value, version: String(r.version) } : null;
            });
            if (w.kind === "put") ctx.put(w.key, w.value);
            else if (w.kind === "del") ctx.delete(w.key);
          },
        };
      }),
      opts,
    );
  }

  async createSnapshot(
    group: GroupId,
    index: number,
    confState: ConfState,
    retainEntries: number,
  ): Promise<void> {
    await this.node.createSnapshot(group, index, confState, { retainEntries });
  }

  snapshotChunks(group: GroupId, maxChunkBytes: number): AsyncIterable<Uint8Array> {
    return this.node.snapshotChunks(group, { maxChunkBytes });
  }

  readSnapshotHeader(chunk: Uint8Array): SnapshotMetadata {
    return readSnapshotHeader(chunk);
  }

  stageSnapshot(
    group: GroupId,
    metadata: SnapshotMetadata,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    return this.node.stageSnapshot(group, metadata, chunks);
  }

  discardStagedSnapshot(group: GroupId): void {
    this.node.discardStagedSnapshot(group);
  }

  deleteGroup(group: GroupId): Promise<void> {
    return this.node.deleteGroup(group);
  }

  isDeleting(group: GroupId): boolean {
    return this.node.isDeleting(group);
  }

  get(group: GroupId, key: string): KvRecord | null {
    const r = this.node.kvGet(group, key);
    return r ? { value: r.value, version: String(r.version) } : null;
  }

  scan(
    group: GroupId,
    opts: { prefix: string; after?: string; limit: number },
  ): { key: string; record: KvRecord }[] {
    const rows = this.node.kvScan(group, {
      prefix: opts.prefix,
      limit: opts.limit,
      ...(opts.after !== undefined ? { after: opts.after } : {}),
    });
    return rows.map((r) => ({
      key: utf8.decode(r.key),
      record: { value: r.value, version: String(r.version) },
    }));
  }
}

/**
 * Opens (creating if needed) the store in `dataDir`; `nodeId` fixes the id on first open only.
 * `logRetainEntries`: the store bounds the groups' logs itself, keeping this many entries per
 * group (`NodeStoreOptions.logRetainEntries`); without it the host's snapshots do.
 */
export async function openDurableStore(
  dataDir: string,
  nodeId?: string,
  opts: { logRetainEntries?: number } = {},
): Promise<{ nodeId: string; store: LmdbDurableStore; close: () => Promise<void> }> {
  const node = await NodeStore.open({
    path: dataDir,
    ...(nodeId ? { newNodeId: () => nodeId } : {}),
    ...(opts.logRetainEntries !== undefined ? { logRetainEntries: opts.logRetainEntries } : {}),
  });
  if (nodeId && node.nodeId !== nodeId) {
    await node.close();
    throw new Error(`${dataDir} belongs to node ${node.nodeId}, not ${nodeId}; a node id never changes`);
  }
  return { nodeId: node.nodeId, store: new LmdbDurableStore(node), close: () => node.close() };
}
