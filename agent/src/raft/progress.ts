/**
 * What the leader knows about each follower's log, and the flow control that bounds how much it
 * sends before hearing back (etcd-io/raft's Progress and Inflights).
 */
import type { NodeId } from "./types.js";

export type ProgressState = "probe" | "replicate" | "snapshot";

/** A bounded window of append messages in flight, by count and by bytes. */
export class Inflights {
  private readonly indexes: number[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.indexes.length;
  }

  get inflightBytes(): number {
    return this.bytes;
  }

  add(lastIndex: number, bytes: number): void {
    if (this.full()) throw new Error("inflights: add to a full window");
    this.indexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every message whose last entry is at or below `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.indexes.length && this.indexes[n]! <= index) {
      this.bytes -= this.sizes[n]!;
      n++;
    }
    this.indexes.splice(0, n);
    this.sizes.splice(0, n);
  }

  /** Frees the oldest message: a heartbeat reply proves the follower is alive, so one more may go. */
  freeFirstOne(): void {
    if (this.indexes.length === 0) return;
    this.bytes -= this.sizes[0]!;
    this.indexes.shift();
    this.sizes.shift();
  }

  full(): boolean {
    return this.indexes.length >= this.maxMessages || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

export class Progress {
  state: ProgressState = "probe";
  match = 0;
  next: number;
  /** In probe state: one append is out; wait for its answer (or a heartbeat reply) before another. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Ticks spent in snapshot state; a lost snapshot is retried after a bound. */
  snapshotTicks = 0;
  /** The leader's tick count stamped on the newest heartbeat this member acknowledged. */
  leaseAckTick = -Infinity;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /**
   * The last index this member proposed through us (a forwarded write it waits to see
   * committed), or 0. New commit indexes are not broadcast on their own, so the leader tells
   * this member as soon as the commit reaches it rather than at the next heartbeat.
   */
  commitWanted = 0;
  readonly inflights: Inflights;

  constructor(
    readonly id: NodeId,
    next: number,
    maxInflightMsgs: number,
    maxInflightBytes: number,
    readonly isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(index: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = index;
  }

  /** Records an acknowledgement up to `n`. Returns whether it moved `match` forward. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * Handles a rejected append for `rejected` with the follower's hint. Returns false when the
   * rejection is stale (for a message sent before a newer one was acknowledged).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the answer to the last probe (at next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}
