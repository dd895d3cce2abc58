/**
 * CPU busy share and memory from Linux's /proc, the files systeminformation reads too. On Linux
 * (every board we run on) the sampler reads them itself: importing systeminformation costs an
 * agent about 10 MiB of RSS (measured: test/bench/health-bench.ts), a tenth of an idle agent,
 * for two small files. Elsewhere (a laptop running a local cluster) systeminformation is loaded
 * on first use instead.
 */

export interface CpuTimes {
  /** Jiffies spent busy (everything but idle and iowait) and in total, since boot. */
  readonly busy: number;
  readonly total: number;
}

/** The aggregate `cpu` line of /proc/stat. */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return null;
  // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user/nice]
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Busy share (0-100) between two readings, or since boot without a previous one. */
export function busyPct(prev: CpuTimes | null, now: CpuTimes): number | null {
  const dTotal = now.total - (prev?.total ?? 0);
  const dBusy = now.busy - (prev?.busy ?? 0);
  if (dTotal <= 0) return null;
  return Math.max(0, Math.min(100, (100 * dBusy) / dTotal));
}

export interface MemInfo {
  readonly totalBytes: number;
  readonly availableBytes: number;
}

/** MemTotal and MemAvailable (kB in the file); MemFree+Buffers+Cached on kernels before 3.14. */
export function parseMeminfo(text: string): MemInfo | null {
  const kb = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb("MemTotal");
  if (total === null) return null;
  const available = kb("MemAvailable") ?? (kb("MemFree") ?? 0) + (kb("Buffers") ?? 0) + (kb("Cached") ?? 0);
  return { totalBytes: total, availableBytes: available };
}
