/**
 * The bridge: serial ports in, cluster writes out. It wires a `DeviceSession` to every open port,
 * one `ReadingSink` (direct writes and the outbox forwarder) shared by all of them, the durable
 * state in `Outbox`, and the metrics endpoint.
 */
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import type { Server } from "node:http";
import type { Logger } from "../../agent/src/node/logger.js";
import {
  DEFAULT_SESSION_OPTIONS,
  DeviceSession,
  type AckEvent,
  type DeviceInfo,
  type SessionOptions,
} from "./device-session.js";
import type { FrameDecoderStats } from "./framing.js";
import type { Stats } from "./messages.js";
import { BridgeMetrics, boundPort, serveMetrics } from "./metrics.js";
import { Outbox, type OutboxEntry, type OutboxLimits } from "./outbox.js";
import { PortSupervisor, type PortHandle, type PortInfo } from "./serial-ports.js";
import { DEFAULT_SINK_OPTIONS, ReadingSink, type KvWriter, type SinkOptions } from "./sink.js";

export interface BridgeOptions {
  ports: "auto" | readonly string[];
  baudRate: number;
  /** Directory of the LMDB environment holding the outbox and the time anchors. */
  stateDir: string;
  outbox: OutboxLimits;
  rescanMs: number;
  session: SessionOptions;
  sink: SinkOptions;
  /** Where to serve `/metrics`; null serves nothing. */
  metrics: { host: string; port: number } | null;
}

export const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { maxEntries: 1_000_000, maxBytes: 256 * 1024 * 1024 };

export interface BridgeDeps {
  client: KvWriter;
  logger: Logger;
  openPort: (path: string, baudRate: number) => Promise<PortHandle>;
  listPorts: () => Promise<PortInfo[]>;
  now?: () => number;
}

export interface BridgeEvents {
  hello: [string, DeviceInfo];
  ack: [AckEvent];
  stats: [string, Stats];
  forwarded: [OutboxEntry, boolean];
  closed: [string];
}

function emptyStats(): FrameDecoderStats {
  return { framesOk: 0, resyncs: 0, badCrc: 0, oversized: 0, malformed: 0, bytesIn: 0, bytesDropped: 0 };
}

function addStats(into: FrameDecoderStats, from: FrameDecoderStats): FrameDecoderStats {
  for (const k of Object.keys(into) as (keyof FrameDecoderStats)[]) into[k] += from[k];
  return into;
}

export class Bridge extends EventEmitter<BridgeEvents> {
  readonly metrics: BridgeMetrics;
  private readonly live = new Map<string, DeviceSession>();
  private readonly closedStats = emptyStats();
  private readonly sink: ReadingSink;
  private readonly supervisor: PortSupervisor;
  private server: Server | null = null;

  private constructor(
    readonly outbox: Outbox,
    private readonly options: BridgeOptions,
    private readonly deps: BridgeDeps,
  ) {
    super();
    this.metrics = new BridgeMetrics({
      outboxDepth: () => this.outbox.depth,
      outboxBytes: () => this.outbox.bytes,
      devices: () => [...this.live.values()].filter((s) => s.device !== null).length,
      decoderStats: () => this.decoderStats(),
    });
    this.sink = new ReadingSink(deps.client, outbox, this.metrics, deps.logger, options.sink);
    this.sink.onForwarded = (entry, duplicate) => this.emit("forwarded", entry, duplicate);
    this.supervisor = new PortSupervisor({
      ports: options.ports,
      baudRate: options.baudRate,
      rescanMs: options.rescanMs,
      list: deps.listPorts,
      open: deps.openPort,
      attach: (handle) => this.attach(handle),
      logger: deps.logger,
    });
  }

  static async start(options: BridgeOptions, deps: BridgeDeps): Promise<Bridge> {
    mkdirSync(options.stateDir, { recursive: true });
    const outbox = Outbox.open({ dir: options.stateDir, limits: options.outbox });
    const bridge = new Bridge(outbox, options, deps);
    if (outbox.depth > 0)
      deps.logger.info("outbox holds readings from a previous run", { depth: outbox.depth });
    if (options.metrics) {
      bridge.server = await serveMetrics(bridge.metrics.registry, options.metrics.host, options.metrics.port);
    }
    bridge.sink.start();
    bridge.supervisor.start();
    return bridge;
  }

  /** The URL of `/metrics`, when served. */
  get metricsUrl(): string | null {
    if (!this.server || !this.options.metrics) return null;
    return `http://${this.options.metrics.host}:${boundPort(this.server)}/metrics`;
  }

  get openPorts(): string[] {
    return this.supervisor.openPorts;
  }

  sessions(): DeviceSession[] {
    return [...this.live.values()];
  }

  /** The session of the device with this id, if it said HELLO on an open port. */
  session(device: string): DeviceSession | undefined {
    return this.sessions().find((s) => s.device?.id === device);
  }

  decoderStats(): FrameDecoderStats {
    const total = addStats(emptyStats(), this.closedStats);
    for (const s of this.live.values()) addStats(total, s.decoderStats);
    return total;
  }

  /** Scans for ports now rather than at the next interval. */
  rescan(): Promise<void> {
    return this.supervisor.rescan();
  }

  async stop(): Promise<void> {
    await this.supervisor.stop();
    for (const s of this.live.values()) s.close();
    await this.sink.stop();
    await this.outbox.close();
    if (this.server) {
      const server = this.server;
      this.server = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private attach(handle: PortHandle): () => void {
    const session = new DeviceSession(
      handle.path,
      (bytes) => handle.write(bytes),
      this.sink,
      this.outbox,
      this.metrics,
      this.deps.logger,
      this.options.session,
      this.deps.now,
    );
    session.on("hello", (info) => this.emit("hello", handle.path, info));
    session.on("ack", (e) => this.emit("ack", e));
    session.on("stats", (s) => this.emit("stats", handle.path, s));
    this.live.set(handle.path, session);
    handle.onData((chunk) => session.receive(chunk));
    session.start();
    return () => {
      session.close();
      addStats(this.closedStats, session.decoderStats);
      this.live.delete(handle.path);
      this.emit("closed", handle.path);
    };
  }
}

export function defaultBridgeOptions(
  overrides: Partial<BridgeOptions> & { stateDir: string },
): BridgeOptions {
  return {
    ports: "auto",
    baudRate: 115200,
    outbox: DEFAULT_OUTBOX_LIMITS,
    rescanMs: 2000,
    session: DEFAULT_SESSION_OPTIONS,
    sink: DEFAULT_SINK_OPTIONS,
    metrics: null,
    ...overrides,
  };
}
