/** Errors of the firmware bridge that callers act on. */

/** A frame or payload that breaks the link protocol; the frame is dropped and counted. */
export class MalformedFrameError extends Error {
  override readonly name = "MalformedFrameError";
  constructor(
    readonly reason: "cobs" | "short" | "crc" | "cbor" | "message",
    message: string,
  ) {
    super(message);
  }
}

/** A well-formed frame of a message type this bridge does not know (a newer device, say). */
export class UnknownMessageError extends Error {
  override readonly name = "UnknownMessageError";
  constructor(readonly messageType: number) {
    super(`unknown message type ${messageType}`);
  }
}

/** The outbox holds as many readings as it may; new ones are refused until it drains. */
export class OutboxFullError extends Error {
  override readonly name = "OutboxFullError";
  constructor(
    readonly entries: number,
    readonly bytes: number,
  ) {
    super(`the outbox is full (${entries} readings, ${bytes} bytes)`);
  }
}

/** The outbox store failed (disk full, I/O error) or was closed. */
export class OutboxStoreError extends Error {
  override readonly name = "OutboxStoreError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
