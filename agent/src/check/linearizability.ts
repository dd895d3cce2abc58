/**
 * A linearizability checker for key-value histories, used by the deterministic Raft simulator
 * (thousands of seeds) and by the real-process crash tests.
 *
 * The history is split by key, because keys of a map are independent and a history is
 * linearizable exactly when each key's sub-history is (P-compositionality); each key is then
 * searched on its own by `searchKey` (Wing & Gong with Lowe's memoisation, see `search.ts`). A
 * step budget bounds the whole check: when it runs out the answer is `unknown`, never a hang.
 *
 * When a key fails, the report is cut down to the shortest failing prefix of that key's history
 * (linearizability is prefix-closed, so a binary search over cut times finds it) and explained in
 * words from the deepest point the search reached.
 */
import { formatHistory, showOperation, showValue } from "./format.js";
import {
  ABSENT,
  type DeadEnd,
  type KeyHistory,
  OP_CAS,
  OP_DEL,
  OP_GET,
  OP_PUT,
  OUT_UNKNOWN,
  type SearchResult,
  searchKey,
  stepModel,
} from "./search.js";

export { formatHistory };

export type KvInput =
  | { kind: "get"; key: string }
  | { kind: "put"; key: string; value: string }
  | { kind: "del"; key: string }
  | { kind: "cas"; key: string; expected: string | null; value: string }; // expected null = only if absent

export type KvOutput =
  | { kind: "get"; value: string | null } // null = absent
  | { kind: "ok" } // put / del succeeded
  | { kind: "cas"; ok: boolean };

export interface Operation {
  /** Unique in the history. */
  id: number;
  /** Each client runs one operation at a time. */
  clientId: number;
  input: KvInput;
  /** When the client invoked it, on any monotonic clock (ticks or ns). */
  call: number;
  /** When the client saw the answer; Infinity when the outcome is unknown. */
  ret: number;
  /** null = outcome unknown (timeout, crashed node): it may or may not have taken effect. */
  output: KvOutput | null;
}

export type CheckResult =
  | { kind: "ok" }
  /** `ops` is the key's sub-history, or a minimal failing part of it, in call order, for printing. */
  | { kind: "violation"; key: string; explanation: string; ops: Operation[] }
  /** The step budget ran out before an answer was found. */
  | { kind: "unknown"; reason: string };

export interface CheckOptions {
  /** Model steps allowed over the whole check (default `DEFAULT_MAX_STEPS`). */
  maxSteps?: number;
  /** Values the keys hold before the history starts; keys not listed start absent. */
  initial?: ReadonlyMap<string, string>;
}

/**
 * Measured: a linearizable 3,000-operation history over 10 keys from 8 clients needs about 3,500
 * steps, the same on a single key about 40,000, and refuting a stale read at the end of that
 * single key about 500,000. Two million steps take roughly 0.15 s on a desktop core, so a
 * pathological history costs a second or two on a Raspberry Pi before it is called `unknown`.
 */
export const DEFAULT_MAX_STEPS = 2_000_000;
/**
 * Bound on the memo table of one key's search: 2^24 words, 64 MiB (allocations double as it
 * grows, so the peak can reach twice that). One entry per forward step means the step budget
 * usually binds first; this bound matters for keys with thousands of operations, whose bitsets
 * are long.
 */
export const MAX_MEMO_WORDS = 1 << 24;

/** The history cannot be checked because it is malformed; this is a bug in whoever recorded it. */
export class InvalidHistoryError extends Error {
  override readonly name = "InvalidHistoryError";
  /** The id of the offending operation, when one operation is to blame. */
  readonly opId: number | null;
  constructor(message: string, opId: number | null = null) {
    super(message);
    this.opId = opId;
  }
}

/** Checks that `ops` is linearizable with respect to a map from key to string value. */
export function checkKvHistory(ops: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!(maxSteps === Infinity || (Number.isInteger(maxSteps) && maxSteps >= 0))) {
    throw new RangeError(`maxSteps must be a non-negative integer, got ${maxSteps}`);
  }
  const initial = opts.initial ?? new Map<string, string>();
  validateHistory(ops, initial);
  const byKey = groupByKey(ops);

  // A read of a value nobody wrote needs no search, gives the clearest report, and must not be
  // hidden behind another key's budget exhaustion, so every key gets this pass first.
  for (const [key, keyOps] of byKey) {
    const found = impossibleValue(key, keyOps, initial.get(key) ?? null);
    if (found !== null) return found;
  }

  // Small keys first: a violation in a cheap key is found before a costly key eats the budget.
  const keys = [...byKey.keys()].sort(
    (a, b) => (byKey.get(a)?.length ?? 0) - (byKey.get(b)?.length ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
  );
  let stepsLeft = maxSteps;
  for (const [index, key] of keys.entries()) {
    const keyOps = byKey.get(key) ?? [];
    const initialValue = initial.get(key) ?? null;
    const compiled = compileKey(keyOps, initialValue, Infinity);
    const result = searchKey(compiled.history, { maxSteps: stepsLeft, maxMemoWords: MAX_MEMO_WORDS });
    stepsLeft -= result.steps;
    if (result.kind === "ok") continue;
    if (result.kind === "budget") {
      return {
        kind: "unknown",
        reason:
          `${result.reason} on key ${showValue(key)} (${keyOps.length} operations); ` +
          `${index} of ${keys.length} keys were checked and linearizable`,
      };
    }
    return reportViolation(key, keyOps, initialValue, compiled, result, stepsLeft);
  }
  return { kind: "ok" };
}

// ---------------------------------------------------------------------------------------------
// Validation

function validateHistory(ops: readonly Operation[], initial: ReadonlyMap<string, string>): void {
  if (!Array.isArray(ops)) throw new InvalidHistoryError("the history must be an array of operations");
  for (const [key, value] of initial) {
    if (typeof key !== "string" || typeof value !== "string") {
      throw new InvalidHistoryError("initial values must map string keys to string values");
    }
  }
  const ids = new Set<number>();
  for (const op of ops) {
    if (typeof op !== "object" || op === null) throw new InvalidHistoryError("an operation is not an object");
    if (typeof op.id !== "number" || !Number.isFinite(op.id)) {
      throw new InvalidHistoryError(`an operation has id ${String(op.id)}, not a finite number`);
    }
    if (ids.has(op.id)) throw new InvalidHistoryError(`operation id ${op.id} appears twice`, op.id);
    ids.add(op.id);
    const where = `operation #${op.id}`;
    if (typeof op.clientId !== "number" || !Number.isFinite(op.clientId)) {
      throw new InvalidHistoryError(
        `${where} has clientId ${String(op.clientId)}, not a finite number`,
        op.id,
      );
    }
    if (typeof op.call !== "number" || !Number.isFinite(op.call)) {
      throw new InvalidHistoryError(`${where} has call time ${String(op.call)}, not a finite number`, op.id);
    }
    if (typeof op.ret !== "number" || Number.isNaN(op.ret)) {
      // JSON has no Infinity: a history read from a file must turn null back into Infinity.
      throw new InvalidHistoryError(
        `${where} has return time ${String(op.ret)}, not a number (use Infinity for unknown outcomes)`,
        op.id,
      );
    }
    if (op.ret < op.call) {
      throw new InvalidHistoryError(`${where} returns at ${op.ret}, before its call at ${op.call}`, op.id);
    }
    validateInput(op.input, where, op.id);
    if (op.output !== null) {
      if (!Number.isFinite(op.ret)) {
        throw new InvalidHistoryError(`${where} has an output but never returned (ret ${op.ret})`, op.id);
      }
      validateOutput(op.input, op.output, where, op.id);
    }
  }
}

function validateInput(input: KvInput, where: string, id: number): void {
  if (typeof input !== "object" || input === null) throw new InvalidHistoryError(`${where} has no input`, id);
  if (typeof input.key !== "string")
    throw new InvalidHistoryError(`${where} has a key that is not a string`, id);
  const kind: unknown = input.kind;
  switch (input.kind) {
    case "get":
    case "del":
      return;
    case "put":
      if (typeof input.value !== "string")
        throw new InvalidHistoryError(`${where} puts a non-string value`, id);
      return;
    case "cas":
      if (typeof input.value !== "string")
        throw new InvalidHistoryError(`${where} writes a non-string value`, id);
      if (input.expected !== null && typeof input.expected !== "string") {
        throw new InvalidHistoryError(`${where} expects a value that is neither a string nor null`, id);
      }
      return;
    default:
      throw new InvalidHistoryError(`${where} has unknown input kind ${String(kind)}`, id);
  }
}

function validateOutput(input: KvInput, output: KvOutput, where: string, id: number): void {
  const kind: unknown = typeof output === "object" && output !== null ? output.kind : undefined;
  const expectedKind = input.kind === "get" ? "get" : input.kind === "cas" ? "cas" : "ok";
  if (kind !== expectedKind) {
    throw new InvalidHistoryError(
      `${where} is a ${input.kind} but its output kind is ${String(kind)} (expected ${expectedKind})`,
      id,
    );
  }
  if (output.kind === "get" && output.value !== null && typeof output.value !== "string") {
    throw new InvalidHistoryError(`${where} read a value that is neither a string nor null`, id);
  }
  if (output.kind === "cas" && typeof output.ok !== "boolean") {
    throw new InvalidHistoryError(`${where} has a cas result that is not a boolean`, id);
  }
}

function groupByKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.input.key);
    if (list === undefined) byKey.set(op.input.key, [op]);
    else list.push(op);
  }
  return byKey;
}

// ---------------------------------------------------------------------------------------------
// The cheap pass: values that no operation ever produces

function impossibleValue(
  key: string,
  keyOps: readonly Operation[],
  initialValue: string | null,
): CheckResult | null {
  const written = new Set<string>();
  if (initialValue !== null) written.add(initialValue);
  let absentReachable = initialValue === null;
  for (const op of keyOps) {
    if (op.input.kind === "put" || op.input.kind === "cas") written.add(op.input.value);
    if (op.input.kind === "del") absentReachable = true;
  }
  const reachable = (value: string | null): boolean =>
    value === null ? absentReachable : written.has(value);
  const why = (value: string | null): string =>
    value === null
      ? "the key starts with a value and no operation deletes it"
      : "no operation on this key writes it and it is not the initial value";
  for (const op of keyOps) {
    const out = op.output;
    if (out === null) continue;
    let seen: string | null | undefined;
    if (out.kind === "get") seen = out.value;
    else if (out.kind === "cas" && out.ok && op.input.kind === "cas") seen = op.input.expected;
    if (seen === undefined || reachable(seen)) continue;
    const verb = out.kind === "get" ? "reads" : "succeeded against";
    return {
      kind: "violation",
      key,
      explanation: `Key ${showValue(key)}: ${showOperation(op)} ${verb} ${showValue(seen)}, but ${why(seen)}.`,
      ops: [op],
    };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Compiling one key's operations for the search

interface CompiledKey {
  readonly history: KeyHistory;
  /** Interned value id → value; id ABSENT is null. */
  readonly values: readonly (string | null)[];
  /** Compiled index → the operation it came from. */
  readonly source: readonly Operation[];
}

/**
 * Compiles the operations of one key, truncated at `cutTime`: operations called after it are left
 * out, and operations that had not returned by then count as having an unknown outcome. With
 * `cutTime` = ∞ this is the whole sub-history. Gets with an unknown outcome are dropped: whatever
 * they would have read constrains nothing.
 */
function compileKey(keyOps: readonly Operation[], initialValue: string | null, cutTime: number): CompiledKey {
  const values: (string | null)[] = [null];
  const ids = new Map<string, number>();
  const intern = (value: string | null): number => {
    if (value === null) return ABSENT;
    let id = ids.get(value);
    if (id === undefined) {
      id = values.length;
      values.push(value);
      ids.set(value, id);
    }
    return id;
  };
  const source = keyOps.filter(
    (op) => op.call <= cutTime && (op.input.kind !== "get" || isCompletedBy(op, cutTime)),
  );
  const n = source.length;
  const h = {
    count: n,
    kind: new Uint8Array(n),
    arg: new Int32Array(n),
    expected: new Int32Array(n),
    out: new Int32Array(n),
    call: new Float64Array(n),
    ret: new Float64Array(n),
    initialState: intern(initialValue),
  };
  for (const [i, op] of source.entries()) {
    const completed = isCompletedBy(op, cutTime);
    h.call[i] = op.call;
    h.ret[i] = completed ? op.ret : Infinity;
    const input = op.input;
    const output = completed ? op.output : null;
    switch (input.kind) {
      case "get":
        h.kind[i] = OP_GET;
        h.out[i] = output?.kind === "get" ? intern(output.value) : OUT_UNKNOWN;
        break;
      case "put":
        h.kind[i] = OP_PUT;
        h.arg[i] = intern(input.value);
        h.out[i] = output === null ? OUT_UNKNOWN : 0;
        break;
      case "del":
        h.kind[i] = OP_DEL;
        h.out[i] = output === null ? OUT_UNKNOWN : 0;
        break;
      case "cas":
        h.kind[i] = OP_CAS;
        h.arg[i] = intern(input.value);
        h.expected[i] = intern(input.expected);
        h.out[i] = output?.kind === "cas" ? (output.ok ? 1 : 0) : OUT_UNKNOWN;
        break;
    }
  }
  return { history: h, values, source };
}

function isCompletedBy(op: Operation, cutTime: number): boolean {
  return op.output !== null && op.ret <= cutTime;
}

// ---------------------------------------------------------------------------------------------
// Reporting a violation

type Failure = Extract<SearchResult, { kind: "fail" }>;

function reportViolation(
  key: string,
  keyOps: readonly Operation[],
  initialValue: string | null,
  full: CompiledKey,
  fullResult: Failure,
  stepsLeft: number,
): CheckResult {
  const cut = shortestFailingCut(keyOps, initialValue, stepsLeft);
  const byCall = (a: Operation, b: Operation): number => a.call - b.call || a.id - b.id;
  if (cut === null) {
    return {
      kind: "violation",
      key,
      explanation: explain(key, full, fullResult.deadEnd, ""),
      ops: [...keyOps].sort(byCall),
    };
  }
  const ops = keyOps.filter((op) => op.call <= cut.time).sort(byCall);
  const note =
    ops.length < keyOps.length
      ? `It already fails at time ${cut.time}: the ${ops.length} of its ${keyOps.length} operations ` +
        `called by then, with those still running counted as unknown, fail on their own. `
      : "";
  return { kind: "violation", key, explanation: explain(key, cut.compiled, cut.deadEnd, note), ops };
}

interface FailingCut {
  readonly time: number;
  readonly compiled: CompiledKey;
  readonly deadEnd: DeadEnd;
}

/**
 * The earliest return time T such that the key's history truncated at T is already not
 * linearizable. Truncations only lose constraints as T decreases (a linearization of the whole
 * history, stopped after the last operation that returned by T, linearizes the truncation), so
 * failure is monotone in T and a binary search finds the earliest.
 */
function shortestFailingCut(
  keyOps: readonly Operation[],
  initialValue: string | null,
  stepsLeft: number,
): FailingCut | null {
  const times = [...new Set(keyOps.filter((op) => op.output !== null).map((op) => op.ret))].sort(
    (a, b) => a - b,
  );
  let lo = 0;
  let hi = times.length - 1; // the cut at the last return is equivalent to the whole history
  let best: FailingCut | null = null;
  let budget = stepsLeft;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const time = times[mid] ?? Infinity;
    const compiled = compileKey(keyOps, initialValue, time);
    const result = searchKey(compiled.history, { maxSteps: budget, maxMemoWords: MAX_MEMO_WORDS });
    budget -= result.steps;
    if (result.kind === "budget") break;
    if (result.kind === "fail") {
      hi = mid;
      best = { time, compiled, deadEnd: result.deadEnd };
    } else {
      lo = mid + 1;
    }
  }
  // null when every truncation tried passed (the whole key is the shortest failing part) or when
  // the budget ran out first; either way the caller reports the whole key.
  return best;
}

/** At most this many operations of the longest order are spelled out in an explanation. */
const MAX_EXPLAINED_ORDER = 8;

function explain(key: string, compiled: CompiledKey, deadEnd: DeadEnd, note: string): string {
  const { history: h, values, source } = compiled;
  const op = (i: number): Operation => {
    const found = source[i];
    if (found === undefined) throw new Error(`compiled operation ${i} has no source`);
    return found;
  };
  const value = (id: number): string => showValue(values[id] ?? null);
  const order = deadEnd.linearized;
  const shown = order.slice(-MAX_EXPLAINED_ORDER).map((i) => showOperation(op(i)));
  const orderText =
    order.length === 0
      ? `No operation can take effect first (the key starts as ${value(h.initialState)}).`
      : `The longest order found takes ${order.length} of ${h.count} operations: ` +
        `${order.length > shown.length ? "…, " : ""}${shown.join(", ")}, leaving ${value(deadEnd.state)}.`;
  const blocking = op(deadEnd.blocking);
  const reasons = deadEnd.candidates.map(
    (i) => `${showOperation(op(i))} ${whyNot(h, i, deadEnd.state, value)}`,
  );
  return (
    `Key ${showValue(key)} is not linearizable: no order of its operations respects both their timing ` +
    `and a map's behaviour. ${note}${orderText} Then #${blocking.id} (client ${blocking.clientId}) has ` +
    `returned at ${blocking.ret} and must take effect next, but no operation allowed next fits: ` +
    `${reasons.join("; ")}.`
  );
}

function whyNot(h: KeyHistory, i: number, state: number, value: (id: number) => string): string {
  if (stepModel(h, i, state) >= 0) return "fits, but every order continuing with it was already ruled out";
  if (h.kind[i] === OP_GET) return `cannot, the value is ${value(state)}`;
  if (h.out[i] === 1) return `cannot succeed, the value is ${value(state)}`;
  return `cannot fail, the value is ${value(state)}`;
}
