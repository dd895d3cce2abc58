import { RequestSignal } from "./request-signal.js";

/**
 * A request being served. Aborting it fires its signal (for the service call) and rejects the
 * reply `respond` waits for, directly rather than through a listener on the signal: that
 * listener, added and removed per request, and a timer per request were ~2 % of a leader's CPU
 * at c=64 (the timers are one now, see `ApiServer.expire`).
 */
export class InFlight {
  readonly signal = new RequestSignal();
  /** Its neighbours in the list of requests in flight (see InFlightList). */
  prev: InFlight | null = null;
  next: InFlight | null = null;
  listed = false;
  /** Rejects the reply `respond` awaits; set while it awaits. */
  fail: ((reason: unknown) => void) | null = null;

  /** `deadlineMs`: when it times out, on `performance.now()`'s clock. */
  constructor(readonly deadlineMs: number) {}

  abort(reason: unknown): void {
    if (this.signal.aborted) return;
    this.signal.abort(reason);
    this.fail?.(reason);
  }

  /** `work`'s outcome, or the abort's reason as soon as the request is aborted. */
  until<T>(work: Promise<T>): Promise<T> {
    if (this.signal.aborted) return Promise.reject(this.signal.reason as Error);
    return new Promise<T>((resolve, reject) => {
      this.fail = reject;
      work.then(resolve, reject);
    });
  }
}

/**
 * The requests being served, in arrival order: a list through the requests themselves, not a
 * `Set`. A set that thousands of requests a second pass through replaces its table every few
 * dozen of them, and a replaced table that V8 had already moved to the old generation still
 * points at the requests it held (their signals, closures and promises): until the next full
 * collection, young collections treat those as live and move them to the old generation too.
 * Measured on the leading agent (30 s of c=64 puts, heap capped at 1 GiB, two interleaved
 * pairs): its old generation took in 1.30-1.35 KB per put against 1.68-1.94 with the set.
 * Unlinking clears a request's own links, so a request moved to the old generation does not
 * hold its former neighbours either.
 */
export class InFlightList implements Iterable<InFlight> {
  private head: InFlight | null = null;
  private tail: InFlight | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(request: InFlight): void {
    if (request.listed) throw new Error("request is already in flight");
    request.listed = true;
    request.prev = this.tail;
    request.next = null;
    if (this.tail) this.tail.next = request;
    else this.head = request;
    this.tail = request;
    this.count++;
  }

  delete(request: InFlight): void {
    if (!request.listed) return;
    if (request.prev) request.prev.next = request.next;
    else this.head = request.next;
    if (request.next) request.next.prev = request.prev;
    else this.tail = request.prev;
    request.prev = null;
    request.next = null;
    request.listed = false;
    this.count--;
  }

  /** Oldest first. Deleting the request the walk is at does not end the walk. */
  *[Symbol.iterator](): Iterator<InFlight> {
    for (let r = this.head; r !== null;) {
      const next = r.next;
      yield r;
      r = r.listed ? r.next : next;
    }
  }
}
