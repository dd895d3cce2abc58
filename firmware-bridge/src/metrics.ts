/**
 * The bridge's Prometheus metrics (prom-client, one registry per bridge so tests can run several)
 * and the small HTTP server that serves them at `/metrics`. Counters of the frame decoders are
 * added up over every port at scrape time.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FrameDecoderStats } from "./framing.js";

const LATENCY_BUCKETS_MS = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000];

export interface BridgeGaugeSources {
  outboxDepth: () => number;
  outboxBytes: () => number;
  devices: () => number;
  decoderStats: () => FrameDecoderStats;
}

export class BridgeMetrics {
  readonly registry = new Registry();
  readonly readingsCommitted: Counter<"path">;
  readonly readingsBuffered: Counter;
  readonly readingsDuplicate: Counter;
  readonly readingsRejected: Counter<"reason">;
  readonly readingsDeferred: Counter<"reason">;
  readonly retransmits: Counter;
  readonly unknownMessages: Counter<"kind">;
  readonly zeroRuns: Counter;
  readonly forwardFailures: Counter;
  readonly downlinkDropped: Counter;
  readonly commitLatencyMs: Histogram;

  constructor(sources: BridgeGaugeSources) {
    const r = [this.registry];
    const decoderCounter = (name: string, help: string, pick: (s: FrameDecoderStats) => number) =>
      new Counter({
        name,
        help,
        registers: r,
        collect() {
          this.reset();
          this.inc(pick(sources.decoderStats()));
        },
      });
    decoderCounter("ringleader_bridge_frames_ok_total", "Frames received with a good CRC", (s) => s.framesOk);
    decoderCounter("ringleader_bridge_frames_bad_crc_total", "Frames dropped for a bad CRC", (s) => s.badCrc);
    decoderCounter(
      "ringleader_bridge_frames_oversized_total",
      "Frames dropped for exceeding the maximum size",
      (s) => s.oversized,
    );
    decoderCounter(
      "ringleader_bridge_frames_malformed_total",
      "Frames dropped as malformed (bad COBS or too short)",
      (s) => s.malformed,
    );
    decoderCounter(
      "ringleader_bridge_resyncs_total",
      "Times the decoder dropped bytes and resynchronised at the next delimiter",
      (s) => s.resyncs,
    );
    decoderCounter(
      "ringleader_bridge_bytes_received_total",
      "Bytes read from serial ports",
      (s) => s.bytesIn,
    );
    this.readingsCommitted = new Counter({
      name: "ringleader_bridge_readings_committed_total",
      help: "Readings the cluster committed, written directly or forwarded from the outbox",
      labelNames: ["path"],
      registers: r,
    });
    this.readingsBuffered = new Counter({
      name: "ringleader_bridge_readings_buffered_total",
      help: "Readings stored in the outbox and acknowledged as buffered",
      registers: r,
    });
    this.readingsDuplicate = new Counter({
      name: "ringleader_bridge_readings_duplicate_total",
      help: "Readings received again after they had taken effect (acknowledged, not written twice)",
      registers: r,
    });
    this.readingsRejected = new Counter({
      name: "ringleader_bridge_readings_rejected_total",
      help: "Readings refused for good (NACK rejected)",
      labelNames: ["reason"],
      registers: r,
    });
    this.readingsDeferred = new Counter({
      name: "ringleader_bridge_readings_deferred_total",
      help: "Readings the device was told to send again later (NACK retry)",
      labelNames: ["reason"],
      registers: r,
    });
    this.retransmits = new Counter({
      name: "ringleader_bridge_retransmits_total",
      help: "Readings received again while their first copy was still being written",
      registers: r,
    });
    this.unknownMessages = new Counter({
      name: "ringleader_bridge_unknown_messages_total",
      help: "Frames with a good CRC that were not a message we take: unknown_type, unexpected (a bridge-bound type), malformed",
      labelNames: ["kind"],
      registers: r,
    });
    this.zeroRuns = new Counter({
      name: "ringleader_bridge_zero_runs_total",
      help: "Runs of zero bytes no device sends: a board at a lower baud rate than the bridge, or a line held low",
      registers: r,
    });
    this.forwardFailures = new Counter({
      name: "ringleader_bridge_forward_failures_total",
      help: "Outbox forwarding rounds that failed and backed off",
      registers: r,
    });
    this.downlinkDropped = new Counter({
      name: "ringleader_bridge_downlink_dropped_total",
      help: "Frames to a device dropped because its port was not draining",
      registers: r,
    });
    new Gauge({
      name: "ringleader_bridge_outbox_depth",
      help: "Readings waiting in the outbox",
      registers: r,
      collect() {
        this.set(sources.outboxDepth());
      },
    });
    new Gauge({
      name: "ringleader_bridge_outbox_bytes",
      help: "Bytes of readings waiting in the outbox",
      registers: r,
      collect() {
        this.set(sources.outboxBytes());
      },
    });
    new Gauge({
      name: "ringleader_bridge_devices",
      help: "Devices that said HELLO on an open port",
      registers: r,
      collect() {
        this.set(sources.devices());
      },
    });
    this.commitLatencyMs = new Histogram({
      name: "ringleader_bridge_commit_latency_ms",
      help: "From the moment a reading was taken to its committed ACK",
      buckets: LATENCY_BUCKETS_MS,
      registers: r,
    });
  }
}

/** Serves `GET /metrics` (Prometheus text) on host:port; port 0 picks a free one. */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics failed\n"),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
