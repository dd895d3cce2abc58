/**
 * The small per-group state the store keeps in memory so that the Raft core's synchronous reads
 * (`firstIndex`, `lastIndex`, `initialState`, `snapshot`) never touch the disk, and how it is
 * loaded back when the node restarts.
 */
import type { Database, Transaction } from "lmdb";
import { EMPTY_CONF_STATE } from "../raft/storage.js";
import type { ConfState, GroupId, HardState, SnapshotMetadata } from "../raft/types.js";
import {
  GroupTag,
  generationEndKey,
  groupEndKey,
  groupKeyTag,
  groupStartKey,
  kvKey,
  kvKeyGeneration,
  type LogPlace,
  MAX_GROUP_ID,
  parseApplied,
  parseConfState,
  parseHardState,
  parseLogHead,
  parseSnapshotMetadata,
  keyGroup,
  seqKeySeq,
  type AppliedState,
  type LogHead,
} from "./codec.js";
import { StoreCorruptError } from "./errors.js";
import { LogSeqs } from "./log-seqs.js";
import type { BinaryDb } from "./write-batch.js";

export interface GroupMeta {
  readonly hardState: HardState;
  /** Entries live in `[head.index + 1, lastIndex]`; `head` answers `term(firstIndex() - 1)`. */
  readonly head: LogHead;
  readonly lastIndex: number;
  /** The Raft-level snapshot point (what `Storage.snapshot()` reports). */
  readonly snapshot: SnapshotMetadata;
  /** The membership as of the newest configuration applied or snapshotted. */
  readonly confState: ConfState;
  readonly applied: AppliedState;
}

export const EMPTY_GROUP_META: GroupMeta = {
  hardState: { term: 0, vote: "", commit: 0 },
  head: { index: 0, term: 0 },
  lastIndex: 0,
  snapshot: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
  confState: EMPTY_CONF_STATE,
  applied: { index: 0, term: 0, generation: 0 },
};

/** True when the group has nothing on disk here (no vote, no log, no membership, no data). */
export function isPristine(m: GroupMeta): boolean {
  return (
    m.hardState.term === 0 &&
    m.hardState.vote === "" &&
    m.hardState.commit === 0 &&
    m.lastIndex === 0 &&
    m.head.index === 0 &&
    m.snapshot.index === 0 &&
    m.confState.voters.length === 0 &&
    m.confState.learners.length === 0 &&
    m.applied.index === 0
  );
}

export interface StoreDbs {
  /** Group records, [group][tag]; the two rewritten on every turn live in `state` instead. */
  readonly group: BinaryDb;
  /**
   * The hard state and applied records, [group][tag]: the records a busy node rewrites for some
   * twenty groups per turn. On their own they fill a page or two, so a turn dirties those rather
   * than most of the group records' pages (which also hold memberships and snapshot points).
   */
  readonly state: BinaryDb;
  /** The node-wide log: sequence -> (group, index, entry); see "Log, format 2" in codec.ts. */
  readonly log: BinaryDb;
  /** The same log, read-only, its records decoded to their place only (`LOG_PLACE_ENCODER`). */
  readonly logPlaces: Database<LogPlace, Buffer>;
  readonly kv: BinaryDb;
}

/** The database that holds a group record with `tag`. */
export function recordDb(dbs: StoreDbs, tag: GroupTag): BinaryDb {
  return tag === GroupTag.HardState || tag === GroupTag.Applied ? dbs.state : dbs.group;
}

/** One group's records in the node-wide log, in write order. */
export interface GroupRecords {
  readonly indexes: number[];
  readonly seqs: number[];
}

const NO_RECORDS: GroupRecords = { indexes: [], seqs: [] };

/**
 * Reads the whole node-wide log once (at open): which records each group has, and the last
 * sequence used. Only each record's 12-byte place is decoded, but LMDB hands over (copies) whole
 * values: ~0.5 s for the 96,000 entries of 64 full groups here (test/bench/storage-bench.ts).
 */
export function scanLog(
  logPlaces: Database<LogPlace, Buffer>,
  txn: Transaction,
): { groups: Map<GroupId, GroupRecords>; lastSeq: number } {
  const groups = new Map<GroupId, GroupRecords>();
  let lastSeq = 0;
  for (const { key, value } of logPlaces.getRange({ transaction: txn })) {
    const seq = seqKeySeq(key);
    const { group, index } = value;
    let g = groups.get(group);
    if (!g) groups.set(group, (g = { indexes: [], seqs: [] }));
    g.indexes.push(index);
    g.seqs.push(seq);
    lastSeq = seq;
  }
  return { groups, lastSeq };
}

/** Every group id that has a key in `db`, found by seeking group by group (no full scan). */
export function distinctGroups(db: BinaryDb, txn: Transaction): GroupId[] {
  const out: GroupId[] = [];
  let start = groupStartKey(0);
  for (;;) {
    let next: GroupId | null = null;
    for (const key of db.getKeys({ start, limit: 1, transaction: txn })) next = keyGroup(key);
    if (next === null) break;
    out.push(next);
    if (next === MAX_GROUP_ID) break;
    start = groupStartKey(next + 1);
  }
  return out;
}

export interface LoadedGroup {
  readonly meta: GroupMeta;
  /** The highest KV generation present on disk (live, staged or garbage). */
  readonly maxGeneration: number;
  /** Where the live entries `[head + 1, lastIndex]` are. */
  readonly log: LogSeqs;
  /** Records of compacted entries (at or below the head) still waiting to be deleted. */
  readonly logGarbage: number[];
  /** Key ranges of KV generations that are not live: leftovers of an interrupted install. */
  readonly garbage: readonly { start: Buffer; end: Buffer }[];
}

export function loadGroup(
  dbs: StoreDbs,
  txn: Transaction,
  group: GroupId,
  records: GroupRecords = NO_RECORDS,
): LoadedGroup {
  let meta: GroupMeta = EMPTY_GROUP_META;
  for (const db of [dbs.group, dbs.state]) {
    for (const { key, value } of db.getRange({
      start: groupStartKey(group),
      end: groupEndKey(group),
      transaction: txn,
    })) {
      meta = withRecord(meta, groupKeyTag(key), value);
    }
  }
  // Records at or below the head are compacted garbage that a background task deletes in
  // bounded steps. The others, in write order, are the live log: head + 1, head + 2, ... with
  // no hole, because a record is only ever written after its predecessor and an overwritten
  // suffix is removed in the same transaction (log-seqs.ts).
  const head = meta.head.index;
  const logGarbage: number[] = [];
  const live: number[] = [];
  for (let i = 0; i < records.indexes.length; i++) {
    const index = records.indexes[i]!;
    if (index <= head) logGarbage.push(records.seqs[i]!);
    else if (index === head + 1 + live.length) live.push(records.seqs[i]!);
    else {
      throw new StoreCorruptError(
        `group ${group}: log records out of order: entry ${index} after entries up to ${head + live.length} (head at ${head})`,
      );
    }
  }
  meta = { ...meta, lastIndex: head + live.length };
  return {
    meta,
    log: new LogSeqs(head + 1, live),
    logGarbage,
    ...kvGenerations(dbs.kv, txn, group, meta.applied.generation),
  };
}

function withRecord(meta: GroupMeta, tag: number, value: Buffer): GroupMeta {
  switch (tag) {
    case GroupTag.HardState:
      return { ...meta, hardState: parseHardState(value) };
    case GroupTag.LogHead:
      return { ...meta, head: parseLogHead(value) };
    case GroupTag.Snapshot:
      return { ...meta, snapshot: parseSnapshotMetadata(value) };
    case GroupTag.ConfState:
      return { ...meta, confState: parseConfState(value) };
    case GroupTag.Applied:
      return { ...meta, applied: parseApplied(value) };
    default:
      throw new StoreCorruptError(`unknown group record tag ${tag}`);
  }
}

function kvGenerations(
  kv: BinaryDb,
  txn: Transaction,
  group: GroupId,
  live: number,
): { maxGeneration: number; garbage: { start: Buffer; end: Buffer }[] } {
  const lo = groupStartKey(group);
  const hi = groupEndKey(group);
  const liveStart = kvKey(group, live, new Uint8Array(0));
  const liveEnd = generationEndKey(group, live);
  const garbage: { start: Buffer; end: Buffer }[] = [];
  let maxGeneration = live;
  for (const key of kv.getKeys({ start: hi, end: lo, reverse: true, limit: 1, transaction: txn })) {
    maxGeneration = Math.max(maxGeneration, kvKeyGeneration(key));
  }
  for (const range of [
    { start: lo, end: liveStart },
    { start: liveEnd, end: hi },
  ]) {
    for (const _ of kv.getKeys({ ...range, limit: 1, transaction: txn })) garbage.push(range);
  }
  return { maxGeneration, garbage };
}
