/**
 * The closed-loop load generator behind `ringleader bench`: `concurrency` workers each issue one
 * operation, wait for its answer, and issue the next, for a duration or a number of operations
 * after a warm-up. Latencies go into one HDR histogram per operation kind at microsecond
 * resolution; errors are counted by kind and never recorded as latencies.
 */
import { build, type Histogram } from "hdr-histogram-js";
import type { Consistency } from "../api/service.js";
import { activeKinds, pickOp, type Mix, type OpKind } from "./mix.js";
import { BenchOpError, type BenchTarget } from "./targets.js";

export interface BenchOptions {
  target: BenchTarget;
  concurrency: number;
  /** Measure for this long after the warm-up; exactly one of `durationMs` and `ops`. */
  durationMs?: number;
  /** Measure this many operations after the warm-up. */
  ops?: number;
  warmupMs: number;
  valueSize: number;
  /** Keys are `keyPrefix` + a number below `keySpace`, chosen uniformly. */
  keySpace: number;
  keyPrefix: string;
  mix: Mix;
  /** Write every key once before the warm-up, so gets find values. */
  preload: boolean;
  /** In [0, 1); injected so tests can repeat a run's choices. */
  random?: () => number;
  /** Microseconds from an arbitrary origin, monotonic. */
  nowUs?: () => number;
  /** CPU time (user + system) this process has used, in microseconds; injected by tests. */
  cpuUs?: () => number;
  /** Progress reports, about once per `progressEveryMs`. */
  onProgress?: (progress: BenchProgress) => void;
  progressEveryMs?: number;
  /** Stops the run early; the summary covers what was measured until then. */
  signal?: AbortSignal;
  /**
   * Awaited between the warm-up and the measured run, with nothing in flight, so that a script
   * can read the servers' own counters (CPU, disk) at the start of exactly the measured window.
   */
  onMeasure?: () => Promise<void>;
}

export type BenchPhase = "preload" | "warmup" | "measure";

export interface BenchProgress {
  phase: BenchPhase;
  elapsedSeconds: number;
  /** Operations (answered, errors excluded) since the previous report, per second. */
  opsPerSecond: number;
  /** Errors so far in this phase. */
  errors: number;
}

export interface LatencySummaryUs {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface OpSummary {
  /** Answered operations (hits and misses). */
  count: number;
  /** Gets of keys that did not exist. */
  misses: number;
  errors: number;
  opsPerSecond: number;
  latencyUs: LatencySummaryUs;
}

export interface BenchResult {
  target: string;
  endpoints: readonly string[];
  concurrency: number;
  valueSize: number;
  keySpace: number;
  mix: Mix;
  warmupSeconds: number;
  measuredSeconds: number;
  /** Answered operations of every kind. */
  totalOps: number;
  totalErrors: number;
  opsPerSecond: number;
  /**
   * CPU time (user + system) the generator's own process used while measuring, in microseconds.
   * A target on the same machine shares its cores with the generator, so this tells how much of
   * the machine the generator took, and whether two targets were driven at the same cost.
   */
  generatorCpuUs: number;
  /** True when the run was stopped by the signal before its end. */
  interrupted: boolean;
  ops: Partial<Record<OpKind, OpSummary>>;
  errorsByKind: Record<string, number>;
}

/** Largest latency the histograms track (60 s); slower answers are recorded as this. */
const MAX_LATENCY_US = 60_000_000;
/** Distinct error kinds kept; the rest are counted under "other". */
const MAX_ERROR_KINDS = 32;
/**
 * A worker whose operation failed waits this long before the next one. Without it a target that
 * refuses connections turns the closed loop into a busy loop that measures only how fast errors come.
 */
const ERROR_PAUSE_MS = 10;

const CONSISTENCY: Readonly<Record<Exclude<OpKind, "put">, Consistency>> = {
  "get-strong": "strong",
  "get-weak": "weak",
  "get-eventual": "eventual",
};

/** Thrown for options that make no run. */
export class BenchOptionsError extends Error {
  override readonly name = "BenchOptionsError";
  constructor(message: string) {
    super(message);
  }
}

function validate(o: BenchOptions): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!positiveInt(o.concurrency) || o.concurrency > 4096)
    throw new BenchOptionsError("concurrency must be 1 to 4096");
  if ((o.durationMs === undefined) === (o.ops === undefined)) {
    throw new BenchOptionsError("give exactly one of a duration and a number of operations");
  }
  if (o.durationMs !== undefined && !(o.durationMs > 0))
    throw new BenchOptionsError("duration must be above 0");
  if (o.ops !== undefined && !positiveInt(o.ops))
    throw new BenchOptionsError("ops must be a positive integer");
  if (!(o.warmupMs >= 0)) throw new BenchOptionsError("warm-up must be 0 or more");
  if (!Number.isInteger(o.valueSize) || o.valueSize < 0)
    throw new BenchOptionsError("value size must be 0 or more bytes");
  if (!positiveInt(o.keySpace)) throw new BenchOptionsError("the key space must be a positive integer");
}

class Recorder {
  readonly histograms = new Map<OpKind, Histogram>();
  readonly misses = new Map<OpKind, number>();
  readonly errors = new Map<OpKind, number>();
  readonly errorsByKind = new Map<string, number>();
  answered = 0;
  failed = 0;

  constructor(kinds: readonly OpKind[]) {
    for (const kind of kinds) {
      this.histograms.set(
        kind,
        build({
          lowestDiscernibleValue: 1,
          highestTrackableValue: MAX_LATENCY_US,
          numberOfSignificantValueDigits: 3,
        }),
      );
    }
  }

  answer(kind: OpKind, latencyUs: number, miss: boolean): void {
    const clamped = Math.min(MAX_LATENCY_US, Math.max(1, Math.round(latencyUs)));
    this.histograms.get(kind)?.recordValue(clamped);
    if (miss) this.misses.set(kind, (this.misses.get(kind) ?? 0) + 1);
    this.answered++;
  }

  error(kind: OpKind, errorKind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
    const key =
      this.errorsByKind.has(errorKind) || this.errorsByKind.size < MAX_ERROR_KINDS ? errorKind : "other";
    this.errorsByKind.set(key, (this.errorsByKind.get(key) ?? 0) + 1);
    this.failed++;
  }

  destroy(): void {
    for (const h of this.histograms.values()) h.destroy();
  }
}

function keyName(prefix: string, index: number, keySpace: number): string {
  return prefix + String(index).padStart(String(keySpace - 1).length, "0");
}

function randomValue(size: number, random: () => number): Uint8Array {
  const value = new Uint8Array(size);
  for (let i = 0; i < size; i++) value[i] = Math.floor(random() * 256);
  return value;
}

function errorKindOf(err: unknown): string {
  if (err instanceof BenchOpError) return err.kind;
  return err instanceof Error ? err.name : "error";
}

function processCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs the benchmark and returns its summary. Never throws for failed operations: they are counted. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  validate(options);
  const random = options.random ?? Math.random;
  const nowUs = options.nowUs ?? (() => performance.now() * 1000);
  const cpuUs = options.cpuUs ?? processCpuUs;
  const kinds = activeKinds(options.mix);
  const value = randomValue(options.valueSize, random);
  const stopped = () => options.signal?.aborted === true;

  const runPhase = async (
    phase: BenchPhase,
    recorder: Recorder,
    next: () => { kind: OpKind; key: string } | null,
  ): Promise<number> => {
    const startedUs = nowUs();
    let lastReportUs = startedUs;
    let lastReportOps = 0;
    const report = () => {
      const now = nowUs();
      const seconds = (now - lastReportUs) / 1e6;
      options.onProgress?.({
        phase,
        elapsedSeconds: (now - startedUs) / 1e6,
        opsPerSecond: seconds > 0 ? (recorder.answered - lastReportOps) / seconds : 0,
        errors: recorder.failed,
      });
      lastReportUs = now;
      lastReportOps = recorder.answered;
    };
    const ticker = options.onProgress ? setInterval(report, options.progressEveryMs ?? 1000) : undefined;
    const worker = async () => {
      for (let op = next(); op !== null && !stopped(); op = next()) {
        const began = nowUs();
        try {
          if (op.kind === "put") {
            await options.target.put(op.key, value);
            recorder.answer(op.kind, nowUs() - began, false);
          } else {
            const outcome = await options.target.get(op.key, CONSISTENCY[op.kind]);
            recorder.answer(op.kind, nowUs() - began, outcome === "miss");
          }
        } catch (err) {
          recorder.error(op.kind, errorKindOf(err));
          await pause(ERROR_PAUSE_MS);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: options.concurrency }, worker));
    } finally {
      if (ticker) clearInterval(ticker);
    }
    return (nowUs() - startedUs) / 1e6;
  };

  const randomOp = (): { kind: OpKind; key: string } => ({
    kind: pickOp(options.mix, random()),
    key: keyName(options.keyPrefix, Math.floor(random() * options.keySpace), options.keySpace),
  });

  if (options.preload && kinds.some((k) => k !== "put")) {
    const preload = new Recorder(["put"]);
    let index = 0;
    const nextKey = () =>
      index < options.keySpace
        ? { kind: "put" as const, key: keyName(options.keyPrefix, index++, options.keySpace) }
        : null;
    await runPhase("preload", preload, nextKey);
    preload.destroy();
  }

  if (options.warmupMs > 0) {
    const warmup = new Recorder(kinds);
    const endUs = nowUs() + options.warmupMs * 1000;
    await runPhase("warmup", warmup, () => (nowUs() < endUs ? randomOp() : null));
    warmup.destroy();
  }

  if (options.onMeasure && !stopped()) await options.onMeasure();
  const measured = new Recorder(kinds);
  let issued = 0;
  // The end is set by the first operation, after the phase's clock started: a run of exactly
  // `durationMs` never measures as a little less.
  let endUs: number | undefined;
  const nextMeasured = () => {
    const now = nowUs();
    endUs ??= options.durationMs === undefined ? Infinity : now + options.durationMs * 1000;
    if (options.ops !== undefined ? issued >= options.ops : now >= endUs) return null;
    issued++;
    return randomOp();
  };
  const cpuBefore = cpuUs();
  const measuredSeconds = await runPhase("measure", measured, nextMeasured);
  const generatorCpuUs = cpuUs() - cpuBefore;
  try {
    return summarize(options, measured, measuredSeconds, generatorCpuUs, stopped());
  } finally {
    measured.destroy();
  }
}

function summarize(
  options: BenchOptions,
  recorder: Recorder,
  seconds: number,
  generatorCpuUs: number,
  interrupted: boolean,
): BenchResult {
  const ops: Partial<Record<OpKind, OpSummary>> = {};
  for (const [kind, h] of recorder.histograms) {
    const count = h.totalCount;
    const max = count > 0 ? h.maxValue : 0;
    // Percentiles come back as the top of their bucket, which can lie a little above the largest
    // value recorded; no percentile is above the maximum.
    const at = (percentile: number) => (count > 0 ? Math.min(max, h.getValueAtPercentile(percentile)) : 0);
    ops[kind] = {
      count,
      misses: recorder.misses.get(kind) ?? 0,
      errors: recorder.errors.get(kind) ?? 0,
      opsPerSecond: seconds > 0 ? count / seconds : 0,
      latencyUs: {
        p50: at(50),
        p99: at(99),
        p999: at(99.9),
        max,
        mean: count > 0 ? Math.round(h.mean) : 0,
      },
    };
  }
  return {
    target: options.target.name,
    endpoints: options.target.endpoints,
    concurrency: options.concurrency,
    valueSize: options.valueSize,
    keySpace: options.keySpace,
    mix: options.mix,
    warmupSeconds: options.warmupMs / 1000,
    measuredSeconds: seconds,
    totalOps: recorder.answered,
    totalErrors: recorder.failed,
    opsPerSecond: seconds > 0 ? recorder.answered / seconds : 0,
    generatorCpuUs,
    interrupted,
    ops,
    errorsByKind: Object.fromEntries([...recorder.errorsByKind].sort((a, b) => b[1] - a[1])),
  };
}
