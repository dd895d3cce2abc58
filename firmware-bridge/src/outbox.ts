/**
 * The bridge's local durable state, in one LMDB environment:
 *
 * - the outbox: readings acknowledged `buffered` to a device but not yet committed by the
 *   cluster, in arrival order, with bounded entries and bytes;
 * - the time anchors of each (device, boot), so that a reading maps to the same key whenever it
 *   is sent (see time-map.ts). A device resends only readings of its current boot (its window
 *   is in RAM), so a device keeps the anchors of its newest boot (the one saved last) and of
 *   boots with readings still in the outbox; the others are deleted as soon as neither holds,
 *   which bounds them by the devices and the outbox.
 *
 * Appends made in the same event-loop turn (and while the previous commit is in flight) share one
 * transaction and one fsync: an SD card does not take an fsync per reading gracefully. Writes use
 * lmdb-js `batch()` and `flushed`, never an asynchronous `transaction()` callback (those hang on
 * our machines, see agent/src/storage/write-batch.ts).
 *
 * Policy when full: `append` refuses with `OutboxFullError` and the device is told to retry
 * later (NACK `retry`), so it keeps its readings and pauses sampling. A reading the bridge
 * acknowledged is never dropped to make room.
 *
 * The LMDB map is sized from the byte bound (`outboxMapBytes`), so a full outbox fits in the
 * address space reserved at open instead of lmdb-js's defaults (a map that starts at 128 KiB and
 * is remapped as it grows, or on 32-bit systems a dynamically remapped one).
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
/** Map room beyond the readings: the anchors, LMDB's branch pages and its free-page list. */
const MAP_RESERVE_BYTES = 16 * 1024 * 1024;

/**
 * The LMDB map for an outbox bounded by `limits`: twice the readings' bytes (leaf-page slack and
 * the copy-on-write pages of a commit in flight) plus a fixed reserve. lmdb-js would still grow
 * the map rather than fail a write; the outbox's own byte bound is what bounds the file.
 */
export function outboxMapBytes(limits: OutboxLimits): number {
  return 2 * limits.maxBytes + MAP_RESERVE_BYTES;
}

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

function bootId(device: string, boot: number): string {
  return `${device}\u0000${boot}`;
}

/** Key of a (device, boot)'s anchors; `bootId` as UTF-8, so a device's boots share a key prefix. */
function anchorKey(device: string, boot: number): Buffer {
  return Buffer.from(bootId(device, boot), "utf8");
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
  /** Readings held per (device, boot), so anchors still needed to forward them are kept. */
  private readonly perBoot = new Map<string, number>();
  /** Each device's newest boot: the one whose anchors were saved last. */
  private readonly newestBoot = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private readonly emptyWaiters = new Set<() => void>();

  private constructor(
    private readonly root: RootDatabase,
    private readonly outbox: BinaryDb,
    private readonly anchorsDb: BinaryDb,
    private readonly newestDb: BinaryDb,
    readonly limits: OutboxLimits,
  ) {}

  static open(opts: { dir: string; limits: OutboxLimits }): Outbox {
    const root = open({
      path: opts.dir,
      // A directory whatever its name: lmdb-js takes a path with an extension (`ringleader.d`)
      // for a file of its own, and then fails on the directory our caller made ("Is a directory").
      noSubdir: false,
      maxDbs: 4,
      encoding: "binary",
      overlappingSync: false,
      mapSize: outboxMapBytes(opts.limits),
    });
    const binary = { keyEncoding: "binary", encoding: "binary" } as const;
    const box = new Outbox(
      root,
      root.openDB<Buffer, Buffer>("outbox", binary),
      root.openDB<Buffer, Buffer>("anchors", binary),
      root.openDB<Buffer, Buffer>("newest-boot", binary),
      opts.limits,
    );
    box.load();
    return box;
  }

  /** Counts what a previous run left, so the bounds hold across restarts, and prunes anchors. */
  private load(): void {
    for (const { key, value } of this.outbox.getRange({})) {
      const entry = parseEntry(value);
      this.committedEntries++;
      this.committedBytes += value.length;
      this.track(entry, 1);
      this.nextId = Math.max(this.nextId, Number(key.readBigUInt64BE()) + 1);
    }
    for (const { key, value } of this.newestDb.getRange({})) {
      const boot = Number(value.toString("utf8"));
      if (!Number.isSafeInteger(boot)) throw new OutboxStoreError("a damaged newest-boot record");
      this.newestBoot.set(key.toString("utf8"), boot);
    }
    const stale = this.prunableAnchors();
    if (stale.length === 0) return;
    try {
      this.root.transactionSync(() => {
        for (const key of stale) this.anchorsDb.removeSync(key);
      });
    } catch (err) {
      throw this.fail(err);
    }
  }

  private track(entry: OutboxEntry, delta: 1 | -1): void {
    const id = readingId(entry.device, entry.boot, entry.seq);
    if (delta > 0) this.ids.add(id);
    else this.ids.delete(id);
    const b = bootId(entry.device, entry.boot);
    const n = (this.perBoot.get(b) ?? 0) + delta;
    if (n > 0) this.perBoot.set(b, n);
    else this.perBoot.delete(b);
  }

  /**
   * Anchor keys no longer needed: of a boot that is not its device's newest and has no reading
   * in the outbox. A device whose newest boot is unknown (anchors saved before this record
   * existed) keeps all of its anchors until it saves new ones.
   */
  private prunableAnchors(device?: string): Buffer[] {
    const range = device === undefined ? {} : { start: Buffer.from(`${device}\u0000`, "utf8") };
    const out: Buffer[] = [];
    for (const key of this.anchorsDb.getKeys(range)) {
      const text = key.toString("utf8");
      const sep = text.lastIndexOf("\u0000");
      const owner = text.slice(0, sep);
      if (device !== undefined && owner !== device) break;
      const newest = this.newestBoot.get(owner);
      if (newest === undefined || this.perBoot.has(text)) continue;
      if (Number(text.slice(sep + 1)) !== newest) out.push(key);
    }
    return out;
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
    this.track(entry, 1);
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
      this.track(e.entry, -1);
    }
    if (this.depth === 0) for (const w of [...this.emptyWaiters]) w();
    // The anchors of an old boot go once its last reading has left.
    const stale = [...new Set(entries.map((e) => e.entry.device))].flatMap((d) => this.prunableAnchors(d));
    if (stale.length === 0) return;
    try {
      await this.root.batch(() => {
        for (const key of stale) void this.anchorsDb.remove(key);
      });
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Resolves when the outbox holds something (at once if it does already) or `signal` fires. */
  async waitForEntries(signal: AbortSignal): Promise<void> {
    await waitFor(this.waiters, () => this.committedEntries > 0, signal);
  }

  /** Resolves with true once the outbox holds nothing (at once if so), or with false when `signal` fires first. */
  waitForEmpty(signal: AbortSignal): Promise<boolean> {
    if (this.closed && this.depth > 0) return Promise.resolve(false);
    return waitFor(this.emptyWaiters, () => this.depth === 0, signal);
  }

  anchors(device: string, boot: number): Anchor[] {
    const raw = this.anchorsDb.get(anchorKey(device, boot));
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
   * then on drift), so a synchronous commit here is cheap. The boot becomes the device's newest,
   * and in the same commit its older boots lose the anchors no reading in the outbox needs.
   */
  saveAnchors(device: string, boot: number, anchors: readonly Anchor[]): void {
    const kept = anchors.slice(-MAX_ANCHORS);
    try {
      this.root.transactionSync(() => {
        this.anchorsDb.putSync(anchorKey(device, boot), Buffer.from(JSON.stringify(kept), "utf8"));
        if (this.newestBoot.get(device) === boot) return;
        this.newestDb.putSync(Buffer.from(device, "utf8"), Buffer.from(String(boot), "utf8"));
        this.newestBoot.set(device, boot);
        for (const key of this.prunableAnchors(device)) this.anchorsDb.removeSync(key);
      });
    } catch (err) {
      throw this.fail(err);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.pending.length > 0 || this.running) await (this.running ?? this.flush());
    for (const w of [...this.waiters]) w();
    for (const w of [...this.emptyWaiters]) w();
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

/**
 * Resolves with `holds()` once it holds (at once if it does already), or once `signal` fires.
 * Whoever changes what `holds` reads calls every function in `waiters`.
 */
function waitFor(waiters: Set<() => void>, holds: () => boolean, signal: AbortSignal): Promise<boolean> {
  if (holds() || signal.aborted) return Promise.resolve(holds());
  return new Promise<boolean>((resolve) => {
    const done = () => {
      waiters.delete(done);
      signal.removeEventListener("abort", done);
      resolve(holds());
    };
    waiters.add(done);
    signal.addEventListener("abort", done, { once: true });
  });
}
