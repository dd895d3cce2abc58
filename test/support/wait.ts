/** The one polling wait the integration tests share: no sleeps standing in for a condition. */

/**
 * Polls `probe` every `everyMs` until it returns something truthy, and returns that; after
 * `timeoutMs` throws an error naming `what`, followed by `context()` (log tails, say) if given.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  opts: { everyMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) {
      const context = opts.context?.();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${context ? `\n${context}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
  }
}
