import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Balancer,
  LocalLoadTracker,
  STRATEGIES,
  UnknownStrategyError,
  clientAddress,
  parseStrategy,
} from "../../src/balance/index.js";
import { EndpointSelector } from "../../src/client/endpoints.js";

const NODES = ["n1", "n2", "n3"];

/** How often each candidate came first over `runs` calls. */
function firsts(pick: () => string[], runs: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < runs; i++) {
    const first = pick()[0]!;
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  return counts;
}

/** A seeded generator (mulberry32), so the distribution test is repeatable. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("balancing strategies", () => {
  it("every strategy returns every candidate exactly once", () => {
    const b = new Balancer({ load: { loadOf: () => 0.5 } });
    for (const strategy of STRATEGIES) {
      const out = b.order(NODES, { strategy, clientAddress: "10.0.0.7" });
      assert.deepEqual([...out].sort(), NODES, strategy);
    }
  });

  it("round-robin starts one further along each time: an even spread", () => {
    const b = new Balancer({ strategy: "round-robin" });
    const counts = firsts(() => b.order(NODES), 300);
    assert.deepEqual([...counts.values()], [100, 100, 100]);
    assert.deepEqual(b.order(NODES), ["n1", "n2", "n3"]);
    assert.deepEqual(b.order(NODES), ["n2", "n3", "n1"]);
  });

  it("random spreads roughly evenly", () => {
    const b = new Balancer({ strategy: "random", random: seeded(42) });
    const counts = firsts(() => b.order(NODES), 3000);
    assert.equal(counts.size, 3);
    for (const [id, n] of counts) assert.ok(n > 850 && n < 1150, `${id} first ${n} times of 3000`);
  });

  it("ip-hash: one client keeps one target, whatever the candidates' order; many clients spread", () => {
    const b = new Balancer({ strategy: "ip-hash" });
    const first = b.order(NODES, { clientAddress: "192.168.1.20" })[0];
    for (let i = 0; i < 50; i++) {
      const shuffled = i % 2 === 0 ? [...NODES].reverse() : NODES;
      assert.equal(b.order(shuffled, { clientAddress: "192.168.1.20" })[0], first);
    }
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const pick = b.order(NODES, { clientAddress: `10.0.${i >> 8}.${i & 255}` })[0]!;
      counts.set(pick, (counts.get(pick) ?? 0) + 1);
    }
    assert.equal(counts.size, 3, "300 clients all landed on fewer than 3 targets");
    for (const [id, n] of counts) assert.ok(n > 60, `${id} got only ${n} of 300 clients`);
  });

  it("ip-hash: a target leaving moves only the clients it had (rendezvous hashing)", () => {
    const b = new Balancer({ strategy: "ip-hash" });
    const targets = ["n1", "n2", "n3", "n4", "n5"];
    let moved = 0;
    for (let i = 0; i < 200; i++) {
      const clientAddress = `10.2.${i >> 8}.${i & 255}`;
      const before = b.order(targets, { clientAddress })[0]!;
      const after = b.order(
        targets.filter((t) => t !== "n3"),
        { clientAddress },
      )[0]!;
      if (before === "n3") moved++;
      else assert.equal(after, before, `${clientAddress} moved from ${before} though n3 left`);
    }
    assert.ok(moved > 10 && moved < 80, `n3 had ${moved} of 200 clients`);
  });

  it("ip-hash without an address falls back to round-robin", () => {
    const b = new Balancer({ strategy: "ip-hash" });
    assert.equal(firsts(() => b.order(NODES), 30).size, 3);
  });

  it("least-loaded picks the lowest score, then unknown ones, then overloaded ones", () => {
    const scores: Record<string, number | undefined> = { n1: 0.9, n2: 0.1, n3: undefined, n4: 5, n5: 0.4 };
    const b = new Balancer({ strategy: "least-loaded", load: { loadOf: (id) => scores[id] } });
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(b.order(["n1", "n2", "n3", "n4", "n5"]), ["n2", "n5", "n1", "n3", "n4"]);
    }
    // An overloaded target is still tried, last, when it is all there is besides unknowns.
    assert.deepEqual(b.order(["n4", "n3"]), ["n3", "n4"]);
  });

  it("least-loaded lets equal scores take turns", () => {
    const b = new Balancer({ strategy: "least-loaded", load: { loadOf: () => 0.2 } });
    assert.equal(firsts(() => b.order(NODES), 30).size, 3);
  });

  it("a per-call strategy overrides the balancer's", () => {
    const b = new Balancer({ strategy: "round-robin" });
    const sticky = firsts(() => b.order(NODES, { strategy: "ip-hash", clientAddress: "10.1.1.1" }), 20);
    assert.equal(sticky.size, 1);
  });

  it("parseStrategy names the choices on a bad value", () => {
    assert.equal(parseStrategy("ip-hash"), "ip-hash");
    assert.throws(
      () => parseStrategy("fastest"),
      (err: unknown) => {
        assert.ok(err instanceof UnknownStrategyError);
        assert.match(
          err.message,
          /unknown strategy "fastest"; choose one of random, round-robin, ip-hash, least-loaded/,
        );
        return true;
      },
    );
  });
});

describe("local load tracker", () => {
  it("scores in-flight requests and recent latency; an unused target scores 0", () => {
    let now = 0;
    const t = new LocalLoadTracker({ capacity: 4, latencyScaleMs: 100, now: () => now });
    assert.equal(t.loadOf("n1"), 0);
    const a = t.begin("n1");
    const b = t.begin("n1");
    assert.equal(t.loadOf("n1"), 0.5);
    now = 50;
    a();
    a(); // a second call changes nothing
    assert.equal(t.inFlight("n1"), 1);
    assert.equal(t.loadOf("n1"), 0.25 + 0.5);
    b();
    assert.ok(t.loadOf("n1") > 0 && t.loadOf("n1") <= 0.5);
  });

  it("drives least-loaded away from a target with requests in flight", () => {
    const t = new LocalLoadTracker();
    const b = new Balancer({ strategy: "least-loaded", load: t });
    const ends = [t.begin("n1"), t.begin("n1"), t.begin("n3")];
    for (let i = 0; i < 5; i++) assert.equal(b.order(NODES)[0], "n2");
    for (const end of ends) end();
  });

  it("forgets the least recently used target past its bound", () => {
    const t = new LocalLoadTracker({ maxTargets: 2 });
    t.begin("a");
    t.begin("b");
    t.begin("c");
    assert.equal(t.inFlight("a"), 0);
    assert.equal(t.inFlight("c"), 1);
  });
});

describe("client address for ip-hash", () => {
  it("believes x-forwarded-for only on a request forwarded between agents", () => {
    assert.equal(clientAddress("127.0.0.1", "10.0.0.9", true), "10.0.0.9");
    assert.equal(clientAddress("127.0.0.1", "10.0.0.9", false), "127.0.0.1");
    assert.equal(clientAddress("::ffff:10.0.0.5", undefined, false), "10.0.0.5");
    assert.equal(clientAddress("127.0.0.1", "10.0.0.9, 10.0.0.1", true), "10.0.0.9");
    assert.equal(clientAddress("127.0.0.1", "not an address", true), "127.0.0.1");
  });
});

describe("the client's entry agent", () => {
  const endpoints = ["http://a:1", "http://b:1", "http://c:1"];

  it("ip-hash keeps one entry agent for one client address", () => {
    const s = new EndpointSelector(endpoints, { strategy: "ip-hash", clientAddress: "10.0.0.3" });
    const first = s.order()[0];
    for (let i = 0; i < 20; i++) assert.equal(s.order()[0], first);
  });

  it("least-loaded avoids the agent this client has requests waiting on", () => {
    const s = new EndpointSelector(endpoints, { strategy: "least-loaded" });
    const end = s.begin("http://a:1");
    for (let i = 0; i < 6; i++) assert.notEqual(s.order()[0], "http://a:1");
    end();
  });

  it("round-robin still spreads, and a failed endpoint goes to the back", () => {
    const s = new EndpointSelector(endpoints, { strategy: "round-robin" });
    assert.deepEqual([s.order()[0], s.order()[0], s.order()[0]], ["http://a:1", "http://b:1", "http://c:1"]);
    s.markDown("http://a:1");
    assert.equal(s.order().at(-1), "http://a:1");
  });
});
