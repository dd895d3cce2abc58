/**
 * A full garbage collection on demand, without starting node with --expose-gc: for tests of code
 * that must keep working after one (Node 20's `AbortSignal.any` loses timeouts to it).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** `work`, or a rejection naming `what` after `ms` (a ref'd timer: timeout signals' are not). */
export async function within<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let guard: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>(
        (_, reject) => (guard = setTimeout(() => reject(new Error(`${what} never ended`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(guard);
  }
}
