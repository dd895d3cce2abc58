import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InFlight, InFlightList } from "../../src/api/in-flight.js";

const ids = (list: InFlightList, all: InFlight[]): number[] => [...list].map((r) => all.indexOf(r));

describe("InFlightList", () => {
  it("keeps arrival order through deletes at either end and in the middle", () => {
    const list = new InFlightList();
    const all = Array.from({ length: 5 }, (_, i) => new InFlight(i));
    for (const r of all) list.add(r);
    assert.deepEqual(ids(list, all), [0, 1, 2, 3, 4]);
    list.delete(all[2]!);
    list.delete(all[0]!);
    list.delete(all[4]!);
    assert.deepEqual(ids(list, all), [1, 3]);
    assert.equal(list.size, 2);
    list.delete(all[2]!); // not in the list any more: nothing changes
    assert.equal(list.size, 2);
    list.add(all[0]!);
    assert.deepEqual(ids(list, all), [1, 3, 0]);
    list.delete(all[1]!);
    list.delete(all[3]!);
    list.delete(all[0]!);
    assert.equal(list.size, 0);
    assert.deepEqual(ids(list, all), []);
  });

  it("a deleted request holds no links to its former neighbours", () => {
    const list = new InFlightList();
    const [a, b, c] = [new InFlight(0), new InFlight(1), new InFlight(2)];
    for (const r of [a, b, c]) list.add(r);
    list.delete(b);
    assert.equal(b.prev, null);
    assert.equal(b.next, null);
    assert.equal(a.next, c);
    assert.equal(c.prev, a);
  });

  it("refuses a request that is already in flight", () => {
    const list = new InFlightList();
    const r = new InFlight(0);
    list.add(r);
    assert.throws(() => list.add(r), /already in flight/);
  });

  it("a walk goes on past the request it deletes", () => {
    const list = new InFlightList();
    const all = Array.from({ length: 4 }, (_, i) => new InFlight(i));
    for (const r of all) list.add(r);
    const seen: number[] = [];
    for (const r of list) {
      seen.push(all.indexOf(r));
      if (r === all[1]) list.delete(r);
    }
    assert.deepEqual(seen, [0, 1, 2, 3]);
    assert.deepEqual(ids(list, all), [0, 2, 3]);
  });
});
