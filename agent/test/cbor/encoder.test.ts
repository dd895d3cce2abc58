import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Encoder } from "cbor-x";
import { CompactEncoder, SCRATCH_BYTES } from "../../src/cbor/encoder.js";

const options = { useRecords: false, mapsAsObjects: true, tagUint8Array: false } as const;

describe("CompactEncoder", () => {
  it("does not keep the huge scratch buffer a large value made cbor-x allocate", () => {
    const plain = new Encoder(options);
    const compact = new CompactEncoder(options);
    // cbor-x on its own: after a 1 MiB value, small encodings live in a buffer of 4 MiB or more.
    plain.encode({ v: new Uint8Array(1 << 20) });
    assert.ok(plain.encode({ a: 1 }).buffer.byteLength >= 4 << 20);
    // Through CompactEncoder the next small encoding is back in a scratch buffer of the usual size.
    compact.encode({ v: new Uint8Array(1 << 20) });
    assert.equal(compact.encode({ a: 1 }).buffer.byteLength, SCRATCH_BYTES);
  });

  it("round-trips values, large and small, and earlier results stay intact", () => {
    const compact = new CompactEncoder(options);
    const small = compact.encode({ k: "x", n: 7 });
    const big = compact.encode({ v: new Uint8Array(200_000).fill(9) });
    const after = compact.encode({ k: "y" });
    assert.deepEqual(compact.decode(small), { k: "x", n: 7 });
    assert.equal(
      (compact.decode(big) as { v: Uint8Array }).v.reduce((s, b) => s + b, 0),
      9 * 200_000,
    );
    assert.deepEqual(compact.decode(after), { k: "y" });
  });
});
