/**
 * The bounds of the client HTTP API, in one place so the agent can set them from its config.
 */

/** Bounds the server enforces; the defaults suit a Raspberry Pi with a few hundred MB free. */
export interface ApiLimits {
  /** Longest key, in bytes of UTF-8 after percent-decoding. */
  readonly maxKeyBytes: number;
  /** Largest value (request body of a PUT). Larger bodies get 413 without being buffered. */
  readonly maxValueBytes: number;
  /** Time a request has from arrival to response; past it the answer is 503 and the service's signal fires. */
  readonly requestTimeoutMs: number;
  /** Items per scan page when the request names no `limit`. */
  readonly defaultScanLimit: number;
  /** Largest `limit` a scan page may ask for. */
  readonly maxScanLimit: number;
  /** Longest scan cursor (`after`) accepted, in bytes of UTF-8. */
  readonly maxCursorBytes: number;
  /** Open client connections at once; Node closes further ones as they arrive. */
  readonly maxConnections: number;
}

export const DEFAULT_API_LIMITS: ApiLimits = {
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  requestTimeoutMs: 5000,
  defaultScanLimit: 100,
  maxScanLimit: 1000,
  maxCursorBytes: 4096,
  maxConnections: 512,
};
