import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deadline } from "../../src/node/deadline.js";
import { collectGarbage, within } from "../../../test/support/gc.js";

/** The signal's reason once it aborts; fails after 5 s. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return within(
    "the signal",
    5000,
    new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true })),
  );
}

describe("deadline", () => {
  it("times out after a garbage collection, where AbortSignal.any with AbortSignal.timeout does not", async () => {
    const stop = new AbortController();
    const ours = deadline(100, stop.signal);
    const plain = AbortSignal.any([stop.signal, AbortSignal.timeout(100)]);
    // In a later turn, so no register of this one still holds a timeout signal.
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    const reason = await aborted(ours);
    assert.equal((reason as Error).name, "TimeoutError");
    // What the helper is for: the plain combination lost its timeout to the collection. Should a
    // Node release fix that, this fails, and the helper can go.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(plain.aborted, false, "Node's AbortSignal.any timed out after all: the helper may go");
  });

  it("aborts at once with any of its signals, with that signal's reason", () => {
    const stop = new AbortController();
    const s = deadline(60_000, stop.signal);
    assert.equal(s.aborted, false);
    stop.abort(new Error("stopping"));
    assert.equal(s.aborted, true);
    assert.equal((s.reason as Error).message, "stopping");
  });

  it("without signals is a plain timeout", async () => {
    const reason = await aborted(deadline(20));
    assert.equal((reason as Error).name, "TimeoutError");
  });
});
