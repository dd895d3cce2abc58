/**
 * Streams snapshots between nodes in chunks, so a state machine of any size reaches a lagging
 * follower without holding it in memory or in one frame.
 *
 * The Raft core asks for a snapshot with one `snap` message. The sender turns it into a stream:
 * chunks read from one consistent LMDB view travel as `snap` messages whose `context` names the
 * stream, the chunk's sequence number and whether it is the last; the receiver stages them beside
 * its live state and acknowledges each chunk with a `snapStatus` message once it has consumed it,
 * which keeps at most `windowChunks` chunks in flight. When the last chunk is staged, the
 * receiver hands its core a `snap` message with the image's metadata; the Ready that follows
 * swaps the staged image in with the log reset. A lost chunk or a stalled peer ends the stream;
 * the core asks again after its own timeout.
 */
import {
  EMPTY_BYTES,
  emptyMessage,
  type GroupId,
  type Message,
  type NodeId,
  type SnapshotMetadata,
} from "../raft/index.js";
import type { DurableStore } from "./ports.js";

const CONTEXT_BYTES = 9;
const FLAG_LAST = 1;

export interface ChunkContext {
  readonly stream: number;
  readonly seq: number;
  readonly last: boolean;
}

export function encodeChunkContext(c: ChunkContext): Uint8Array {
  const b = new Uint8Array(CONTEXT_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, c.stream);
  v.setUint32(4, c.seq);
  b[8] = c.last ? FLAG_LAST : 0;
  return b;
}

export function decodeChunkContext(b: Uint8Array): ChunkContext | null {
  if (b.byteLength !== CONTEXT_BYTES) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { stream: v.getUint32(0), seq: v.getUint32(4), last: (b[8]! & FLAG_LAST) !== 0 };
}

/** Whether a message from a peer belongs to a snapshot stream rather than to the Raft core. */
export function isStreamMessage(m: Message): boolean {
  return (m.type === "snap" || m.type === "snapStatus") && m.context.byteLength === CONTEXT_BYTES;
}

export interface TransferLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface TransferOptions {
  readonly nodeId: NodeId;
  readonly store: DurableStore;
  readonly send: (m: Message) => void;
  readonly logger: TransferLogger;
  readonly chunkBytes?: number;
  readonly windowChunks?: number;
  /** A stream whose peer acknowledges nothing for this long is abandoned. */
  readonly idleTimeoutMs?: number;
  /** Streams sent at once, over all peers and groups; more wait for the core to ask again. */
  readonly maxOutgoing?: number;
}

interface Outgoing {
  readonly id: number;
  readonly peer: NodeId;
  readonly group: GroupId;
  readonly term: number;
  readonly iterator: AsyncIterator<Uint8Array>;
  metadata: SnapshotMetadata | null;
  /** The next chunk, read ahead so that we know whether the one we send is the last. */
  lookahead: Uint8Array | null;
  exhausted: boolean;
  nextSeq: number;
  acked: number;
  pumping: boolean;
  timer: NodeJS.Timeout | null;
  bytes: number;
  readonly startedAt: number;
}

export class SnapshotSender {
  private readonly streams = new Map<string, Outgoing>();
  private nextId = 1;
  private readonly chunkBytes: number;
  private readonly window: number;
  private readonly idleMs: number;
  private readonly maxOutgoing: number;
  sent = 0;
  failed = 0;
  /** Streams sent to completion, per group (for the per-group snapshot metric). */
  readonly sentByGroup = new Map<GroupId, number>();

  constructor(
    private readonly opts: TransferOptions,
    private readonly onDone: (peer: NodeId, group: GroupId, ok: boolean) => void,
  ) {
    this.chunkBytes = opts.chunkBytes ?? 256 * 1024;
    this.window = opts.windowChunks ?? 4;
    this.idleMs = opts.idleTimeoutMs ?? 10_000;
    this.maxOutgoing = opts.maxOutgoing ?? 2;
  }

  /** Starts streaming in answer to the core's `snap` message, unless one is under way. */
  start(m: Message): void {
    const key = `${m.to}/${m.group}`;
    if (this.streams.has(key)) return;
    if (this.streams.size >= this.maxOutgoing) {
      this.onDone(m.to, m.group, false);
      return;
    }
    const s: Outgoing = {
      id: this.nextId++,
      peer: m.to,
      group: m.group,
      term: m.term,
      iterator: this.opts.store.snapshotChunks(m.group, this.chunkBytes)[Symbol.asyncIterator](),
      metadata: null,
      lookahead: null,
      exhausted: false,
      nextSeq: 0,
      acked: -1,
      pumping: false,
      timer: null,
      bytes: 0,
      startedAt: Date.now(),
    };
    this.streams.set(key, s);
    this.opts.logger.info("sending snapshot", { peer: s.peer, group: s.group, stream: s.id });
    this.armTimer(key, s);
    void this.pump(key, s);
  }

  onAck(m: Message): void {
    const ctx = decodeChunkContext(m.context);
    const key = `${m.from}/${m.group}`;
    const s = this.streams.get(key);
    if (!ctx || !s || s.id !== ctx.stream) return;
    if (m.reject) {
      this.finish(key, s, false, "the receiver refused the stream");
      return;
    }
    s.acked = Math.max(s.acked, ctx.seq);
    this.armTimer(key, s);
    if (ctx.last) {
      this.finish(key, s, true, "");
      return;
    }
    void this.pump(key, s);
  }

  private armTimer(key: string, s: Outgoing): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = setTimeout(() => this.finish(key, s, false, "the receiver stopped acknowledging"), this.idleMs);
    s.timer.unref();
  }

  private async pump(key: string, s: Outgoing): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    try {
      while (this.streams.get(key) === s && s.nextSeq - s.acked <= this.window) {
        if (s.nextSeq === 0) {
          const first = await s.iterator.next();
          if (first.done) throw new Error("snapshot stream is empty");
          s.metadata = this.opts.store.readSnapshotHeader(first.value);
          s.lookahead = first.value;
        }
        const chunk = s.lookahead;
        if (chunk === null) return;
        const next = await s.iterator.next();
        s.lookahead = next.done ? null : next.value;
        const last = next.done === true;
        if (this.streams.get(key) !== s) return;
        this.opts.send({
          ...emptyMessage("snap", s.group, this.opts.nodeId, s.peer),
          term: s.term,
          snapshot: { metadata: s.metadata!, data: chunk },
          context: encodeChunkContext({ stream: s.id, seq: s.nextSeq, last }),
        });
        s.bytes += chunk.byteLength;
        s.nextSeq++;
        if (last) return;
      }
    } catch (err) {
      this.finish(key, s, false, `reading the snapshot failed: ${String(err)}`);
    } finally {
      s.pumping = false;
    }
  }

  private finish(key: string, s: Outgoing, ok: boolean, why: string): void {
    if (this.streams.get(key) !== s) return;
    this.streams.delete(key);
    if (s.timer) clearTimeout(s.timer);
    void s.iterator.return?.();
    if (ok) {
      this.sent++;
      this.sentByGroup.set(s.group, (this.sentByGroup.get(s.group) ?? 0) + 1);
    } else this.failed++;
    const fields = {
      peer: s.peer,
      group: s.group,
      stream: s.id,
      bytes: s.bytes,
      ms: Date.now() - s.startedAt,
    };
    if (ok) this.opts.logger.info("snapshot sent", fields);
    else this.opts.logger.warn("snapshot stream abandoned", { ...fields, why });
    this.onDone(s.peer, s.group, ok);
  }

  stop(): void {
    for (const [key, s] of this.streams) this.finish(key, s, false, "node stopping");
  }
}

/** A bounded hand-over from arriving messages to the staging reader. */
class ChunkQueue implements AsyncIterable<Uint8Array> {
  private readonly items: { chunk: Uint8Array; consumed: () => void }[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  private failure: Error | null = null;

  push(chunk: Uint8Array, consumed: () => void): void {
    this.items.push({ chunk, consumed });
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: Error): void {
    this.failure = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure;
      const item = this.items.shift();
      if (item) {
        item.consumed();
        yield item.chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }
}

interface Incoming {
  readonly id: number;
  readonly from: NodeId;
  readonly group: GroupId;
  readonly metadata: SnapshotMetadata;
  readonly queue: ChunkQueue;
  readonly staged: Promise<void>;
  nextSeq: number;
}

export class SnapshotReceiver {
  private readonly streams = new Map<string, Incoming>();
  received = 0;
  failed = 0;

  constructor(
    private readonly opts: TransferOptions,
    /** Hands the core the snapshot once staged: a `snap` message with empty data. */
    private readonly deliver: (m: Message) => void,
  ) {}

  onChunk(m: Message): void {
    const ctx = decodeChunkContext(m.context);
    const snap = m.snapshot;
    if (!ctx || !snap) return;
    const key = `${m.from}/${m.group}`;
    let s = this.streams.get(key);
    if (ctx.seq === 0) {
      if (s) this.abort(key, s, "a new stream replaced it");
      s = this.begin(key, m, ctx, snap.metadata);
    }
    if (!s || s.id !== ctx.stream || ctx.seq !== s.nextSeq) {
      // A gap or a stray chunk: refuse, the sender gives up and the core asks again later.
      this.ack(m, ctx, true);
      if (s && s.id === ctx.stream) this.abort(key, s, `chunk ${ctx.seq} arrived, expected ${s.nextSeq}`);
      return;
    }
    s.nextSeq++;
    const stream = s;
    stream.queue.push(snap.data, () => this.ack(m, ctx, false));
    if (ctx.last) {
      stream.queue.end();
      void stream.staged.then(
        () => {
          if (this.streams.get(key) !== stream) return;
          this.streams.delete(key);
          this.received++;
          this.deliver({
            ...emptyMessage("snap", m.group, m.from, this.opts.nodeId),
            term: m.term,
            snapshot: { metadata: stream.metadata, data: EMPTY_BYTES },
          });
        },
        () => {},
      );
    }
  }

  private begin(key: string, m: Message, ctx: ChunkContext, metadata: SnapshotMetadata): Incoming {
    const queue = new ChunkQueue();
    const staged = this.opts.store.stageSnapshot(m.group, metadata, queue);
    const s: Incoming = { id: ctx.stream, from: m.from, group: m.group, metadata, queue, staged, nextSeq: 0 };
    staged.catch((err: unknown) => this.abort(key, s, `staging failed: ${String(err)}`));
    this.streams.set(key, s);
    this.opts.logger.info("receiving snapshot", { from: m.from, group: m.group, index: metadata.index });
    return s;
  }

  private ack(m: Message, ctx: ChunkContext, reject: boolean): void {
    this.opts.send({
      ...emptyMessage("snapStatus", m.group, this.opts.nodeId, m.from),
      term: m.term,
      reject,
      context: encodeChunkContext(ctx),
    });
  }

  /** Ends a stream; the store deletes whatever it had staged of it when its reader fails. */
  private abort(key: string, s: Incoming, why: string): void {
    if (this.streams.get(key) !== s) return;
    this.streams.delete(key);
    s.queue.fail(new Error(why));
    this.failed++;
    this.opts.logger.warn("snapshot stream dropped", { from: s.from, group: s.group, why });
  }

  stop(): void {
    for (const [key, s] of this.streams) this.abort(key, s, "node stopping");
  }
}
