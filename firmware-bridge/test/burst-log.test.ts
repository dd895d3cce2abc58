/**
 * Burst logging with a hand-driven clock: one line per burst with its count and kinds, a burst
 * that goes on logs once per quiet period, and what is left is logged when the caller stops.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../agent/src/node/logger.js";
import { BurstCounter } from "../src/burst-log.js";

function counter() {
  const lines: Record<string, unknown>[] = [];
  const clock = { now: 0 };
  const logger = createLogger({
    level: "debug",
    format: "json",
    write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
  });
  const burst = new BurstCounter(logger, "dropped frames", { port: "p" }, 1000, () => clock.now);
  return { lines, clock, burst };
}

describe("burst counter", () => {
  it("logs one line per burst, with the count, kinds and summed amounts", () => {
    const { lines, clock, burst } = counter();
    for (let i = 0; i < 20; i++) {
      burst.note(i % 4 === 0 ? "crc" : "cobs", { bytes: 10 });
      clock.now += 40;
      burst.flush();
    }
    assert.equal(lines.length, 0, "the burst is still going on");
    clock.now += 1000;
    burst.flush();
    burst.flush();
    assert.equal(lines.length, 1);
    assert.deepEqual(
      { ...lines[0], ts: undefined },
      {
        ts: undefined,
        level: "warn",
        msg: "dropped frames",
        port: "p",
        count: 20,
        kinds: "crc=5,cobs=15",
        bytes: 200,
        overMs: 760,
      },
    );
    burst.note("zeros");
    clock.now += 1000;
    burst.flush();
    assert.equal(lines.length, 2, "a later burst logs again");
    assert.equal(lines[1]!["kinds"], "zeros=1");
  });

  it("logs a burst that goes on once per quiet period, and the rest when told it is final", () => {
    const { lines, clock, burst } = counter();
    for (let i = 0; i < 50; i++) {
      burst.note("crc");
      clock.now += 100;
      burst.flush();
    }
    // 5 s of trouble with a 1 s quiet period: a line each second, not one per frame.
    assert.ok(lines.length >= 4 && lines.length <= 5, `${lines.length} lines`);
    const logged = lines.reduce((n, l) => n + (l["count"] as number), 0);
    burst.flush(true);
    const total = lines.reduce((n, l) => n + (l["count"] as number), 0);
    assert.equal(total, 50, `every occurrence is counted once (${logged} before the final flush)`);
    burst.flush(true);
    assert.equal(
      lines.reduce((n, l) => n + (l["count"] as number), 0),
      50,
      "nothing twice",
    );
  });
});
