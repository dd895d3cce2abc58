/**
 * Reading a group's KV table out as a stream of snapshot chunks (see `snapshot-format.ts`).
 */
import type { RootDatabase } from "lmdb";
import type { GroupId } from "../raft/types.js";
import {
  decodeKvValue,
  generationEndKey,
  GroupTag,
  groupKey,
  kvKey,
  kvUserKey,
  parseApplied,
  parseConfState,
} from "./codec.js";
import { EMPTY_GROUP_META, type StoreDbs } from "./group-meta.js";
import {
  encodeSnapshotHeader,
  encodeSnapshotTrailer,
  RECORD_OVERHEAD_BYTES,
  RecordChunkBuilder,
} from "./snapshot-format.js";

const EMPTY_KEY = new Uint8Array(0);

/**
 * Yields the header (applied index, term and membership of the image), the records in key order
 * in chunks of at most `maxChunkBytes` (unless one record is larger), and the trailer, all read
 * from ONE read transaction taken at the first `next()`. Each chunk is filled synchronously and
 * yielded with no cursor open; the transaction is released when the generator finishes or the
 * consumer stops early.
 */
export async function* streamGroupImage(
  root: RootDatabase,
  dbs: StoreDbs,
  group: GroupId,
  maxChunkBytes: number,
): AsyncGenerator<Uint8Array, void, undefined> {
  const txn = root.useReadTransaction();
  try {
    const appliedBytes = dbs.state.get(groupKey(group, GroupTag.Applied), { transaction: txn });
    const confBytes = dbs.group.get(groupKey(group, GroupTag.ConfState), { transaction: txn });
    const applied = appliedBytes ? parseApplied(appliedBytes) : EMPTY_GROUP_META.applied;
    const confState = confBytes ? parseConfState(confBytes) : EMPTY_GROUP_META.confState;
    yield encodeSnapshotHeader({ index: applied.index, term: applied.term, confState });
    const builder = new RecordChunkBuilder();
    const end = generationEndKey(group, applied.generation);
    let start: Buffer | null = kvKey(group, applied.generation, EMPTY_KEY);
    let records = 0;
    let bytes = 0;
    while (start !== null) {
      const from: Buffer = start;
      start = null;
      // Fill one chunk synchronously, then yield with no cursor open.
      for (const { key, value } of dbs.kv.getRange({ start: from, end, transaction: txn })) {
        const rec = decodeKvValue(kvUserKey(key), value);
        const size = RECORD_OVERHEAD_BYTES + rec.key.byteLength + rec.value.byteLength;
        if (builder.count > 0 && builder.byteLength + size > maxChunkBytes) {
          start = Buffer.from(key);
          break;
        }
        builder.add(rec.key, rec.version, rec.value);
        records++;
        bytes += rec.key.byteLength + rec.value.byteLength;
      }
      if (builder.count > 0) yield builder.take();
    }
    yield encodeSnapshotTrailer(records, bytes);
  } finally {
    txn.done();
  }
}
