import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeRoutingTables, parseRoutingTable } from "../src/routing/table.js";

const members = { a: "http://a:1", b: "http://b:1", c: "http://c:1" };

describe("routing tables", () => {
  it("believes the highest term's leader per partition", () => {
    const merged = mergeRoutingTables([
      { node: "a", partitions: 3, members, groups: [{ partition: 0, leader: "a", term: 2 }] },
      {
        node: "b",
        partitions: 3,
        members,
        groups: [
          { partition: 0, leader: "b", term: 3 },
          { partition: 1, leader: null, term: 5 },
        ],
      },
      { node: "c", partitions: 3, members, groups: [{ partition: 1, leader: "c", term: 4 }] },
    ]);
    assert.deepEqual(merged, { partitions: 3, leaders: ["http://b:1", "http://c:1", undefined] });
  });

  it("ignores a minority that disagrees on the partition count", () => {
    const merged = mergeRoutingTables([
      { node: "a", partitions: 4, members, groups: [{ partition: 3, leader: "a", term: 9 }] },
      { node: "b", partitions: 2, members, groups: [{ partition: 1, leader: "b", term: 1 }] },
      { node: "c", partitions: 2, members, groups: [] },
    ]);
    assert.deepEqual(merged, { partitions: 2, leaders: [undefined, "http://b:1"] });
    assert.equal(mergeRoutingTables([]), null);
  });

  it("parses a wire table and drops malformed claims", () => {
    const t = parseRoutingTable({
      node: "a",
      partitions: 2,
      members: { a: "http://a:1", b: 7 },
      groups: [
        { partition: 0, leader: "a", term: 1 },
        { partition: 2, leader: "a", term: 1 },
        { partition: 1, leader: "", term: 1 },
        { partition: 1, leader: "b", term: -1 },
        "junk",
      ],
    });
    assert.deepEqual(t, {
      node: "a",
      partitions: 2,
      members: { a: "http://a:1" },
      groups: [
        { partition: 0, leader: "a", term: 1 },
        { partition: 1, leader: null, term: 1 },
      ],
    });
    assert.throws(
      () => parseRoutingTable({ node: "a", partitions: 0, members: {}, groups: [] }),
      /partition count/,
    );
    assert.throws(() => parseRoutingTable(null), /not an object/);
  });
});
