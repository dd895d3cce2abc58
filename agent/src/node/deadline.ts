/**
 * `deadline(ms, ...signals)`: a signal that aborts when any of `signals` does or after `ms`, with a
 * `TimeoutError` like `AbortSignal.timeout`'s.
 *
 * Not `AbortSignal.any([..., AbortSignal.timeout(ms)])` on its own: Node 20 holds the sources of
 * `AbortSignal.any` weakly, and a timeout signal's timer holds its signal weakly too, so once a
 * garbage collection runs nothing keeps the timeout alive and the combined signal never times
 * out (nodejs/node#57736). A health pull or a bridge write to a board that accepted the
 * connection and then froze would wait forever. Here the timeout signal stays reachable for as
 * long as the combined signal is.
 */
const keepAlive = new WeakMap<AbortSignal, AbortSignal>();

export function deadline(ms: number, ...signals: AbortSignal[]): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  if (signals.length === 0) return timeout;
  const combined = AbortSignal.any([...signals, timeout]);
  keepAlive.set(combined, timeout);
  return combined;
}
