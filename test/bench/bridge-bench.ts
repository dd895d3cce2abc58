/**
 * How much of the serial line the bridge turns into committed readings: the real firmware in
 * simavr samples as fast as its window allows (interval 1 ms), the bridge writes into a 3-node
 * local cluster, and we count readings acknowledged `committed` per second against what the line
 * can carry at 115200 baud, plus the latency from sampling to the committed ACK.
 *
 *   make bridge-bench            (or: node dist/test/bench/bridge-bench.js [--seconds 15] [--json])
 *
 * The line: the Uno's UART at "115200" really runs at 16 MHz / (8 x 17) = 117 647 baud (U2X,
 * UBRR 16), 10 bits per byte (8N1), so 11 765 bytes/s. A reading's frame size depends on the
 * sensor name and value, so capacity is measured in readings of the sizes actually sent.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AckEvent } from "../../firmware-bridge/src/device-session.js";
import { DEFAULT_SESSION_OPTIONS } from "../../firmware-bridge/src/device-session.js";
import { buildFirmware, SimBoard, startBridge, startCluster, waitFor } from "../bridge/sim-board.js";

const LINE_BAUD = 16_000_000 / (8 * (16 + 1));
const LINE_BYTES_PER_SEC = LINE_BAUD / 10;

const argValue = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = argValue("--seconds", 15);
const warmupSeconds = 3;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function main(): Promise<void> {
  buildFirmware();
  const dir = await mkdtemp(join(tmpdir(), "ringleader-bridge-bench-"));
  const cluster = await startCluster();
  let board: SimBoard | null = null;
  try {
    board = await SimBoard.start({ id: "bench", eeprom: join(dir, "bench.eeprom") });
    const bridge = await startBridge({
      ports: [board.pty],
      endpoints: cluster.endpoints(),
      token: cluster.token,
      stateDir: join(dir, "state"),
      route: true,
      // Measure the clock often and follow every drift, so that latency is not skewed by a
      // simulated board that the busy host slowed down.
      overrides: { session: { ...DEFAULT_SESSION_OPTIONS, timeSyncEveryMs: 1000, anchorToleranceMs: 2 } },
    });
    const acks: { at: number; e: AckEvent }[] = [];
    bridge.on("ack", (e) => acks.push({ at: performance.now(), e }));
    await waitFor("the port", 10_000, () => bridge.openPorts.length === 1);
    board.reset();
    await waitFor("the board", 15_000, () => bridge.session("bench")?.device);
    const session = bridge.session("bench")!;
    await session.configure(1);
    await new Promise((r) => setTimeout(r, warmupSeconds * 1000)); // a benchmark's warm-up, not synchronisation
    const t0 = performance.now();
    const bytes0 = bridge.decoderStats().bytesIn;
    const from = acks.length;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const t1 = performance.now();
    const bytes1 = bridge.decoderStats().bytesIn;
    const window = acks.slice(from).filter((a) => a.at <= t1);
    const committed = window.filter((a) => a.e.status === "committed" && !a.e.duplicate);
    const other = window.length - committed.length;
    const elapsed = (t1 - t0) / 1000;
    const readingsPerSec = committed.length / elapsed;
    const avgFrameBytes = committed.reduce((n, a) => n + a.e.wireBytes, 0) / Math.max(1, committed.length);
    const capacityPerSec = LINE_BYTES_PER_SEC / avgFrameBytes;
    const latency = committed.map((a) => a.e.latencyMs).sort((a, b) => a - b);
    const bridgeMs = committed.map((a) => a.e.bridgeMs).sort((a, b) => a - b);

    // At saturation a reading mostly waits in the board's full window (Little's law: 32 slots
    // at ~400/s is ~80 ms), so latency is measured again at a steady 150 readings/s.
    await session.configure(20);
    await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
    const steadyFrom = acks.length;
    await new Promise((r) => setTimeout(r, (seconds / 2) * 1000));
    const steady = acks.slice(steadyFrom).filter((a) => a.e.status === "committed" && !a.e.duplicate);
    const steadyLatency = steady.map((a) => a.e.latencyMs).sort((a, b) => a - b);
    const steadyBridgeMs = steady.map((a) => a.e.bridgeMs).sort((a, b) => a - b);
    await session.configure(0);
    const deviceStats = await session.requestStats();
    await bridge.stop();
    const lagReport = (await board.stop()).trim();
    board = null;
    const result = {
      seconds: Number(elapsed.toFixed(1)),
      lineBytesPerSec: Math.round(LINE_BYTES_PER_SEC),
      lineUtilisation: Number(((bytes1 - bytes0) / elapsed / LINE_BYTES_PER_SEC).toFixed(3)),
      avgReadingFrameBytes: Number(avgFrameBytes.toFixed(1)),
      capacityReadingsPerSec: Math.round(capacityPerSec),
      committedReadingsPerSec: Math.round(readingsPerSec),
      ofCapacity: Number((readingsPerSec / capacityPerSec).toFixed(3)),
      otherAcks: other,
      latencyP50Ms: Math.round(percentile(latency, 0.5)),
      latencyP99Ms: Math.round(percentile(latency, 0.99)),
      bridgeToCommitP50Ms: Number(percentile(bridgeMs, 0.5).toFixed(1)),
      bridgeToCommitP99Ms: Number(percentile(bridgeMs, 0.99).toFixed(1)),
      steadyReadingsPerSec: Math.round(steady.length / (seconds / 2)),
      steadyLatencyP50Ms: Math.round(percentile(steadyLatency, 0.5)),
      steadyLatencyP99Ms: Math.round(percentile(steadyLatency, 0.99)),
      steadyBridgeToCommitP50Ms: Number(percentile(steadyBridgeMs, 0.5).toFixed(1)),
      steadyBridgeToCommitP99Ms: Number(percentile(steadyBridgeMs, 0.99).toFixed(1)),
      deviceRetransmits: deviceStats.retransmits,
      simulator: lagReport.replace(/^uno-pty: /, ""),
    };
    if (process.argv.includes("--json")) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      process.stdout.write(
        [
          `serial line: ${result.lineBytesPerSec} bytes/s, ${(result.lineUtilisation * 100).toFixed(1)} % used by the board`,
          `readings committed: ${result.committedReadingsPerSec}/s of ${result.capacityReadingsPerSec}/s the line can carry ` +
            `(${(result.ofCapacity * 100).toFixed(1)} %, ${result.avgReadingFrameBytes} bytes per reading frame)`,
          `sampling to committed ACK at saturation: p50 ${result.latencyP50Ms} ms, p99 ${result.latencyP99Ms} ms ` +
            `(bridge to commit: p50 ${result.bridgeToCommitP50Ms} ms, p99 ${result.bridgeToCommitP99Ms} ms)`,
          `sampling to committed ACK at ${result.steadyReadingsPerSec} readings/s: p50 ${result.steadyLatencyP50Ms} ms, ` +
            `p99 ${result.steadyLatencyP99Ms} ms (bridge to commit: p50 ${result.steadyBridgeToCommitP50Ms} ms, ` +
            `p99 ${result.steadyBridgeToCommitP99Ms} ms)`,
          `device resends: ${result.deviceRetransmits}; other ACKs in the window: ${result.otherAcks}; simulator: ${result.simulator}`,
          "",
        ].join("\n"),
      );
    }
  } finally {
    if (board) await board.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
