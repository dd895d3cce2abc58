import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Encoder } from "cbor-x";
import fc from "fast-check";
import { BadCommandError, decodeCommand, encodeCommand, type KvCommand } from "../../src/kv/commands.js";

const command: fc.Arbitrary<KvCommand> = fc
  .oneof(
    fc.record({
      op: fc.constant("put" as const),
      key: fc.string({ unit: "grapheme", maxLength: 200 }),
      value: fc.uint8Array({ maxLength: 3000 }),
      cas: fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: null }),
      id: fc.string({ minLength: 1, maxLength: 40 }),
    }),
    fc.record({
      op: fc.constant("del" as const),
      key: fc.string({ unit: "grapheme", maxLength: 200 }),
      cas: fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: null }),
      id: fc.string({ minLength: 1, maxLength: 40 }),
    }),
  )
  .map((c) => ({ ...c })); // fast-check's records have no prototype; decoded commands do

/** A decoded command with its value as a plain Uint8Array (decoding may hand out a Buffer). */
function plain(cmd: KvCommand): KvCommand {
  return cmd.op === "put" ? { ...cmd, value: new Uint8Array(cmd.value) } : cmd;
}

/** How entries were encoded before the binary layout: CBOR maps with short field names. */
const legacy = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
function encodeLegacy(cmd: KvCommand): Uint8Array {
  const wire: Record<string, unknown> = { o: cmd.op === "put" ? 1 : 2, k: cmd.key, i: cmd.id };
  if (cmd.cas !== null) wire.c = cmd.cas;
  if (cmd.op === "put") wire.v = cmd.value;
  return new Uint8Array(legacy.encode(wire));
}

describe("kv commands: the log entry layout", () => {
  it("decodes what it encodes: puts and deletes, any key, with and without cas", () => {
    fc.assert(
      fc.property(command, (cmd) => {
        assert.deepEqual(plain(decodeCommand(encodeCommand(cmd, cmd.id))), cmd);
      }),
      { numRuns: 500 },
    );
  });

  it("still decodes the CBOR maps of entries written before it", () => {
    fc.assert(
      fc.property(command, (cmd) => {
        assert.deepEqual(plain(decodeCommand(encodeLegacy(cmd))), cmd);
      }),
      { numRuns: 200 },
    );
  });

  it("hands out a copy of the value, not a view of the entry", () => {
    const cmd: KvCommand = { op: "put", key: "k", value: new Uint8Array([1, 2, 3]), cas: null, id: "n1:1" };
    const data = encodeCommand(cmd, cmd.id);
    const decoded = decodeCommand(data);
    data.fill(0);
    assert.deepEqual(plain(decoded), cmd);
  });

  it("refuses a cut-short or malformed entry with BadCommandError, never another error", () => {
    fc.assert(
      fc.property(command, fc.nat(), (cmd, cut) => {
        const data = encodeCommand(cmd, cmd.id);
        const prefix = data.subarray(0, cut % data.length);
        try {
          const got = decodeCommand(prefix);
          // Only a cut inside a put's value leaves a well-formed command: the same put, shorter.
          assert.equal(got.op, "put");
          assert.equal(got.key, cmd.key);
          assert.equal(got.id, cmd.id);
          assert.equal(got.cas, cmd.cas);
        } catch (err) {
          assert.ok(err instanceof BadCommandError, String(err));
        }
      }),
      { numRuns: 500 },
    );
    for (const bad of [[1], [1, 3, 0, 0, 0, 0, 0], [1, 1, 2, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 9]]) {
      assert.throws(() => decodeCommand(new Uint8Array(bad)), BadCommandError, String(bad));
    }
  });

  it("refuses to encode a field its 16-bit length cannot carry", () => {
    const cmd: KvCommand = { op: "del", key: "k", cas: "9".repeat(70_000), id: "n1:1" };
    assert.throws(() => encodeCommand(cmd, cmd.id), BadCommandError);
  });
});
