/** The snapshot the install-crash child streams in, and the state it must not destroy. */
import type { SnapshotMetadata } from "../../src/raft/index.js";
import type { NodeStore } from "../../src/storage/index.js";
import {
  encodeSnapshotHeader,
  encodeSnapshotTrailer,
  RecordChunkBuilder,
} from "../../src/storage/snapshot-format.js";
import { entriesOf } from "./conformance.js";

export const INSTALL_GROUP = 9;
const CHUNKS = 200;
const RECORDS_PER_CHUNK = 50;

export async function installOldState(store: NodeStore): Promise<void> {
  const ents = entriesOf(1, new Array(10).fill(1));
  await store.saveBatch([
    { group: INSTALL_GROUP, hardState: { term: 1, vote: "", commit: 10 }, entries: ents, snapshot: null },
  ]);
  await store.applyEntries(INSTALL_GROUP, ents, (e, ctx) => ctx.put(`old${e.index}`, e.data));
}

export function installMetadata(): SnapshotMetadata {
  return { index: 1000, term: 5, confState: { voters: ["a", "b", "c"], learners: [] } };
}

/** Yields the image chunk by chunk; `onChunk(n)` runs as the n-th record chunk is handed over. */
export async function* installChunks(onChunk: (n: number) => void): AsyncGenerator<Uint8Array> {
  yield encodeSnapshotHeader(installMetadata());
  const builder = new RecordChunkBuilder();
  const value = new Uint8Array(100).fill(7);
  let bytes = 0;
  for (let c = 0; c < CHUNKS; c++) {
    for (let r = 0; r < RECORDS_PER_CHUNK; r++) {
      const key = new TextEncoder().encode(`s${String(c * RECORDS_PER_CHUNK + r).padStart(6, "0")}`);
      builder.add(key, 999, value);
      bytes += key.byteLength + value.byteLength;
    }
    onChunk(c + 1);
    yield builder.take();
  }
  yield encodeSnapshotTrailer(CHUNKS * RECORDS_PER_CHUNK, bytes);
}
