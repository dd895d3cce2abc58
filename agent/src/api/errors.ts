/**
 * The errors of the client HTTP API. The service throws the ones it can cause (`CasMismatchError`,
 * `ServiceUnavailableError`, `BadRequestError`, `PayloadTooLargeError`); the server maps every
 * `ApiError` to its status and to the JSON body `{"error":{"code","message"}}`; the client library
 * turns such bodies back into the same classes, so callers match on classes, never on text.
 */

/** The `code` strings of error bodies. Tools outside this code rely on them; never rename one. */
export type ApiErrorCode =
  | "bad_request"
  | "unauthorized"
  | "not_found"
  | "method_not_allowed"
  | "cas_mismatch"
  | "too_large"
  | "unavailable"
  | "internal";

/** An error with an HTTP status and a stable code. Unknown codes from a server arrive as this base class. */
export class ApiError extends Error {
  override readonly name: string = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** 400: a malformed key, parameter or body. */
export class BadRequestError extends ApiError {
  override readonly name = "BadRequestError";
  constructor(message: string) {
    super(400, "bad_request", message);
  }
}

/** 401: the bearer token is missing or wrong. */
export class UnauthorizedError extends ApiError {
  override readonly name = "UnauthorizedError";
  constructor(message = "missing or wrong bearer token") {
    super(401, "unauthorized", message);
  }
}

/** 404: an unknown route (a missing key is not an error: `get` returns null). */
export class NotFoundError extends ApiError {
  override readonly name = "NotFoundError";
  constructor(message: string) {
    super(404, "not_found", message);
  }
}

/** 405: the route exists but not with this method; `allow` lists the methods it takes. */
export class MethodNotAllowedError extends ApiError {
  override readonly name = "MethodNotAllowedError";
  constructor(
    message: string,
    readonly allow: readonly string[] = [],
  ) {
    super(405, "method_not_allowed", message);
  }
}

/** 409: a conditional write found the key at another version than the one expected. */
export class CasMismatchError extends ApiError {
  override readonly name = "CasMismatchError";
  constructor(message: string) {
    super(409, "cas_mismatch", message);
  }
}

/** 413: the value is larger than the server accepts. */
export class PayloadTooLargeError extends ApiError {
  override readonly name = "PayloadTooLargeError";
  constructor(message: string) {
    super(413, "too_large", message);
  }
}

/** Bounds of the `retry-after` hint, in seconds: never "now", never "come back tomorrow". */
const MIN_RETRY_AFTER_SECONDS = 1;
const MAX_RETRY_AFTER_SECONDS = 3600;

/**
 * 503: no leader, no quorum, or the request timed out. The outcome of a write that fails this way
 * may be unknown (it may still commit). `retryAfterSeconds` becomes the `retry-after` header.
 */
export class ServiceUnavailableError extends ApiError {
  override readonly name = "ServiceUnavailableError";
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, "unavailable", message);
    const whole = Number.isFinite(retryAfterSeconds) ? Math.ceil(retryAfterSeconds) : MIN_RETRY_AFTER_SECONDS;
    this.retryAfterSeconds = Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(MIN_RETRY_AFTER_SECONDS, whole));
  }
}

/** 500: a bug or an unexpected failure inside the agent; the message never carries its details. */
export class InternalServerError extends ApiError {
  override readonly name = "InternalServerError";
  constructor(message = "internal error") {
    super(500, "internal", message);
  }
}

/**
 * The error a client raises for an error response. Known codes map to their classes; anything
 * else (a proxy's HTML 502, a newer server's code) becomes a plain `ApiError` with the status.
 */
export function errorFromResponse(
  status: number,
  code: string | undefined,
  message: string,
  retryAfterSeconds?: number,
): ApiError {
  switch (code) {
    case "bad_request":
      return new BadRequestError(message);
    case "unauthorized":
      return new UnauthorizedError(message);
    case "not_found":
      return new NotFoundError(message);
    case "method_not_allowed":
      return new MethodNotAllowedError(message);
    case "cas_mismatch":
      return new CasMismatchError(message);
    case "too_large":
      return new PayloadTooLargeError(message);
    case "unavailable":
      return new ServiceUnavailableError(message, retryAfterSeconds);
    case "internal":
      return new InternalServerError(message);
    default:
      if (status === 503) return new ServiceUnavailableError(message, retryAfterSeconds);
      return new ApiError(status, code ?? `http_${status}`, message);
  }
}
