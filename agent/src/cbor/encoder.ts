/**
 * cbor-x's `Encoder`, kept from holding on to memory.
 *
 * cbor-x writes every encoding into ONE scratch buffer shared by all encoders of the process
 * (module state) and returns views of it. When a value does not fit, it allocates a new scratch
 * buffer of four times that value's size and keeps it for good: one 1 MiB value (the default
 * value limit) or one 1 MiB catch-up frame leaves a 4 MiB buffer behind for the life of the agent,
 * and as later encodings fill it, all of it becomes resident. So after a large encoding the
 * scratch buffer starts over at its usual size (the large one goes once nothing holds a view).
 */
import { Encoder, type Options } from "cbor-x";

/** The scratch buffer after a reset; encodings up to a quarter of it never grow it. */
export const SCRATCH_BYTES = 256 * 1024;
/** An encoding larger than this may have grown the scratch buffer. */
const LARGE_BYTES = SCRATCH_BYTES / 4;

/** `Encoder.useBuffer` exists in cbor-x 1.6 but not in its typings. */
interface ScratchEncoder {
  useBuffer(buffer: Uint8Array): void;
}

export class CompactEncoder {
  private readonly inner: Encoder;

  constructor(options: Options) {
    this.inner = new Encoder(options);
  }

  /** The encoding: a view of the scratch buffer, valid until the caller drops it. */
  encode(value: unknown): Buffer {
    const out = this.inner.encode(value);
    if (out.byteLength > LARGE_BYTES) {
      (this.inner as unknown as ScratchEncoder).useBuffer(Buffer.allocUnsafeSlow(SCRATCH_BYTES));
    }
    return out;
  }

  decode(bytes: Uint8Array): unknown {
    return this.inner.decode(bytes) as unknown;
  }
}
