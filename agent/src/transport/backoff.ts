/**
 * Reconnect delays: exponential, capped, with "equal jitter" (half fixed, half random). The fixed
 * half keeps a floor under every delay so a flapping peer is never hammered; the random half keeps
 * the nodes of a cluster that lost the same peer from redialling it in lockstep.
 */

/** Past this many doublings the cap has long been reached; stops 2^n from overflowing. */
const MAX_DOUBLINGS = 30;

/**
 * The delay before attempt number `failures + 1`, given `failures` consecutive failures (>= 1).
 * `random` returns values in [0, 1).
 */
export function backoffDelayMs(
  failures: number,
  baseMs: number,
  maxMs: number,
  random: () => number,
): number {
  const doublings = Math.min(Math.max(failures - 1, 0), MAX_DOUBLINGS);
  const ceiling = Math.min(maxMs, baseMs * 2 ** doublings);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
