import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import yargs from "yargs";
import { loadCommands } from "../../src/cli/commands/index.js";
import { parseNodeList, ringCommand, runRing, type RingArgs } from "../../src/cli/commands/ring.js";
import { UsageError } from "../../src/cli/errors.js";
import { captureStdout } from "../../../test/support/cli.js";

/** dist/agent/test/ring/cli.test.js → dist/agent/src/cli/main.js */
const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

const base = { partitions: 64, replication: 3, vnodes: 16 };
const run = (args: Partial<RingArgs> & { nodes: string }) => runRing({ ...base, ...args });

interface JsonNode {
  id: string;
  weight: number;
  replicas: number;
  preferredLeaders: number;
  share: number;
  withinBound: boolean;
}
interface JsonView {
  totalReplicas: number;
  balanced: boolean;
  nodes: JsonNode[];
  placement: { partition: number; replicas: string[] }[];
}
interface JsonOutput extends JsonView {
  change?: {
    added: string[];
    removed: string[];
    moveCount: number;
    moves: { partition: number; from: string | null; to: string | null }[];
    after: JsonView;
  };
}

const json = (args: Partial<RingArgs> & { nodes: string }) =>
  JSON.parse(run({ ...args, json: true })) as JsonOutput;

describe("ringleader ring", () => {
  it("reads id:weight lists", () => {
    assert.deepEqual(parseNodeList("a, b,c:2", "--nodes"), [
      { id: "a", weight: 1 },
      { id: "b", weight: 1 },
      { id: "c", weight: 2 },
    ]);
    for (const bad of ["a,a", "a:x", "a:1:2", "a:-1"])
      assert.throws(() => parseNodeList(bad, "--nodes"), UsageError, bad);
  });

  it("prints every node's load against its share, in JSON consistent with the placement", () => {
    const out = json({ nodes: "pi5a:2,pi5b:2,pi4,zero" });
    assert.equal(out.placement.length, 64);
    assert.equal(out.totalReplicas, 192);
    for (const p of out.placement) assert.equal(new Set(p.replicas).size, 3);
    for (const node of out.nodes) {
      const held = out.placement.filter((p) => p.replicas.includes(node.id)).length;
      const led = out.placement.filter((p) => p.replicas[0] === node.id).length;
      assert.equal(node.replicas, held, node.id);
      assert.equal(node.preferredLeaders, led, node.id);
      assert.equal(node.withinBound, true, node.id);
    }
    assert.deepEqual(
      out.nodes.map((n) => [n.id, n.weight, n.share]),
      [
        ["pi5a", 2, 64],
        ["pi5b", 2, 64],
        ["pi4", 1, 32],
        ["zero", 1, 32],
      ],
    );
    assert.equal(out.balanced, true);
  });

  it("shows a compact table for people, the partition table only when asked", () => {
    const text = run({ nodes: "a,b,c:2,d" });
    assert.match(
      text,
      /^ring: 4 nodes, 64 partitions × 3 replicas = 192 replicas, 16 tokens per unit of weight\n/,
    );
    assert.match(text, /\nNODE {2}WEIGHT {2}TOKENS {2}REPLICAS {2}SHARE {2}DEVIATION {2}LEADERS\n/);
    assert.match(text, /\nc +2 +32 +\d+ +64\.0\* +[+-]\d+\.\d%/);
    assert.match(text, /\nbalanced: every node is within ±15% of its share/);
    assert.doesNotMatch(text, /PARTITION/);
    const table = run({ nodes: "a,b,c:2,d", "partitions-table": true });
    assert.match(table, /\nPARTITION {2}REPLICAS \(leader first\)\n0 +\w, \w, \w\n/);
    assert.equal(table.split("\n").filter((l) => /^\d+ +\w, \w, \w$/.test(l)).length, 64);
  });

  it("shows what joining nodes move: only replicas onto them, counted the same in text and JSON", () => {
    const out = json({ nodes: "a,b,c,d", add: "e:2" });
    const change = out.change!;
    assert.deepEqual(change.added, ["e"]);
    assert.ok(change.moveCount > 0);
    assert.equal(change.moves.length, change.moveCount);
    for (const m of change.moves) assert.ok(m.to === "e" && m.from !== null && m.from !== "e");
    assert.equal(change.after.nodes.find((n) => n.id === "e")!.replicas, change.moveCount);
    assert.equal(change.after.balanced, true);
    const text = run({ nodes: "a,b,c,d", add: "e:2" });
    assert.match(text, new RegExp(`\\nreplica moves: ${change.moveCount} \\(`));
    assert.match(text, new RegExp(`\\n {2}gained: e \\+${change.moveCount}\\n`));
    assert.match(text, /\n {2}p\d+ [a-d]→e/);
  });

  it("shows what removing a node moves: only its replicas, to the others", () => {
    const out = json({ nodes: "a,b,c,d,e", remove: "b" });
    const change = out.change!;
    assert.equal(change.moveCount, out.nodes.find((n) => n.id === "b")!.replicas);
    for (const m of change.moves) assert.ok(m.from === "b" && m.to !== null && m.to !== "b");
    const text = run({ nodes: "a,b,c,d,e", remove: "b", "partitions-table": true });
    assert.match(text, /\nafter removing b: 4 nodes/);
    assert.match(text, /\nPARTITION {2}NOW +AFTER +MOVES\n/);
  });

  it("turns bad arguments into usage errors", () => {
    const cases: Partial<RingArgs>[] = [
      { nodes: "" },
      { nodes: "a,a" },
      { nodes: "a b" },
      { nodes: "a:0" },
      { nodes: "a:99" },
      { nodes: "a,b", remove: "z" },
      { nodes: "a,b", add: "b" },
      { nodes: "a", partitions: 0 },
      { nodes: "a", replication: 9 },
      { nodes: "a", vnodes: 0 },
    ];
    for (const args of cases)
      assert.throws(() => run({ nodes: "a", ...args }), UsageError, JSON.stringify(args));
  });

  it("parses its options and prints help with examples through yargs", async () => {
    const help = await new Promise<string>((resolve, reject) => {
      void yargs()
        .command(ringCommand)
        .exitProcess(false)
        .parse(["ring", "--help"], {}, (err, _argv, output) => (err ? reject(err) : resolve(output)));
    });
    assert.match(help, /--nodes/);
    assert.match(help, /--partitions-table/);
    assert.match(help, /Examples:[\s\S]*ring --nodes a,b,c,d --add e/);
    const out = await captureStdout(() =>
      yargs()
        .command(ringCommand)
        .exitProcess(false)
        .parseAsync(["ring", "--nodes", "a,b,c:2", "--add", "d", "--json"]),
    );
    const parsed = JSON.parse(out) as JsonOutput;
    assert.equal(parsed.nodes.length, 3);
    assert.deepEqual(parsed.change!.added, ["d"]);
  });

  it("is registered as `ringleader ring`", async () => {
    assert.deepEqual(await loadCommands(["ring", "--nodes", "a"]), [ringCommand]);
  });

  it("runs as `ringleader ring` in a child process", () => {
    const r = spawnSync(process.execPath, [MAIN, "ring", "--nodes", "a,b,c:2", "--json"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as JsonOutput).nodes.length, 3);
    const bad = spawnSync(process.execPath, [MAIN, "ring", "--nodes", "a,a"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--nodes lists a twice/);
  });
});
