/**
 * The summary of a bench run for people: the setup in one line, throughput, a latency table per
 * operation kind in milliseconds, and the errors by kind.
 */
import type { BenchProgress, BenchResult } from "./engine.js";
import { formatMix, OP_KINDS } from "./mix.js";

function ms(us: number): string {
  return (us / 1000).toFixed(us < 10_000 ? 3 : 1);
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
    .join("  ")
    .trimEnd();
}

export function formatBenchResult(result: BenchResult): string {
  const lines: string[] = [];
  lines.push(
    `target ${result.target} (${result.endpoints.join(", ")}), concurrency ${result.concurrency}, ` +
      `value ${result.valueSize} B, ${result.keySpace} keys, mix ${formatMix(result.mix)}`,
  );
  const warm = result.warmupSeconds > 0 ? ` after ${result.warmupSeconds} s warm-up` : "";
  lines.push(
    `${result.totalOps} ops in ${result.measuredSeconds.toFixed(1)} s${warm}: ` +
      `${result.opsPerSecond.toFixed(1)} ops/s, ${result.totalErrors} errors` +
      (result.interrupted ? " (interrupted)" : ""),
  );
  if (result.totalOps > 0) {
    lines.push(
      `generator CPU: ${Math.round(result.generatorCpuUs / result.totalOps)} us per op ` +
        `(this process, user + system, while measuring)`,
    );
  }
  const headers = ["op", "ops", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "misses", "errors"];
  const rows = OP_KINDS.flatMap((kind) => {
    const op = result.ops[kind];
    if (!op) return [];
    const l = op.latencyUs;
    return [
      [
        kind,
        String(op.count),
        op.opsPerSecond.toFixed(1),
        ms(l.p50),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        String(op.misses),
        String(op.errors),
      ],
    ];
  });
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  lines.push("", pad(headers, widths), ...rows.map((r) => pad(r, widths)));
  const errors = Object.entries(result.errorsByKind);
  if (errors.length > 0) {
    lines.push("", "errors:", ...errors.map(([kind, count]) => `  ${kind}: ${count}`));
  }
  return lines.join("\n");
}

export function formatProgress(p: BenchProgress): string {
  return `[${p.phase} ${p.elapsedSeconds.toFixed(0).padStart(3)} s] ${p.opsPerSecond.toFixed(0)} ops/s, ${p.errors} errors`;
}
