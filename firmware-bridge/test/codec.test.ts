/**
 * The link codec: CRC, COBS, the CBOR subset, messages, and the frame decoder's behaviour on
 * damaged input (PROTOCOL.md, "Frames" and "Errors on the link").
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeCbor, encodeCbor, Float32, shortestFloat32, type CborItem } from "../src/cbor.js";
import { crc32 } from "../src/crc32.js";
import { MalformedFrameError, UnknownMessageError } from "../src/errors.js";
import {
  cobsDecode,
  cobsEncode,
  encodeFrame,
  FrameDecoder,
  MAX_ENCODED_BYTES,
  MAX_PAYLOAD_BYTES,
  ZERO_RUN_BYTES,
  type FrameEvent,
} from "../src/framing.js";
import { decodeMessage, encodeMessage, type Message } from "../src/messages.js";

const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,16}$/);
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const uptime = fc.integer({ min: 0, max: 2 ** 40 });

/** Every message type with arbitrary fields, bounded to what fits in a frame. */
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record(
    {
      type: fc.constant("hello" as const),
      protocol: fc.constant(1),
      device: name,
      boot: u32,
      firmware: fc.stringMatching(/^[a-z0-9_./-]{0,24}$/),
      uptimeMs: uptime,
      intervalMs: u32,
      window: fc.integer({ min: 1, max: 64 }),
      sensors: fc.array(fc.stringMatching(/^[a-z0-9_]{1,8}$/), { maxLength: 4 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant("reading" as const),
      boot: u32,
      seq: u32,
      sensor: name,
      value: fc.oneof(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.float({ noNaN: true, noDefaultInfinity: true }).map((f) => shortestFloat32(Math.fround(f))),
      ),
      uptimeMs: uptime,
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant("ack" as const),
      boot: u32,
      seq: u32,
      status: fc.constantFrom("committed" as const, "buffered" as const),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant("nack" as const),
      boot: u32,
      seq: u32,
      status: fc.constantFrom("rejected" as const, "retry" as const),
      reason: fc.stringMatching(/^[a-z_]{0,12}$/),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    { type: fc.constant("time" as const), token: u32, epochMs: fc.integer({ min: 0, max: 2 ** 45 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    { type: fc.constant("time-reply" as const), boot: u32, token: u32, uptimeMs: uptime },
    { noNullPrototype: true },
  ),
  fc.record({ type: fc.constant("who" as const) }, { noNullPrototype: true }),
  fc.record({ type: fc.constant("config" as const), token: u32, intervalMs: u32 }, { noNullPrototype: true }),
  fc.record(
    { type: fc.constant("config-reply" as const), boot: u32, token: u32, intervalMs: u32 },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant("stats" as const),
      boot: u32,
      nextSeq: u32,
      unacked: fc.integer({ min: 0, max: 64 }),
      retransmits: u32,
      rejected: u32,
      dropped: u32,
      rxBad: u32,
      rxIgnored: u32,
      intervalMs: u32,
      uptimeMs: uptime,
    },
    { noNullPrototype: true },
  ),
  fc.record({ type: fc.constant("stats-request" as const) }, { noNullPrototype: true }),
);

function frames(events: FrameEvent[]): Uint8Array[] {
  return events.flatMap((e) => (e.kind === "frame" ? [e.payload] : []));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

describe("CRC-32", () => {
  it("has the check value of CRC-32/ISO-HDLC", () => {
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  });
});

describe("COBS", () => {
  it("round-trips any bytes and never emits a zero", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (data) => {
        const encoded = cobsEncode(data);
        assert.ok(!encoded.includes(0));
        assert.ok(encoded.length <= data.length + Math.ceil(data.length / 254) + 1);
        assert.deepEqual(cobsDecode(encoded), data);
      }),
    );
  });

  it("handles runs of 254 non-zero bytes and trailing zeros", () => {
    for (const data of [
      new Uint8Array(254).fill(7),
      new Uint8Array(255).fill(7),
      concat(new Uint8Array(254).fill(1), Uint8Array.of(0)),
      Uint8Array.of(0),
      Uint8Array.of(0, 0),
    ]) {
      assert.deepEqual(cobsDecode(cobsEncode(data)), data);
    }
  });

  it("refuses a block that runs past the frame", () => {
    assert.throws(() => cobsDecode(Uint8Array.of(5, 1, 2)), MalformedFrameError);
  });
});

describe("CBOR subset", () => {
  const leaf: fc.Arbitrary<CborItem> = fc.oneof(
    fc.maxSafeInteger(),
    fc.double({ noNaN: true }).filter((d) => !Number.isInteger(d)),
    fc.string({ maxLength: 20 }),
    fc.boolean(),
    fc.constant(null),
  );
  // Nesting up to the decoder's depth bound.
  const level1: fc.Arbitrary<CborItem> = fc.oneof(leaf, fc.array(leaf, { maxLength: 5 }));
  const level2: fc.Arbitrary<CborItem> = fc.oneof(level1, fc.array(level1, { maxLength: 4 }));
  const item: fc.Arbitrary<CborItem> = fc.oneof(level2, fc.array(level2, { maxLength: 3 }));

  it("round-trips integers, floats, text, arrays and simple values", () => {
    fc.assert(fc.property(item, (v) => assert.deepEqual(decodeCbor(encodeCbor(v)), v)));
  });

  it("decodes a float32 to the shortest decimal that reads back as the same float32", () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (f) => {
        const decoded = decodeCbor(encodeCbor(new Float32(f)));
        assert.equal(typeof decoded, "number");
        // === rather than Object.is: -0 may come back as 0, which is the same reading.
        assert.ok(Math.fround(decoded as number) === Math.fround(f), `${f} came back as ${String(decoded)}`);
      }),
    );
    assert.equal(decodeCbor(encodeCbor(new Float32(21.3))), 21.3);
  });

  it("refuses maps, byte strings, tags, indefinite lengths and trailing bytes", () => {
    for (const bad of [
      Uint8Array.of(0xa0), // {}
      Uint8Array.of(0x41, 0x00), // h'00'
      Uint8Array.of(0xc0, 0x00), // tag 0
      Uint8Array.of(0x9f, 0xff), // [_ ]
      Uint8Array.of(0x01, 0x02), // 1, then a stray byte
      Uint8Array.of(0x62, 0xc3, 0x28), // invalid UTF-8
      Uint8Array.of(0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // beyond 2^53
      Uint8Array.of(0x85, 0x01), // an array cut short
    ]) {
      assert.throws(() => decodeCbor(bad), MalformedFrameError, Buffer.from(bad).toString("hex"));
    }
  });
});

describe("messages", () => {
  it("round-trip through payload and frame", () => {
    fc.assert(
      fc.property(message, (m) => {
        const payload = encodeMessage(m);
        assert.ok(payload.length <= MAX_PAYLOAD_BYTES);
        const decoder = new FrameDecoder();
        const got = frames(decoder.push(encodeFrame(payload)));
        assert.equal(got.length, 1);
        assert.deepEqual(decodeMessage(got[0]!), m);
      }),
    );
  });

  it("ignores fields a newer peer appends", () => {
    const payload = encodeCbor([2, 7, 9, 0, "a future field", 42]);
    assert.deepEqual(decodeMessage(payload), { type: "ack", boot: 7, seq: 9, status: "committed" });
  });

  it("reports unknown types and bad fields as distinct errors", () => {
    assert.throws(() => decodeMessage(encodeCbor([99, 1])), UnknownMessageError);
    assert.throws(() => decodeMessage(encodeCbor([1, "boot?", 1, "t", 1, 1])), MalformedFrameError);
    assert.throws(() => decodeMessage(encodeCbor([2, 1, 1, 7])), MalformedFrameError);
    assert.throws(() => decodeMessage(encodeCbor("not an array")), MalformedFrameError);
  });
});

describe("frame decoder", () => {
  it("finds every frame whatever the chunking", () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1 }),
        (msgs, cuts) => {
          const wire = concat(...msgs.map((m) => encodeFrame(encodeMessage(m))));
          const decoder = new FrameDecoder();
          const got: Uint8Array[] = [];
          for (let i = 0, c = 0; i < wire.length; c++) {
            const n = cuts[c % cuts.length]!;
            got.push(...frames(decoder.push(wire.subarray(i, i + n))));
            i += n;
          }
          assert.deepEqual(got.map(decodeMessage), msgs);
          assert.equal(decoder.stats.resyncs, 0);
        },
      ),
    );
  });

  it("detects every single-byte corruption of a frame and recovers at the next one", () => {
    // Exhaustive: every position of every sample frame, every other byte value. A corrupted
    // frame must never come out as a frame; the frame after it must come out intact, unless the
    // corrupted byte was the delimiter between them (then both are lost, and the third is found).
    const samples: Message[] = [
      { type: "reading", boot: 3, seq: 1234, sensor: "chip_temp", value: 21.5, uptimeMs: 987_654 },
      { type: "reading", boot: 1, seq: 0, sensor: "a0", value: 0, uptimeMs: 0 },
      {
        type: "hello",
        protocol: 1,
        device: "kitchen",
        boot: 70000,
        firmware: "fw/1.0",
        uptimeMs: 5,
        intervalMs: 1000,
        window: 16,
        sensors: ["a0", "count"],
      },
      { type: "ack", boot: 2, seq: 65536, status: "buffered" },
      {
        type: "stats",
        boot: 9,
        nextSeq: 100,
        unacked: 3,
        retransmits: 0,
        rejected: 0,
        dropped: 0,
        rxBad: 256,
        rxIgnored: 0,
        intervalMs: 1,
        uptimeMs: 2 ** 33,
      },
    ];
    const next = encodeFrame(encodeMessage({ type: "who" }));
    const third = encodeFrame(encodeMessage({ type: "stats-request" }));
    let cases = 0;
    for (const m of samples) {
      const frame = encodeFrame(encodeMessage(m));
      for (let pos = 0; pos < frame.length; pos++) {
        for (let v = 0; v < 256; v++) {
          if (v === frame[pos]) continue;
          const damaged = frame.slice();
          damaged[pos] = v;
          const decoder = new FrameDecoder();
          const got = frames(decoder.push(concat(Uint8Array.of(0), damaged, next, third))).map(decodeMessage);
          const delimiterHit = pos === frame.length - 1;
          const expected: Message[] = delimiterHit
            ? [{ type: "stats-request" }]
            : [{ type: "who" }, { type: "stats-request" }];
          assert.deepEqual(got, expected, `position ${pos} value ${v} of ${m.type}`);
          assert.ok(decoder.stats.resyncs >= 1);
          cases++;
        }
      }
    }
    assert.ok(cases > 20_000);
  });

  it("resynchronises after random garbage and never throws", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 300 }), message), { maxLength: 6 }),
        (parts) => {
          const decoder = new FrameDecoder();
          const got: Message[] = [];
          const want: Message[] = [];
          for (const [garbage, m] of parts) {
            // Garbage then a delimiter (the firmware starts every boot with one, and every frame ends
            // with one), then a good frame: the good frame must come through.
            for (const e of decoder.push(concat(garbage, Uint8Array.of(0), encodeFrame(encodeMessage(m))))) {
              if (e.kind !== "frame") continue;
              try {
                got.push(decodeMessage(e.payload));
              } catch (err) {
                // Garbage may hold a frame with a valid CRC by chance (2^-32); such a frame must
                // still fail as a message, never as a crash.
                assert.ok(err instanceof MalformedFrameError || err instanceof UnknownMessageError);
              }
            }
            want.push(m);
          }
          assert.deepEqual(got.slice(-want.length), want);
          assert.ok(decoder.pendingBytes <= MAX_ENCODED_BYTES);
        },
      ),
    );
  });

  it("reports a long run of zero bytes once, not the zero a device sends when it boots", () => {
    const decoder = new FrameDecoder();
    const who = encodeFrame(encodeMessage({ type: "who" }));
    const boot = decoder.push(concat(who, Uint8Array.of(0), who, Uint8Array.of(0, 0)));
    assert.deepEqual(
      boot.map((e) => e.kind),
      ["frame", "frame"],
    );
    const run = decoder.push(concat(new Uint8Array(ZERO_RUN_BYTES * 5), who));
    assert.deepEqual(
      run.map((e) => e.kind),
      ["zeros", "frame"],
    );
    assert.equal(decoder.stats.resyncs, 0);
  });

  it("drops an oversized frame, counts it, and takes the next", () => {
    const decoder = new FrameDecoder();
    const huge = new Uint8Array(5000).fill(0x41);
    const events = decoder.push(concat(huge, Uint8Array.of(0), encodeFrame(encodeMessage({ type: "who" }))));
    assert.deepEqual(
      events.map((e) => e.kind),
      ["reject", "frame"],
    );
    assert.equal(decoder.stats.oversized, 1);
    assert.ok(decoder.pendingBytes === 0);
  });

  it("counts a truncated frame (a dropped tail) as one resync", () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame(encodeMessage({ type: "ack", boot: 1, seq: 2, status: "committed" }));
    const truncated = frame.subarray(0, frame.length - 4);
    const events = decoder.push(concat(truncated, Uint8Array.of(0), frame));
    assert.deepEqual(
      events.map((e) => e.kind),
      ["reject", "frame"],
    );
    assert.equal(decoder.stats.resyncs, 1);
    assert.equal(decoder.stats.framesOk, 1);
  });

  it("refuses to build a frame larger than the protocol allows", () => {
    assert.throws(() => encodeFrame(new Uint8Array(MAX_PAYLOAD_BYTES + 1)), RangeError);
    assert.throws(
      () =>
        encodeMessage({
          type: "hello",
          protocol: 1,
          device: "d",
          boot: 1,
          firmware: "x".repeat(200),
          uptimeMs: 0,
          intervalMs: 0,
          window: 1,
          sensors: [],
        }),
      RangeError,
    );
  });
});
