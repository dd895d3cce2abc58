/**
 * The deterministic workload of the crash test, shared by the child that writes it and the
 * parent that checks what survived: the entry at (group, index) and what applying it does.
 */
import type { Entry } from "../../src/raft/index.js";
import type { ApplyContext } from "../../src/storage/index.js";

export const CRASH_GROUPS = [1, 2, 3, 4];
export const CRASH_KEYS = 37;

export function crashEntry(group: number, index: number): Entry {
  const text = `g${group}/i${index}/`.padEnd(100, String.fromCharCode(97 + (index % 26)));
  return { index, term: 1 + Math.floor(index / 53), type: "normal", data: new TextEncoder().encode(text) };
}

/** How many entries the save of a group starting at `from` carries (1..8, varies with index). */
export function crashBatchSize(group: number, from: number): number {
  return 1 + ((from * 7 + group * 3) % 8);
}

/** The state machine: entry i writes key `k{i mod 37}`, and every fifth entry deletes another key. */
export function applyCrashEntry(e: Entry, ctx: ApplyContext): void {
  ctx.put(`k${e.index % CRASH_KEYS}`, e.data);
  if (e.index % 5 === 0) ctx.delete(`k${(e.index * 3) % CRASH_KEYS}`);
}
