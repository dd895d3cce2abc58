import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { xxhash32, xxhash32String } from "../../src/ring/hash.js";

const PRIME32_1 = 2654435761;

/** The sanity buffer of the reference implementation's self-test (xxhsum's BMK_sanityCheck). */
function sanityBuffer(length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  let gen = PRIME32_1;
  for (let i = 0; i < length; i++) {
    buffer[i] = gen >>> 24;
    gen = Math.imul(gen, gen) >>> 0;
  }
  return buffer;
}

describe("xxhash32 (XXH32)", () => {
  it("matches the reference implementation's self-test vectors, seeded and unseeded", () => {
    const buffer = sanityBuffer(101);
    assert.equal(xxhash32(new Uint8Array(0), 0), 0x02cc5d05);
    assert.equal(xxhash32(new Uint8Array(0), PRIME32_1), 0x36b78ae7);
    assert.equal(xxhash32(buffer.subarray(0, 1), 0), 0xb85cbee5);
    assert.equal(xxhash32(buffer.subarray(0, 1), PRIME32_1), 0xd5845d64);
    assert.equal(xxhash32(buffer.subarray(0, 14), 0), 0xe5aa0ab4);
    assert.equal(xxhash32(buffer.subarray(0, 14), PRIME32_1), 0x4481951d);
    // 101 bytes exercise the four-lane loop for inputs of 16 bytes and more.
    assert.equal(xxhash32(buffer, 0), 0x1f1aa412);
    assert.equal(xxhash32(buffer, PRIME32_1), 0x498ec8e2);
  });

  it("matches published vectors for short text", () => {
    assert.equal(xxhash32String("a"), 0x550d7456);
    assert.equal(xxhash32String("abc"), 0x32d153ff);
    assert.equal(xxhash32String("123456789"), 0x937bad67);
    assert.equal(xxhash32String("123456789ABCDEF"), 0x576e3cf9);
  });

  it("hashes a string as its UTF-8 bytes, to an unsigned 32-bit integer", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 80 }), fc.nat(), (text, seed) => {
        const h = xxhash32String(text, seed);
        assert.equal(h, xxhash32(new TextEncoder().encode(text), seed));
        assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
      }),
      { numRuns: 300 },
    );
  });

  it("spreads short sequential keys evenly over 64 partitions (high bits)", () => {
    const counts = new Array<number>(64).fill(0);
    const keys = 64_000;
    for (let i = 0; i < keys; i++) counts[Math.floor((xxhash32String(`k${i}`) * 64) / 2 ** 32)]!++;
    // 1,000 expected per partition; a fair hash stays within ±15 % (that is over 4 standard deviations).
    for (const c of counts) assert.ok(c > 850 && c < 1150, `partition count ${c}`);
  });
});
