/** The peer transport between agents: TLS-PSK over TCP, length-prefixed CBOR frames. */
export { PeerTransport, type PeerAddress, type PeerTransportOptions } from "./tcp-transport.js";
export {
  decodePayload,
  encodeFrame,
  FrameDecoder,
  FrameError,
  isWireMessageType,
  validateFrame,
  type BatchFrame,
  type Frame,
  type FrameErrorCode,
  type HelloFrame,
} from "./codec.js";
export { derivePsk, TransportConfigError } from "./security.js";
export {
  DEFAULT_CODEC_LIMITS,
  DEFAULT_TRANSPORT_LIMITS,
  silentLogger,
  type CodecLimits,
  type Logger,
  type TransportLimits,
  type TransportStats,
} from "./types.js";
