/**
 * What durability costs on this disk: the node store's durable appends per second with one
 * 100-byte entry per fsync and with group commit, the latency of a durable save, the raw fsync
 * latency of the disk for comparison, and the bytes the process sent to the disk per 1,000
 * entries (from /proc/self/io `write_bytes`), the figure that wears out SD cards.
 *
 *   npx tsc -p tsconfig.json && node dist/test/bench/storage-bench.js [--quick] [--dir /path]
 *
 * Run it on the disk you care about (`--dir` on the SD card); the default is os.tmpdir().
 */
import {
  closeSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Entry } from "../../agent/src/raft/types.js";
import { NodeStore } from "../../agent/src/storage/index.js";

const quick = process.argv.includes("--quick");
const dirArg = process.argv.indexOf("--dir");
const baseDir = dirArg >= 0 ? process.argv[dirArg + 1]! : tmpdir();
const scale = quick ? 0.1 : 1;
const ENTRY_BYTES = 100;

interface Row {
  scenario: string;
  entries: number;
  fsyncs: number;
  entriesPerSec: number;
  saveP50Ms: number;
  saveP99Ms: number;
  bytesPer1000: number;
}

function ioWriteBytes(): number {
  const m = /write_bytes: (\d+)/.exec(readFileSync("/proc/self/io", "utf8"));
  return m ? Number(m[1]) : NaN;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function entry(index: number): Entry {
  const data = new Uint8Array(ENTRY_BYTES);
  for (let i = 0; i < ENTRY_BYTES; i++) data[i] = (index * 31 + i) & 0xff;
  return { index, term: 1, type: "normal", data };
}

async function scenario(
  name: string,
  rounds: number,
  groups: number,
  entriesPerSave: number,
  overlappingSync = false,
): Promise<Row> {
  const dir = mkdtempSync(join(baseDir, "ringleader-bench-"));
  const store = await NodeStore.open({ path: dir, overlappingSync });
  try {
    // Warm up: create the groups' records and grow the file outside the measurement.
    await Promise.all(
      Array.from({ length: groups }, (_, g) =>
        store.group(g).save({ hardState: null, entries: [entry(1)], snapshot: null }),
      ),
    );
    const next = new Array<number>(groups).fill(2);
    const latencies: number[] = [];
    const before = store.stats();
    const bytesBefore = ioWriteBytes();
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const started = performance.now();
      await Promise.all(
        Array.from({ length: groups }, (_, g) => {
          const ents: Entry[] = [];
          for (let i = 0; i < entriesPerSave; i++) ents.push(entry(next[g]! + i));
          next[g]! += entriesPerSave;
          return store
            .group(g)
            .save({ hardState: { term: 1, vote: "", commit: next[g]! - 1 }, entries: ents, snapshot: null });
        }),
      );
      latencies.push(performance.now() - started);
    }
    const elapsedMs = performance.now() - t0;
    const bytes = ioWriteBytes() - bytesBefore;
    const fsyncs = store.stats().durableBatches - before.durableBatches;
    const entries = rounds * groups * entriesPerSave;
    latencies.sort((a, b) => a - b);
    return {
      scenario: name,
      entries,
      fsyncs,
      entriesPerSec: Math.round(entries / (elapsedMs / 1000)),
      saveP50Ms: round(percentile(latencies, 50)),
      saveP99Ms: round(percentile(latencies, 99)),
      bytesPer1000: Math.round((bytes / entries) * 1000),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The disk's own fsync latency: 4 KiB rewritten in place and fdatasync'ed, as LMDB's page writes are. */
function rawFsync(count: number): { p50Ms: number; p99Ms: number } {
  const dir = mkdtempSync(join(baseDir, "ringleader-fsync-"));
  const fd = openSync(join(dir, "probe"), "w");
  const page = Buffer.alloc(4096, 7);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      writeSync(fd, page, 0, page.length, (i % 16) * 4096);
      fdatasyncSync(fd);
      times.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return { p50Ms: round(percentile(times, 50)), p99Ms: round(percentile(times, 99)) };
}

/** Reads of the log tail as the leader does when it sends appends: is a cache worth it? */
async function readPath(tailCacheEntries: number): Promise<{ entriesPerSec: number; termsPerSec: number }> {
  const dir = mkdtempSync(join(baseDir, "ringleader-read-"));
  const store = await NodeStore.open({ path: dir, tailCacheEntries });
  try {
    const g = store.group(1);
    const ents = Array.from({ length: 10_000 }, (_, i) => entry(i + 1));
    await g.save({ hardState: null, entries: ents, snapshot: null });
    const n = Math.round(20_000 * scale);
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      const hi = 10_001 - (i % 100);
      g.entries(hi - 64, hi, 1 << 20);
    }
    const entriesPerSec = Math.round((n * 64) / ((performance.now() - t) / 1000));
    t = performance.now();
    for (let i = 0; i < n * 10; i++) g.term(10_000 - (i % 200));
    const termsPerSec = Math.round((n * 10) / ((performance.now() - t) / 1000));
    return { entriesPerSec, termsPerSec };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Opening a store rebuilds, from one pass over the node-wide log, which record holds each live
 * entry. The largest log the agent keeps by default is ~1,500 entries per group (a snapshot every
 * 1,000 applied, half of them retained), so that is what a restart of a busy 64-group node reads.
 */
async function openPath(groups: number, perGroup: number): Promise<{ entries: number; openMs: number }> {
  const dir = mkdtempSync(join(baseDir, "ringleader-open-"));
  try {
    let store = await NodeStore.open({ path: dir });
    for (let from = 1; from <= perGroup; from += 10) {
      const ents = Array.from({ length: Math.min(10, perGroup - from + 1) }, (_, i) => entry(from + i));
      await store.saveBatch(
        Array.from({ length: groups }, (_, g) => ({
          group: g + 1,
          hardState: null,
          entries: ents,
          snapshot: null,
        })),
      );
    }
    await store.close();
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      store = await NodeStore.open({ path: dir });
      times.push(performance.now() - t);
      if (store.group(groups).lastIndex() !== perGroup) throw new Error("the reopened log is short");
      await store.close();
    }
    times.sort((a, b) => a - b);
    return { entries: groups * perGroup, openMs: round(times[1]!) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function main(): Promise<void> {
  console.log(
    `storage bench on ${baseDir} (fs block size ${statSync(baseDir).blksize}), ${ENTRY_BYTES}-byte entries`,
  );
  const raw = rawFsync(Math.round(500 * scale));
  console.log(`raw 4 KiB write + fdatasync: p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms`);
  const rows = [
    await scenario("1 entry per fsync (1 group)", Math.round(2000 * scale), 1, 1),
    await scenario("64 entries per fsync (1 group, 64/save)", Math.round(300 * scale), 1, 64),
    await scenario("64 entries per fsync (64 groups x 1)", Math.round(300 * scale), 64, 1),
    await scenario("640 entries per fsync (64 groups x 10)", Math.round(60 * scale), 64, 10),
    await scenario("1 entry per fsync, overlappingSync on", Math.round(2000 * scale), 1, 1, true),
    await scenario("64 groups x 1, overlappingSync on", Math.round(300 * scale), 64, 1, true),
  ];
  console.table(rows);
  for (const cacheEntries of [0, 256]) {
    const reads = await readPath(cacheEntries);
    console.log(
      `log tail reads, tail cache ${cacheEntries} entries: ${reads.entriesPerSec} entries/s via entries(), ` +
        `${reads.termsPerSec} term() calls/s`,
    );
  }
  const opened = await openPath(64, Math.round(1500 * scale));
  console.log(`open with ${opened.entries} live log entries (64 groups): ${opened.openMs} ms (median of 3)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
