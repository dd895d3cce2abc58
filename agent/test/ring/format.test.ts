import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  addNode,
  createRing,
  formatRing,
  MAX_RING_TEXT_CHARS,
  parseRing,
  placement,
  ringFromObject,
  ringToObject,
  RingFormatError,
  type Ring,
} from "../../src/ring/index.js";

const ringArb = fc
  .record({
    partitions: fc.integer({ min: 1, max: 128 }),
    replicationFactor: fc.integer({ min: 1, max: 5 }),
    vnodesPerWeight: fc.integer({ min: 1, max: 8 }),
    weights: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 6 }),
  })
  .map(({ weights, ...options }) =>
    weights.reduce((ring, weight, i) => addNode(ring, { id: `pi-${i}.lan`, weight }), createRing(options)),
  );

const sample = (): Ring =>
  addNode(addNode(createRing({ partitions: 8, vnodesPerWeight: 2 }), { id: "a" }), { id: "b", weight: 2 });

describe("ring serialisation", () => {
  it("reads back the text, JSON and object forms to an equal ring with the same placement", () => {
    fc.assert(
      fc.property(ringArb, (ring) => {
        assert.deepEqual(parseRing(formatRing(ring)), ring);
        assert.deepEqual(parseRing(JSON.stringify(ring)), ring);
        assert.deepEqual(ringFromObject(ringToObject(ring)), ring);
        assert.deepEqual(placement(parseRing(formatRing(ring))), placement(ring));
      }),
      { numRuns: 60 },
    );
  });

  it("writes one line per node with hex tokens", () => {
    const ring: Ring = {
      format: 1,
      partitions: 4,
      replicationFactor: 2,
      vnodesPerWeight: 1,
      nodes: [
        { id: "a", weight: 2, tokens: [0, 0xffffffff] },
        { id: "b", weight: 1, tokens: [0x10] },
      ],
    };
    assert.equal(
      formatRing(ring),
      "ringleader-ring 1\npartitions 4\nreplication 2\nvnodes 1\nnode a 2 00000000 ffffffff\nnode b 1 00000010\n",
    );
  });

  it("copies arrays, so changing the parsed ring's source changes nothing", () => {
    const obj = ringToObject(sample()) as unknown as { nodes: { tokens: number[] }[] };
    const ring = ringFromObject(obj);
    obj.nodes[0]!.tokens[0] = 7;
    assert.notEqual(ring.nodes[0]!.tokens[0], 7);
  });

  const text = formatRing(sample());
  const lines = text.trimEnd().split("\n");
  const withLine = (i: number, line: string) =>
    [...lines.slice(0, i), line, ...lines.slice(i + 1)].join("\n");
  const node = (i: number) => lines[4 + i]!.split(" ");

  const aTokens = node(0).slice(3);
  const bTokens = node(1).slice(3);
  const sharedB = [...bTokens.slice(0, -1), aTokens[0]!].sort();
  const badTexts: [string, string, RegExp][] = [
    ["nothing", "", /line 1/],
    ["the wrong magic", withLine(0, "ringleader-rung 1"), /line 1/],
    ["an unknown version", withLine(0, "ringleader-ring 2"), /unknown format 2/],
    ["the header out of order", withLine(1, "replication 3"), /line 2/],
    ["zero partitions", withLine(1, "partitions 0"), /partitions must be/],
    ["too many partitions", withLine(1, "partitions 5000"), /partitions must be/],
    ["replication 8", withLine(2, "replication 8"), /replicationFactor must be/],
    ["vnodes 0", withLine(3, "vnodes 0"), /vnodesPerWeight must be/],
    ["a line that is not a node", withLine(4, "nod a 1"), /line 5/],
    ["a bad id", withLine(4, ["node", "a,b", "1", ...aTokens].join(" ")), /not a node id/],
    ["weight 0", withLine(4, ["node", "a", "0", ...aTokens].join(" ")), /weight must be/],
    ["weight 17", withLine(4, ["node", "a", "17", ...aTokens].join(" ")), /weight must be/],
    [
      "a token too few",
      withLine(4, ["node", "a", "1", ...aTokens.slice(1)].join(" ")),
      /expected vnodes × weight = 2/,
    ],
    [
      "a token too many",
      withLine(4, ["node", "a", "1", ...aTokens, "ffffffff"].join(" ")),
      /expected vnodes × weight = 2/,
    ],
    [
      "a short hex token",
      withLine(4, ["node", "a", "1", aTokens[0]!, "abc"].join(" ")),
      /"abc" is not a token/,
    ],
    [
      "upper-case hex",
      withLine(4, ["node", "a", "1", ...aTokens.map((t) => t.toUpperCase())].join(" ")),
      /is not a token/,
    ],
    [
      "tokens out of order",
      withLine(4, ["node", "a", "1", ...[...aTokens].reverse()].join(" ")),
      /out of order/,
    ],
    ["a token two nodes share", withLine(5, ["node", "b", "2", ...sharedB].join(" ")), /share token/],
    ["a node listed twice", [...lines, lines[4]!].join("\n"), /appears twice/],
    ["unparsable JSON", "{ nope", /not valid JSON/],
    ["too many characters", "x".repeat(MAX_RING_TEXT_CHARS + 1), /longer than/],
  ];
  for (const [name, bad, message] of badTexts) {
    it(`rejects text with ${name}`, () => {
      assert.throws(
        () => parseRing(bad),
        (err: unknown) => err instanceof RingFormatError && message.test(err.message),
      );
    });
  }

  it("rejects objects that are not rings, naming the problem", () => {
    const good = ringToObject(sample()) as unknown as Record<string, unknown>;
    const nodes = good["nodes"] as Record<string, unknown>[];
    const cases: [unknown, RegExp][] = [
      [null, /not an object/],
      [[good], /not an object/],
      [{ ...good, format: 2 }, /unknown format/],
      [{ ...good, extra: 1 }, /unknown field "extra"/],
      [{ ...good, partitions: 1.5 }, /partitions/],
      [{ ...good, nodes: {} }, /nodes is not a list/],
      [{ ...good, nodes: [{ ...nodes[0], extra: true }] }, /unknown field/],
      [{ ...good, nodes: [{ ...nodes[0], id: 5 }] }, /not a node id/],
      [{ ...good, nodes: [{ ...nodes[0], tokens: "0" }] }, /not a list/],
      [{ ...good, nodes: [{ ...nodes[0], tokens: [1, 2 ** 32] }] }, /not a ring position/],
      [{ ...good, nodes: [{ ...nodes[0], tokens: [-1, 2] }] }, /not a ring position/],
      [{ ...good, nodes: [{ ...nodes[0], tokens: [1, 1.5] }] }, /not a ring position/],
      [{ ...good, nodes: [nodes[0], { ...nodes[0] }] }, /appears twice/],
      [{ ...good, nodes: Array.from({ length: 257 }, () => nodes[0]) }, /more than 256 nodes/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => ringFromObject(value),
        (err: unknown) => err instanceof RingFormatError && message.test(err.message),
      );
    }
  });
});
