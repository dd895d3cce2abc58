/**
 * Readable renderings of key-value histories, for failure reports of the linearizability checker.
 * A person debugging a seed needs to see which operations overlapped, so every line carries a bar
 * on a shared time axis next to the operation and what it returned.
 */
import type { KvInput, KvOutput, Operation } from "./linearizability.js";

/** Width of the time axis in characters. */
const AXIS_WIDTH = 40;
/** A report longer than this is cut: nobody reads further, and logs must stay bounded. */
const MAX_LINES = 1000;
/** Values longer than this are shortened in reports. */
const MAX_VALUE_CHARS = 32;

/** A value as it is shown in reports: JSON-quoted, shortened, `nil` for absent. */
export function showValue(value: string | null): string {
  if (value === null) return "nil";
  const quoted = JSON.stringify(value);
  return quoted.length <= MAX_VALUE_CHARS ? quoted : `${quoted.slice(0, MAX_VALUE_CHARS - 2)}…"`;
}

/** `put("k", "v")`, `cas("k", nil → "v")` and so on. */
export function showInput(input: KvInput): string {
  const key = showValue(input.key);
  switch (input.kind) {
    case "get":
      return `get(${key})`;
    case "put":
      return `put(${key}, ${showValue(input.value)})`;
    case "del":
      return `del(${key})`;
    case "cas":
      return `cas(${key}, ${showValue(input.expected)} → ${showValue(input.value)})`;
  }
}

/** What the client saw: a value, `ok`, `ok`/`failed` for cas, `?` when unknown. */
export function showOutput(output: KvOutput | null): string {
  if (output === null) return "? (outcome unknown)";
  switch (output.kind) {
    case "get":
      return showValue(output.value);
    case "ok":
      return "ok";
    case "cas":
      return output.ok ? "ok" : "failed";
  }
}

/** One operation on one line, without timing: `#7 c2 get("k") → "a"`. */
export function showOperation(op: Operation): string {
  return `#${op.id} c${op.clientId} ${showInput(op.input)} → ${showOutput(op.output)}`;
}

function showTime(t: number): string {
  return Number.isFinite(t) ? String(t) : "∞";
}

/**
 * A timeline of `ops`, one line per operation in order of call time:
 *
 *     [=====]                                  #1 c1 put("k", "a") → ok          @0..5
 *          [----------------------------------> #2 c2 put("k", "b") → ? (outcome unknown)  @4..∞
 *
 * `[===]` spans call to return on a shared axis; `[--->` is an operation whose outcome is unknown.
 */
export function formatHistory(ops: readonly Operation[]): string {
  if (ops.length === 0) return "(empty history)";
  const sorted = [...ops].sort((a, b) => a.call - b.call || a.id - b.id);
  let start = Infinity;
  let end = -Infinity;
  const clients = new Set<number>();
  for (const op of sorted) {
    clients.add(op.clientId);
    start = Math.min(start, op.call);
    end = Math.max(end, op.call, unknownOutcome(op) ? op.call : op.ret);
  }
  const span = end - start;
  const column = (t: number): number => (span > 0 ? Math.round(((t - start) / span) * (AXIS_WIDTH - 1)) : 0);
  const lines = [
    `${sorted.length} operations from ${clients.size} clients, time ${showTime(start)}..${showTime(end)}`,
  ];
  for (const op of sorted.slice(0, MAX_LINES)) {
    const from = column(op.call);
    let bar: string;
    if (unknownOutcome(op)) {
      bar = "[" + "-".repeat(AXIS_WIDTH - 1 - from) + ">";
    } else {
      const to = column(op.ret);
      bar = to === from ? "|" : "[" + "=".repeat(to - from - 1) + "]";
    }
    const axis = (" ".repeat(from) + bar).padEnd(AXIS_WIDTH + 1);
    lines.push(`${axis} ${showOperation(op)}  @${showTime(op.call)}..${showTime(op.ret)}`);
  }
  if (sorted.length > MAX_LINES) lines.push(`… ${sorted.length - MAX_LINES} more operations not shown`);
  return lines.join("\n");
}

function unknownOutcome(op: Operation): boolean {
  return op.output === null || !Number.isFinite(op.ret);
}
