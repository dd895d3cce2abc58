/**
 * `LmdbGroupStorage` seen through the conformance suite's interface, plus small helpers the
 * LMDB tests share (temporary data directories, empty snapshot images).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SnapshotMetadata } from "../../src/raft/index.js";
import { NodeStore, type NodeStoreOptions } from "../../src/storage/index.js";
import { encodeSnapshotHeader, encodeSnapshotTrailer } from "../../src/storage/snapshot-format.js";
import type { StorageUnderTest } from "./conformance.js";

export const GROUP = 7;

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "ringleader-store-"));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** An image with no records: what a group with an empty KV table streams. */
export async function* emptyImage(m: SnapshotMetadata): AsyncGenerator<Uint8Array> {
  yield encodeSnapshotHeader(m);
  yield encodeSnapshotTrailer(0, 0);
}

export async function lmdbSubject(
  voters: readonly string[] | null,
  opts: Partial<NodeStoreOptions> = {},
): Promise<StorageUnderTest> {
  const dir = await tempDir();
  const store = await NodeStore.open({ ...opts, path: dir });
  if (voters) await store.bootstrap(GROUP, voters);
  return wrap(dir, store, opts);
}

function wrap(dir: string, store: NodeStore, opts: Partial<NodeStoreOptions>): StorageUnderTest {
  const g = store.group(GROUP);
  // The LMDB store only compacts what the state machine has applied; the suite's entries carry
  // no commands, so applying them is a no-op that moves the applied index.
  const applyUpTo = async (index: number): Promise<void> => {
    const from = store.appliedIndex(GROUP) + 1;
    const to = Math.min(index, g.lastIndex());
    if (to >= from) await store.applyEntries(GROUP, g.entries(from, to + 1, Infinity), () => undefined);
  };
  return {
    storage: g,
    async save(u) {
      // A snapshot from a leader arrives with its image: stage it, then the save swaps it in.
      if (u.snapshot) await store.stageSnapshot(GROUP, u.snapshot.metadata, emptyImage(u.snapshot.metadata));
      try {
        await g.save({
          hardState: u.hardState ?? null,
          entries: u.entries ?? [],
          snapshot: u.snapshot ?? null,
        });
      } finally {
        store.discardStagedSnapshot(GROUP);
      }
    },
    async compact(index) {
      await applyUpTo(index);
      await store.compact(GROUP, index);
    },
    async createSnapshot(index, confState) {
      await applyUpTo(index);
      return store.createSnapshot(GROUP, index, confState, { retainEntries: index });
    },
    async reopen() {
      await store.close();
      return wrap(dir, await NodeStore.open({ ...opts, path: dir }), opts);
    },
    async close() {
      await store.close();
      await removeDir(dir);
    },
  };
}
