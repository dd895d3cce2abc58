/**
 * Generates key-value histories that are linearizable by construction: concurrent clients run
 * operations against a real sequential map, and each operation takes effect at one instant
 * between its call and its return. Used to test the checker (every such history must pass) and to
 * measure it; the simulator team can use it to exercise their recording path without a cluster.
 */
import type { KvInput, KvOutput, Operation } from "./linearizability.js";

export interface SimulatedHistoryOptions {
  /** Number of operations to issue. */
  readonly operations: number;
  /** Clients running at once; each runs one operation at a time. */
  readonly clients: number;
  /** Keys are `k0` .. `k{keys-1}`. */
  readonly keys: number;
  /** Values written are drawn from `v0` .. `v{n-1}`; a small set makes reads ambiguous. Default 4. */
  readonly valuesPerKey?: number;
  /**
   * Probability that an operation ends with an unknown outcome (its client times out). Such an
   * operation takes effect or not with equal odds, and its client is replaced by a fresh client
   * id, because the old one can no longer tell when its operation finished. Default 0.
   */
  readonly unknownRate?: number;
  /** Values the keys hold at the start. */
  readonly initial?: ReadonlyMap<string, string>;
}

/** Largest history this generator makes; the checker's callers never need more. */
export const MAX_SIMULATED_OPERATIONS = 1_000_000;

type Slot =
  | { phase: "idle"; clientId: number }
  | { phase: "called"; clientId: number; op: Operation }
  | { phase: "applied"; clientId: number; op: Operation; output: KvOutput };

/**
 * Runs the simulation. `random` returns numbers uniform in [0, 1); pass `seededRandom(seed)` for
 * a reproducible history.
 */
export function simulateKvHistory(random: () => number, opts: SimulatedHistoryOptions): Operation[] {
  const { operations, clients, keys } = opts;
  const valuesPerKey = opts.valuesPerKey ?? 4;
  const unknownRate = opts.unknownRate ?? 0;
  if (!Number.isInteger(operations) || operations < 0 || operations > MAX_SIMULATED_OPERATIONS) {
    throw new RangeError(
      `operations must be an integer in 0..${MAX_SIMULATED_OPERATIONS}, got ${operations}`,
    );
  }
  for (const [name, n] of [
    ["clients", clients],
    ["keys", keys],
    ["valuesPerKey", valuesPerKey],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
  }
  if (!(unknownRate >= 0 && unknownRate <= 1)) throw new RangeError(`unknownRate must be in [0, 1]`);

  const pick = (n: number): number => Math.min(n - 1, Math.floor(random() * n));
  const map = new Map<string, string>(opts.initial ?? []);
  const slots: Slot[] = Array.from({ length: clients }, (_, i) => ({ phase: "idle", clientId: i }));
  const history: Operation[] = [];
  let nextClientId = clients;
  let time = 0;
  let busy = 0;
  while (history.length < operations || busy > 0) {
    // Time sometimes stands still, so that calls and returns share instants as they do in ticks.
    time += random() < 0.3 ? 0 : 1 + pick(3);
    const index = pick(clients);
    const slot = slots[index];
    if (slot === undefined) throw new Error("client slot out of range");
    switch (slot.phase) {
      case "idle": {
        if (history.length >= operations) break;
        const input = randomInput(pick, map, keys, valuesPerKey);
        const op: Operation = {
          id: history.length,
          clientId: slot.clientId,
          input,
          call: time,
          ret: Infinity,
          output: null,
        };
        history.push(op);
        slots[index] = { phase: "called", clientId: slot.clientId, op };
        busy++;
        break;
      }
      case "called":
        if (random() < unknownRate) {
          if (random() < 0.5) apply(map, slot.op.input);
          slots[index] = { phase: "idle", clientId: nextClientId++ };
          busy--;
        } else {
          // The linearization point: the operation takes effect now, between call and return.
          slots[index] = {
            phase: "applied",
            clientId: slot.clientId,
            op: slot.op,
            output: apply(map, slot.op.input),
          };
        }
        break;
      case "applied":
        slot.op.ret = time;
        slot.op.output = slot.output;
        slots[index] = { phase: "idle", clientId: slot.clientId };
        busy--;
        break;
    }
  }
  return history;
}

function randomInput(
  pick: (n: number) => number,
  map: ReadonlyMap<string, string>,
  keys: number,
  valuesPerKey: number,
): KvInput {
  const key = `k${pick(keys)}`;
  const value = `v${pick(valuesPerKey)}`;
  const roll = pick(20);
  if (roll < 8) return { kind: "get", key };
  if (roll < 13) return { kind: "put", key, value };
  if (roll < 15) return { kind: "del", key };
  // Expect the value current at call time half of the time, so that many cas operations succeed.
  const expected =
    roll < 18 ? (map.get(key) ?? null) : pick(valuesPerKey + 1) === 0 ? null : `v${pick(valuesPerKey)}`;
  return { kind: "cas", key, expected, value };
}

/** Applies `input` to `map` and returns what the client sees. */
export function apply(map: Map<string, string>, input: KvInput): KvOutput {
  switch (input.kind) {
    case "get":
      return { kind: "get", value: map.get(input.key) ?? null };
    case "put":
      map.set(input.key, input.value);
      return { kind: "ok" };
    case "del":
      map.delete(input.key);
      return { kind: "ok" };
    case "cas": {
      const ok = (map.get(input.key) ?? null) === input.expected;
      if (ok) map.set(input.key, input.value);
      return { kind: "cas", ok };
    }
  }
}

/** A small, fast, seeded generator (mulberry32) returning numbers uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
