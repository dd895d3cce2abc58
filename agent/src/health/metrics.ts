/**
 * Board health and the cluster's health view as Prometheus metrics, read at scrape time from the
 * monitor's latest sample (a scrape never triggers a sample). Labels stay small: throttle flags
 * are eight fixed names, peers are the cluster's members, warnings are counted by kind.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { BoardHealth } from "./board.js";
import type { HealthMonitor } from "./monitor.js";
import type { ThrottleState } from "./throttle.js";

const THROTTLE_FLAGS: readonly (keyof Omit<ThrottleState, "raw">)[] = [
  "underVoltageNow",
  "freqCappedNow",
  "throttledNow",
  "softTempLimitNow",
  "underVoltageOccurred",
  "freqCappedOccurred",
  "throttledOccurred",
  "softTempLimitOccurred",
];

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function registerHealthMetrics(registry: Registry, monitor: HealthMonitor): void {
  const r = [registry];
  const board = (): BoardHealth | null => monitor.latest();
  const gauge = (name: string, help: string, pick: (b: BoardHealth) => number | null) =>
    new Gauge({
      name,
      help,
      registers: r,
      collect() {
        const b = board();
        const v = b ? pick(b) : null;
        // An unlabelled gauge is always exposed; NaN says "unknown" (Grafana shows a gap).
        this.set(v !== null && Number.isFinite(v) ? v : NaN);
      },
    });
  gauge("ringleader_board_cpu_busy_ratio", "Share of CPU time busy since the previous sample (0-1)", (b) =>
    b.cpuLoadPct === null ? null : b.cpuLoadPct / 100,
  );
  gauge("ringleader_board_load1", "One-minute load average", (b) => b.load1);
  gauge("ringleader_board_temperature_celsius", "CPU temperature", (b) => b.tempC);
  gauge("ringleader_board_memory_total_bytes", "Memory of the board", (b) => b.memTotalBytes);
  gauge(
    "ringleader_board_memory_available_bytes",
    "Memory available to new work",
    (b) => b.memAvailableBytes,
  );
  gauge(
    "ringleader_board_disk_total_bytes",
    "Size of the filesystem holding the data",
    (b) => b.diskTotalBytes,
  );
  gauge(
    "ringleader_board_disk_free_bytes",
    "Free space (for unprivileged users) on that filesystem",
    (b) => b.diskFreeBytes,
  );
  gauge("ringleader_board_uptime_seconds", "Time since the board booted", (b) => b.uptimeSec);
  gauge(
    "ringleader_storage_data_dir_bytes",
    "Bytes the data directory occupies on disk",
    (b) => b.dataDirBytes,
  );
  gauge("ringleader_storage_lmdb_bytes", "Bytes of the LMDB data files on disk", (b) => b.lmdbBytes);
  gauge(
    "ringleader_health_sample_cpu_seconds",
    "CPU time of the process during the last health sample",
    (b) => b.sampleCpuMs / 1000,
  );
  gauge("ringleader_health_sample_seconds", "Length of the last health sample", (b) => b.sampleWallMs / 1000);
  new Counter({
    name: "ringleader_storage_written_bytes_total",
    help: "Bytes this agent process caused to be written to storage (Linux /proc/self/io write_bytes)",
    registers: r,
    collect() {
      this.reset();
      const v = board()?.processWrittenBytes;
      if (v !== null && v !== undefined) this.inc(v);
    },
  });
  new Counter({
    name: "ringleader_board_sd_written_bytes_total",
    help: "Bytes written to the SD card since boot, all processes (absent without an SD card)",
    labelNames: ["device"],
    registers: r,
    collect() {
      this.reset();
      const sd = board()?.sd;
      if (sd && sd.writtenBytes !== null) this.inc({ device: sd.device }, sd.writtenBytes);
    },
  });
  new Gauge({
    name: "ringleader_board_throttle_flag",
    help: "Raspberry Pi firmware throttling flags (1 set, 0 clear); absent where the board has none",
    labelNames: ["flag"],
    registers: r,
    collect() {
      this.reset();
      const t = board()?.throttle;
      if (t) for (const f of THROTTLE_FLAGS) this.set({ flag: snake(f) }, t[f] ? 1 : 0);
    },
  });
  new Counter({
    name: "ringleader_health_samples_total",
    help: "Board health samples taken",
    registers: r,
    collect() {
      this.reset();
      this.inc(monitor.counters.samples);
    },
  });
  new Counter({
    name: "ringleader_health_pull_errors_total",
    help: "Pulls of a peer's health record that failed (unreachable, bad answer)",
    registers: r,
    collect() {
      this.reset();
      this.inc(monitor.counters.pullErrors);
    },
  });
  const peerGauge = (
    name: string,
    help: string,
    pick: (n: ReturnType<HealthMonitor["view"]>["nodes"][number]) => number | null,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["peer"],
      registers: r,
      collect() {
        this.reset();
        for (const n of monitor.view().nodes) {
          const v = pick(n);
          if (v !== null) this.set({ peer: n.id }, v);
        }
      },
    });
  peerGauge("ringleader_peer_up", "1 if the peer's health record is recent", (n) => (n.reachable ? 1 : 0));
  peerGauge("ringleader_peer_clock_skew_seconds", "Peer's clock minus this node's", (n) =>
    n.skewMs === null ? null : n.skewMs / 1000,
  );
  peerGauge("ringleader_peer_rtt_seconds", "Round trip of the last health pull", (n) =>
    n.rttMs === null ? null : n.rttMs / 1000,
  );
  peerGauge(
    "ringleader_peer_load_score",
    "The least-loaded score of the peer (lower is better)",
    (n) => n.load,
  );
  new Gauge({
    name: "ringleader_cluster_warnings",
    help: "Warnings this node sees, by kind",
    labelNames: ["kind"],
    registers: r,
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const w of monitor.view().warnings) counts.set(w.kind, (counts.get(w.kind) ?? 0) + 1);
      for (const [kind, n] of counts) this.set({ kind }, n);
    },
  });
}

/** Snapshot streams sent per Raft group (groups that never sent one are absent). */
export function registerGroupSnapshotMetrics(
  registry: Registry,
  sentByGroup: () => ReadonlyMap<number, number>,
): void {
  new Counter({
    name: "ringleader_raft_snapshots_sent_total",
    help: "Snapshot streams this node sent to completion, per group",
    labelNames: ["group"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [group, n] of sentByGroup()) this.inc({ group: String(group) }, n);
    },
  });
}
