/**
 * How long the linearizability checker takes on simulator-sized histories. Not a test: it prints
 * timings. Run after a build: `node dist/test/bench/linearizability-bench.js [seeds]`.
 */
import { checkKvHistory, type Operation } from "../../agent/src/check/linearizability.js";
import { seededRandom, simulateKvHistory } from "../../agent/src/check/simulated-history.js";

interface Shape {
  readonly name: string;
  readonly operations: number;
  readonly clients: number;
  readonly keys: number;
  readonly unknownRate: number;
}

const shapes: readonly Shape[] = [
  { name: "3000 ops, 10 keys, 8 clients", operations: 3000, clients: 8, keys: 10, unknownRate: 0 },
  {
    name: "3000 ops, 10 keys, 8 clients, 2% unknown",
    operations: 3000,
    clients: 8,
    keys: 10,
    unknownRate: 0.02,
  },
  { name: "3000 ops, 1 key, 8 clients", operations: 3000, clients: 8, keys: 1, unknownRate: 0 },
  { name: "300 ops, 5 keys, 3 clients", operations: 300, clients: 3, keys: 5, unknownRate: 0.02 },
];

/**
 * Replaces the output of the last completed get with another value that is written in the run
 * (v0 or v1). Under concurrency that is often, not always, a violation; the verdicts are printed.
 */
function corrupt(history: readonly Operation[]): Operation[] {
  const copy = history.map((op) => ({ ...op }));
  for (let i = copy.length - 1; i >= 0; i--) {
    const op = copy[i];
    if (op === undefined || op.input.kind !== "get" || op.output?.kind !== "get") continue;
    const other = op.output.value === "v0" ? "v1" : "v0";
    copy[i] = { ...op, output: { kind: "get", value: other } };
    return copy;
  }
  return copy;
}

function time<T>(f: () => T): { result: T; ms: number } {
  const start = process.hrtime.bigint();
  const result = f();
  return { result, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

const seeds = Number(process.argv[2] ?? 20);
for (const shape of shapes) {
  const okMs: number[] = [];
  const badMs: number[] = [];
  const verdicts = new Map<string, number>();
  for (let seed = 1; seed <= seeds; seed++) {
    const history = simulateKvHistory(seededRandom(seed), { ...shape, valuesPerKey: 4 });
    const ok = time(() => checkKvHistory(history));
    if (ok.result.kind !== "ok") throw new Error(`seed ${seed}: generated history judged ${ok.result.kind}`);
    okMs.push(ok.ms);
    const bad = time(() => checkKvHistory(corrupt(history)));
    verdicts.set(bad.result.kind, (verdicts.get(bad.result.kind) ?? 0) + 1);
    badMs.push(bad.ms);
  }
  const stats = (xs: number[]): string => {
    const sorted = [...xs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const max = sorted[sorted.length - 1] ?? 0;
    return `median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms`;
  };
  console.log(`${shape.name} (${seeds} seeds)`);
  console.log(`  linearizable:            ${stats(okMs)}`);
  console.log(
    `  one read changed:        ${stats(badMs)}  verdicts ${JSON.stringify(Object.fromEntries(verdicts))}`,
  );
}
