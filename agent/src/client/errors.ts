/**
 * Errors of the client library that the HTTP API has no code for. The API's own errors
 * (`CasMismatchError`, `ServiceUnavailableError`, ...) are re-exported from `client.ts`.
 */

/** The client was given nothing usable to connect to: no endpoints, no token, a broken cluster file. */
export class ClientConfigError extends Error {
  override readonly name = "ClientConfigError";
  constructor(message: string) {
    super(message);
  }
}

/** Every attempt failed to connect or timed out; `cause` is the last failure. */
export class EndpointsUnreachableError extends Error {
  override readonly name = "EndpointsUnreachableError";
  constructor(
    readonly endpoints: readonly string[],
    readonly attempts: number,
    cause: unknown,
  ) {
    const reason = describeFailure(cause);
    super(`could not reach ${endpoints.join(", ")} (${attempts} attempts; last: ${reason})`, { cause });
  }
}

/** A server answered with something that is not the API's shape (a proxy page, a truncated body). */
export class BadResponseError extends Error {
  override readonly name = "BadResponseError";
  constructor(message: string) {
    super(message);
  }
}

/**
 * A short reason for a failed attempt. `httpFetch` rejects with the socket's own error
 * ("connect ECONNREFUSED ..."); the global `fetch` (which tests may inject) reports every network
 * failure as "fetch failed" and keeps the useful part in its `cause`.
 */
export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === "TimeoutError") return "timed out";
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = "code" in cause ? cause.code : undefined;
    return typeof code === "string" ? `${code}: ${cause.message}` : cause.message;
  }
  return err.message;
}
