/**
 * What watching the board costs an agent: CPU time and length of one health sample (mean and
 * worst of N, after a warm-up), the memory the sampler and its library add to the process, and,
 * for comparison, one call of systeminformation's own `cpuTemperature()` (which forks shells).
 *
 *   node --expose-gc dist/test/bench/health-bench.js [--samples 60] [--data /var/lib/ringleader]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { samples: { type: "string", default: "60" }, data: { type: "string" } },
});
const n = Number(values.samples);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

let dataDir = values.data;
let made: string | null = null;
if (!dataDir) {
  made = await mkdtemp(join(tmpdir(), "rl-health-bench-"));
  for (let i = 0; i < 20; i++) await writeFile(join(made, `f${i}.mdb`), Buffer.alloc(256 * 1024, 1));
  dataDir = made;
}

gc();
const rss0 = process.memoryUsage.rss();
const { BoardSampler } = await import("../../agent/src/health/board.js");
const sampler = new BoardSampler({ dataDir, dirSizeMaxAgeMs: 60_000 });
await sampler.sample();
const cpu: number[] = [];
const wall: number[] = [];
for (let i = 0; i < n; i++) {
  const s = await sampler.sample();
  cpu.push(s.sampleCpuMs);
  wall.push(s.sampleWallMs);
}
gc();
const rss1 = process.memoryUsage.rss();
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const si = (await import("systeminformation")).default;
const t0 = performance.now();
const c0 = process.cpuUsage();
await si.cpuTemperature();
const siCpu = process.cpuUsage(c0);
const siWall = performance.now() - t0;
process.stdout.write(
  JSON.stringify(
    {
      samples: n,
      sampleCpuMsMean: +mean(cpu).toFixed(3),
      sampleCpuMsMax: Math.max(...cpu),
      sampleWallMsMean: +mean(wall).toFixed(3),
      sampleWallMsMax: Math.max(...wall),
      cpuShareAt10s: `${((mean(cpu) / 10_000) * 100).toFixed(4)} %`,
      rssAddedMiB: +((rss1 - rss0) / 1048576).toFixed(1),
      siCpuTemperature: { wallMs: +siWall.toFixed(1), cpuMs: (siCpu.user + siCpu.system) / 1000 },
    },
    null,
    2,
  ) + "\n",
);
if (made) await rm(made, { recursive: true, force: true });
