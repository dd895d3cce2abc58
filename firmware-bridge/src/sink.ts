/**
 * Where readings go: straight into the cluster when it answers in time, otherwise into the
 * outbox, from which a forwarder drains them in order once the cluster is back.
 *
 * Exactly once rests on one idempotent write: `PUT key?cas=0` (only if absent). A key is
 * deterministic for a reading (device, sensor and a timestamp fixed by the stored time anchors),
 * so a second attempt, whether a resend by the device, a retry after a timeout whose first
 * attempt did commit, or a forward from the outbox of a reading whose direct write went through
 * after all, meets a 409. The bridge then reads the key: the same (device, boot, seq) means the
 * reading already took effect (a duplicate, acknowledged as committed); another reading there
 * means two readings of one sensor in the same millisecond, and the later one takes the
 * alternate key `<key>~<boot>.<seq>`, which still sorts in time order.
 */
import { setMaxListeners } from "node:events";
import {
  BadRequestError,
  CasMismatchError,
  PayloadTooLargeError,
  UnauthorizedError,
} from "../../agent/src/client/client.js";
import type { Logger } from "../../agent/src/node/logger.js";
import { pause } from "../../agent/src/node/pause.js";
import { OutboxFullError } from "./errors.js";
import type { BridgeMetrics } from "./metrics.js";
import type { Outbox, OutboxEntry, StoredEntry } from "./outbox.js";
import { BurstLog } from "./burst-log.js";
import { deadline } from "../../agent/src/node/deadline.js";

/** The part of `RingleaderClient` the sink uses. */
export interface KvWriter {
  put(key: string, value: string, opts: { cas?: string; signal?: AbortSignal }): Promise<{ version: string }>;
  get(key: string, opts: { signal?: AbortSignal }): Promise<{ value: Uint8Array; version: string } | null>;
}

export type WriteOutcome =
  | { status: "committed"; duplicate: boolean; key: string }
  | { status: "buffered" }
  | { status: "rejected"; reason: string }
  | { status: "retry"; reason: string };

export interface SinkOptions {
  /** How long a direct write may take before the reading goes to the outbox instead. */
  directTimeoutMs: number;
  /** Direct writes in flight at once; more go to the outbox. */
  maxDirectInFlight: number;
  /** Entries forwarded from the outbox per round (in flight together), and the time a round may take. */
  forwardBatch: number;
  forwardTimeoutMs: number;
  /** Backoff between failed forwarding rounds: first and largest wait. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_SINK_OPTIONS: SinkOptions = {
  directTimeoutMs: 1500,
  maxDirectInFlight: 256,
  forwardBatch: 128,
  forwardTimeoutMs: 5000,
  retryBaseMs: 100,
  retryMaxMs: 5000,
};

/** Two readings claim one key: neither the key nor its alternate is free for this one. */
export class KeyCollisionError extends Error {
  override readonly name = "KeyCollisionError";
  constructor(readonly key: string) {
    super(`the key ${key} and its alternate hold other readings`);
  }
}

/** The key vanished between the 409 and the read (someone deleted it): try again later. */
export class KeyVanishedError extends Error {
  override readonly name = "KeyVanishedError";
  constructor(readonly key: string) {
    super(`the key ${key} was deleted while it was being checked`);
  }
}

function isSameReading(stored: Uint8Array, w: OutboxEntry): boolean {
  try {
    const v = JSON.parse(Buffer.from(stored).toString("utf8")) as Record<string, unknown>;
    return v["device"] === w.device && v["boot"] === w.boot && v["seq"] === w.seq;
  } catch {
    return false;
  }
}

/** Writes one reading exactly once, whatever happened to earlier attempts. */
export async function writeIdempotent(
  client: KvWriter,
  w: OutboxEntry,
  signal: AbortSignal,
): Promise<{ key: string; duplicate: boolean }> {
  for (const key of [w.key, `${w.key}~${w.boot}.${w.seq}`]) {
    try {
      await client.put(key, w.value, { cas: "0", signal });
      return { key, duplicate: false };
    } catch (err) {
      if (!(err instanceof CasMismatchError)) throw err;
    }
    const existing = await client.get(key, { signal });
    if (existing === null) throw new KeyVanishedError(key);
    if (isSameReading(existing.value, w)) return { key, duplicate: true };
  }
  throw new KeyCollisionError(w.key);
}

function isPermanent(err: unknown): boolean {
  return (
    err instanceof BadRequestError || err instanceof PayloadTooLargeError || err instanceof KeyCollisionError
  );
}

export class ReadingSink {
  private directInFlight = 0;
  /**
   * The newest write in flight for each primary key. Two readings of one sensor in the same
   * millisecond share a primary key; the second must try it only after the first has, or it
   * could take the primary key and push the earlier reading to the alternate, out of order.
   */
  private readonly keyTails = new Map<string, Promise<unknown>>();
  private readonly stopper = new AbortController();
  private forwarder: Promise<void> | null = null;
  /** Whether the forwarder's last round got everything it sent committed. */
  private forwarding = false;
  private readonly forwardLog: BurstLog;
  private readonly directLog: BurstLog;
  /** Called for every reading the forwarder got committed (tests and the CLI's --verbose use it). */
  onForwarded: ((entry: OutboxEntry, duplicate: boolean) => void) | null = null;

  constructor(
    private readonly client: KvWriter,
    private readonly outbox: Outbox,
    private readonly metrics: BridgeMetrics,
    private readonly logger: Logger,
    private readonly options: SinkOptions = DEFAULT_SINK_OPTIONS,
  ) {
    // Every write in flight listens on the stop signal (directly, and through the client's own
    // timeout signal); the bound is ours (`maxDirectInFlight`), so Node's default of 10 is noise.
    setMaxListeners(options.maxDirectInFlight + 4 * options.forwardBatch + 16, this.stopper.signal);
    this.forwardLog = new BurstLog(logger, "warn", "cannot forward the outbox to the cluster");
    this.directLog = new BurstLog(logger, "warn", "the cluster did not commit in time; buffering readings");
  }

  get inFlight(): number {
    return this.directInFlight;
  }

  async submit(w: OutboxEntry): Promise<WriteOutcome> {
    // A resend of a reading that waits in the outbox: it is buffered already.
    if (this.outbox.has(w.device, w.boot, w.seq)) return { status: "buffered" };
    if (this.directInFlight >= this.options.maxDirectInFlight) return this.buffer(w);
    // While anything waits in the outbox, new readings queue behind it, so they reach the
    // cluster in the order they came. Once the forwarder is taking the cluster's answers again and
    // one round would empty the outbox, a reading waits for that (within its own time budget)
    // rather than join the outbox: a board that samples faster than a round takes would otherwise
    // keep the outbox from ever emptying, and every reading would pay a synced outbox write and a
    // round's delay for good.
    const catchingUp =
      this.outbox.depth > 0 && this.forwarding && this.outbox.depth <= this.options.forwardBatch;
    if (this.outbox.depth > 0 && !catchingUp) return this.buffer(w);
    this.directInFlight++;
    try {
      const signal = deadline(this.options.directTimeoutMs, this.stopper.signal);
      if (catchingUp) await this.outbox.waitForEmpty(signal);
      if (this.stopper.signal.aborted) return { status: "retry", reason: "stopping" };
      if (this.outbox.depth > 0 || signal.aborted) return await this.buffer(w);
      const r = await this.writeInOrder(w, signal);
      this.metrics.readingsCommitted.inc({ path: "direct" });
      return { status: "committed", duplicate: r.duplicate, key: r.key };
    } catch (err) {
      if (isPermanent(err)) return { status: "rejected", reason: this.reasonOf(err) };
      // Stopping: the device keeps the reading and sends it to the next bridge run.
      if (this.stopper.signal.aborted) return { status: "retry", reason: "stopping" };
      if (err instanceof UnauthorizedError) {
        this.logger.error("the cluster refused the token; readings are kept in the outbox", {});
      } else {
        this.directLog.note({ error: err instanceof Error ? err.message : String(err) });
      }
      return this.buffer(w);
    } finally {
      this.directInFlight--;
    }
  }

  /** `writeIdempotent`, after any earlier write of a reading with the same primary key settled. */
  private writeInOrder(w: OutboxEntry, signal: AbortSignal): Promise<{ key: string; duplicate: boolean }> {
    const prior = this.keyTails.get(w.key);
    const mine = (async () => {
      if (prior) await prior.catch(() => undefined);
      return writeIdempotent(this.client, w, signal);
    })();
    this.keyTails.set(w.key, mine);
    void mine
      .catch(() => undefined)
      .finally(() => {
        if (this.keyTails.get(w.key) === mine) this.keyTails.delete(w.key);
      });
    return mine;
  }

  start(): void {
    if (this.forwarder) return;
    this.forwarder = this.forwardLoop();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.forwarder;
    this.forwarder = null;
  }

  private reasonOf(err: unknown): string {
    if (err instanceof KeyCollisionError) return "key_collision";
    if (err instanceof PayloadTooLargeError) return "too_large";
    return "bad_request";
  }

  private async buffer(w: OutboxEntry): Promise<WriteOutcome> {
    try {
      await this.outbox.append(w);
      this.metrics.readingsBuffered.inc();
      return { status: "buffered" };
    } catch (err) {
      if (err instanceof OutboxFullError) return { status: "retry", reason: "outbox_full" };
      this.logger.error("the outbox cannot store readings", { error: String(err) });
      return { status: "retry", reason: "outbox_error" };
    }
  }

  private async forwardLoop(): Promise<void> {
    const stop = this.stopper.signal;
    let backoffMs = this.options.retryBaseMs;
    while (!stop.aborted) {
      await this.outbox.waitForEntries(stop);
      if (stop.aborted) return;
      const batch = this.outbox.peek(this.options.forwardBatch);
      if (batch.length === 0) {
        // Entries counted but not yet visible to readers; the next commit makes them so.
        await pause(10, stop);
        continue;
      }
      const failed = await this.forwardRound(batch, stop);
      this.forwarding = !failed;
      if (failed) {
        this.metrics.forwardFailures.inc();
        await pause(backoffMs, stop);
        backoffMs = Math.min(this.options.retryMaxMs, backoffMs * 2);
      } else {
        backoffMs = this.options.retryBaseMs;
        this.forwardLog.recovered("the outbox is being forwarded again");
      }
    }
  }

  /** Forwards one batch; returns whether anything failed for a reason that may pass. */
  private async forwardRound(batch: StoredEntry[], stop: AbortSignal): Promise<boolean> {
    const signal = deadline(this.options.forwardTimeoutMs, stop);
    setMaxListeners(4 * batch.length + 16, signal);
    const results = await Promise.allSettled(batch.map((e) => this.writeInOrder(e.entry, signal)));
    const done: StoredEntry[] = [];
    let failed = false;
    results.forEach((r, i) => {
      const e = batch[i]!;
      if (r.status === "fulfilled") {
        done.push(e);
        this.metrics.readingsCommitted.inc({ path: "outbox" });
        if (r.value.duplicate) this.metrics.readingsDuplicate.inc();
        this.onForwarded?.(e.entry, r.value.duplicate);
      } else if (isPermanent(r.reason)) {
        // Only a bug makes a stored reading unwritable (a bad key, an oversized value): keep
        // the outbox moving and say so loudly rather than block every reading behind it.
        done.push(e);
        this.metrics.readingsRejected.inc({ reason: this.reasonOf(r.reason) });
        this.logger.error("dropping an outbox entry the cluster refuses", {
          key: e.entry.key,
          error: String(r.reason),
        });
      } else {
        failed = true;
        if (!stop.aborted) this.forwardLog.note({ error: String(r.reason), depth: this.outbox.depth });
      }
    });
    await this.outbox.remove(done);
    return failed;
  }
}
