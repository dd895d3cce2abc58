import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  createRing,
  hashTag,
  keyHash,
  partitionForKey,
  partitionOfPosition,
  partitionPosition,
  RingArgumentError,
  xxhash32String,
} from "../../src/ring/index.js";

describe("hashTag (Redis Cluster rules)", () => {
  it("takes the text between the first { and the first } after it", () => {
    assert.equal(hashTag("{user1000}.following"), "user1000");
    assert.equal(hashTag("{user1000}.followers"), "user1000");
    assert.equal(hashTag("foo{bar}{zap}"), "bar");
    assert.equal(hashTag("sensors/{kitchen}/temperature"), "kitchen");
  });

  it("has no tag for an empty {} at the first brace, even if a later pair is not empty", () => {
    assert.equal(hashTag("foo{}{bar}"), null);
  });

  it("keeps a second { inside the tag", () => {
    assert.equal(hashTag("foo{{bar}}"), "{bar");
  });

  it("has no tag without braces or with an unclosed brace", () => {
    assert.equal(hashTag("plain-key"), null);
    assert.equal(hashTag("foo{bar"), null);
    assert.equal(hashTag("foo}bar{"), null);
    assert.equal(hashTag(""), null);
  });

  it("finds the same tag in a string and in its UTF-8 bytes", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 30 }), (key) => {
        const fromText = hashTag(key);
        const fromBytes = hashTag(new TextEncoder().encode(key));
        assert.equal(fromBytes === null ? null : new TextDecoder().decode(fromBytes), fromText);
      }),
      { numRuns: 300 },
    );
  });
});

describe("partitionForKey", () => {
  it("hashes only the tag, so keys sharing a tag share a partition", () => {
    const p = partitionForKey(64, "sensors/{kitchen}/temperature");
    assert.equal(partitionForKey(64, "sensors/{kitchen}/humidity"), p);
    assert.equal(partitionForKey(64, "{kitchen}"), p);
    assert.equal(keyHash("sensors/{kitchen}/humidity"), xxhash32String("kitchen"));
    assert.equal(keyHash("foo{}{bar}"), xxhash32String("foo{}{bar}"));
  });

  it("maps a key to the partition whose arc holds its hash: ⌊hash·P / 2^32⌋", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 4096 }), (key, partitions) => {
        const p = partitionForKey(partitions, key);
        const h = keyHash(key);
        assert.equal(p, Math.floor((h * partitions) / 2 ** 32));
        assert.ok(partitionPosition(p, partitions) <= h);
        assert.ok(p === partitions - 1 || h < partitionPosition(p + 1, partitions));
        assert.equal(partitionForKey(partitions, new TextEncoder().encode(key)), p);
      }),
      { numRuns: 300 },
    );
  });

  it("takes a ring or a partition count", () => {
    const ring = createRing({ partitions: 100 });
    assert.equal(partitionForKey(ring, "k"), partitionForKey(100, "k"));
    assert.throws(() => partitionForKey(0, "k"), RingArgumentError);
    assert.throws(() => partitionForKey(1.5, "k"), RingArgumentError);
  });
});

describe("partition positions", () => {
  it("start each partition at the first position that maps to it, for any partition count", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1))),
        ([partitions, p]) => {
          const start = partitionPosition(p, partitions);
          assert.equal(partitionOfPosition(start, partitions), p);
          if (p > 0) assert.equal(partitionOfPosition(start - 1, partitions), p - 1);
        },
      ),
      { numRuns: 500 },
    );
    assert.equal(partitionPosition(0, 64), 0);
    assert.equal(partitionPosition(1, 64), 2 ** 26);
    assert.equal(partitionPosition(3, 3), 2 ** 32);
  });
});
