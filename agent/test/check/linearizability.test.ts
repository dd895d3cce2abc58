import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type CheckResult,
  checkKvHistory,
  formatHistory,
  InvalidHistoryError,
  type KvInput,
  type KvOutput,
  type Operation,
} from "../../src/check/linearizability.js";
import { apply, seededRandom, simulateKvHistory } from "../../src/check/simulated-history.js";

// ---------------------------------------------------------------------------------------------
// Helpers that make histories read like timelines: client, what, call, return, what it saw.

type Spec = Omit<Operation, "id">;
type Seen = string | null | "?"; // "?" = outcome unknown

function done(output: KvOutput | null, call: number, ret: number): Pick<Spec, "call" | "ret" | "output"> {
  return output === null ? { call, ret: Infinity, output: null } : { call, ret, output };
}
function get(clientId: number, key: string, call: number, ret: number, seen: Seen): Spec {
  return {
    clientId,
    input: { kind: "get", key },
    ...done(seen === "?" ? null : { kind: "get", value: seen }, call, ret),
  };
}
function put(clientId: number, key: string, value: string, call: number, ret: number, unknown = false): Spec {
  return {
    clientId,
    input: { kind: "put", key, value },
    ...done(unknown ? null : { kind: "ok" }, call, ret),
  };
}
function del(clientId: number, key: string, call: number, ret: number, unknown = false): Spec {
  return { clientId, input: { kind: "del", key }, ...done(unknown ? null : { kind: "ok" }, call, ret) };
}
function cas(
  clientId: number,
  key: string,
  expected: string | null,
  value: string,
  call: number,
  ret: number,
  ok: boolean | "?",
): Spec {
  const output: KvOutput | null = ok === "?" ? null : { kind: "cas", ok };
  return { clientId, input: { kind: "cas", key, expected, value }, ...done(output, call, ret) };
}
function history(...specs: Spec[]): Operation[] {
  return specs.map((spec, id) => ({ id, ...spec }));
}

function assertOk(result: CheckResult): void {
  assert.equal(result.kind, "ok", result.kind === "violation" ? result.explanation : JSON.stringify(result));
}
function assertViolation(result: CheckResult, key: string): Extract<CheckResult, { kind: "violation" }> {
  assert.equal(result.kind, "violation", JSON.stringify(result));
  assert.ok(result.kind === "violation");
  assert.equal(result.key, key);
  return result;
}

// ---------------------------------------------------------------------------------------------

describe("checkKvHistory accepts linearizable histories", () => {
  it("accepts an empty history", () => {
    assertOk(checkKvHistory([]));
  });

  it("accepts a sequential put, get, del, get", () => {
    assertOk(
      checkKvHistory(
        history(
          get(1, "x", 0, 1, null),
          put(1, "x", "a", 2, 3),
          get(1, "x", 4, 5, "a"),
          del(1, "x", 6, 7),
          get(1, "x", 8, 9, null),
        ),
      ),
    );
  });

  it("reorders overlapping writes: the one called second may take effect first", () => {
    // Both puts overlap; the later read sees "a", so "b" must be ordered before "a".
    assertOk(
      checkKvHistory(history(put(1, "x", "a", 0, 10), put(2, "x", "b", 1, 9), get(3, "x", 11, 12, "a"))),
    );
  });

  it("lets a read that returns before a write returns see that write", () => {
    assertOk(
      checkKvHistory(history(put(1, "x", "a", 0, 10), get(2, "x", 2, 3, "a"), get(2, "x", 4, 5, "a"))),
    );
  });

  it("treats an operation returning at the instant another is called as concurrent", () => {
    // The put returns at 5 and the get is called at 5: either order is allowed.
    assertOk(checkKvHistory(history(put(1, "x", "a", 0, 5), get(2, "x", 5, 6, null))));
  });

  it("accepts a chain of cas operations, including failed ones", () => {
    assertOk(
      checkKvHistory(
        history(
          cas(1, "x", null, "1", 0, 1, true),
          cas(1, "x", "1", "2", 2, 3, true),
          cas(2, "x", "1", "3", 4, 5, false),
          cas(2, "x", null, "9", 6, 7, false),
          get(1, "x", 8, 9, "2"),
        ),
      ),
    );
  });

  it("accepts two concurrent cas from absent where exactly one wins", () => {
    assertOk(
      checkKvHistory(
        history(
          cas(1, "x", null, "a", 0, 10, false),
          cas(2, "x", null, "b", 1, 9, true),
          get(3, "x", 11, 12, "b"),
        ),
      ),
    );
  });

  it("accepts an unknown-outcome write that took effect", () => {
    assertOk(checkKvHistory(history(put(1, "x", "a", 0, 0, true), get(2, "x", 5, 6, "a"))));
  });

  it("accepts an unknown-outcome write that never took effect", () => {
    assertOk(
      checkKvHistory(history(put(1, "x", "a", 0, 0, true), get(2, "x", 5, 6, null), get(2, "x", 7, 8, null))),
    );
  });

  it("accepts an unknown-outcome write taking effect between two reads long after its call", () => {
    assertOk(
      checkKvHistory(
        history(
          put(1, "x", "a", 0, 0, true),
          get(2, "x", 50, 51, null),
          get(2, "x", 90, 91, "a"),
          get(3, "x", 92, 93, "a"),
        ),
      ),
    );
  });

  it("accepts an unknown-outcome cas that took effect", () => {
    assertOk(
      checkKvHistory(
        history(put(1, "x", "a", 0, 1), cas(2, "x", "a", "b", 2, 0, "?"), get(3, "x", 10, 11, "b")),
      ),
    );
  });

  it("ignores gets with unknown outcome", () => {
    assertOk(checkKvHistory(history(put(1, "x", "a", 0, 1), get(2, "x", 2, 0, "?"), get(3, "x", 4, 5, "a"))));
  });

  it("starts from the initial values", () => {
    const initial = new Map([["x", "seed"]]);
    assertOk(checkKvHistory(history(get(1, "x", 0, 1, "seed"), get(1, "y", 2, 3, null)), { initial }));
    assertViolation(checkKvHistory(history(get(1, "x", 0, 1, null)), { initial }), "x");
  });
});

describe("checkKvHistory rejects non-linearizable histories", () => {
  it("rejects a stale read after a completed write", () => {
    const result = assertViolation(
      checkKvHistory(history(put(1, "x", "a", 0, 1), put(1, "x", "b", 2, 3), get(2, "x", 4, 5, "a"))),
      "x",
    );
    assert.match(result.explanation, /#2 c2 get\("x"\) → "a" cannot, the value is "b"/);
  });

  it("rejects a read that follows a completed write by one tick and misses it", () => {
    assertViolation(checkKvHistory(history(put(1, "x", "a", 0, 5), get(2, "x", 6, 7, null))), "x");
  });

  it("rejects a read of a value never written", () => {
    const result = assertViolation(
      checkKvHistory(history(put(1, "x", "a", 0, 1), get(2, "x", 2, 3, "zzz"))),
      "x",
    );
    assert.match(result.explanation, /never|no operation on this key writes it/);
    assert.deepEqual(
      result.ops.map((op) => op.id),
      [1],
    );
  });

  it("rejects two readers that see two concurrent writes in opposite orders", () => {
    assertViolation(
      checkKvHistory(
        history(
          put(1, "x", "a", 0, 100),
          put(2, "x", "b", 0, 100),
          get(3, "x", 10, 20, "a"),
          get(3, "x", 30, 40, "b"),
          get(4, "x", 10, 20, "b"),
          get(4, "x", 30, 40, "a"),
        ),
      ),
      "x",
    );
  });

  it("rejects a cas that succeeded against a value already overwritten", () => {
    assertViolation(
      checkKvHistory(
        history(put(1, "x", "1", 0, 1), put(1, "x", "2", 2, 3), cas(2, "x", "1", "3", 4, 5, true)),
      ),
      "x",
    );
  });

  it("rejects a cas that failed although the value was the expected one", () => {
    assertViolation(checkKvHistory(history(put(1, "x", "1", 0, 1), cas(2, "x", "1", "3", 4, 5, false))), "x");
  });

  it("rejects a lost completed write", () => {
    assertViolation(
      checkKvHistory(history(put(1, "x", "a", 0, 1), put(2, "x", "b", 2, 3), get(3, "x", 4, 5, null))),
      "x",
    );
  });

  it("rejects a lost update: two cas from absent that both succeed", () => {
    assertViolation(
      checkKvHistory(
        history(
          cas(1, "x", null, "a", 0, 5, true),
          cas(2, "x", null, "b", 0, 5, true),
          get(3, "x", 6, 7, "b"),
        ),
      ),
      "x",
    );
  });

  it("rejects a read that undoes an unknown-outcome write it already observed", () => {
    // Once "a" was seen, the unknown put took effect; a later read of absent is impossible.
    assertViolation(
      checkKvHistory(history(put(1, "x", "a", 0, 0, true), get(2, "x", 5, 6, "a"), get(2, "x", 7, 8, null))),
      "x",
    );
  });

  it("reports only the shortest failing prefix of the key, which fails on its own", () => {
    const specs: Spec[] = [put(1, "x", "a", 0, 1), put(1, "x", "b", 2, 3), get(2, "x", 4, 5, "a")];
    for (let t = 10; t < 200; t += 10)
      specs.push(put(1, "x", `v${t}`, t, t + 1), get(2, "x", t + 2, t + 3, `v${t}`));
    const ops = history(...specs);
    const result = assertViolation(checkKvHistory(ops), "x");
    assert.deepEqual(
      result.ops.map((op) => op.id),
      [0, 1, 2],
    );
    assert.match(result.explanation, /already fails at time 5/);
    assert.equal(checkKvHistory(result.ops).kind, "violation");
  });
});

describe("checkKvHistory checks keys independently", () => {
  it("reports the failing key with only that key's operations", () => {
    const ops = history(
      put(1, "a", "1", 0, 10),
      put(2, "b", "1", 0, 1),
      get(3, "a", 2, 3, "1"),
      put(1, "b", "2", 11, 12),
      get(2, "b", 13, 14, "1"), // stale on b
      get(3, "a", 15, 16, "1"),
    );
    const result = assertViolation(checkKvHistory(ops), "b");
    assert.ok(result.ops.every((op) => op.input.key === "b"));
    assert.equal(result.ops.length, 3);
  });

  it("keeps each key's value apart: writes to one key never hide another's", () => {
    // A checker that mixed keys into one register would see "b" overwrite "a" and reject the reads.
    const ops = history(
      put(1, "a", "1", 0, 1),
      put(2, "b", "2", 2, 3),
      get(1, "a", 4, 5, "1"),
      get(2, "b", 4, 5, "2"),
      del(3, "b", 6, 7),
      get(1, "a", 8, 9, "1"),
    );
    assertOk(checkKvHistory(ops));
  });

  it("gives the same verdict whatever other keys are interleaved", () => {
    const bad = [put(1, "x", "a", 0, 1), put(1, "x", "b", 2, 3), get(2, "x", 4, 5, "a")];
    const noise = simulateKvHistory(seededRandom(7), { operations: 400, clients: 4, keys: 5 });
    const ops = history(...noise.map(({ id: _id, ...spec }) => spec), ...bad);
    assertViolation(checkKvHistory(ops), "x");
    assertOk(checkKvHistory(ops.filter((op) => op.input.key !== "x")));
  });
});

describe("checkKvHistory has a bound", () => {
  // n concurrent puts of distinct values followed by two reads that disagree: refuting it means
  // trying every order of the puts, about n · 2^(n-1) configurations.
  function pathological(n: number): Operation[] {
    const specs: Spec[] = [];
    for (let i = 0; i < n; i++) specs.push(put(i, "x", `p${i}`, 0, 100));
    specs.push(get(n, "x", 101, 102, "p0"), get(n, "x", 103, 104, "p1"));
    return history(...specs);
  }

  it("answers unknown when the step budget runs out, and violation when it does not", () => {
    const small = pathological(10);
    const limited = checkKvHistory(small, { maxSteps: 1000 });
    assert.equal(limited.kind, "unknown");
    assert.ok(limited.kind === "unknown");
    assert.match(limited.reason, /budget of 1000/);
    assertViolation(checkKvHistory(small), "x");
  });

  it("answers unknown with the default budget on a history too large to refute", () => {
    const result = checkKvHistory(pathological(22));
    assert.equal(result.kind, "unknown");
  });

  it("still finds a never-written value on another key when the budget is spent", () => {
    const ops = [...pathological(10), { id: 1000, ...get(99, "y", 0, 1, "ghost") }];
    assertViolation(checkKvHistory(ops, { maxSteps: 10 }), "y");
  });

  it("rejects a bad budget", () => {
    assert.throws(() => checkKvHistory([], { maxSteps: -1 }), RangeError);
  });
});

describe("checkKvHistory validates its input", () => {
  const valid = (): Operation[] => history(put(1, "x", "a", 0, 1), get(2, "x", 2, 3, "a"));
  const cases: [string, (ops: Operation[]) => void, RegExp][] = [
    ["ret before call", (ops) => ((ops[1] as Operation).ret = 1), /returns at 1, before its call at 2/],
    ["duplicate ids", (ops) => ((ops[1] as Operation).id = 0), /id 0 appears twice/],
    [
      "output kind not matching input kind",
      (ops) => ((ops[0] as Operation).output = { kind: "get", value: "a" }),
      /is a put but its output kind is get/,
    ],
    ["an output with ret = ∞", (ops) => ((ops[0] as Operation).ret = Infinity), /never returned/],
    ["a NaN call time", (ops) => ((ops[0] as Operation).call = NaN), /call time NaN/],
    [
      "an unknown input kind",
      (ops) => ((ops[0] as Operation).input = { kind: "incr", key: "x" } as unknown as KvInput),
      /unknown input kind incr/,
    ],
  ];
  for (const [name, corrupt, message] of cases) {
    it(`throws InvalidHistoryError for ${name}`, () => {
      const ops = valid();
      corrupt(ops);
      assert.throws(
        () => checkKvHistory(ops),
        (err: unknown) =>
          err instanceof InvalidHistoryError &&
          err.name === "InvalidHistoryError" &&
          message.test(err.message),
      );
    });
  }
  it("accepts the unmodified history", () => {
    assertOk(checkKvHistory(valid()));
  });
});

describe("formatHistory", () => {
  it("prints one line per operation, in call order, with unknown outcomes marked", () => {
    const ops = history(get(2, "x", 4, 5, "a"), put(1, "x", "a", 0, 3), put(3, "x", "b", 1, 0, true));
    const lines = formatHistory(ops).split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0] ?? "", /3 operations from 3 clients/);
    assert.match(lines[1] ?? "", /#1 c1 put\("x", "a"\) → ok\s+@0\.\.3$/);
    assert.match(lines[2] ?? "", /-+> #2 c3 put\("x", "b"\) → \? \(outcome unknown\)\s+@1\.\.∞$/);
    assert.match(lines[3] ?? "", /#0 c2 get\("x"\) → "a"/);
  });

  it("says so for an empty history", () => {
    assert.equal(formatHistory([]), "(empty history)");
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

/** Histories that a real map produced, with overlapping clients and some unknown outcomes. */
const simulated = fc
  .record({
    seed: fc.integer(),
    operations: fc.integer({ min: 1, max: 80 }),
    clients: fc.integer({ min: 1, max: 6 }),
    keys: fc.integer({ min: 1, max: 4 }),
    unknownRate: fc.constantFrom(0, 0.05, 0.2),
  })
  .map((shape) => ({ shape, ops: simulateKvHistory(seededRandom(shape.seed), shape) }));

function completedGets(ops: readonly Operation[]): number[] {
  return ops.flatMap((op, i) => (op.input.kind === "get" && op.output !== null ? [i] : []));
}

function withGetOutput(ops: readonly Operation[], index: number, value: string | null): Operation[] {
  return ops.map((op, i) => (i === index ? { ...op, output: { kind: "get", value } } : op));
}

describe("properties", () => {
  it("accepts every history produced by running a real map", () => {
    fc.assert(fc.property(simulated, ({ ops }) => assertOk(checkKvHistory(ops))));
  });

  it("rejects the same history once one completed get reads a value never written", () => {
    fc.assert(
      fc.property(simulated, fc.nat(), ({ ops }, pick) => {
        const gets = completedGets(ops);
        fc.pre(gets.length > 0);
        const index = gets[pick % gets.length] ?? 0;
        const key = (ops[index] as Operation).input.key;
        const result = assertViolation(checkKvHistory(withGetOutput(ops, index, "never-written")), key);
        assert.equal(checkKvHistory(result.ops).kind, "violation", "the reported part must fail on its own");
      }),
    );
  });

  it("rejects a sequential history once one get reads any other value the key ever held", () => {
    // One client and no unknown outcomes leave exactly one order, so any other answer is wrong;
    // values the key really held keep the cheap never-written pass out of it, so the search decides.
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 2, max: 60 }),
        fc.nat(),
        fc.nat(),
        (seed, operations, a, b) => {
          // One client, then spread out so that no return shares an instant with the next call.
          const ops = simulateKvHistory(seededRandom(seed), { operations, clients: 1, keys: 2 }).map(
            (op, i) => ({
              ...op,
              call: 2 * i,
              ret: 2 * i + 1,
            }),
          );
          const gets = completedGets(ops);
          fc.pre(gets.length > 0);
          const index = gets[a % gets.length] ?? 0;
          const target = ops[index] as Operation;
          const original = target.output?.kind === "get" ? target.output.value : null;
          const held = new Set<string | null>([null]);
          for (const op of ops) {
            if (op.input.key !== target.input.key) continue;
            if (op.input.kind === "put" || op.input.kind === "cas") held.add(op.input.value);
          }
          held.delete(original);
          const choices = [...held];
          fc.pre(choices.length > 0);
          const replacement = choices[b % choices.length] ?? null;
          assertViolation(checkKvHistory(withGetOutput(ops, index, replacement)), target.input.key);
        },
      ),
    );
  });

  it("agrees with a brute-force search on small random histories", () => {
    let linearizable = 0;
    let violations = 0;
    fc.assert(
      fc.property(smallRandomHistory, (ops) => {
        const expected = bruteForceLinearizable(ops);
        const result = checkKvHistory(ops);
        assert.equal(result.kind, expected ? "ok" : "violation", formatHistory(ops));
        if (result.kind === "violation") {
          violations++;
          assert.equal(bruteForceLinearizable(result.ops), false, "the reported part must fail on its own");
        } else {
          linearizable++;
        }
      }),
      { numRuns: 400 },
    );
    // Both verdicts must be common, or the agreement above says little.
    assert.ok(linearizable > 40 && violations > 40, `ok ${linearizable}, violations ${violations}`);
  });
});

/** Up to 7 operations on 1–2 keys, random timing, random (often impossible) outputs. */
const smallRandomHistory = fc
  .array(
    fc.record({
      clientId: fc.integer({ min: 0, max: 3 }),
      key: fc.constantFrom("x", "y"),
      kind: fc.constantFrom("get", "put", "del", "cas"),
      value: fc.constantFrom("a", "b"),
      expected: fc.constantFrom(null, "a", "b"),
      seen: fc.constantFrom(null, "a", "b"),
      casOk: fc.boolean(),
      unknown: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
      call: fc.integer({ min: 0, max: 12 }),
      duration: fc.integer({ min: 0, max: 6 }),
    }),
    { maxLength: 7 },
  )
  .map((raw) =>
    raw.map((r, id): Operation => {
      const input: KvInput =
        r.kind === "get" || r.kind === "del"
          ? { kind: r.kind, key: r.key }
          : r.kind === "put"
            ? { kind: "put", key: r.key, value: r.value }
            : { kind: "cas", key: r.key, expected: r.expected, value: r.value };
      const output: KvOutput =
        r.kind === "get"
          ? { kind: "get", value: r.seen }
          : r.kind === "cas"
            ? { kind: "cas", ok: r.casOk }
            : { kind: "ok" };
      return r.unknown
        ? { id, clientId: r.clientId, input, call: r.call, ret: Infinity, output: null }
        : { id, clientId: r.clientId, input, call: r.call, ret: r.call + r.duration, output };
    }),
  );

/**
 * The definition, searched naively: pick any operation that no pending known-outcome operation
 * must precede, apply it to a copy of the map, recurse. Unknown-outcome operations may be left out.
 */
function bruteForceLinearizable(ops: readonly Operation[]): boolean {
  const go = (remaining: readonly Operation[], state: ReadonlyMap<string, string>): boolean => {
    if (remaining.every((op) => op.output === null)) return true;
    for (const op of remaining) {
      if (remaining.some((p) => p.output !== null && p.ret < op.call)) continue;
      const next = new Map(state);
      const out = apply(next, op.input);
      if (op.output !== null && JSON.stringify(out) !== JSON.stringify(op.output)) continue;
      if (
        go(
          remaining.filter((p) => p !== op),
          next,
        )
      )
        return true;
    }
    return false;
  };
  return go(ops, new Map());
}
