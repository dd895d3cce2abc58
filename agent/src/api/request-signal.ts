/**
 * The abort signal of one API request: an `EventTarget` with `AbortSignal`'s surface (`aborted`,
 * `reason`, `onabort`, `throwIfAborted`, the `abort` event), so it goes wherever an AbortSignal
 * goes: the service, the host, the forwarder's `http.request` (Node's own APIs check for
 * `aborted` and listen for `abort`). Listening, `once` and errors thrown by listeners are Node's
 * `EventTarget`'s; this class only adds the state.
 *
 * Not `new AbortController().signal`, one per request: Node 20 builds an AbortSignal as a plain
 * `EventTarget`, then changes its prototype and adds its fields, and V8 gives each such object a
 * hidden class of its own (no two signals share one), allocated in the old generation however
 * briefly the signal lives: 20,000 signals made in a scratch loop grew it by ~10 MB, 20,000 of
 * this class (which share one) by 0.25 MB. Only full collections free the old generation, and
 * the faster it grows the more of them a capped heap needs. Measured with `--trace-gc` on the
 * leading agent of a 3-node `cluster up` (30 s of c=64 puts after a 20 s prime): it grew by
 * 11.7 MB/s against 16.2 and 17.2 with AbortControllers (one run against two); with the old
 * generation capped at 512 MiB (as V8 caps it by itself on a small board) 14.2-14.5 MB/s against
 * 18.4-18.9, 75-76 full collections against 88-91, and 4,567-4,672 puts/s against 4,161-4,361
 * (two interleaved pairs).
 */
export class RequestSignal extends EventTarget implements AbortSignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: ((this: AbortSignal, ev: Event) => unknown) | null = null;

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
}
