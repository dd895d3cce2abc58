import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventQueue } from "../../src/sim/event-queue.js";
import { Network, NetworkParamsError, RELIABLE_NETWORK, type NetworkParams } from "../../src/sim/network.js";
import { Random } from "../../src/sim/random.js";

interface Msg {
  from: string;
  to: string;
  n: number;
}

/** A network over its own event queue; `run` delivers everything due and returns it in order. */
function harness(params: NetworkParams, seed = 1) {
  const queue = new EventQueue<Msg>();
  const net = new Network<Msg>(new Random(seed), params, (time, msg) => queue.push(time, msg));
  const run = (): { time: number; msg: Msg }[] => {
    const out: { time: number; msg: Msg }[] = [];
    for (let e = queue.pop(); e !== undefined; e = queue.pop()) {
      if (net.arrive(e.value)) out.push({ time: e.time, msg: e.value });
    }
    return out;
  };
  return { net, run };
}

describe("Network", () => {
  it("delivers every message on a healthy reliable network, within the delay bounds", () => {
    const { net, run } = harness({ ...RELIABLE_NETWORK, minDelay: 2, maxDelay: 9 });
    for (let n = 0; n < 200; n++) net.send({ from: "a", to: "b", n }, 100);
    const got = run();
    assert.equal(got.length, 200);
    for (const d of got) assert.ok(d.time >= 102 && d.time <= 109, `delivered at ${d.time}`);
    assert.equal(net.messagesInFlight, 0);
  });

  it("reorders messages through random delays", () => {
    const { net, run } = harness({ ...RELIABLE_NETWORK, minDelay: 1, maxDelay: 30 });
    for (let n = 0; n < 50; n++) net.send({ from: "a", to: "b", n }, 0);
    const order = run().map((d) => d.msg.n);
    assert.deepEqual(
      [...order].sort((x, y) => x - y),
      order.map((_, i) => i),
    );
    assert.notDeepEqual(
      order,
      [...order].sort((x, y) => x - y),
    );
  });

  it("does not deliver across a cut link, in either direction of a symmetric partition", () => {
    const { net, run } = harness(RELIABLE_NETWORK);
    net.split(["a"], ["b", "c"], false);
    net.send({ from: "a", to: "b", n: 1 }, 0);
    net.send({ from: "c", to: "a", n: 2 }, 0);
    net.send({ from: "b", to: "c", n: 3 }, 0);
    assert.deepEqual(
      run().map((d) => d.msg.n),
      [3],
    );
    assert.equal(net.stats.cut, 2);
  });

  it("cuts only one direction in a one-way partition (b hears a, a does not hear b)", () => {
    const { net, run } = harness(RELIABLE_NETWORK);
    net.isolate("a", ["b"], "in");
    net.send({ from: "a", to: "b", n: 1 }, 0);
    net.send({ from: "b", to: "a", n: 2 }, 0);
    assert.deepEqual(
      run().map((d) => d.msg.n),
      [1],
    );
  });

  it("loses a message that is on the wire when its link is cut, and heals", () => {
    const { net, run } = harness(RELIABLE_NETWORK);
    net.send({ from: "a", to: "b", n: 1 }, 0);
    net.cut("a", "b");
    assert.equal(run().length, 0);
    net.healAll();
    assert.equal(net.partitioned, false);
    net.send({ from: "a", to: "b", n: 2 }, 0);
    assert.equal(run().length, 1);
  });

  it("drops and duplicates at about the configured rates", () => {
    const { net, run } = harness({ ...RELIABLE_NETWORK, dropChance: 0.3, duplicateChance: 0.2 });
    for (let n = 0; n < 5000; n++) net.send({ from: "a", to: "b", n }, 0);
    const got = run();
    assert.ok(net.stats.dropped > 1300 && net.stats.dropped < 1700, `dropped ${net.stats.dropped}`);
    assert.ok(net.stats.duplicated > 550 && net.stats.duplicated < 850, `duplicated ${net.stats.duplicated}`);
    assert.equal(got.length, 5000 - net.stats.dropped + net.stats.duplicated);
    const copies = new Map<number, number>();
    for (const d of got) copies.set(d.msg.n, (copies.get(d.msg.n) ?? 0) + 1);
    assert.ok([...copies.values()].every((c) => c === 1 || c === 2));
  });

  it("bounds the messages in flight", () => {
    const { net, run } = harness({ ...RELIABLE_NETWORK, maxInFlight: 10 });
    for (let n = 0; n < 25; n++) net.send({ from: "a", to: "b", n }, 0);
    assert.equal(net.stats.overflow, 15);
    assert.equal(run().length, 10);
  });

  it("is deterministic for a seed", () => {
    const trace = (seed: number): string => {
      const { net, run } = harness(
        { ...RELIABLE_NETWORK, maxDelay: 40, dropChance: 0.1, duplicateChance: 0.1 },
        seed,
      );
      for (let n = 0; n < 100; n++) net.send({ from: "a", to: "b", n }, n);
      return run()
        .map((d) => `${d.time}:${d.msg.n}`)
        .join(" ");
    };
    assert.equal(trace(4), trace(4));
    assert.notEqual(trace(4), trace(5));
  });

  it("rejects impossible parameters", () => {
    assert.throws(() => harness({ ...RELIABLE_NETWORK, dropChance: 1 }), NetworkParamsError);
    assert.throws(() => harness({ ...RELIABLE_NETWORK, minDelay: 0 }), NetworkParamsError);
    assert.throws(() => harness({ ...RELIABLE_NETWORK, maxDelay: 0.5 }), NetworkParamsError);
  });
});
