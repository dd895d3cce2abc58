/**
 * `GET /v1/aggregate`: what it asks, what one partition answers and how the entry node combines
 * the answers. Every partition reports count, sum, min and max (overall and, with `bucket`, per
 * time bucket); those combine in any order, and the average is derived only at the end, so the
 * entry node never needs a partition's raw readings.
 *
 * Values are numbers written as text, or JSON objects with a numeric `value` field (what the
 * firmware bridge writes); anything else under the prefix is counted in `skipped`.
 */
import { BadRequestError } from "./errors.js";
import { parseBoundedText, parseConsistency } from "./parse.js";
import type { Consistency } from "./service.js";

export type AggregateFn = "count" | "sum" | "min" | "max" | "avg";

export const AGGREGATE_FNS: readonly AggregateFn[] = ["count", "sum", "min", "max", "avg"];

/** Most buckets one bucketed aggregate may ask for: a chart is a few hundred points wide. */
export const MAX_BUCKETS = 1000;

/** Readings' times, bucketed: `[fromMs, toMs)` cut into buckets of `bucketMs` from `fromMs`. */
export interface BucketWindow {
  readonly fromMs: number;
  readonly toMs: number;
  readonly bucketMs: number;
}

export interface AggregateOptions {
  prefix: string;
  fn: AggregateFn;
  /** Key bounds `[from, to)`; only without `window`. */
  from?: string;
  to?: string;
  /** Buckets over the readings' times, taken from the last `/` segment of each key. */
  window?: BucketWindow;
  /** Internal fan-out: only this partition's part, computed where it is held. */
  partition?: number;
  consistency: Consistency;
  signal?: AbortSignal;
  hops?: number;
}

export interface AggregateBucket {
  /** Start of the bucket, ms since the epoch. */
  t: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  avg: number;
}

/** Partial results combine: every partition reports all of them, the entry node picks `fn`. */
export interface AggregateResult {
  fn: AggregateFn;
  value: number | null;
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  /** Values under the prefix (in the window) that were not numbers. */
  skipped: number;
  partitions: number;
  /** Some partition stopped at its bound of rows read (`AGGREGATE_MAX_ROWS`): the result is partial. */
  truncated: boolean;
  /** With `bucket`: the window and its non-empty buckets, oldest first. */
  bucketMs?: number;
  from?: string;
  to?: string;
  buckets?: AggregateBucket[];
}

/** What one partition (or several already combined) counted. */
export interface AggregatePart {
  count: number;
  sum: number;
  min: number | null;
  max: number | null;
  skipped: number;
  truncated: boolean;
  /** Bucket start → its tally; present when the aggregate is bucketed. */
  buckets: Map<number, Tally> | null;
}

export interface Tally {
  count: number;
  sum: number;
  min: number;
  max: number;
}

const dec = new TextDecoder();

/** A reading's number: a bare number, or the numeric `value` of a JSON object (what the bridge writes). */
export function readingValue(bytes: Uint8Array): number | null {
  const text = dec.decode(bytes).trim();
  if (text === "") return null;
  const n = Number(text);
  if (Number.isFinite(n)) return n;
  if (!text.startsWith("{")) return null;
  try {
    const v = (JSON.parse(text) as { value?: unknown }).value;
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The fixed-width UTC form `toISOString` writes, which sorts as text in time order. */
const KEY_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Whether `text` is a key's time segment, and the time it names. */
export function keyTimeMs(text: string): number | null {
  if (!KEY_TIME_RE.test(text)) return null;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

export function emptyPart(bucketed: boolean): AggregatePart {
  return {
    count: 0,
    sum: 0,
    min: null,
    max: null,
    skipped: 0,
    truncated: false,
    buckets: bucketed ? new Map() : null,
  };
}

export function bucketStart(w: BucketWindow, t: number): number {
  return w.fromMs + Math.floor((t - w.fromMs) / w.bucketMs) * w.bucketMs;
}

/** Counts one numeric value; `bucket` is its bucket's start when the aggregate is bucketed. */
export function addValue(part: AggregatePart, v: number, bucket?: number): void {
  part.count++;
  part.sum += v;
  part.min = part.min === null ? v : Math.min(part.min, v);
  part.max = part.max === null ? v : Math.max(part.max, v);
  if (bucket === undefined || part.buckets === null) return;
  const b = part.buckets.get(bucket);
  if (b) {
    b.count++;
    b.sum += v;
    b.min = Math.min(b.min, v);
    b.max = Math.max(b.max, v);
  } else part.buckets.set(bucket, { count: 1, sum: v, min: v, max: v });
}

function minOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}

function maxOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b);
}

/** Two parts as one; associative and commutative (up to floating-point rounding of sums). */
export function mergeParts(a: AggregatePart, b: AggregatePart): AggregatePart {
  let buckets: Map<number, Tally> | null = null;
  if (a.buckets !== null || b.buckets !== null) {
    buckets = new Map([...(a.buckets ?? [])].map(([t, x]) => [t, { ...x }]));
    for (const [t, x] of b.buckets ?? []) {
      const y = buckets.get(t);
      buckets.set(
        t,
        y
          ? {
              count: y.count + x.count,
              sum: y.sum + x.sum,
              min: Math.min(y.min, x.min),
              max: Math.max(y.max, x.max),
            }
          : { ...x },
      );
    }
  }
  return {
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: minOf(a.min, b.min),
    max: maxOf(a.max, b.max),
    skipped: a.skipped + b.skipped,
    truncated: a.truncated || b.truncated,
    buckets,
  };
}

function pick(fn: AggregateFn, p: AggregatePart): number | null {
  switch (fn) {
    case "count":
      return p.count;
    case "sum":
      return p.sum;
    case "min":
      return p.min;
    case "max":
      return p.max;
    case "avg":
      return p.count > 0 ? p.sum / p.count : null;
  }
}

/** The answer for `fn` over combined parts, with the derived averages. */
export function finishAggregate(
  fn: AggregateFn,
  part: AggregatePart,
  partitions: number,
  window?: BucketWindow,
): AggregateResult {
  const result: AggregateResult = {
    fn,
    value: pick(fn, part),
    count: part.count,
    sum: part.sum,
    min: part.min,
    max: part.max,
    skipped: part.skipped,
    partitions,
    truncated: part.truncated,
  };
  if (!window) return result;
  const buckets = [...(part.buckets ?? [])]
    .sort((x, y) => x[0] - y[0])
    .map(([t, b]) => ({ t, count: b.count, sum: b.sum, min: b.min, max: b.max, avg: b.sum / b.count }));
  return {
    ...result,
    bucketMs: window.bucketMs,
    from: new Date(window.fromMs).toISOString(),
    to: new Date(window.toMs).toISOString(),
    buckets,
  };
}

function isTally(x: unknown): x is AggregateBucket {
  const b = x as Partial<AggregateBucket> | null;
  return (
    typeof b?.t === "number" &&
    typeof b.count === "number" &&
    typeof b.sum === "number" &&
    typeof b.min === "number" &&
    typeof b.max === "number"
  );
}

/** A partition's answer (another agent's JSON) back into a part; a malformed one is a bug there. */
export function partOfResult(r: AggregateResult): AggregatePart {
  const ok =
    typeof r.count === "number" &&
    typeof r.sum === "number" &&
    typeof r.skipped === "number" &&
    (r.buckets === undefined || (Array.isArray(r.buckets) && r.buckets.every(isTally)));
  if (!ok) throw new Error("a partition answered an aggregate with a malformed result");
  return {
    count: r.count,
    sum: r.sum,
    min: r.min,
    max: r.max,
    skipped: r.skipped,
    truncated: r.truncated === true,
    buckets: r.buckets
      ? new Map(r.buckets.map((b) => [b.t, { count: b.count, sum: b.sum, min: b.min, max: b.max }]))
      : null,
  };
}

/** The last millisecond of year 9999: later times do not fit the fixed-width key form. */
const LAST_MS = 253402300799999;

/** A time parameter of a bucketed aggregate: ISO-8601, or ms since the epoch. */
function parseTime(raw: string | undefined, name: string): number {
  if (raw === undefined || raw === "") {
    throw new BadRequestError(`${name} is required with bucket: an ISO-8601 time or ms since the epoch`);
  }
  const t = /^\d{1,16}$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(t) || t < 0 || t > LAST_MS) {
    throw new BadRequestError(
      `${name} must be an ISO-8601 time or ms since the epoch, got "${raw.slice(0, 40)}"`,
    );
  }
  return t;
}

/**
 * Checks a bucket window: within 1970-9999 (the times keys can name), a positive width, `to`
 * after `from`, at most `MAX_BUCKETS` buckets.
 */
export function checkWindow(w: BucketWindow): BucketWindow {
  if (!(w.fromMs >= 0 && w.toMs <= LAST_MS + 1)) {
    throw new BadRequestError("from and to must lie between 1970 and the end of year 9999");
  }
  if (!Number.isInteger(w.bucketMs) || w.bucketMs < 1) {
    throw new BadRequestError("bucket must be a whole number of milliseconds, at least 1");
  }
  if (!(w.toMs > w.fromMs)) throw new BadRequestError("to must be after from");
  const buckets = Math.ceil((w.toMs - w.fromMs) / w.bucketMs);
  if (buckets > MAX_BUCKETS) {
    throw new BadRequestError(
      `${buckets} buckets of ${w.bucketMs} ms from ${new Date(w.fromMs).toISOString()} to ` +
        `${new Date(w.toMs).toISOString()}; at most ${MAX_BUCKETS}: widen bucket or narrow the window`,
    );
  }
  return w;
}

export const AGGREGATE_PARAMS = ["prefix", "fn", "from", "to", "consistency", "bucket", "partition"] as const;

/** The options `GET /v1/aggregate` names (without signal and hops). */
export function parseAggregateParams(
  params: Map<string, string>,
  maxKeyBytes: number,
): Omit<AggregateOptions, "signal" | "hops"> {
  const fn = params.get("fn");
  const found = AGGREGATE_FNS.find((f) => f === fn);
  if (found === undefined) throw new BadRequestError(`fn must be one of ${AGGREGATE_FNS.join(", ")}`);
  const prefix = parseBoundedText(params.get("prefix"), "prefix", maxKeyBytes) ?? "";
  const rawPartition = params.get("partition");
  if (rawPartition !== undefined && !/^\d{1,4}$/.test(rawPartition)) {
    throw new BadRequestError("partition must be a partition number");
  }
  const base = {
    prefix,
    fn: found,
    consistency: parseConsistency(params.get("consistency")),
    ...(rawPartition !== undefined ? { partition: Number(rawPartition) } : {}),
  };
  const bucket = params.get("bucket");
  if (bucket !== undefined) {
    if (!/^\d{1,12}$/.test(bucket))
      throw new BadRequestError("bucket must be a whole number of milliseconds");
    const window = checkWindow({
      fromMs: parseTime(params.get("from"), "from"),
      toMs: parseTime(params.get("to"), "to"),
      bucketMs: Number(bucket),
    });
    return { ...base, window };
  }
  const from = parseBoundedText(params.get("from"), "from", maxKeyBytes);
  const to = parseBoundedText(params.get("to"), "to", maxKeyBytes);
  return { ...base, ...(from ? { from } : {}), ...(to ? { to } : {}) };
}

/** The query string that asks another agent for one partition's part of `opts`. */
export function partitionQuery(opts: AggregateOptions, partition: number): string {
  const q = new URLSearchParams({
    fn: opts.fn,
    prefix: opts.prefix,
    consistency: opts.consistency,
    partition: String(partition),
  });
  if (opts.window) {
    q.set("bucket", String(opts.window.bucketMs));
    q.set("from", new Date(opts.window.fromMs).toISOString());
    q.set("to", new Date(opts.window.toMs).toISOString());
  } else {
    if (opts.from) q.set("from", opts.from);
    if (opts.to) q.set("to", opts.to);
  }
  return q.toString();
}
