/**
 * Group commit for one LMDB environment.
 *
 * Every write of the node goes through one `WriteBatcher`. A write is a job: a synchronous
 * function that plans puts and removes against the current state, without touching LMDB. Jobs
 * submitted in the same event-loop turn (and any that arrive while the previous batch commits)
 * are planned one after another, and all their operations go to LMDB as ONE batch: one
 * transaction, one fsync, however many Raft groups took part.
 *
 * Why plan first and write later: lmdb-js runs asynchronous `transaction()` callbacks through a
 * thread-safe call back into JS, and on our machines (Node 20, lmdb 3.5.6) such a callback never
 * ran: the promise hung. An exception half way through a callback would also commit half a job.
 * Planning in plain JS keeps each job all-or-nothing (a job that throws adds nothing to the
 * batch) and uses only lmdb-js's batched puts, whose promise resolves when the transaction has
 * committed; durable jobs then wait for `flushed`.
 *
 * Only one batch is in flight at a time. This keeps the in-memory state that readers see (group
 * metadata, the pinned read transaction) equal to exactly the last committed batch, and costs
 * nothing: the LMDB write thread does one commit and fsync at a time anyway, and writes that
 * arrive meanwhile simply join the next batch.
 *
 * A job that nobody waits for at once (writing applied entries to the KV table, deleting
 * compacted log records) may be submitted `lazy`: it starts no batch of its own but joins the
 * next one, or goes after `lazyDelayMs`, or at once when the store waits for `idle()`. Under a
 * trickle of writes this cuts the commits by a third (1.5 per write per node to 1): every LMDB
 * commit rewrites whole pages (the B-tree path, the free list, the meta page), so on an SD card
 * two small commits cost nearly twice one.
 *
 * A job resolves once its batch is committed (visible to readers), a durable one only once the
 * batch is also flushed to disk.
 */
import type { Database, RootDatabase } from "lmdb";
import { StoreClosedError, StoreFailedError, StoreOverloadedError } from "./errors.js";

export type BinaryDb = Database<Buffer, Buffer>;

interface WriteOp {
  readonly db: BinaryDb;
  readonly key: Buffer;
  /** `null` removes the key. */
  readonly value: Buffer | null;
}

/** Planning state shared by the jobs of one batch. */
class BatchState {
  readonly ops: WriteOp[] = [];
  readonly effects: (() => void)[] = [];
  readonly slots = new Map<string, unknown>();
  bytes = 0;
}

/**
 * What a job plans with. `read` and `write` keep named values (group metadata, KV records just
 * written) visible to later jobs of the same batch before LMDB has them; `afterCommit` runs once
 * the batch is committed, in job order, to update in-memory state.
 */
export class JobTx {
  private readonly ops: WriteOp[] = [];
  private readonly effects: (() => void)[] = [];
  private readonly slots = new Map<string, unknown>();
  private bytes = 0;

  constructor(private readonly batch: BatchState) {}

  put(db: BinaryDb, key: Buffer, value: Buffer): void {
    this.ops.push({ db, key, value });
    this.bytes += key.byteLength + value.byteLength;
  }

  remove(db: BinaryDb, key: Buffer): void {
    this.ops.push({ db, key, value: null });
    this.bytes += key.byteLength;
  }

  /** The value of `slot` as planned so far in this batch, or `fallback()` (committed state). */
  read<T>(slot: string, fallback: () => T): T {
    if (this.slots.has(slot)) return this.slots.get(slot) as T;
    if (this.batch.slots.has(slot)) return this.batch.slots.get(slot) as T;
    return fallback();
  }

  write<T>(slot: string, value: T): void {
    this.slots.set(slot, value);
  }

  afterCommit(effect: () => void): void {
    this.effects.push(effect);
  }

  /** Adds this job's plan to the batch; called only when the job returned normally. */
  mergeInto(): void {
    for (const op of this.ops) this.batch.ops.push(op);
    for (const e of this.effects) this.batch.effects.push(e);
    for (const [k, v] of this.slots) this.batch.slots.set(k, v);
    this.batch.bytes += this.bytes;
  }
}

interface Job {
  readonly plan: (tx: JobTx) => unknown;
  readonly durable: boolean;
  readonly lazy: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export interface WriteBatcherLimits {
  /** Jobs waiting for a batch; beyond this `submit` rejects (back-pressure, not unbounded RAM). */
  readonly maxPendingJobs: number;
  /** A batch stops taking jobs once its operations reach this many bytes. */
  readonly maxBatchBytes: number;
  /** How long a lazy job may wait for a batch to join before it starts one (ms). */
  readonly lazyDelayMs: number;
}

export interface WriteBatcherStats {
  /** Transactions committed. */
  batches: number;
  /** Batches that waited for an fsync because a durable job was inside. */
  durableBatches: number;
  jobs: number;
  ops: number;
  lastFlushMs: number;
}

export class WriteBatcher {
  private pending: Job[] = [];
  private scheduled = false;
  private inFlight = false;
  /** Queued jobs that want a batch now (not lazy). */
  private eager = 0;
  /** Lazy jobs were asked to go now (`hurry`, their delay ran out, `idle`). */
  private hurried = false;
  private lazyTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private failure: StoreFailedError | null = null;
  private readonly running = new Set<Promise<void>>();
  readonly stats: WriteBatcherStats = { batches: 0, durableBatches: 0, jobs: 0, ops: 0, lastFlushMs: 0 };

  /**
   * @param beforeCommit runs just before a batch goes to LMDB (the store pins its read snapshot
   *   there: one taken while the batch commits could already show the batch, before the batch's
   *   effects have updated the in-memory state that readers combine it with).
   * @param onCommitted runs after each commit, once the batch's effects ran (the store renews its
   *   read snapshot there).
   */
  constructor(
    private readonly root: RootDatabase,
    private readonly limits: WriteBatcherLimits,
    private readonly onCommitted: () => void,
    private readonly beforeCommit: () => void = () => {},
  ) {}

  get failed(): StoreFailedError | null {
    return this.failure;
  }

  /**
   * Queues a job. It resolves with the plan's result once the batch has committed, and, when
   * `durable`, only once that commit is flushed to disk. A `lazy` job waits to join another
   * job's batch (see the top of this file); it cannot be durable.
   */
  submit<T>(plan: (tx: JobTx) => T, durable: boolean, lazy = false): Promise<T> {
    if (durable && lazy) throw new RangeError("a durable write cannot be lazy");
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StoreClosedError());
    if (this.pending.length >= this.limits.maxPendingJobs) {
      return Promise.reject(new StoreOverloadedError(this.pending.length));
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ plan, durable, lazy, resolve: resolve as (v: unknown) => void, reject });
      if (!lazy) this.eager++;
      this.schedule();
    });
  }

  /** Commits the queued lazy jobs now instead of waiting for a batch to join. */
  private hurry(): void {
    if (this.pending.length === 0) return;
    this.hurried = true;
    this.schedule();
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while ((this.running.size > 0 || this.pending.length > 0 || this.scheduled) && !this.failure) {
      if (this.running.size === 0 && !this.scheduled) this.hurry();
      if (this.running.size > 0) await Promise.allSettled([...this.running]);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Waits for queued writes; new submissions are refused from now on. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight || this.pending.length === 0) return;
    if (this.eager === 0 && !this.hurried) {
      // Only lazy jobs: they wait for company, but not for longer than their delay.
      this.lazyTimer ??= setTimeout(() => {
        this.lazyTimer = null;
        this.hurry();
      }, this.limits.lazyDelayMs);
      return;
    }
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.hurried = false;
    this.scheduled = true;
    // setImmediate, not a microtask: every group's Ready handled in this turn of the event loop,
    // and every network frame read in this poll phase, joins the same batch.
    setImmediate(() => {
      this.scheduled = false;
      const run = this.flush();
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.pending.length === 0) return;
    this.inFlight = true;
    const started = performance.now();
    const batch = new BatchState();
    const planned: { job: Job; value: unknown }[] = [];
    while (this.pending.length > 0 && batch.bytes < this.limits.maxBatchBytes) {
      const job = this.pending.shift()!;
      if (!job.lazy) this.eager--;
      const tx = new JobTx(batch);
      try {
        const value = job.plan(tx);
        tx.mergeInto();
        planned.push({ job, value });
      } catch (err) {
        job.reject(err);
      }
    }
    if (this.failure) return this.rejectAll(planned, this.failure);

    let committed = true;
    if (batch.ops.length > 0) {
      try {
        this.beforeCommit();
        committed = await this.commit(batch.ops);
      } catch (err) {
        // A failed commit (disk full, I/O error) left LMDB as it was, but we cannot tell that
        // from a half-issued batch, so the store stops here rather than guess.
        this.fail(err);
        return this.rejectAll(planned, this.failure!);
      }
    }
    if (!committed) {
      this.fail(new Error("LMDB refused a batch"));
      return this.rejectAll(planned, this.failure!);
    }
    try {
      for (const effect of batch.effects) effect();
      this.onCommitted();
    } catch (err) {
      this.fail(err);
      return this.rejectAll(planned, this.failure!);
    }
    const durable = batch.ops.length > 0 && planned.some((p) => p.job.durable);
    // Take the flush promise now, before the next batch starts and lmdb-js replaces it.
    const flushed = durable ? Promise.resolve(this.root.flushed) : null;
    this.stats.batches += batch.ops.length > 0 ? 1 : 0;
    this.stats.jobs += planned.length;
    this.stats.ops += batch.ops.length;
    this.inFlight = false;
    this.schedule();
    // What only had to be committed need not wait for the fsync (a reader waiting for an apply).
    const waiting: { job: Job; value: unknown }[] = [];
    for (const p of planned) {
      if (flushed && p.job.durable) waiting.push(p);
      else p.job.resolve(p.value);
    }
    if (flushed) {
      this.stats.durableBatches++;
      try {
        await flushed;
      } catch (err) {
        // An fsync that failed may have dropped pages: nothing written since can be trusted.
        this.fail(err);
        return this.rejectAll(waiting, this.failure!);
      }
    }
    this.stats.lastFlushMs = performance.now() - started;
    for (const { job, value } of waiting) job.resolve(value);
  }

  private commit(ops: readonly WriteOp[]): Promise<boolean> {
    // Everything issued inside one `batch` callback lands in one LMDB transaction. Keys and
    // values were validated while planning, so nothing here is expected to throw; if it does,
    // part of the batch may already be queued and the store must stop.
    return this.root.batch(() => {
      for (const op of ops) {
        if (op.value === null) void op.db.remove(op.key);
        else void op.db.put(op.key, op.value);
      }
    });
  }

  private fail(err: unknown): void {
    if (!this.failure) this.failure = err instanceof StoreFailedError ? err : new StoreFailedError(err);
    this.inFlight = false;
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    const queued = this.pending;
    this.pending = [];
    this.eager = 0;
    for (const job of queued) job.reject(this.failure);
  }

  private rejectAll(planned: readonly { job: Job }[], err: Error): void {
    this.inFlight = false;
    for (const { job } of planned) job.reject(err);
  }
}
