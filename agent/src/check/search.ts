/**
 * The search at the heart of the linearizability checker, for the operations on ONE key.
 *
 * The algorithm is Wing & Gong's with Lowe's improvements (the one Porcupine popularised):
 * - Call and return events are sorted by time into a doubly-linked list. An operation may be
 *   linearized next only if its call comes before the first return still in the list: otherwise
 *   some operation that has already returned would be ordered after it.
 * - Linearizing an operation steps the model and lifts the operation's two events out of the list
 *   (dancing links, so backtracking puts them back in O(1)). Reaching a return event means the
 *   operation that returned there cannot be linearized in this branch: backtrack.
 * - Every configuration entered (set of linearized operations, model state) is memoised; entering
 *   one a second time is refused, which is what turns an exponential search into one that is fast
 *   on the histories real systems produce.
 *
 * Because every operation touches exactly one key and the keys of a map are independent,
 * linearizability of the whole history is the conjunction of linearizability per key
 * (P-compositionality), so the model here is a single register and its state is one interned value.
 *
 * Operations whose outcome is unknown (a timeout, a crashed node) have their return event at +∞:
 * they may be linearized anywhere after their call, and the search succeeds as soon as every
 * operation with a known outcome is linearized, which covers "never took effect".
 */
import { ADDED, ConfigSet, FULL, zobristKey } from "./config-set.js";

export const OP_GET = 0;
export const OP_PUT = 1;
export const OP_DEL = 2;
export const OP_CAS = 3;

/** Interned value id of "absent"; real values are 1, 2, ... */
export const ABSENT = 0;
/** `out` of an operation whose outcome is unknown. */
export const OUT_UNKNOWN = -1;

/** One key's operations compiled to integers. Index i describes operation i in every array. */
export interface KeyHistory {
  readonly count: number;
  /** OP_GET, OP_PUT, OP_DEL or OP_CAS. */
  readonly kind: Uint8Array;
  /** put and cas: the value id written. */
  readonly arg: Int32Array;
  /** cas: the value id expected (ABSENT = only if absent). */
  readonly expected: Int32Array;
  /** get: the value id seen; cas: 1 succeeded, 0 failed; put and del: 0; OUT_UNKNOWN if unknown. */
  readonly out: Int32Array;
  readonly call: Float64Array;
  /** +∞ when the outcome is unknown. */
  readonly ret: Float64Array;
  /** Interned value id of the key's value before the history starts. */
  readonly initialState: number;
}

/** Where the search got furthest before it had to give up on every branch. */
export interface DeadEnd {
  /** Operations in the order linearized, longest such order found. */
  readonly linearized: readonly number[];
  /** Register value after them. */
  readonly state: number;
  /** The operation whose return event stopped the search: it had to go next and could not. */
  readonly blocking: number;
  /** Operations that were allowed to go next (calls before `blocking`'s return), in event order. */
  readonly candidates: readonly number[];
}

export type SearchResult =
  | { readonly kind: "ok"; readonly steps: number }
  | { readonly kind: "fail"; readonly steps: number; readonly deadEnd: DeadEnd }
  | { readonly kind: "budget"; readonly steps: number; readonly reason: string };

export interface SearchLimits {
  /** Model steps allowed; one step is one attempt to linearize one operation. */
  readonly maxSteps: number;
  /** Bound on the memory of the memo table, in 32-bit words (see `ConfigSet`). */
  readonly maxMemoWords: number;
}

/** At most this many candidates are kept in a dead end; the explanation never lists more. */
const MAX_DEAD_END_CANDIDATES = 16;

/**
 * Applies operation `op` to register value `state`. Returns the new state, or -1 when the
 * operation's recorded output is impossible from `state`.
 */
export function stepModel(h: KeyHistory, op: number, state: number): number {
  const out = h.out[op] ?? OUT_UNKNOWN;
  switch (h.kind[op]) {
    case OP_GET:
      // Unknown gets are dropped when compiling; a get here always has an output to check.
      return out === state ? state : -1;
    case OP_PUT:
      return h.arg[op] ?? ABSENT;
    case OP_DEL:
      return ABSENT;
    case OP_CAS: {
      const matches = state === h.expected[op];
      if (out === OUT_UNKNOWN) return matches ? (h.arg[op] ?? ABSENT) : state;
      if (out === 1) return matches ? (h.arg[op] ?? ABSENT) : -1;
      return matches ? -1 : state;
    }
    default:
      throw new Error(`unknown compiled op kind ${String(h.kind[op])}`);
  }
}

/** Searches for a linearization of `h`. Never takes more than `limits.maxSteps` model steps. */
export function searchKey(h: KeyHistory, limits: SearchLimits): SearchResult {
  const n = h.count;
  if (n === 0) return { kind: "ok", steps: 0 };
  const list = new EventList(h);
  const words = Math.ceil(n / 32);
  const memo = new ConfigSet(words, limits.maxMemoWords);
  const bits = new Uint32Array(words);
  const zobrist = new Int32Array(n);
  let pending = 0; // operations with a known outcome not yet linearized
  for (let i = 0; i < n; i++) {
    zobrist[i] = zobristKey(i);
    if ((h.out[i] ?? OUT_UNKNOWN) !== OUT_UNKNOWN) pending++;
  }
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  let depth = 0;
  let state = h.initialState;
  let setHash = 0;
  let steps = 0;
  let deadEnd: DeadEnd | null = null;

  let node = list.first();
  for (;;) {
    if (pending === 0) return { kind: "ok", steps };
    if (list.isCall(node)) {
      const op = list.opOf(node);
      if (steps >= limits.maxSteps) {
        return { kind: "budget", steps, reason: `step budget of ${limits.maxSteps} exhausted` };
      }
      steps++;
      const next = stepModel(h, op, state);
      if (next >= 0) {
        const word = op >>> 5;
        const bit = 1 << (op & 31);
        bits[word] = (bits[word] ?? 0) ^ bit;
        const outcome = memo.add(bits, setHash ^ (zobrist[op] ?? 0), next);
        if (outcome === ADDED) {
          stackOp[depth] = op;
          stackState[depth] = state;
          depth++;
          setHash ^= zobrist[op] ?? 0;
          state = next;
          list.lift(op);
          if ((h.out[op] ?? OUT_UNKNOWN) !== OUT_UNKNOWN) pending--;
          node = list.first();
          continue;
        }
        bits[word] = (bits[word] ?? 0) ^ bit;
        if (outcome === FULL) {
          return {
            kind: "budget",
            steps,
            reason: `memo table reached its bound of ${limits.maxMemoWords} words (${memo.size} configurations)`,
          };
        }
      }
      node = list.nextOf(node);
      continue;
    }
    // A return event: its operation had to be linearized by now and was not, in this branch. The
    // tail is never reached: some operation with a known outcome is pending, so its return comes first.
    if (node === list.tail) throw new Error("linearizability search ran past the last event");
    if (deadEnd === null || depth > deadEnd.linearized.length) {
      deadEnd = {
        linearized: Array.from(stackOp.subarray(0, depth)),
        state,
        blocking: list.opOf(node),
        candidates: list.callsBefore(node, MAX_DEAD_END_CANDIDATES),
      };
    }
    if (depth === 0) return { kind: "fail", steps, deadEnd };
    depth--;
    const op = stackOp[depth] ?? 0;
    state = stackState[depth] ?? h.initialState;
    setHash ^= zobrist[op] ?? 0;
    bits[op >>> 5] = (bits[op >>> 5] ?? 0) ^ (1 << (op & 31));
    if ((h.out[op] ?? OUT_UNKNOWN) !== OUT_UNKNOWN) pending++;
    list.unlift(op);
    node = list.nextOf(list.callNode(op));
  }
}

/**
 * Call and return events of n operations in time order, as a doubly-linked list over typed arrays.
 * Node i < n is the call of operation i, node n + i its return; 2n is the head sentinel and 2n + 1
 * the tail sentinel.
 */
class EventList {
  private readonly n: number;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly head: number;
  readonly tail: number;

  constructor(h: KeyHistory) {
    const n = h.count;
    this.n = n;
    this.head = 2 * n;
    const tail = 2 * n + 1;
    this.tail = tail;
    const order = Array.from({ length: 2 * n }, (_, i) => i);
    const time = (node: number): number => (node < n ? (h.call[node] ?? 0) : (h.ret[node - n] ?? Infinity));
    // At equal times calls go first: an operation that returns at the same instant another is
    // called is concurrent with it, so neither is forced before the other.
    order.sort((a, b) => time(a) - time(b) || Number(a >= n) - Number(b >= n) || a - b);
    this.next = new Int32Array(2 * n + 2);
    this.prev = new Int32Array(2 * n + 2);
    let before = this.head;
    for (const node of order) {
      this.next[before] = node;
      this.prev[node] = before;
      before = node;
    }
    this.next[before] = tail;
    this.prev[tail] = before;
  }

  first(): number {
    return this.next[this.head] ?? this.head;
  }

  nextOf(node: number): number {
    return this.next[node] ?? this.head;
  }

  isCall(node: number): boolean {
    return node < this.n;
  }

  opOf(node: number): number {
    return node < this.n ? node : node - this.n;
  }

  callNode(op: number): number {
    return op;
  }

  /** Removes both events of `op`. Must be undone by `unlift` in last-in, first-out order. */
  lift(op: number): void {
    this.remove(op);
    this.remove(op + this.n);
  }

  unlift(op: number): void {
    this.restore(op + this.n);
    this.restore(op);
  }

  /** Operations whose call precedes `node` in the list, at most `limit` of them. */
  callsBefore(node: number, limit: number): number[] {
    const ops: number[] = [];
    for (let at = this.first(); at !== node && ops.length < limit; at = this.nextOf(at)) {
      if (this.isCall(at)) ops.push(at);
    }
    return ops;
  }

  private remove(node: number): void {
    const p = this.prev[node] ?? this.head;
    const q = this.next[node] ?? this.head;
    this.next[p] = q;
    this.prev[q] = p;
  }

  private restore(node: number): void {
    this.next[this.prev[node] ?? this.head] = node;
    this.prev[this.next[node] ?? this.head] = node;
  }
}
