import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cluster } from "./harness.js";

/**
 * Ticks node `a` of every cluster in step (clusters `onTick` adds join from the next tick) and
 * returns, per cluster, the ticks on which `a` sent heartbeats.
 */
function heartbeatTicksOf(clusters: Cluster[], ticks: number, onTick: (t: number) => void): number[][] {
  const sent = new Map<Cluster, number[]>();
  for (let t = 1; t <= ticks; t++) {
    for (const c of clusters) {
      const before = c.delivered.length;
      c.node("a").raw.tick();
      c.settle();
      const beat = c.delivered.slice(before).some((m) => m.type === "heartbeat" && m.from === "a");
      if (!sent.has(c)) sent.set(c, []);
      if (beat) sent.get(c)!.push(t);
    }
    onTick(t);
  }
  return clusters.map((c) => sent.get(c) ?? []);
}

describe("heartbeats", () => {
  it("come on the node's own ticks, so every group a node leads heartbeats on the same ones", () => {
    const heartbeatTicks = 3;
    // Three groups led by node a: one elected before the first tick, one after the first tick,
    // and one the node starts hosting after its fourth tick (a host passes its count as startTick).
    const first = new Cluster(["a", "b", "c"], { heartbeatTicks });
    const second = new Cluster(["a", "b", "c"], { heartbeatTicks });
    first.elect("a");
    const clusters = [first, second];
    const sent = heartbeatTicksOf(clusters, 12, (t) => {
      if (t === 1) second.elect("a");
      if (t === 4) {
        const added = new Cluster(["a", "b", "c"], { heartbeatTicks, startTick: 4 });
        added.elect("a");
        clusters.push(added);
      }
    });
    assert.deepEqual(sent, [
      [3, 6, 9, 12],
      [3, 6, 9, 12],
      [6, 9, 12],
    ]);
  });
});
