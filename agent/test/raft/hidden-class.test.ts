/**
 * Entries share one hidden class. V8 (Node 20) gives each object made by `{ ...e, index }` in
 * warm code a hidden class of its own, allocated in the old generation, which only a full
 * collection frees: the leader stamped every proposal that way, one class per put. The check
 * needs V8's `%HaveSameMap`, so it runs in a child Node with `--allow-natives-syntax`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";

const HARNESS = new URL("./harness.js", import.meta.url).href;

const CHILD = `
import { Cluster, enc } from ${JSON.stringify(HARNESS)};
const c = new Cluster(["a", "b", "c"]);
const a = c.elect("a");
for (let i = 0; i < 2000; i++) {
  a.raw.propose(enc("v" + i));
  if (i % 10 === 9) c.settle();
}
c.settle();
const ents = a.applied.filter((e) => e.type === "normal" && e.data.length > 0);
let shared = 0;
for (const e of ents) if (%HaveSameMap(e, ents[0])) shared++;
console.log(JSON.stringify({ entries: ents.length, shared }));
`;

describe("hidden classes on the write path", () => {
  it("the entries a leader stamps all share one hidden class", () => {
    const child = spawnSync(
      process.execPath,
      ["--allow-natives-syntax", "--input-type=module", "--eval", CHILD],
      { encoding: "utf8", timeout: 60_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    const { entries, shared } = JSON.parse(child.stdout) as { entries: number; shared: number };
    assert.equal(entries, 2000);
    assert.equal(shared, entries);
  });
});
