/**
 * One board's health, sampled by the agent itself: CPU load, CPU temperature, memory, the disk
 * that holds the data directory, the data directory's size, uptime, Raspberry Pi throttling and
 * the SD card's write counter.
 *
 * Sampling must be cheap on a Pi Zero 2 W, so every source is a file read or a syscall: CPU and
 * memory from /proc (see proc.ts; `systeminformation` where there is no /proc), disk space from
 * `statfs`, the temperature from the thermal zone that systeminformation itself would read. We
 * do not call `si.cpuTemperature()`: on Linux it runs three shell pipelines per call, one of
 * them with `execSync`, which would stall the Raft ticks of the agent for the length of a fork.
 */
import { readFile, readdir, statfs } from "node:fs/promises";
import { cpus, loadavg, uptime as osUptime } from "node:os";
import { join } from "node:path";
import { DirSizeCache } from "./dir-size.js";
import { busyPct, parseMeminfo, parseProcStat, type CpuTimes } from "./proc.js";
import {
  detectThrottleReader,
  type ThrottleReader,
  type ThrottleSource,
  type ThrottleState,
} from "./throttle.js";

export interface SdCard {
  /** The kernel's block device, e.g. `mmcblk0`. */
  readonly device: string;
  readonly name: string | null;
  readonly manufacturerId: string | null;
  readonly date: string | null;
  readonly sizeBytes: number | null;
  /** Bytes written to the card since boot (all processes), from the block layer's counter. */
  readonly writtenBytes: number | null;
}

export interface BoardHealth {
  /** Wall-clock time of the sample, ms since the epoch (the sampling board's clock). */
  readonly sampledAt: number;
  /** Busy share of all CPUs since the previous sample, 0-100. */
  readonly cpuLoadPct: number | null;
  readonly load1: number;
  readonly cpus: number;
  readonly tempC: number | null;
  readonly memTotalBytes: number;
  readonly memAvailableBytes: number;
  /** The filesystem that holds the data directory. */
  readonly diskTotalBytes: number | null;
  readonly diskFreeBytes: number | null;
  /** Bytes the data directory occupies on disk (LMDB and all), refreshed at most once a minute. */
  readonly dataDirBytes: number | null;
  /** Size of the LMDB data file(s) in the data directory. */
  readonly lmdbBytes: number | null;
  readonly uptimeSec: number;
  readonly agentUptimeSec: number;
  readonly rssBytes: number;
  /** Bytes this agent process caused to be written to storage (/proc/self/io), null off Linux. */
  readonly processWrittenBytes: number | null;
  /** null: unknown (no firmware flags on this board). */
  readonly throttle: ThrottleState | null;
  readonly throttleSource: ThrottleSource;
  readonly sd: SdCard | null;
  /** What taking this sample cost: CPU time of the process meanwhile, and its length. */
  readonly sampleCpuMs: number;
  readonly sampleWallMs: number;
}

export interface BoardSamplerOptions {
  readonly dataDir: string | null;
  /** Clock for `sampledAt`; tests pass their own. */
  readonly now?: () => number;
  /** Roots to read from, so tests can point them at recorded trees. */
  readonly sysRoot?: string;
  readonly procRoot?: string;
  readonly throttle?: ThrottleReader;
  readonly dirSizeMaxAgeMs?: number;
}

async function readNumber(path: string): Promise<number | null> {
  try {
    const n = Number((await readFile(path, "utf8")).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return null;
  }
}

/** The thermal zone to read: the one named after the CPU or SoC, else x86's package sensor, else the first. */
export async function findCpuThermalZone(sysRoot: string): Promise<string | null> {
  const dir = join(sysRoot, "class/thermal");
  let zones: string[];
  try {
    zones = (await readdir(dir)).filter((z) => z.startsWith("thermal_zone")).slice(0, 32);
  } catch {
    return null;
  }
  const typed: [string, string][] = [];
  for (const z of zones) {
    const type = await readText(join(dir, z, "type"));
    if (type !== null && (await readNumber(join(dir, z, "temp"))) !== null)
      typed.push([z, type.toLowerCase()]);
  }
  const pick =
    typed.find(([, t]) => t.includes("cpu") || t.includes("soc")) ??
    typed.find(([, t]) => t.includes("x86_pkg")) ??
    typed[0];
  return pick ? join(dir, pick[0], "temp") : null;
}

/** `/proc/self/io`'s `write_bytes`: what this process sent to the block layer. */
export function parseProcIoWriteBytes(text: string): number | null {
  const m = /^write_bytes:\s*(\d+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** Sectors written, the 7th field of `/sys/block/<dev>/stat` (512-byte units whatever the device). */
export function parseBlockStatWrittenBytes(text: string): number | null {
  const fields = text.trim().split(/\s+/);
  const sectors = Number(fields[6]);
  return fields.length >= 7 && Number.isFinite(sectors) ? sectors * 512 : null;
}

export class BoardSampler {
  private readonly now: () => number;
  private readonly sysRoot: string;
  private readonly procRoot: string;
  private readonly dirSize: DirSizeCache | null;
  private throttle: ThrottleReader | null;
  private thermal: string | null | undefined;
  private sdDevice: string | null | undefined;
  private sdStatic: Omit<SdCard, "writtenBytes"> | null = null;
  private lastCpu: CpuTimes | null = null;

  constructor(private readonly opts: BoardSamplerOptions) {
    this.now = opts.now ?? Date.now;
    this.sysRoot = opts.sysRoot ?? "/sys";
    this.procRoot = opts.procRoot ?? "/proc";
    this.throttle = opts.throttle ?? null;
    this.dirSize = opts.dataDir
      ? new DirSizeCache(opts.dataDir, { maxAgeMs: opts.dirSizeMaxAgeMs ?? 60_000 })
      : null;
  }

  /** Finds, once, which files this board has; later samples only read them. */
  private async discover(): Promise<void> {
    this.throttle ??= await detectThrottleReader({
      sysfs: join(this.sysRoot, "devices/platform/soc/soc:firmware/get_throttled"),
      hwmon: join(this.sysRoot, "class/hwmon"),
    });
    if (this.thermal === undefined) this.thermal = await findCpuThermalZone(this.sysRoot);
    if (this.sdDevice === undefined) {
      const dev = "mmcblk0";
      const base = join(this.sysRoot, "block", dev);
      const size = await readNumber(join(base, "size"));
      if (size === null) {
        this.sdDevice = null;
      } else {
        this.sdDevice = dev;
        this.sdStatic = {
          device: dev,
          name: await readText(join(base, "device/name")),
          manufacturerId: await readText(join(base, "device/manfid")),
          date: await readText(join(base, "device/date")),
          sizeBytes: size * 512,
        };
      }
    }
  }

  /** CPU busy share since the last sample, and memory: /proc, or systeminformation without it. */
  private async cpuAndMemory(): Promise<{
    busyPct: number | null;
    mem: { totalBytes: number; availableBytes: number } | null;
  }> {
    const [stat, meminfo] = await Promise.all([
      readText(join(this.procRoot, "stat")),
      readText(join(this.procRoot, "meminfo")),
    ]);
    const times = stat === null ? null : parseProcStat(stat);
    const mem = meminfo === null ? null : parseMeminfo(meminfo);
    if (times && mem) {
      // Two samples within one clock tick see no change: the share since boot stands in.
      const pct = busyPct(this.lastCpu, times) ?? busyPct(null, times);
      this.lastCpu = times;
      return { busyPct: pct, mem };
    }
    try {
      const si = (await import("systeminformation")).default;
      const [load, m] = await Promise.all([si.currentLoad(), si.mem()]);
      return {
        busyPct: Number.isFinite(load.currentLoad) ? load.currentLoad : null,
        mem: { totalBytes: m.total, availableBytes: m.available },
      };
    } catch {
      return { busyPct: null, mem: null };
    }
  }

  async sample(): Promise<BoardHealth> {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await this.discover();
    const [cpuMem, disk, temp, throttle, dir, procIo, sdStat] = await Promise.all([
      this.cpuAndMemory(),
      this.opts.dataDir ? statfs(this.opts.dataDir).catch(() => null) : Promise.resolve(null),
      this.thermal ? readNumber(this.thermal) : Promise.resolve(null),
      this.throttle!.read().catch(() => null),
      this.dirSize ? this.dirSize.get().catch(() => null) : Promise.resolve(null),
      readText(join(this.procRoot, "self/io")),
      this.sdDevice ? readText(join(this.sysRoot, "block", this.sdDevice, "stat")) : Promise.resolve(null),
    ]);
    const cpu = process.cpuUsage(cpu0);
    return {
      sampledAt: this.now(),
      cpuLoadPct: cpuMem.busyPct === null ? null : round1(cpuMem.busyPct),
      load1: round2(loadavg()[0] ?? 0),
      cpus: cpus().length,
      // Thermal zones report millidegrees.
      tempC: temp === null ? null : round1(temp / 1000),
      memTotalBytes: cpuMem.mem?.totalBytes ?? 0,
      memAvailableBytes: cpuMem.mem?.availableBytes ?? 0,
      diskTotalBytes: disk ? disk.blocks * disk.bsize : null,
      diskFreeBytes: disk ? disk.bavail * disk.bsize : null,
      dataDirBytes: dir?.bytes ?? null,
      lmdbBytes: dir?.lmdbBytes ?? null,
      uptimeSec: Math.round(osUptime()),
      agentUptimeSec: Math.round(process.uptime()),
      rssBytes: process.memoryUsage.rss(),
      processWrittenBytes: procIo === null ? null : parseProcIoWriteBytes(procIo),
      throttle,
      throttleSource: this.throttle!.source,
      sd: this.sdStatic
        ? { ...this.sdStatic, writtenBytes: sdStat === null ? null : parseBlockStatWrittenBytes(sdStat) }
        : null,
      sampleCpuMs: round2((cpu.user + cpu.system) / 1000),
      sampleWallMs: round2(performance.now() - t0),
    };
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
