/**
 * Sensor readings for the dashboard. The bridge writes each reading under
 * `sensors/{<device>}/<sensor>/<ISO time>` (the hash tag keeps one device in one partition, and
 * the fixed-width time sorts as text), with a JSON value `{value, ...}`; people may also write a
 * bare number there. Everything here reads through the KV service's scans and aggregates, so it
 * works from any node and follows the same routing and forwarding as client reads.
 *
 * - `listSeries` finds every series by skipping from one series to the next inside each partition
 *   (one small scan per series, not one per reading), and is cached.
 * - `latest` reads only a recent window of each series (keys sort by time).
 * - `series` downsamples one series over a time window into fixed buckets (count, avg, min, max)
 *   through the aggregation path (`/v1/aggregate` with `bucket`): the node holding the series'
 *   partition buckets its own readings and only the buckets travel, so a chart of a week of
 *   readings is a few kilobytes, whatever the sampling rate.
 */
import { MAX_BUCKETS, readingValue } from "../api/aggregate.js";
import { BadRequestError } from "../api/errors.js";
import type { KvItem, KvService } from "../api/service.js";

export { readingValue };

export const SENSOR_ROOT = "sensors/";
/** `sensors/{device}/sensor/` and the time after it. */
const KEY_RE = /^sensors\/(\{[^}]{1,64}\})\/([^/]{1,64})\/(.+)$/;

export interface SeriesRef {
  /** The key prefix of the series, e.g. `sensors/{kitchen}/temp/`. */
  readonly prefix: string;
  readonly device: string;
  readonly sensor: string;
}

export interface Reading {
  readonly time: string;
  readonly value: number;
}

export interface Bucket {
  /** Start of the bucket, ms since the epoch. */
  readonly t: number;
  readonly count: number;
  readonly avg: number;
  readonly min: number;
  readonly max: number;
}

export interface SeriesResult {
  readonly prefix: string;
  readonly from: string;
  readonly to: string;
  readonly bucketMs: number;
  readonly buckets: readonly Bucket[];
  /** Readings summarised; `truncated` when a partition stopped at its bound of rows read. */
  readonly readings: number;
  readonly skipped: number;
  readonly truncated: boolean;
}

export function parseSensorKey(key: string): (SeriesRef & { time: string }) | null {
  const m = KEY_RE.exec(key);
  if (!m) return null;
  const device = m[1]!.slice(1, -1);
  return { prefix: `sensors/${m[1]}/${m[2]}/`, device, sensor: m[2]!, time: m[3]! };
}

export interface SensorReaderOptions {
  /** Most series listed (a bound on the skip-scan). */
  readonly maxSeries: number;
  readonly listCacheMs: number;
  readonly now?: () => number;
}

export const DEFAULT_SENSOR_OPTIONS: SensorReaderOptions = {
  maxSeries: 500,
  listCacheMs: 15_000,
};

export class SensorReader {
  private cached: { at: number; series: SeriesRef[] } | null = null;
  private listing: Promise<SeriesRef[]> | null = null;
  private readonly opts: SensorReaderOptions;

  constructor(
    private readonly kv: Pick<KvService, "scan"> & Required<Pick<KvService, "aggregate">>,
    private readonly partitions: () => number,
    opts: Partial<SensorReaderOptions> = {},
  ) {
    this.opts = { ...DEFAULT_SENSOR_OPTIONS, ...opts };
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Every series under `sensors/`, sorted by prefix. */
  async listSeries(signal?: AbortSignal): Promise<SeriesRef[]> {
    if (this.cached && this.now() - this.cached.at < this.opts.listCacheMs) return this.cached.series;
    this.listing ??= this.discover(signal).finally(() => (this.listing = null));
    const series = await this.listing;
    this.cached = { at: this.now(), series };
    return series;
  }

  private async discover(signal?: AbortSignal): Promise<SeriesRef[]> {
    const found = new Map<string, SeriesRef>();
    const count = this.partitions();
    // Partitions in parallel, a few at a time: each is a chain of one-key scans.
    const queue = Array.from({ length: count }, (_, p) => p);
    const worker = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        let after: string | undefined;
        for (let hops = 0; hops < this.opts.maxSeries && found.size < this.opts.maxSeries; hops++) {
          const page = await this.kv.scan({
            prefix: SENSOR_ROOT,
            limit: 1,
            consistency: "eventual",
            partition: p,
            ...(after !== undefined ? { after } : {}),
            ...(signal ? { signal } : {}),
          });
          const item = page.items[0];
          if (!item) break;
          const ref = parseSensorKey(item.key);
          if (!ref) {
            after = item.key;
            continue;
          }
          found.set(ref.prefix, { prefix: ref.prefix, device: ref.device, sensor: ref.sensor });
          // Past every key of this series: the prefix followed by the highest character.
          after = ref.prefix + "\uffff";
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, count) }, worker));
    return [...found.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
  }

  /** Readings of one series in [fromMs, toMs), oldest first, at most `max`. */
  private async *readings(
    prefix: string,
    fromMs: number,
    toMs: number,
    max: number,
    signal?: AbortSignal,
  ): AsyncGenerator<KvItem> {
    const toKey = prefix + new Date(toMs).toISOString();
    // Keys strictly after `after`: one millisecond before the window starts.
    let after: string | undefined = prefix + new Date(fromMs - 1).toISOString() + "\uffff";
    let n = 0;
    for (;;) {
      const page = await this.kv.scan({
        prefix,
        limit: 1000,
        after,
        consistency: "eventual",
        ...(signal ? { signal } : {}),
      });
      for (const item of page.items) {
        if (item.key >= toKey || n >= max) return;
        n++;
        yield item;
      }
      if (page.next === null || page.items.length === 0) return;
      after = page.items[page.items.length - 1]!.key;
    }
  }

  /** The newest reading of each series within `windowMs` (null value when it has none). */
  async latest(windowMs: number, signal?: AbortSignal): Promise<(SeriesRef & { reading: Reading | null })[]> {
    const series = await this.listSeries(signal);
    const now = this.now();
    return Promise.all(
      series.map(async (s) => {
        let last: Reading | null = null;
        for await (const item of this.readings(s.prefix, now - windowMs, now + 60_000, 10_000, signal)) {
          const v = readingValue(item.value);
          const k = parseSensorKey(item.key);
          if (v !== null && k) last = { time: k.time, value: v };
        }
        return { ...s, reading: last };
      }),
    );
  }

  /** One series between two times, summarised into `buckets` equal buckets. */
  async series(
    prefix: string,
    fromMs: number,
    toMs: number,
    buckets: number,
    signal?: AbortSignal,
  ): Promise<SeriesResult> {
    if (!prefix.startsWith(SENSOR_ROOT) || !prefix.endsWith("/")) {
      throw new BadRequestError("prefix must name a series, e.g. sensors/{kitchen}/temp/");
    }
    if (!(toMs > fromMs)) throw new BadRequestError("to must be after from");
    if (!Number.isInteger(buckets) || buckets < 1 || buckets > MAX_BUCKETS) {
      throw new BadRequestError(`buckets must be 1-${MAX_BUCKETS}`);
    }
    const bucketMs = Math.max(1, Math.ceil((toMs - fromMs) / buckets));
    const agg = await this.kv.aggregate({
      prefix,
      fn: "avg",
      window: { fromMs, toMs, bucketMs },
      // The leader's state (no quorum round): a replica still catching up, such as a board that
      // just joined, waits until it has applied what the leader has instead of charting a gap.
      consistency: "weak",
      ...(signal ? { signal } : {}),
    });
    return {
      prefix,
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      bucketMs,
      buckets: (agg.buckets ?? []).map((b) => ({
        t: b.t,
        count: b.count,
        avg: b.avg,
        min: b.min,
        max: b.max,
      })),
      readings: agg.count,
      skipped: agg.skipped,
      truncated: agg.truncated,
    };
  }
}
