import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { KvInput } from "../../src/check/linearizability.js";
import { KvDecodeError, KvStore, decodeCommand, encodeCommand } from "../../src/sim/kv.js";

const key = fc.constantFrom("a", "b", "c");
const value = fc.constantFrom("1", "2", "3");
const input: fc.Arbitrary<KvInput> = fc.oneof(
  key.map((k) => ({ kind: "get" as const, key: k })),
  fc.tuple(key, value).map(([k, v]) => ({ kind: "put" as const, key: k, value: v })),
  key.map((k) => ({ kind: "del" as const, key: k })),
  fc
    .tuple(key, fc.option(value, { nil: null }), value)
    .map(([k, e, v]) => ({ kind: "cas" as const, key: k, expected: e, value: v })),
);

describe("KvStore", () => {
  it("follows the checker's model: put, del, cas with null meaning absent", () => {
    const kv = new KvStore();
    assert.deepEqual(kv.apply({ kind: "get", key: "a" }), { kind: "get", value: null });
    assert.deepEqual(kv.apply({ kind: "cas", key: "a", expected: "x", value: "1" }), {
      kind: "cas",
      ok: false,
    });
    assert.deepEqual(kv.apply({ kind: "cas", key: "a", expected: null, value: "1" }), {
      kind: "cas",
      ok: true,
    });
    assert.deepEqual(kv.apply({ kind: "cas", key: "a", expected: "1", value: "2" }), {
      kind: "cas",
      ok: true,
    });
    assert.deepEqual(kv.apply({ kind: "get", key: "a" }), { kind: "get", value: "2" });
    assert.deepEqual(kv.apply({ kind: "del", key: "a" }), { kind: "ok" });
    assert.deepEqual(kv.apply({ kind: "get", key: "a" }), { kind: "get", value: null });
  });

  it("gives equal fingerprints to equal contents, whatever the path, and survives a snapshot", () => {
    fc.assert(
      fc.property(fc.array(input, { maxLength: 40 }), (ops) => {
        const kv = new KvStore();
        const model = new Map<string, string>();
        for (const op of ops) {
          kv.apply(op);
          if (op.kind === "put") model.set(op.key, op.value);
          else if (op.kind === "del") model.delete(op.key);
          else if (op.kind === "cas" && (model.get(op.key) ?? null) === op.expected)
            model.set(op.key, op.value);
        }
        const rebuilt = new KvStore();
        for (const [k, v] of [...model].reverse()) rebuilt.apply({ kind: "put", key: k, value: v });
        assert.equal(kv.digest(), rebuilt.digest());
        const restored = KvStore.decode(kv.encode());
        assert.equal(restored.digest(), kv.digest());
        assert.deepEqual(restored.encode(), kv.encode());
        for (const k of ["a", "b", "c"]) assert.equal(restored.get(k), model.get(k) ?? null);
      }),
    );
  });

  it("tells different contents apart by fingerprint", () => {
    const a = new KvStore();
    const b = new KvStore();
    a.apply({ kind: "put", key: "x", value: "1" });
    b.apply({ kind: "put", key: "x", value: "2" });
    assert.notEqual(a.digest(), b.digest());
  });

  it("round-trips commands and rejects malformed bytes", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(100), input, (opId, clientId, inp) => {
        assert.deepEqual(decodeCommand(encodeCommand({ opId, clientId, input: inp })), {
          opId,
          clientId,
          input: inp,
        });
      }),
    );
    const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
    assert.throws(() => decodeCommand(bytes("not json")), KvDecodeError);
    assert.throws(() => decodeCommand(bytes('[1, 2, {"kind": "put", "key": "a"}]')), KvDecodeError);
    assert.throws(() => KvStore.decode(bytes('[["a", 1]]')), KvDecodeError);
  });
});
