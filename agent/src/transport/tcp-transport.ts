/**
 * The peer transport: Raft messages between agents over TLS-PSK on TCP, in length-prefixed CBOR
 * frames (see `codec.ts` for the frames and `security.ts` for the TLS choices).
 *
 * Connections. Every node dials each peer it sends to and only writes on that outbound
 * connection; it only reads on the connections peers dialled to it. A pair of nodes therefore
 * uses two TCP connections, one per direction. We chose this over "the lower id dials, both
 * directions share one socket" because it has no races to settle (two nodes dialling each other
 * at once), and because the side that wants to send owns the dialling, the backoff and the
 * `unreachable` report, with no dependence on whether the other side has tried to dial yet. The
 * cost, twice the sockets, is a few dozen in a home-lab cluster.
 *
 * Sending. `send()` only queues. The first message queued for a peer in an event-loop turn
 * schedules one flush with `setImmediate`, so everything the Raft layer sends to that peer while
 * handling one `Ready` (and whatever other I/O callbacks of the same turn add) goes out in one
 * frame, or a few if the batch is over `maxBatchBytes` / `maxMessagesPerFrame`. Frames are built
 * only while the socket accepts writes: after `write()` returns false we wait for `drain`, and
 * messages stay in the bounded per-peer queue meanwhile (see `peer-queue.ts` for what is dropped
 * when it is full). Messages already handed to a socket that then breaks are lost; Raft resends.
 *
 * Receiving. An inbound connection must complete the TLS handshake (which needs the cluster
 * secret), then send HELLO within `helloTimeoutMs`; from then on it is bound to that node id, and
 * every batch on it must come from that node and be addressed to us. Any bad frame closes that
 * connection only, logged and counted in `badFrames`; a failed handshake is counted in
 * `rejectedPeers` and logged once per remote address.
 *
 * Callbacks (`onMessages`, `unreachable`) are never called from inside `send()`, so the Raft layer
 * is not re-entered while it is handing out a `Ready`.
 *
 * Dead peers. A peer that closes or resets its connection is noticed at once. A board that loses
 * power mid-connection is noticed by TCP keep-alive (idle connections) or by the retransmission
 * timeout (busy ones), which can take minutes; meanwhile the queue bound holds, and Raft's own
 * heartbeats and `checkQuorum` decide liveness, not the transport.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import type { Message, NodeId } from "../raft/types.js";
import { backoffDelayMs } from "./backoff.js";
import {
  assertCodecLimits,
  encodeFrame,
  estimateMessageBytes,
  FrameDecoder,
  FrameError,
  frameOverheadBytes,
  isHelloFrame,
  isWireMessageType,
  PROTOCOL_VERSION,
  type Frame,
} from "./codec.js";
import { PeerQueue } from "./peer-queue.js";
import { clientTlsOptions, derivePsk, isPskSession, serverTlsOptions } from "./security.js";
import {
  DEFAULT_TRANSPORT_LIMITS,
  emptyStats,
  silentLogger,
  type Logger,
  type TransportLimits,
  type TransportStats,
} from "./types.js";

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface PeerTransportOptions {
  readonly nodeId: NodeId;
  /** Where to accept peers; port 0 picks a free port (`start()` says which). */
  readonly listen: PeerAddress;
  /** The cluster secret from `ringleader init`, at least 16 bytes. */
  readonly secret: string | Uint8Array;
  readonly clusterName: string;
  /** The current address of a node (from mDNS), asked again before every dial. */
  readonly resolve: (nodeId: NodeId) => PeerAddress | undefined;
  /**
   * One call per received batch frame, all messages from `from`, in the order they were sent.
   * Called from socket events, never from `send()`. A throw here is a bug in the caller and is
   * not caught: it surfaces as an uncaught exception rather than as a bad frame.
   */
  readonly onMessages: (from: NodeId, msgs: readonly Message[]) => void;
  /** A dial to `nodeId` failed or its connection broke; queued and in-flight messages may be lost. */
  readonly unreachable?: (nodeId: NodeId) => void;
  readonly logger?: Logger;
  readonly limits?: Partial<TransportLimits>;
  /** Jitter source in [0, 1) for reconnect delays; injectable for reproducible tests. */
  readonly random?: () => number;
}

/** TCP keep-alive probes start after this much idle time, to notice peers that vanished. */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;
/** Remote addresses whose failed handshakes we remember having logged. */
const MAX_LOGGED_REJECTIONS = 1024;

type OutboundState = "idle" | "connecting" | "connected" | "backoff";

/** Our side of the connection to one peer we send to. */
interface Outbound {
  readonly nodeId: NodeId;
  readonly queue: PeerQueue;
  state: OutboundState;
  socket: TLSSocket | null;
  /** Connect timeout while connecting, reconnect delay while in backoff. */
  timer: NodeJS.Timeout | null;
  /** Consecutive failed attempts; drives the backoff, reset by a successful handshake. */
  failures: number;
  /** Whether any dial was made before, so the next one counts as a reconnect. */
  dialled: boolean;
  /** Whether the current outage was logged at warn level already. */
  downLogged: boolean;
  lastError: string;
  flushScheduled: boolean;
  waitingForDrain: boolean;
}

/** A connection a peer dialled to us. */
interface Inbound {
  readonly socket: TLSSocket;
  readonly decoder: FrameDecoder;
  readonly remote: string;
  nodeId: NodeId | null;
  helloTimer: NodeJS.Timeout | null;
  closed: boolean;
}

export class PeerTransport {
  private readonly nodeId: NodeId;
  private readonly clusterName: string;
  private readonly limits: TransportLimits;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly psk: Buffer;
  private readonly maxMessageBytes: number;
  private readonly counters: TransportStats = emptyStats();
  private readonly outbound = new Map<NodeId, Outbound>();
  private readonly inbound = new Set<Inbound>();
  private readonly inboundByNode = new Map<NodeId, Inbound>();
  private readonly loggedRejections = new Set<string>();
  private server: tls.Server | null = null;
  private stopped = false;

  constructor(private readonly options: PeerTransportOptions) {
    this.nodeId = options.nodeId;
    this.clusterName = options.clusterName;
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    assertCodecLimits(this.limits);
    assertTransportLimits(this.limits);
    this.maxMessageBytes = this.limits.maxFrameBytes - frameOverheadBytes(this.limits);
    if (this.limits.maxBatchBytes > this.maxMessageBytes) {
      throw new RangeError(
        `maxBatchBytes ${this.limits.maxBatchBytes} leaves no room for framing under maxFrameBytes ` +
          `${this.limits.maxFrameBytes}; use at most ${this.maxMessageBytes}`,
      );
    }
    if (this.nodeId.length === 0 || this.nodeId.length > this.limits.maxIdLength) {
      throw new RangeError(`node id must have 1..${this.limits.maxIdLength} characters`);
    }
    if (this.clusterName.length > this.limits.maxIdLength) {
      throw new RangeError(`cluster name must have at most ${this.limits.maxIdLength} characters`);
    }
    this.psk = derivePsk(options.secret, options.clusterName);
  }

  /** Starts accepting peers. Resolves with the port actually bound. */
  async start(): Promise<{ port: number }> {
    if (this.server !== null || this.stopped) throw new Error("PeerTransport.start() may be called once");
    const server = tls.createServer(
      serverTlsOptions(this.psk, this.clusterName, this.limits.handshakeTimeoutMs),
      (socket) => this.onInbound(socket),
    );
    server.maxConnections = this.limits.maxInboundConnections;
    server.on("tlsClientError", (err, socket) => this.onRejected(err, socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.listen.port, this.options.listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => this.logger.error("peer transport listener failed", { error: err.message }));
    const port = (server.address() as AddressInfo).port;
    this.logger.info("peer transport listening", { host: this.options.listen.host, port });
    return { port };
  }

  /**
   * Queues `msg` for `to`. Never blocks and never throws for operating conditions (peer down,
   * queue full): the message is then dropped and counted. Throws only for a message that could
   * never be right to send (a local type, or `from`/`to` that do not match).
   */
  send(to: NodeId, msg: Message): void {
    if (msg.to !== to || msg.from !== this.nodeId || to === this.nodeId) {
      throw new Error(`message ${msg.from}->${msg.to} cannot be sent by ${this.nodeId} to ${to}`);
    }
    if (!isWireMessageType(msg.type)) throw new Error(`message type ${msg.type} is local-only`);
    if (this.stopped) {
      this.counters.droppedMessages += 1;
      return;
    }
    const bytes = estimateMessageBytes(msg);
    if (bytes > this.maxMessageBytes) {
      this.counters.droppedMessages += 1;
      this.logger.warn("message too large for one frame; dropped", {
        to,
        type: msg.type,
        group: msg.group,
        bytes,
      });
      return;
    }
    const peer = this.peer(to);
    this.counters.droppedMessages += peer.queue.push(msg, bytes);
    if (peer.state === "idle") this.dial(peer);
    else if (peer.state === "connected") this.scheduleFlush(peer);
  }

  /** Forgets a peer that left the cluster: its queue is dropped and its connection closed. */
  removePeer(nodeId: NodeId): void {
    const peer = this.outbound.get(nodeId);
    if (peer === undefined) return;
    this.outbound.delete(nodeId);
    this.counters.droppedMessages += peer.queue.clear();
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.state = "idle";
    const socket = peer.socket;
    peer.socket = null;
    socket?.destroy();
  }

  stats(): TransportStats {
    let depth = 0;
    let bytes = 0;
    for (const peer of this.outbound.values()) {
      depth += peer.queue.length;
      bytes += peer.queue.bytes;
    }
    return {
      ...this.counters,
      messagesSentByType: { ...this.counters.messagesSentByType },
      queueDepth: depth,
      queueBytes: bytes,
    };
  }

  /** Closes the listener and every connection, and drops what is still queued. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const sockets: TLSSocket[] = [];
    for (const peer of this.outbound.values()) {
      if (peer.timer !== null) clearTimeout(peer.timer);
      peer.timer = null;
      peer.state = "idle";
      this.counters.droppedMessages += peer.queue.clear();
      if (peer.socket !== null) sockets.push(peer.socket);
    }
    for (const conn of this.inbound) {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      conn.closed = true;
      sockets.push(conn.socket);
    }
    const closes: Promise<unknown>[] = sockets.filter((s) => !s.closed).map((s) => once(s, "close"));
    for (const s of sockets) s.destroy();
    const server = this.server;
    if (server !== null) {
      closes.push(new Promise<void>((resolve) => server.close(() => resolve())));
    }
    await Promise.all(closes);
    this.logger.info("peer transport stopped", { nodeId: this.nodeId });
  }

  // -------------------------------------------------------------------------------------------
  // Outbound

  private peer(nodeId: NodeId): Outbound {
    let peer = this.outbound.get(nodeId);
    if (peer === undefined) {
      peer = {
        nodeId,
        queue: new PeerQueue(this.limits.maxQueueMessages, this.limits.maxQueueBytes),
        state: "idle",
        socket: null,
        timer: null,
        failures: 0,
        dialled: false,
        downLogged: false,
        lastError: "",
        flushScheduled: false,
        waitingForDrain: false,
      };
      this.outbound.set(nodeId, peer);
    }
    return peer;
  }

  private dial(peer: Outbound): void {
    if (peer.dialled) this.counters.reconnects += 1;
    peer.dialled = true;
    const address = this.options.resolve(peer.nodeId);
    if (address === undefined) {
      peer.lastError = "no address known";
      this.attemptFailed(peer);
      return;
    }
    let socket: TLSSocket;
    try {
      socket = tls.connect({
        host: address.host,
        port: address.port,
        ...clientTlsOptions(this.psk, this.clusterName),
      });
    } catch (err) {
      // Addresses come from the network (mDNS); a bad port must not take the node down.
      peer.lastError = err instanceof Error ? err.message : String(err);
      this.attemptFailed(peer);
      return;
    }
    peer.state = "connecting";
    peer.socket = socket;
    socket.setNoDelay(true);
    peer.timer = setTimeout(() => {
      socket.destroy(new Error(`no TLS connection within ${this.limits.connectTimeoutMs} ms`));
    }, this.limits.connectTimeoutMs);
    socket.once("secureConnect", () => this.onConnected(peer, socket));
    // The peer never writes on a connection we dialled; anything it sends is a protocol error.
    socket.on("data", () => {
      this.logger.warn("peer wrote on a connection we dialled; closing it", { peer: peer.nodeId });
      socket.destroy();
    });
    socket.on("drain", () => {
      if (peer.socket !== socket) return;
      peer.waitingForDrain = false;
      this.flush(peer);
    });
    socket.on("error", (err) => {
      peer.lastError = err.message;
    });
    socket.on("close", () => this.onOutboundClosed(peer, socket));
  }

  private onConnected(peer: Outbound, socket: TLSSocket): void {
    if (peer.socket !== socket || this.stopped) return;
    if (!isPskSession(socket)) {
      socket.destroy(new Error("the session was not authenticated by the cluster key"));
      return;
    }
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
    if (peer.downLogged) {
      this.logger.info("peer reachable again", { peer: peer.nodeId, failedAttempts: peer.failures });
    }
    peer.state = "connected";
    peer.failures = 0;
    peer.downLogged = false;
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    const hello = encodeFrame(
      { v: PROTOCOL_VERSION, hello: { nodeId: this.nodeId, clusterName: this.clusterName } },
      this.limits.maxFrameBytes,
    );
    this.counters.bytesSent += hello.length;
    peer.waitingForDrain = !socket.write(hello);
    this.flush(peer);
  }

  private onOutboundClosed(peer: Outbound, socket: TLSSocket): void {
    if (peer.socket !== socket) return;
    peer.socket = null;
    peer.waitingForDrain = false;
    if (peer.timer !== null) clearTimeout(peer.timer);
    peer.timer = null;
    if (this.stopped || this.outbound.get(peer.nodeId) !== peer) return;
    if (peer.state === "connected" && peer.lastError === "") peer.lastError = "connection closed by peer";
    this.attemptFailed(peer);
  }

  /** A dial failed or a connection broke: report it, then wait before the next attempt. */
  private attemptFailed(peer: Outbound): void {
    peer.failures = Math.min(peer.failures + 1, 1000);
    const fields = { peer: peer.nodeId, error: peer.lastError, failedAttempts: peer.failures };
    if (!peer.downLogged) {
      peer.downLogged = true;
      this.logger.warn("peer unreachable; will retry with backoff", fields);
    } else {
      this.logger.debug("peer still unreachable", fields);
    }
    peer.lastError = "";
    peer.state = "backoff";
    const delayMs = backoffDelayMs(
      peer.failures,
      this.limits.backoffBaseMs,
      this.limits.backoffMaxMs,
      this.random,
    );
    peer.timer = setTimeout(() => {
      peer.timer = null;
      if (this.stopped || this.outbound.get(peer.nodeId) !== peer) return;
      // With nothing to send, wait for the next `send()` rather than keep a connection for nobody.
      if (peer.queue.length > 0) this.dial(peer);
      else peer.state = "idle";
    }, delayMs);
    // Deferred, because this may run inside `send()` and the Raft layer must not be re-entered.
    const report = this.options.unreachable;
    if (report !== undefined) {
      queueMicrotask(() => {
        if (!this.stopped) report(peer.nodeId);
      });
    }
  }

  private scheduleFlush(peer: Outbound): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    setImmediate(() => {
      peer.flushScheduled = false;
      this.flush(peer);
    });
  }

  /** Writes queued messages as frames until the queue is empty or the socket wants a `drain`. */
  private flush(peer: Outbound): void {
    const socket = peer.socket;
    if (peer.state !== "connected" || socket === null || peer.waitingForDrain || this.stopped) return;
    while (peer.queue.length > 0) {
      const msgs = peer.queue.takeBatch(this.limits.maxMessagesPerFrame, this.limits.maxBatchBytes);
      let frame: Buffer;
      try {
        frame = encodeFrame(
          { v: PROTOCOL_VERSION, from: this.nodeId, to: peer.nodeId, msgs },
          this.limits.maxFrameBytes,
        );
      } catch (err) {
        // The size estimate is an upper bound, so this means a bug in it; lose the batch, not the node.
        if (!(err instanceof FrameError)) throw err;
        this.counters.droppedMessages += msgs.length;
        this.logger.error("could not frame a batch; dropped", { peer: peer.nodeId, error: err.message });
        continue;
      }
      this.counters.framesSent += 1;
      this.counters.messagesSent += msgs.length;
      const byType = this.counters.messagesSentByType;
      for (const m of msgs) byType[m.type] = (byType[m.type] ?? 0) + 1;
      this.counters.bytesSent += frame.length;
      if (!socket.write(frame)) {
        peer.waitingForDrain = true;
        return;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Inbound

  private onRejected(err: Error, socket: TLSSocket): void {
    this.counters.rejectedPeers += 1;
    // By address without the port: a peer with the wrong secret redials from a new port each time.
    const remote = socket.remoteAddress ?? "unknown address";
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    if (!this.loggedRejections.has(remote) && this.loggedRejections.size < MAX_LOGGED_REJECTIONS) {
      this.loggedRejections.add(remote);
      this.logger.warn("rejected a peer that failed the TLS handshake (wrong cluster secret?)", {
        remote,
        code,
      });
    } else {
      this.logger.debug("rejected a peer that failed the TLS handshake", { remote, code });
    }
  }

  private onInbound(socket: TLSSocket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    // The server has no certificate, so nothing else can get here; checked all the same.
    if (!isPskSession(socket)) {
      this.onRejected(new Error("session not authenticated by the cluster key"), socket);
      socket.destroy();
      return;
    }
    const conn: Inbound = {
      socket,
      decoder: new FrameDecoder(this.limits),
      remote: remoteOf(socket),
      nodeId: null,
      helloTimer: null,
      closed: false,
    };
    this.inbound.add(conn);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      this.closeBad(conn, new FrameError("protocol", `no HELLO within ${this.limits.helloTimeoutMs} ms`));
    }, this.limits.helloTimeoutMs);
    socket.on("data", (chunk: Buffer) => this.onInboundData(conn, chunk));
    socket.on("error", (err) => {
      this.logger.debug("inbound peer connection error", {
        remote: conn.remote,
        peer: conn.nodeId,
        error: err.message,
      });
    });
    socket.on("close", () => {
      conn.closed = true;
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      this.inbound.delete(conn);
      if (conn.nodeId !== null && this.inboundByNode.get(conn.nodeId) === conn) {
        this.inboundByNode.delete(conn.nodeId);
      }
    });
  }

  private onInboundData(conn: Inbound, chunk: Buffer): void {
    if (conn.closed) return;
    this.counters.bytesReceived += chunk.length;
    let frames: Frame[];
    try {
      frames = conn.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.closeBad(conn, err);
      return;
    }
    for (const frame of frames) {
      // The application may have stopped us, or we replaced this connection, while delivering.
      if (conn.closed) return;
      const problem = this.accept(conn, frame);
      if (problem !== null) {
        this.closeBad(conn, problem);
        return;
      }
    }
  }

  /** Acts on one well-formed frame; returns why it is out of place, or null when it was fine. */
  private accept(conn: Inbound, frame: Frame): FrameError | null {
    if (isHelloFrame(frame)) {
      const { nodeId, clusterName } = frame.hello;
      if (conn.nodeId !== null) return new FrameError("protocol", "a second HELLO on one connection");
      if (clusterName !== this.clusterName) {
        return new FrameError("protocol", `HELLO from cluster ${JSON.stringify(clusterName)}`);
      }
      if (nodeId === this.nodeId) return new FrameError("protocol", "HELLO claims our own node id");
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      conn.nodeId = nodeId;
      // A newer connection from the same node means the old one is stale (the peer restarted or
      // redialled after a failure it saw before we did).
      const previous = this.inboundByNode.get(nodeId);
      this.inboundByNode.set(nodeId, conn);
      if (previous !== undefined) {
        previous.closed = true;
        previous.socket.destroy();
      }
      this.logger.debug("peer connected", { peer: nodeId, remote: conn.remote });
      return null;
    }
    if (conn.nodeId === null) return new FrameError("protocol", "a batch before HELLO");
    if (frame.from !== conn.nodeId) {
      return new FrameError("protocol", `a batch from ${frame.from} on ${conn.nodeId}'s connection`);
    }
    // A peer dialled an address that now belongs to us (DHCP moved it); refuse rather than apply.
    if (frame.to !== this.nodeId)
      return new FrameError("protocol", `a batch for ${frame.to} reached ${this.nodeId}`);
    this.counters.framesReceived += 1;
    this.counters.messagesReceived += frame.msgs.length;
    this.options.onMessages(conn.nodeId, frame.msgs);
    return null;
  }

  private closeBad(conn: Inbound, err: FrameError): void {
    if (conn.closed) return;
    conn.closed = true;
    this.counters.badFrames += 1;
    this.logger.warn("closing a peer connection after a bad frame", {
      peer: conn.nodeId,
      remote: conn.remote,
      code: err.code,
      error: err.message,
    });
    conn.socket.destroy();
  }
}

function remoteOf(socket: TLSSocket): string {
  return `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
}

function assertTransportLimits(limits: TransportLimits): void {
  for (const name of [
    "maxBatchBytes",
    "maxQueueMessages",
    "maxQueueBytes",
    "connectTimeoutMs",
    "handshakeTimeoutMs",
    "helloTimeoutMs",
    "backoffBaseMs",
    "backoffMaxMs",
    "maxInboundConnections",
  ] as const) {
    const value = limits[name];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`transport limit ${name} must be a positive integer, got ${value}`);
    }
  }
  if (limits.backoffMaxMs < limits.backoffBaseMs) throw new RangeError("backoffMaxMs is below backoffBaseMs");
}
