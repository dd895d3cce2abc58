/**
 * Reading a request body with a bound: the size is checked while the bytes stream in, so a client
 * sending gigabytes costs the server at most `maxBytes` of memory before it answers 413.
 */
import type { IncomingMessage } from "node:http";
import { PayloadTooLargeError } from "./errors.js";

/** The client went away before its body arrived in full; there is nobody left to answer. */
export class RequestAbortedError extends Error {
  override readonly name = "RequestAbortedError";
  constructor() {
    super("the client closed the connection before sending the whole body");
  }
}

/** True when the request announces a body (a length above zero, or chunked encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined && length !== "0") return true;
  return req.headers["transfer-encoding"] !== undefined;
}

/**
 * Reads the whole body of `req`, or rejects with `PayloadTooLargeError` as soon as the declared
 * length or the bytes received pass `maxBytes`. On rejection the stream is left paused: the caller
 * answers and closes the connection rather than reading the rest.
 */
export function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new PayloadTooLargeError(`the value is larger than the limit of ${maxBytes} bytes`);
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(tooLarge());

  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      const body = Buffer.concat(chunks, received);
      resolve(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      // `close` before `end` means the client disconnected mid-body.
      cleanup();
      reject(new RequestAbortedError());
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}
