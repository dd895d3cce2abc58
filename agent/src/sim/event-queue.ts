/**
 * A priority queue of future events ordered by (time, sequence). The sequence number is the
 * order of insertion, so two events due at the same instant always come out in the order they
 * were scheduled: the queue never depends on the heap's shape, and a seed replays exactly.
 */

/** The queue is bounded; overflowing it means the simulation has run away (a programmer error). */
export class EventQueueOverflowError extends Error {
  override readonly name = "EventQueueOverflowError";
  constructor(readonly capacity: number) {
    super(`event queue is full (${capacity} events)`);
  }
}

export class EventQueueTimeError extends Error {
  override readonly name = "EventQueueTimeError";
  constructor(message: string) {
    super(message);
  }
}

interface Slot<T> {
  readonly time: number;
  readonly seq: number;
  readonly value: T;
}

export class EventQueue<T> {
  private readonly heap: Slot<T>[] = [];
  private seq = 0;

  constructor(readonly capacity = 1_000_000) {}

  get size(): number {
    return this.heap.length;
  }

  push(time: number, value: T): void {
    if (!Number.isFinite(time) || time < 0) throw new EventQueueTimeError(`bad event time ${time}`);
    if (this.heap.length >= this.capacity) throw new EventQueueOverflowError(this.capacity);
    const slot: Slot<T> = { time, seq: this.seq++, value };
    const heap = this.heap;
    heap.push(slot);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(slot, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = slot;
  }

  /** The time of the earliest event, or Infinity when the queue is empty. */
  peekTime(): number {
    const top = this.heap[0];
    return top === undefined ? Infinity : top.time;
  }

  /** Removes and returns the earliest event, or undefined when the queue is empty. */
  pop(): { time: number; value: T } | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const child = r < n && before(heap[r]!, heap[l]!) ? r : l;
        const c = heap[child]!;
        if (!before(c, last)) break;
        heap[i] = c;
        i = child;
      }
      heap[i] = last;
    }
    return { time: top.time, value: top.value };
  }
}

function before<T>(x: Slot<T>, y: Slot<T>): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq);
}
