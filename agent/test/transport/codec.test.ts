import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Encoder } from "cbor-x";
import fc from "fast-check";
import {
  decodePayload,
  encodeFrame,
  estimateMessageBytes,
  FrameDecoder,
  FrameError,
  frameOverheadBytes,
  LENGTH_PREFIX_BYTES,
  validateFrame,
  type BatchFrame,
  type Frame,
} from "../../src/transport/codec.js";
import { DEFAULT_CODEC_LIMITS, type CodecLimits } from "../../src/transport/types.js";
import { appendWith, heartbeat, idArb, messageArb, msg } from "./helpers.js";

const raw = new Encoder({
  useRecords: false,
  structuredClone: false,
  tagUint8Array: false,
  mapsAsObjects: true,
});

function batch(msgs: BatchFrame["msgs"], from = "a", to = "b"): BatchFrame {
  return { v: 1, from, to, msgs };
}

/** A raw frame: arbitrary CBOR (not necessarily a valid frame) behind a correct length prefix. */
function rawFrame(value: unknown): Uint8Array {
  const payload = raw.encode(value);
  const out = Buffer.alloc(LENGTH_PREFIX_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, LENGTH_PREFIX_BYTES);
  return out;
}

function expectFrameError(code: FrameError["code"], fn: () => unknown): FrameError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FrameError, `expected a FrameError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.name, "FrameError");
  return caught;
}

/** Feeds `bytes` in the given chunk sizes (cycled), collecting frames. */
function feed(decoder: FrameDecoder, bytes: Uint8Array, cuts: number[]): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const size = Math.max(1, cuts.length === 0 ? bytes.length : cuts[i++ % cuts.length]!);
    frames.push(...decoder.push(bytes.subarray(at, at + size)));
    at += size;
  }
  return frames;
}

const pairArb = fc.tuple(idArb, idArb).filter(([a, b]) => a !== b);
const batchArb = pairArb.chain(([from, to]) =>
  fc.array(messageArb(from, to), { minLength: 1, maxLength: 6 }).map((msgs) => batch(msgs, from, to)),
);
const helloArb = fc
  .record({ nodeId: idArb, clusterName: idArb }, { noNullPrototype: true })
  .map((hello): Frame => ({ v: 1, hello }));
const frameArb: fc.Arbitrary<Frame> = fc.oneof(batchArb, helloArb);

describe("wire codec: round trips", () => {
  it("any batch of messages and any HELLO decodes to what was encoded", () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const frames = new FrameDecoder().push(encodeFrame(frame));
        assert.deepStrictEqual(frames, [frame]);
      }),
      { numRuns: 300 },
    );
  });

  it("any chunking of a byte stream yields the same frames", () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 20 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
          const decoder = new FrameDecoder();
          assert.deepStrictEqual(feed(decoder, stream, cuts), frames);
          assert.equal(decoder.bufferedBytes, 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("one byte at a time works too, and partial frames are held, not returned", () => {
    const frame = batch([appendWith("a", "b", 7, 100, 3), heartbeat("a", "b", 5)]);
    const bytes = encodeFrame(frame);
    const decoder = new FrameDecoder();
    for (let i = 0; i < bytes.length - 1; i++)
      assert.deepStrictEqual(decoder.push(bytes.subarray(i, i + 1)), []);
    assert.equal(decoder.bufferedBytes, bytes.length - 1 - LENGTH_PREFIX_BYTES);
    assert.deepStrictEqual(decoder.push(bytes.subarray(bytes.length - 1)), [frame]);
  });

  it("the size estimate is an upper bound on the encoded size", () => {
    fc.assert(
      fc.property(batchArb, (frame) => {
        const encoded = encodeFrame(frame).length - LENGTH_PREFIX_BYTES;
        const estimate =
          frameOverheadBytes(DEFAULT_CODEC_LIMITS) +
          frame.msgs.reduce((s, m) => s + estimateMessageBytes(m), 0);
        assert.ok(encoded <= estimate, `encoded ${encoded} > estimate ${estimate}`);
      }),
      { numRuns: 300 },
    );
  });

  it("zero-valued fields and the per-message ids stay off the wire, so a heartbeat is small", () => {
    const from = "3f1c9a2e-7b4d-4e0a-9c55-0d1e2f3a4b5c";
    const to = "8a7b6c5d-4e3f-4a1b-8c9d-0e1f2a3b4c5d";
    const one = encodeFrame(batch([heartbeat(from, to, 12, 40)], from, to)).length;
    const two = encodeFrame(
      batch([heartbeat(from, to, 12, 40), heartbeat(from, to, 12, 41)], from, to),
    ).length;
    // type "heartbeat", group, term, commit: about 40 bytes of keys and values, ids not repeated.
    assert.ok(two - one <= 40, `a heartbeat costs ${two - one} bytes`);
  });

  it("decoded byte strings are copies, not views of the receive buffer", () => {
    const frame = batch([
      appendWith("a", "b", 1, 32, 2),
      msg("readIndex", "a", "b", { context: new Uint8Array([1, 2, 3]) }),
    ]);
    const bytes = Buffer.from(encodeFrame(frame));
    const [decoded] = new FrameDecoder().push(bytes) as [BatchFrame];
    bytes.fill(0xee);
    assert.deepStrictEqual(decoded, frame);
    for (const e of decoded.msgs[0]!.entries) {
      assert.notEqual(e.data.buffer, bytes.buffer);
      assert.equal(Object.getPrototypeOf(e.data), Uint8Array.prototype);
    }
    assert.notEqual(decoded.msgs[1]!.context.buffer, bytes.buffer);
  });
});

describe("wire codec: bounds and rejection", () => {
  it("a 2 GiB length prefix is refused from its 4 bytes alone, before any payload is kept", () => {
    const decoder = new FrameDecoder();
    const err = expectFrameError("too_large", () => decoder.push(Uint8Array.of(0x80, 0, 0, 0)));
    assert.match(err.message, /2147483648/);
    assert.equal(decoder.bufferedBytes, 0);
    // The decoder is spent: it does not resynchronise on the bytes that follow.
    expectFrameError("too_large", () => decoder.push(encodeFrame(batch([heartbeat("a", "b", 1)]))));
  });

  it("the bound is configurable and inclusive: max is waited for, max + 1 is refused at once", () => {
    const limits: CodecLimits = { ...DEFAULT_CODEC_LIMITS, maxFrameBytes: 1000 };
    const atMax = new FrameDecoder(limits);
    assert.deepStrictEqual(atMax.push(Uint8Array.of(0, 0, 0x03, 0xe8, 0xa1)), []);
    assert.equal(atMax.bufferedBytes, 1);
    const overMax = new FrameDecoder(limits);
    expectFrameError("too_large", () => overMax.push(Uint8Array.of(0, 0, 0x03, 0xe9)));
  });

  it("the sender refuses to build a frame over the bound", () => {
    const big = appendWith("a", "b", 1, 2000);
    expectFrameError("too_large", () => encodeFrame(batch([big]), 1000));
  });

  it("a zero-length frame is refused", () => {
    expectFrameError("empty", () => new FrameDecoder().push(Uint8Array.of(0, 0, 0, 0)));
  });

  it("random garbage only ever raises FrameError", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 512 }),
        fc.array(fc.integer({ min: 1, max: 40 })),
        (bytes, cuts) => {
          const decoder = new FrameDecoder({ ...DEFAULT_CODEC_LIMITS, maxFrameBytes: 4096 });
          try {
            feed(decoder, bytes, cuts);
          } catch (err) {
            assert.ok(err instanceof FrameError, `unexpected ${String(err)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a correct length prefix before random payload bytes only ever raises FrameError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 512 }), (payload) => {
        try {
          decodePayload(payload);
        } catch (err) {
          assert.ok(err instanceof FrameError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("valid frames with bytes flipped either still decode to a valid frame or raise FrameError", () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (frame, flips) => {
          const bytes = Buffer.from(encodeFrame(frame));
          for (const [at, x] of flips) {
            const i = LENGTH_PREFIX_BYTES + (at % (bytes.length - LENGTH_PREFIX_BYTES));
            bytes[i] = bytes[i]! ^ x;
          }
          try {
            const frames = new FrameDecoder().push(bytes);
            assert.ok(frames.length <= 1);
          } catch (err) {
            assert.ok(err instanceof FrameError, `unexpected ${String(err)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("arbitrary CBOR values are refused as bad_message or bad_version, never with another error", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything({
            withMap: true,
            withSet: true,
            withBigInt: true,
            withTypedArray: true,
            withDate: true,
          }),
          fc.record({ v: fc.constant(1), from: fc.anything(), to: fc.anything(), msgs: fc.anything() }),
          fc.record({
            v: fc.constant(1),
            from: fc.constant("a"),
            to: fc.constant("b"),
            msgs: fc.array(fc.anything()),
          }),
        ),
        (value) => {
          try {
            validateFrame(value);
          } catch (err) {
            assert.ok(err instanceof FrameError, `unexpected ${String(err)}`);
            assert.ok(["bad_message", "bad_version"].includes(err.code));
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("a deeply nested payload (stack exhaustion in the CBOR decoder) is a FrameError", () => {
    const depth = 2_000_000;
    const payload = new Uint8Array(depth + 1).fill(0x81);
    payload[depth] = 0x01;
    expectFrameError("bad_cbor", () => decodePayload(payload));
  });

  const good = { v: 1, from: "a", to: "b", msgs: [{ type: "heartbeat", term: 3 }] };
  const cases: [string, unknown, FrameError["code"], RegExp][] = [
    ["version 2", { ...good, v: 2 }, "bad_version", /version 2/],
    ["no version", { from: "a", to: "b", msgs: good.msgs }, "bad_version", /version nothing/],
    ["an unknown frame field", { ...good, extra: 1 }, "bad_message", /unexpected field "extra"/],
    ["a missing from", { v: 1, to: "b", msgs: good.msgs }, "bad_message", /missing field\(s\) from/],
    ["an empty batch", { ...good, msgs: [] }, "bad_message", /at least one message/],
    [
      "a local message type",
      { ...good, msgs: [{ type: "hup" }] },
      "bad_message",
      /msgs\[0\]\.type.*local-only/,
    ],
    ["an unknown message type", { ...good, msgs: [{ type: "nope" }] }, "bad_message", /unknown message type/],
    ["a negative term", { ...good, msgs: [{ type: "app", term: -1 }] }, "bad_message", /msgs\[0\]\.term.*-1/],
    ["a fractional index", { ...good, msgs: [{ type: "app", index: 1.5 }] }, "bad_message", /index.*1\.5/],
    [
      "a term beyond 2^53",
      { ...good, msgs: [{ type: "app", term: 2n ** 60n }] },
      "bad_message",
      /big integer/,
    ],
    [
      "a string context",
      { ...good, msgs: [{ type: "readIndex", context: "x" }] },
      "bad_message",
      /context.*byte/,
    ],
    [
      "a numeric reject",
      { ...good, msgs: [{ type: "appResp", reject: 1 }] },
      "bad_message",
      /reject.*boolean/,
    ],
    [
      "a bad entry type",
      { ...good, msgs: [{ type: "app", entries: [{ term: 1, index: 1, type: "weird" }] }] },
      "bad_message",
      /entries\[0\]\.type/,
    ],
    [
      "an unknown entry field",
      { ...good, msgs: [{ type: "app", entries: [{ term: 1, extra: true }] }] },
      "bad_message",
      /entries\[0\]: unexpected field/,
    ],
    ["an over-long node id", { ...good, from: "x".repeat(257) }, "bad_message", /1\.\.256 characters/],
    ["a map (not an object) root", new Map([["v", 1]]), "bad_message", /expected a map, got a Map/],
    [
      "a HELLO with a missing field",
      { v: 1, hello: { nodeId: "a" } },
      "bad_message",
      /missing field\(s\) clusterName/,
    ],
    [
      "a snapshot without metadata",
      { ...good, msgs: [{ type: "snap", snapshot: { data: new Uint8Array(1) } }] },
      "bad_message",
      /snapshot: missing field\(s\) metadata/,
    ],
  ];
  for (const [what, value, code, pattern] of cases) {
    it(`refuses ${what} with a clear message`, () => {
      const err = expectFrameError(code, () => new FrameDecoder().push(rawFrame(value)));
      assert.match(err.message, pattern);
    });
  }

  it("the message and entry count bounds hold", () => {
    const limits: CodecLimits = { ...DEFAULT_CODEC_LIMITS, maxMessagesPerFrame: 3, maxEntriesPerMessage: 2 };
    const four = batch([1, 2, 3, 4].map((t) => heartbeat("a", "b", t)));
    expectFrameError("bad_message", () => new FrameDecoder(limits).push(encodeFrame(four)));
    const three = batch([1, 2, 3].map((t) => heartbeat("a", "b", t)));
    assert.equal(new FrameDecoder(limits).push(encodeFrame(three)).length, 1);
    const wide = batch([appendWith("a", "b", 1, 4, 3)]);
    const err = expectFrameError("bad_message", () => new FrameDecoder(limits).push(encodeFrame(wide)));
    assert.match(err.message, /entries: 3 items is over the limit of 2/);
  });

  it("the sender refuses to put a message in another pair's batch", () => {
    assert.throws(() => encodeFrame(batch([heartbeat("a", "c", 1)])), /does not belong/);
  });
});
