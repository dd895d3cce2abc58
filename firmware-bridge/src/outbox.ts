/**
 * The bridge's local durable state, in one LMDB environment:
 *
 * - the outbox: readings acknowledged `buffered` to a device but not yet committed by the
 *   cluster, in arrival order, with bounded entries and bytes;
 * - the time anchors of each (device, boot), so that a reading maps to the same key whenever it
 *   is sent (see time-map.ts).
 *
 * Appends made in the same event-loop turn (and while the previous commit is in flight) share one
 * transaction and one fsync: an SD card does not take an fsync per reading gracefully. Writes use
 * lmdb-js `batch()` and `flushed`, never an asynchronous `transaction()` callback (those hang on
 * our machines, see agent/src/storage/write-batch.ts).
 *
 * Policy when full: `append` refuses with `OutboxFullError` and the device is told to retry
 * later (NACK `retry`), so it keeps its readings and pauses sampling. A reading the bridge
 * acknowledged is never dropped to make room.
 */
import { open, type Database, type RootDatabase } from "lmdb";
import { OutboxFullError, OutboxStoreError } from "./errors.js";
import type { Anchor } from "./time-map.js";

export interface OutboxEntry {
  key: string;
  /** The JSON document stored under `key`. */
  value: string;
  device: string;
  boot: number;
  seq: number;
}

export interface OutboxLimits {
  maxEntries: number;
  maxBytes: number;
}

export interface StoredEntry {
  id: number;
  entry: OutboxEntry;
  bytes: number;
}

/** Anchors kept per (device, boot); older ones only matter for readings held unacked for days. */
const MAX_ANCHORS = 1024;

type BinaryDb = Database<Buffer, Buffer>;

interface PendingAppend {
  id: number;
  entry: OutboxEntry;
  bytes: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function idKey(id: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(id));
  return b;
}

function readingId(device: string, boot: number, seq: number): string {
  return `${device}\u0000${boot}\u0000${seq}`;
}

function parseEntry(raw: Buffer): OutboxEntry {
  const v = JSON.parse(raw.toString("utf8")) as Partial<OutboxEntry>;
  if (
    typeof v.key !== "string" ||
    typeof v.value !== "string" ||
    typeof v.device !== "string" ||
    typeof v.boot !== "number" ||
    typeof v.seq !== "number"
  ) {
    throw new OutboxStoreError("an outbox entry is damaged");
  }
  return { key: v.key, value: v.value, device: v.device, boot: v.boot, seq: v.seq };
}

export class Outbox {
  private nextId = 1;
  private committedEntries = 0;
  private committedBytes = 0;
  private pending: PendingAppend[] = [];
  private flushing = false;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private failure: OutboxStoreError | null = null;
  private readonly ids = new Set<string>();
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly root: RootDatabase,
    private readonly outbox: BinaryDb,
    private readonly anchorsDb: BinaryDb,
    readonly limits: OutboxLimits,
  ) {}

  static open(opts: { dir: string; limits: OutboxLimits }): Outbox {
    const root = open({ path: opts.dir, maxDbs: 4, encoding: "binary", overlappingSync: false });
    const binary = { keyEncoding: "binary", encoding: "binary" } as const;
    const box = new Outbox(
      root,
      root.openDB<Buffer, Buffer>("outbox", binary),
      root.openDB<Buffer, Buffer>("anchors", binary),
      opts.limits,
    );
    box.load();
    return box;
  }

  /** Counts what a previous run left, so the bounds hold across restarts. */
  private load(): void {
    for (const { key, value } of this.outbox.getRange({})) {
      const entry = parseEntry(value);
      this.committedEntries++;
      this.committedBytes += value.length;
      this.ids.add(readingId(entry.device, entry.boot, entry.seq));
      this.nextId = Math.max(this.nextId, Number(key.readBigUInt64BE()) + 1);
    }
  }

  /** Readings held, counting those whose append is still being written. */
  get depth(): number {
    return this.committedEntries + this.pending.length;
  }

  get bytes(): number {
    return this.committedBytes + this.pending.reduce((n, p) => n + p.bytes.length, 0);
  }

  has(device: string, boot: number, seq: number): boolean {
    return this.ids.has(readingId(device, boot, seq));
  }

  /** Resolves once the entry is on disk; rejects with `OutboxFullError` when a bound would be passed. */
  append(entry: OutboxEntry): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new OutboxStoreError("the outbox is closed"));
    const bytes = Buffer.from(JSON.stringify(entry), "utf8");
    if (this.depth + 1 > this.limits.maxEntries || this.bytes + bytes.length > this.limits.maxBytes) {
      return Promise.reject(new OutboxFullError(this.depth, this.bytes));
    }
    this.ids.add(readingId(entry.device, entry.boot, entry.seq));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ id: this.nextId++, entry, bytes, resolve, reject });
      this.schedule();
    });
  }

  /** The oldest `limit` entries on disk, in order. */
  peek(limit: number): StoredEntry[] {
    const out: StoredEntry[] = [];
    for (const { key, value } of this.outbox.getRange({ limit })) {
      out.push({ id: Number(key.readBigUInt64BE()), entry: parseEntry(value), bytes: value.length });
    }
    return out;
  }

  /** Drops forwarded entries. Not waited for on disk: one that comes back after a crash is forwarded again and found to be a duplicate. */
  async remove(entries: readonly StoredEntry[]): Promise<void> {
    if (entries.length === 0) return;
    try {
      await this.root.batch(() => {
        for (const e of entries) void this.outbox.remove(idKey(e.id));
      });
    } catch (err) {
      throw this.fail(err);
    }
    for (const e of entries) {
      this.committedEntries--;
      this.committedBytes -= e.bytes;
      this.ids.delete(readingId(e.entry.device, e.entry.boot, e.entry.seq));
    }
  }

  /** Resolves when the outbox holds something (at once if it does already) or `signal` fires. */
  waitForEntries(signal: AbortSignal): Promise<void> {
    if (this.committedEntries > 0 || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  anchors(device: string, boot: number): Anchor[] {
    const raw = this.anchorsDb.get(Buffer.from(`${device}\u0000${boot}`, "utf8"));
    if (raw === undefined) return [];
    const parsed = JSON.parse(raw.toString("utf8")) as unknown;
    if (!Array.isArray(parsed)) throw new OutboxStoreError("damaged time anchors");
    return parsed.map((a: unknown) => {
      const r = a as Partial<Anchor>;
      if (typeof r.uptimeMs !== "number" || typeof r.epochMs !== "number") {
        throw new OutboxStoreError("damaged time anchors");
      }
      return { uptimeMs: r.uptimeMs, epochMs: r.epochMs };
    });
  }

  /**
   * Stores the anchors of (device, boot) durably before returning: a reading must never be
   * committed under a mapping that a restart could forget. Anchors change rarely (once per boot,
   * then on drift), so a synchronous commit here is cheap.
   */
  saveAnchors(device: string, boot: number, anchors: readonly Anchor[]): void {
    const kept = anchors.slice(-MAX_ANCHORS);
    try {
      this.anchorsDb.putSync(
        Buffer.from(`${device}\u0000${boot}`, "utf8"),
        Buffer.from(JSON.stringify(kept), "utf8"),
      );
    } catch (err) {
      throw this.fail(err);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.pending.length > 0 || this.running) await (this.running ?? this.flush());
    for (const w of [...this.waiters]) w();
    await this.root.close();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private flush(): Promise<void> {
    if (this.running) return this.running;
    const run = this.flushOnce().finally(() => {
      if (this.running === run) this.running = null;
      if (this.pending.length > 0 && !this.closed) this.schedule();
    });
    this.running = run;
    return run;
  }

  private async flushOnce(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return;
    this.flushing = true;
    const batch = this.pending;
    this.pending = [];
    try {
      await this.root.batch(() => {
        for (const p of batch) void this.outbox.put(idKey(p.id), p.bytes);
      });
      await this.root.flushed;
    } catch (err) {
      const failure = this.fail(err);
      for (const p of batch) p.reject(failure);
      this.flushing = false;
      return;
    }
    for (const p of batch) {
      this.committedEntries++;
      this.committedBytes += p.bytes.length;
    }
    this.flushing = false;
    for (const p of batch) p.resolve();
    for (const w of [...this.waiters]) w();
  }

  private fail(err: unknown): OutboxStoreError {
    if (!this.failure) {
      this.failure =
        err instanceof OutboxStoreError
          ? err
          : new OutboxStoreError("the outbox store failed", { cause: err });
    }
    return this.failure;
  }
}
