/**
 * ReadIndex bookkeeping on the leader (Raft thesis §6.4): a read is safe to serve at the commit
 * index recorded when it arrived, once a quorum has acknowledged a heartbeat sent after it.
 */
import type { Message, NodeId } from "./types.js";

export interface ReadIndexRequest {
  readonly index: number;
  /** The original request: its `from` is who asked (this node for local reads). */
  readonly req: Message;
  readonly acks: Set<NodeId>;
}

/** Bounds the number of reads waiting for a quorum; more are refused rather than queued. */
export const MAX_PENDING_READS = 4096;

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexRequest>();
  private readonly queue: string[] = [];

  get size(): number {
    return this.queue.length;
  }

  add(index: number, req: Message): boolean {
    const key = contextKey(req.context);
    if (this.pending.has(key)) return true;
    if (this.queue.length >= MAX_PENDING_READS) return false;
    this.pending.set(key, { index, req, acks: new Set() });
    this.queue.push(key);
    return true;
  }

  /** Records that `from` acknowledged the heartbeat carrying `context`; returns who has. */
  recvAck(from: NodeId, context: Uint8Array): ReadonlySet<NodeId> | null {
    const rs = this.pending.get(contextKey(context));
    if (!rs) return null;
    rs.acks.add(from);
    return rs.acks;
  }

  /** Releases every request queued up to and including the one with `context`. */
  advance(context: Uint8Array): ReadIndexRequest[] {
    const key = contextKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const keys = this.queue.splice(0, at + 1);
    const out: ReadIndexRequest[] = [];
    for (const k of keys) {
      const rs = this.pending.get(k);
      this.pending.delete(k);
      if (rs) out.push(rs);
    }
    return out;
  }

  lastPendingContext(): Uint8Array | null {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? null : this.pending.get(key)!.req.context;
  }

  reset(): void {
    this.pending.clear();
    this.queue.length = 0;
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function contextKey(context: Uint8Array): string {
  let s = "";
  for (const b of context) s += HEX[b];
  return s;
}
