/**
 * The abort signal of one API request, with `AbortSignal`'s surface (`aborted`, `reason`,
 * `onabort`, `throwIfAborted`, `addEventListener`, `removeEventListener`, `dispatchEvent` and its
 * `abort` event), so it goes wherever an AbortSignal goes: the service, the host, the forwarder's
 * `http.request`. Node's own APIs take any object with `aborted` that they can listen on.
 *
 * Not `new AbortController().signal`, one per request: Node 20 builds an AbortSignal as a plain
 * `EventTarget`, then changes its prototype and adds its fields, and V8 gives each such object a
 * hidden class of its own (no two signals share one), allocated in the old generation however
 * briefly the signal lives: 20,000 signals made in a scratch loop grew it by ~10 MB. Only full
 * collections free the old generation, and the faster it grows the more of them a capped heap
 * needs. Measured with `--trace-gc` on the leading agent of a 3-node `cluster up` (30 s of c=64
 * puts after a 20 s prime): it grew by 11.7 MB/s against 16.2 and 17.2 with AbortControllers.
 *
 * Nor a subclass of Node's `EventTarget`, which this was at first: each one makes two `Map`s for
 * its listeners, and on the leader ~2 per put of them were found dead in the old generation at
 * each full collection (`--trace-gc-object-stats`: ~48,000 maps, ~10 MB with their tables).
 * Listeners here are one array, made when the first is added; most requests end without one.
 */
type Listener = Parameters<EventTarget["addEventListener"]>[1];
type ListenerOptions = Parameters<EventTarget["addEventListener"]>[2];

interface Registration {
  readonly type: string;
  readonly listener: Listener;
  readonly once: boolean;
  removed: boolean;
}

export class RequestSignal implements AbortSignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: ((this: AbortSignal, ev: Event) => unknown) | null = null;
  private listeners: Registration[] | null = null;

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Aborts once, with `reason`; later calls change nothing (as `AbortController.abort`). */
  abort(reason: unknown = new DOMException("This operation was aborted", "AbortError")): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    // `onabort` is an event handler: it runs with the listeners, after those added before it.
    if (this.onabort) this.addEventListener("abort", this.onabort as (ev: Event) => void, { once: true });
    this.dispatchEvent(new Event("abort"));
  }

  /** As `EventTarget`'s: a listener already added for `type` is not added twice; `once` and `signal` are honoured. */
  addEventListener(type: string, listener: Listener | null, options?: ListenerOptions): void {
    if (listener === null) return;
    if (this.listeners?.some((r) => r.type === type && r.listener === listener)) return;
    const opts = typeof options === "object" && options !== null ? options : {};
    if (opts.signal?.aborted) return;
    (this.listeners ??= []).push({ type, listener, once: opts.once === true, removed: false });
    opts.signal?.addEventListener("abort", () => this.removeEventListener(type, listener), { once: true });
  }

  removeEventListener(type: string, listener: Listener | null): void {
    const list = this.listeners;
    if (list === null) return;
    const at = list.findIndex((r) => r.type === type && r.listener === listener);
    if (at < 0) return;
    const [gone] = list.splice(at, 1);
    if (gone) gone.removed = true;
  }

  /**
   * Calls the listeners for `event.type` that were added before it (as `EventTarget`: one removed
   * meanwhile is skipped). One that throws does not stop the others; its error is reported as
   * uncaught, on the next tick, as Node's `EventTarget` reports it.
   */
  dispatchEvent(event: Event): boolean {
    const due = this.listeners?.filter((r) => r.type === event.type) ?? [];
    for (const r of due) {
      if (r.removed) continue;
      if (r.once) this.removeEventListener(r.type, r.listener);
      try {
        if (typeof r.listener === "function") r.listener.call(this, event);
        else r.listener.handleEvent(event);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
    return !event.defaultPrevented;
  }
}
