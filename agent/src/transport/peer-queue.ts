/**
 * The bounded queue of messages waiting for one peer.
 *
 * Drop policy. Raft tolerates lost messages, so a full queue never blocks the caller or grows:
 *  1. When a new message would put the queue over its message or byte bound, the OLDEST
 *     non-essential message is dropped, repeatedly, until the new one fits. Non-essential means
 *     the leader regenerates it by itself: appends and their responses, heartbeats and their
 *     responses, forwarded proposals and read-index requests (whose clients time out and retry).
 *     Dropping the oldest first keeps what is freshest, which is what Raft would resend anyway.
 *  2. Essential messages are dropped only when nothing else is left to drop: votes and
 *     pre-votes with their responses (losing one costs a whole election timeout), `timeoutNow`
 *     and `transferLeader` (a leadership transfer in flight), and `snap` (expensive to rebuild).
 *  3. A message larger than the byte bound on its own is dropped on arrival.
 * Every dropped message is counted by the caller. Order is otherwise kept: messages leave in the
 * order they were queued.
 */
import type { Message, MessageType } from "../raft/types.js";

const ESSENTIAL: ReadonlySet<MessageType> = new Set<MessageType>([
  "vote",
  "voteResp",
  "preVote",
  "preVoteResp",
  "timeoutNow",
  "transferLeader",
  "snap",
]);

export function isEssential(type: MessageType): boolean {
  return ESSENTIAL.has(type);
}

interface Queued {
  readonly msg: Message;
  readonly bytes: number;
}

export class PeerQueue {
  private items: Queued[] = [];
  /** Index of the oldest live item; the slots before it are spent. */
  private head = 0;
  private totalBytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {
    if (!Number.isSafeInteger(maxMessages) || maxMessages <= 0) {
      throw new RangeError(`maxMessages must be a positive integer, got ${maxMessages}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    }
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Queues `msg` (of estimated size `bytes`); returns how many messages were dropped for it. */
  push(msg: Message, bytes: number): number {
    if (bytes > this.maxBytes) return 1;
    let dropped = 0;
    while (this.length >= this.maxMessages || this.totalBytes + bytes > this.maxBytes) {
      this.evictOne();
      dropped += 1;
    }
    this.items.push({ msg, bytes });
    this.totalBytes += bytes;
    return dropped;
  }

  /**
   * Removes and returns the oldest messages: at least one (if any), then more while they stay
   * within `maxMessages` and `maxBytes` together.
   */
  takeBatch(maxMessages: number, maxBytes: number): Message[] {
    const out: Message[] = [];
    let bytes = 0;
    while (this.length > 0 && out.length < maxMessages) {
      const next = this.items[this.head]!;
      if (out.length > 0 && bytes + next.bytes > maxBytes) break;
      out.push(next.msg);
      bytes += next.bytes;
      this.removeHead();
    }
    return out;
  }

  /** Empties the queue and returns how many messages it held. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.totalBytes = 0;
    return n;
  }

  private removeHead(): void {
    const item = this.items[this.head]!;
    this.totalBytes -= item.bytes;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // Compact once the spent prefix is at least half the array, so removal stays O(1) amortised.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  private evictOne(): void {
    // The common case, a queue of appends and heartbeats, finds a victim at the head in O(1).
    for (let i = this.head; i < this.items.length; i++) {
      if (!isEssential(this.items[i]!.msg.type)) {
        if (i === this.head) {
          this.removeHead();
        } else {
          this.totalBytes -= this.items[i]!.bytes;
          this.items.splice(i, 1);
        }
        return;
      }
    }
    this.removeHead();
  }
}
