/**
 * Peers that vanish without a goodbye (power cut, SIGKILL) expire: over real multicast between
 * network namespaces, a browser built on the discovery module's own mDNS drops an advertiser
 * that was killed, within a few refreshes, while an advertiser that stays alive stays listed.
 * (The agent-level view of the same, `discovery.verified` in `/v1/status`, is in avahi.test.ts.)
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Lan, lanUnavailable } from "./lan.js";

const TOOL = fileURLToPath(new URL("./mdns-tool.js", import.meta.url));
const REFRESH_MS = 500;
const skip = lanUnavailable();
let lan: Lan;

before(async () => {
  if (skip) return;
  lan = await Lan.create();
  lan.addBoard("gone", "10.77.0.71");
  lan.addBoard("stays", "10.77.0.72");
  lan.addBoard("watch", "10.77.0.73");
});

after(async () => {
  if (!skip) await lan.destroy();
});

/** Every line the browser printed so far, parsed: the instance names it saw after each refresh. */
function views(child: ChildProcess): string[][] {
  const seen: string[][] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) seen.push(JSON.parse(l) as string[]);
  });
  return seen;
}

test(
  "an advertiser killed without a goodbye drops out of the browser's view within a few refreshes",
  { skip: skip ?? false, timeout: 90_000 },
  async () => {
    const gone = lan.spawnIn("gone", process.execPath, [TOOL, "advertise", "gone"]);
    lan.spawnIn("stays", process.execPath, [TOOL, "advertise", "stays"]);
    const seen = views(lan.spawnIn("watch", process.execPath, [TOOL, "browse", String(REFRESH_MS)]));
    const last = (): string[] => seen[seen.length - 1] ?? [];
    await lan.waitFor("the browser to see both advertisers", 30_000, async () => {
      const v = last();
      return v.includes("ringleader-gone") && v.includes("ringleader-stays");
    });
    gone.kill("SIGKILL");
    const killedAt = Date.now();
    const from = seen.length;
    await lan.waitFor(
      "the killed advertiser to expire",
      30_000,
      async () => !last().includes("ringleader-gone"),
    );
    const expiredMs = Date.now() - killedAt;
    process.stderr.write(`# measured: SIGKILLed advertiser dropped from the view after ${expiredMs} ms\n`);
    // Bounded by the aging (a few refreshes), not by the 28800 s TTL bonjour-service gives the PTR.
    assert.ok(expiredMs < 15_000, `expired after ${expiredMs} ms`);
    // The live advertiser answers every re-query, so it never ages out: watch ten more refreshes.
    const watched = seen.length;
    await lan.waitFor("ten more refreshes", 30_000, async () => seen.length >= watched + 10);
    for (const v of seen.slice(from)) assert.ok(v.includes("ringleader-stays"), `stays missing: ${v}`);
    assert.ok(!last().includes("ringleader-gone"), "the killed advertiser does not come back");
  },
);
