import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { RequestSignal } from "../../src/api/request-signal.js";

describe("RequestSignal", () => {
  it("aborts once: state, listeners (once, removed, duplicate), onabort", () => {
    const signal = new RequestSignal();
    const calls: string[] = [];
    const first = (ev: Event): void => void calls.push(`first:${ev.type}`);
    const removed = (): void => void calls.push("removed");
    signal.addEventListener("abort", first);
    signal.addEventListener("abort", first); // the same listener twice counts once
    signal.addEventListener("abort", removed);
    signal.removeEventListener("abort", removed);
    signal.onabort = function (this: AbortSignal) {
      calls.push(`onabort:${String(this === signal)}`);
    };
    signal.addEventListener("abort", () => calls.push("last"), { once: true });
    assert.equal(signal.aborted, false);
    assert.doesNotThrow(() => signal.throwIfAborted());

    const reason = new Error("the request timed out");
    signal.abort(reason);
    signal.abort(new Error("a second abort"));
    assert.equal(signal.aborted, true);
    assert.equal(signal.reason, reason);
    assert.throws(
      () => signal.throwIfAborted(),
      (err) => err === reason,
    );
    assert.deepEqual(calls, ["first:abort", "last", "onabort:true"]);
  });

  it("dispatches as EventTarget does: listener objects, changes during a dispatch, the signal option", () => {
    const signal = new RequestSignal();
    const calls: string[] = [];
    const late = (): void => void calls.push("added during the dispatch");
    const skipped = (): void => void calls.push("removed during the dispatch");
    signal.addEventListener("abort", {
      handleEvent: (ev: Event) => {
        calls.push(`object:${ev.type}`);
        signal.addEventListener("abort", late);
        signal.removeEventListener("abort", skipped);
      },
    });
    signal.addEventListener("abort", skipped);
    const owner = new AbortController();
    signal.addEventListener("abort", () => calls.push("owner gone"), { signal: owner.signal });
    signal.addEventListener("other", () => calls.push("other type"));
    owner.abort();
    signal.abort();
    assert.deepEqual(calls, ["object:abort"]);
    // Not once: a second dispatch reaches the listener added during the first.
    signal.dispatchEvent(new Event("abort"));
    assert.deepEqual(calls, ["object:abort", "object:abort", "added during the dispatch"]);
  });

  it("a listener that throws does not stop the others; its error is reported as uncaught", () => {
    const module = new URL("../../src/api/request-signal.js", import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "--eval",
        `import { RequestSignal } from ${JSON.stringify(module)};
         process.on("uncaughtException", (err) => console.log("uncaught:" + err.message));
         const signal = new RequestSignal();
         signal.addEventListener("abort", () => { throw new Error("first listener failed"); });
         signal.addEventListener("abort", () => console.log("second ran"));
         signal.abort();
         console.log("abort returned");`,
      ],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(child.stdout.trim().split("\n"), [
      "second ran",
      "abort returned",
      "uncaught:first listener failed",
    ]);
  });

  it("defaults its reason to an AbortError, as AbortController does", () => {
    const signal = new RequestSignal();
    signal.abort();
    assert.ok(signal.reason instanceof DOMException);
    assert.equal((signal.reason as DOMException).name, "AbortError");
  });

  it("aborts Node's own operations that take a signal", async () => {
    const signal = new RequestSignal();
    const waiting = delay(60_000, null, { signal });
    const emitter = new EventEmitter();
    const event = once(emitter, "never", { signal });
    signal.abort(new Error("stop"));
    await assert.rejects(waiting, { name: "AbortError" });
    await assert.rejects(event, { name: "AbortError" });
    // Already aborted: rejected at once.
    await assert.rejects(delay(60_000, null, { signal }), { name: "AbortError" });
  });

  it("aborts an http.request in flight: its socket is closed", async () => {
    const server = http.createServer(() => {
      // Never answers.
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    try {
      const signal = new RequestSignal();
      const req = http.request({ host: "127.0.0.1", port, path: "/", signal });
      const failed = once(req, "error");
      req.end();
      const [serverReq] = (await once(server, "request")) as [http.IncomingMessage];
      const serverSideClosed = once(serverReq.socket, "close");
      signal.abort(new Error("the client went away"));
      const [err] = (await failed) as [Error];
      assert.equal(err.name, "AbortError");
      await serverSideClosed;
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
