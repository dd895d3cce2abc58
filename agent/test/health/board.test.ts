/**
 * The board sampler on this machine (real /proc, real statfs, no Pi firmware: throttling must be
 * unknown, not "fine") and on a recorded Raspberry Pi sysfs tree (thermal zone, SD card).
 */
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BoardSampler,
  findCpuThermalZone,
  parseBlockStatWrittenBytes,
  parseProcIoWriteBytes,
} from "../../src/health/board.js";
import { DirSizeCache, measureDir } from "../../src/health/dir-size.js";
import { busyPct, parseMeminfo, parseProcStat } from "../../src/health/proc.js";

describe("board sampler", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rl-board-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("samples this machine: load, memory, disk, data size; throttling unknown; cost measured", async () => {
    const data = join(dir, "data");
    await mkdir(data);
    await writeFile(join(data, "data.mdb"), Buffer.alloc(64 * 1024, 1));
    await writeFile(join(data, "other.bin"), Buffer.alloc(8 * 1024, 1));
    const sampler = new BoardSampler({ dataDir: data, sysRoot: join(dir, "nosys") });
    await sampler.sample();
    const b = await sampler.sample();
    assert.ok(b.cpuLoadPct !== null && b.cpuLoadPct >= 0 && b.cpuLoadPct <= 100, String(b.cpuLoadPct));
    assert.ok(b.memTotalBytes > 0 && b.memAvailableBytes > 0 && b.memAvailableBytes <= b.memTotalBytes);
    assert.ok(b.diskTotalBytes! > 0 && b.diskFreeBytes! >= 0 && b.diskFreeBytes! <= b.diskTotalBytes!);
    assert.ok(b.dataDirBytes! >= 72 * 1024, String(b.dataDirBytes));
    assert.ok(b.lmdbBytes! >= 64 * 1024 && b.lmdbBytes! < b.dataDirBytes!);
    assert.equal(b.throttle, null);
    assert.equal(b.throttleSource, "none");
    assert.equal(b.tempC, null);
    assert.equal(b.sd, null);
    assert.ok(b.sampleCpuMs >= 0 && b.sampleWallMs > 0);
    assert.ok(b.uptimeSec > 0 && b.rssBytes > 0);
  });

  it("reads a recorded Pi tree: cpu-thermal zone, firmware flags, SD card", async () => {
    const sys = join(dir, "pisys");
    await mkdir(join(sys, "class/thermal/thermal_zone0"), { recursive: true });
    await mkdir(join(sys, "class/thermal/thermal_zone1"), { recursive: true });
    await writeFile(join(sys, "class/thermal/thermal_zone0/type"), "gpu-thermal\n");
    await writeFile(join(sys, "class/thermal/thermal_zone0/temp"), "40000\n");
    await writeFile(join(sys, "class/thermal/thermal_zone1/type"), "cpu-thermal\n");
    await writeFile(join(sys, "class/thermal/thermal_zone1/temp"), "61835\n");
    await mkdir(join(sys, "devices/platform/soc/soc:firmware"), { recursive: true });
    await writeFile(join(sys, "devices/platform/soc/soc:firmware/get_throttled"), "50005\n");
    await mkdir(join(sys, "block/mmcblk0/device"), { recursive: true });
    await writeFile(join(sys, "block/mmcblk0/size"), "62333952\n");
    await writeFile(join(sys, "block/mmcblk0/device/name"), "SN64G\n");
    await writeFile(join(sys, "block/mmcblk0/device/manfid"), "0x000003\n");
    await writeFile(join(sys, "block/mmcblk0/device/date"), "09/2023\n");
    await writeFile(
      join(sys, "block/mmcblk0/stat"),
      "   23071     8812  1676046    64232    14418    17493  1134200   293976        0    69604   358208\n",
    );
    assert.equal(await findCpuThermalZone(sys), join(sys, "class/thermal/thermal_zone1/temp"));
    const b = await new BoardSampler({ dataDir: null, sysRoot: sys }).sample();
    assert.equal(b.tempC, 61.8);
    assert.equal(b.throttleSource, "sysfs");
    assert.equal(b.throttle?.underVoltageNow, true);
    assert.deepEqual(b.sd, {
      device: "mmcblk0",
      name: "SN64G",
      manufacturerId: "0x000003",
      date: "09/2023",
      sizeBytes: 62333952 * 512,
      writtenBytes: 1134200 * 512,
    });
    assert.equal(b.dataDirBytes, null);
  });

  it("reads CPU busy share and memory from recorded /proc files", () => {
    // A Pi 4's /proc/stat, then the same a few seconds later.
    const a = parseProcStat("cpu  1000 0 500 8000 500 0 0 0 0 0\ncpu0 250 0 125 2000 125 0 0 0 0 0\n")!;
    const b = parseProcStat("cpu  1300 0 600 8500 600 0 0 0 0 0\n")!;
    assert.deepEqual(a, { busy: 1500, total: 10000 });
    assert.equal(busyPct(null, a), 15);
    assert.equal(busyPct(a, b), 40); // 400 busy of 1000 jiffies
    assert.equal(busyPct(b, b), null);
    assert.equal(parseProcStat("intr 1 2 3\n"), null);
    assert.deepEqual(
      parseMeminfo("MemTotal:        3884096 kB\nMemFree:          200000 kB\nMemAvailable:    3000000 kB\n"),
      {
        totalBytes: 3884096 * 1024,
        availableBytes: 3000000 * 1024,
      },
    );
    // Kernels before 3.14 have no MemAvailable.
    assert.equal(
      parseMeminfo("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n")?.availableBytes,
      35 * 1024,
    );
    assert.equal(parseMeminfo("garbage"), null);
  });

  it("parses /proc/self/io and block stat lines", () => {
    assert.equal(
      parseProcIoWriteBytes(
        "rchar: 1\nwchar: 2\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n",
      ),
      4096,
    );
    assert.equal(parseProcIoWriteBytes("rchar: 1\n"), null);
    assert.equal(parseBlockStatWrittenBytes("1 2 3 4 5 6 100 8 9 10 11"), 51200);
    assert.equal(parseBlockStatWrittenBytes("1 2 3"), null);
  });

  it("bounds the data directory walk and caches it", async () => {
    const tree = join(dir, "tree");
    await mkdir(join(tree, "a/b/c"), { recursive: true });
    for (let i = 0; i < 20; i++) await writeFile(join(tree, `f${i}`), "x");
    await writeFile(join(tree, "a/b/c/deep"), "x");
    const full = await measureDir(tree);
    assert.equal(full.truncated, false);
    assert.equal(full.files, 24);
    const capped = await measureDir(tree, { maxFiles: 5, maxDepth: 8 });
    assert.equal(capped.truncated, true);
    assert.equal(capped.files, 5);
    const shallow = await measureDir(tree, { maxFiles: 100, maxDepth: 1 });
    assert.equal(shallow.truncated, true);

    let now = 0;
    const cache = new DirSizeCache(tree, { maxAgeMs: 1000, now: () => now });
    const first = await cache.get();
    await writeFile(join(tree, "new"), Buffer.alloc(8192, 1));
    assert.equal((await cache.get()).files, first.files, "cached within maxAgeMs");
    now = 2000;
    assert.equal((await cache.get()).files, first.files + 1, "measured again after maxAgeMs");
  });
});
