/**
 * Shared shapes of the peer transport: the logger it writes to, its limits and its counters.
 */
import type { MessageType } from "../raft/types.js";

/** Structured logging; the agent passes its own logger, tests pass `silentLogger` or a recorder. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** Bounds of the wire format; both ends of a connection should agree on them. */
export interface CodecLimits {
  /** Largest frame payload accepted or produced (the 4-byte length prefix is not counted). */
  readonly maxFrameBytes: number;
  /** Most messages in one batch frame. */
  readonly maxMessagesPerFrame: number;
  /** Most entries in one message. */
  readonly maxEntriesPerMessage: number;
  /** Longest node id or cluster name, in UTF-16 code units. */
  readonly maxIdLength: number;
  /** Most voters plus learners in a snapshot's membership. */
  readonly maxMembers: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxMessagesPerFrame: 8192,
  maxEntriesPerMessage: 65536,
  maxIdLength: 256,
  maxMembers: 1024,
};

export interface TransportLimits extends CodecLimits {
  /**
   * A soft bound on one outgoing frame, by the conservative size estimate of its messages: big
   * enough to amortise the per-frame cost, small enough that a large append does not hold up the
   * heartbeats queued behind it for long. A single message larger than this still goes alone.
   */
  readonly maxBatchBytes: number;
  /** Messages waiting for one peer (queued while connecting, or while the socket drains). */
  readonly maxQueueMessages: number;
  /** Estimated bytes waiting for one peer. */
  readonly maxQueueBytes: number;
  /** Dial attempt (TCP connect plus TLS handshake) before it is abandoned. */
  readonly connectTimeoutMs: number;
  /** Time an inbound connection has to finish the TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** Time an inbound connection has, after the handshake, to send its HELLO. */
  readonly helloTimeoutMs: number;
  /** First reconnect delay; it doubles per failed attempt up to `backoffMaxMs`, with jitter. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Inbound TCP connections open at once, authenticated or not. */
  readonly maxInboundConnections: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  ...DEFAULT_CODEC_LIMITS,
  maxBatchBytes: 1024 * 1024,
  maxQueueMessages: 8192,
  maxQueueBytes: 64 * 1024 * 1024,
  connectTimeoutMs: 5000,
  handshakeTimeoutMs: 5000,
  helloTimeoutMs: 5000,
  backoffBaseMs: 100,
  backoffMaxMs: 5000,
  maxInboundConnections: 256,
};

/** Counters since `start()`, as a plain object so metrics and tests can read them directly. */
export interface TransportStats {
  /** Batch frames; HELLO frames are not counted here, but their bytes are. */
  framesSent: number;
  framesReceived: number;
  messagesSent: number;
  /** `messagesSent` by Raft message type (where a write's messages go). */
  messagesSentByType: Partial<Record<MessageType, number>>;
  messagesReceived: number;
  /** Frame bytes including the length prefix, before TLS. */
  bytesSent: number;
  bytesReceived: number;
  /** Dials that followed a lost connection or a failed attempt. */
  reconnects: number;
  /** Inbound connections that failed the TLS handshake (wrong secret, not TLS, timeout). */
  rejectedPeers: number;
  /** Authenticated connections closed for a malformed, oversized or out-of-place frame. */
  badFrames: number;
  /** Messages dropped: queue overflow, unresolvable peer, too large to frame, or after stop. */
  droppedMessages: number;
  /** Messages queued for all peers right now. */
  queueDepth: number;
  /** Estimated bytes queued for all peers right now. */
  queueBytes: number;
}

export function emptyStats(): TransportStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    messagesSent: 0,
    messagesSentByType: {},
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    reconnects: 0,
    rejectedPeers: 0,
    badFrames: 0,
    droppedMessages: 0,
    queueDepth: 0,
    queueBytes: 0,
  };
}
