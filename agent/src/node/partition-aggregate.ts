/**
 * One partition's part of an aggregate, computed from the replica's own table, so only counts
 * and sums cross the network, never readings.
 *
 * Without a window it reads every key under the prefix within the key bounds. With a window it
 * treats each key as `<series>/<time>` and reads, per series, only the keys of the window: it
 * finds a series from its first key, seeks to `<series>/<from>`, reads up to `<series>/<to>`, then
 * skips past the series' times to the next series (one small seek per series, however long its
 * history). Keys whose last segment is not a `toISOString()` time are not readings and are passed
 * over.
 */
import {
  addValue,
  bucketStart,
  emptyPart,
  keyTimeMs,
  readingValue,
  type AggregatePart,
  type BucketWindow,
} from "../api/aggregate.js";
import type { KvRecord } from "./ports.js";

/** The replica's table, as `DurableStore` reads it. */
export interface PartitionRows {
  scan(opts: { prefix: string; after?: string; limit: number }): { key: string; record: KvRecord }[];
  get(key: string): KvRecord | null;
}

export interface PartitionAggregateOptions {
  prefix: string;
  from?: string;
  to?: string;
  window?: BucketWindow;
  /** Rows read before the part is reported `truncated`. */
  maxRows: number;
  signal?: AbortSignal;
}

/** Rows per store read; the event loop gets a turn between pages. */
const PAGE_ROWS = 1000;
/** Past every time a key may name (`toISOString` of the last ms of year 9999). */
const LAST_TIME = "9999-12-31T23:59:59.999Z";

function yieldTurn(signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  return new Promise((r) => setImmediate(r));
}

export async function aggregatePartition(
  rows: PartitionRows,
  opts: PartitionAggregateOptions,
): Promise<AggregatePart> {
  return opts.window ? bucketed(rows, opts, opts.window) : byKeys(rows, opts);
}

async function byKeys(rows: PartitionRows, opts: PartitionAggregateOptions): Promise<AggregatePart> {
  const part = emptyPart(false);
  let read = 0;
  const count = (value: Uint8Array): void => {
    read++;
    const v = readingValue(value);
    if (v === null) part.skipped++;
    else addValue(part, v);
  };
  let after: string | undefined;
  if (opts.from !== undefined && opts.from > opts.prefix) {
    // The store reads keys after a cursor; `from` itself is inclusive.
    if (opts.from.startsWith(opts.prefix)) {
      const first = rows.get(opts.from);
      if (first && (opts.to === undefined || opts.from < opts.to)) count(first.value);
    }
    after = opts.from;
  }
  for (;;) {
    const page = rows.scan({
      prefix: opts.prefix,
      limit: PAGE_ROWS,
      ...(after !== undefined ? { after } : {}),
    });
    for (const r of page) {
      if (opts.to !== undefined && r.key >= opts.to) return part;
      if (read >= opts.maxRows) return { ...part, truncated: true };
      count(r.record.value);
    }
    if (page.length < PAGE_ROWS) return part;
    after = page[page.length - 1]!.key;
    await yieldTurn(opts.signal);
  }
}

async function bucketed(
  rows: PartitionRows,
  opts: PartitionAggregateOptions,
  w: BucketWindow,
): Promise<AggregatePart> {
  const part = emptyPart(true);
  const fromText = new Date(w.fromMs - 1).toISOString() + "\uffff";
  const toText = new Date(w.toMs).toISOString();
  let read = 0;
  let cursor: string | undefined;
  for (;;) {
    const next = rows.scan({
      prefix: opts.prefix,
      limit: 1,
      ...(cursor !== undefined ? { after: cursor } : {}),
    })[0];
    if (!next) return part;
    if (++read > opts.maxRows) return { ...part, truncated: true };
    if (read % PAGE_ROWS === 0) await yieldTurn(opts.signal); // many series, or many non-readings
    const series = next.key.slice(0, next.key.lastIndexOf("/") + 1);
    if (keyTimeMs(next.key.slice(series.length)) === null) {
      cursor = next.key; // not a reading: step over it
      continue;
    }
    const start = series + fromText;
    let after = cursor !== undefined && cursor > start ? cursor : start;
    const end = series + toText;
    for (let more = true; more;) {
      const page = rows.scan({ prefix: opts.prefix, limit: PAGE_ROWS, after });
      more = page.length === PAGE_ROWS;
      for (const r of page) {
        if (r.key >= end || !r.key.startsWith(series)) {
          more = false;
          break;
        }
        if (++read > opts.maxRows) return { ...part, truncated: true };
        after = r.key;
        const t = keyTimeMs(r.key.slice(series.length));
        if (t === null || t < w.fromMs || t >= w.toMs) continue;
        const v = readingValue(r.record.value);
        if (v === null) part.skipped++;
        else addValue(part, v, bucketStart(w, t));
      }
      if (more) await yieldTurn(opts.signal);
    }
    // Past this series' times; a deeper series (`<series>name/...`) sorts after them and comes next.
    cursor = series + LAST_TIME;
  }
}
