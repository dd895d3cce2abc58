/**
 * `ringleader ring` with non-default `--partitions`, `--replication` and `--vnodes`, parsed by
 * yargs as on the command line: the placement has exactly that shape (every partition its own
 * distinct replicas), and the per-node loads, shares and leader counts add up to it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import yargs from "yargs";
import { ringCommand } from "../../src/cli/commands/ring.js";
import { captureStdout } from "../../../test/support/cli.js";

interface JsonNode {
  id: string;
  weight: number;
  tokens: number;
  replicas: number;
  preferredLeaders: number;
  share: number;
  withinBound: boolean;
}
interface JsonView {
  partitions: number;
  replicationFactor: number;
  vnodesPerWeight: number;
  totalReplicas: number;
  balanced: boolean;
  nodes: JsonNode[];
  placement: { partition: number; replicas: string[] }[];
}
interface JsonOutput extends JsonView {
  change?: { moveCount: number; moves: { partition: number; from: string | null; to: string | null }[] };
}

/** Runs `ringleader ring <argv>` through yargs and returns what it printed. */
function ring(argv: string[]): Promise<string> {
  return captureStdout(() =>
    yargs()
      .command(ringCommand)
      .exitProcess(false)
      .parseAsync(["ring", ...argv]),
  );
}

/** The invariants of any placement: shape, distinct replicas, and loads that add up to it. */
function checkView(view: JsonView, ids: string[], partitions: number, perPartition: number): void {
  assert.equal(view.partitions, partitions);
  assert.deepEqual(
    view.placement.map((p) => p.partition),
    Array.from({ length: partitions }, (_, i) => i),
  );
  for (const p of view.placement) {
    assert.equal(p.replicas.length, perPartition, `partition ${p.partition}: ${p.replicas.join(",")}`);
    assert.equal(new Set(p.replicas).size, perPartition, `partition ${p.partition} repeats a node`);
    for (const r of p.replicas) assert.ok(ids.includes(r), `partition ${p.partition} names ${r}`);
  }
  assert.equal(view.totalReplicas, partitions * perPartition);
  assert.deepEqual(
    view.nodes.map((n) => n.id),
    ids,
  );
  for (const n of view.nodes) {
    assert.equal(n.replicas, view.placement.filter((p) => p.replicas.includes(n.id)).length, n.id);
    assert.equal(n.preferredLeaders, view.placement.filter((p) => p.replicas[0] === n.id).length, n.id);
  }
  const sum = (f: (n: JsonNode) => number) => view.nodes.reduce((s, n) => s + f(n), 0);
  assert.equal(
    sum((n) => n.replicas),
    partitions * perPartition,
  );
  assert.equal(
    sum((n) => n.preferredLeaders),
    partitions,
  );
  assert.ok(
    Math.abs(sum((n) => n.share) - partitions * perPartition) < 1e-6,
    "shares add up to the replicas",
  );
}

describe("ringleader ring with non-default partitions and replication", () => {
  it("--partitions 16 --replication 2 --json: 16 partitions of 2 distinct replicas, loads adding up", async () => {
    const out = JSON.parse(
      await ring(["--nodes", "a,b,c:2,d", "--partitions", "16", "--replication", "2", "--json"]),
    ) as JsonOutput;
    assert.equal(out.replicationFactor, 2);
    checkView(out, ["a", "b", "c", "d"], 16, 2);
    // Weighted shares: c has weight 2 of 5, so 2/5 of the 32 replicas.
    assert.deepEqual(
      out.nodes.map((n) => [n.id, n.weight, Math.round(n.share * 10) / 10]),
      [
        ["a", 1, 6.4],
        ["b", 1, 6.4],
        ["c", 2, 12.8],
        ["d", 1, 6.4],
      ],
    );
    for (const n of out.nodes) assert.equal(n.withinBound, true, `${n.id} holds ${n.replicas}`);
  });

  it("--vnodes sets the tokens per unit of weight", async () => {
    const out = JSON.parse(
      await ring(["--nodes", "a,b:3", "--partitions", "16", "--replication", "2", "--vnodes", "4", "--json"]),
    ) as JsonOutput;
    assert.equal(out.vnodesPerWeight, 4);
    assert.deepEqual(
      out.nodes.map((n) => n.tokens),
      [4, 12],
    );
    checkView(out, ["a", "b"], 16, 2);
  });

  it("with fewer nodes than --replication, every partition is on every node", async () => {
    const out = JSON.parse(
      await ring(["--nodes", "a,b", "--partitions", "16", "--replication", "3", "--json"]),
    ) as JsonOutput;
    checkView(out, ["a", "b"], 16, 2);
    for (const n of out.nodes) assert.equal(n.replicas, 16);
  });

  it("prints the same plan for people: the summary line and one row per partition", async () => {
    const argv = ["--nodes", "a,b,c:2,d", "--partitions", "16", "--replication", "2"];
    const text = await ring([...argv, "--partitions-table"]);
    assert.match(
      text,
      /^ring: 4 nodes, 16 partitions × 2 replicas = 32 replicas, 16 tokens per unit of weight\n/,
    );
    const rows = text.split("\n").filter((l) => /^\d+ +\w, \w$/.test(l));
    assert.equal(rows.length, 16);
    const placement = (JSON.parse(await ring([...argv, "--json"])) as JsonOutput).placement;
    for (const [i, row] of rows.entries()) {
      assert.equal(row.replace(/^\d+ +/, ""), placement[i]!.replicas.join(", "), `row ${i}`);
    }
    // The REPLICAS column of the load table matches the JSON.
    const json = JSON.parse(await ring([...argv, "--json"])) as JsonOutput;
    for (const n of json.nodes) {
      assert.match(text, new RegExp(`\\n${n.id} +${n.weight} +${n.tokens} +${n.replicas} +`), n.id);
    }
  });

  it("--add with 16 × 2: only replicas onto the new node move, and the result keeps the shape", async () => {
    const out = JSON.parse(
      await ring(["--nodes", "a,b,c", "--partitions", "16", "--replication", "2", "--add", "d", "--json"]),
    ) as JsonOutput & { change: { after: JsonView } };
    checkView(out, ["a", "b", "c"], 16, 2);
    checkView(out.change.after, ["a", "b", "c", "d"], 16, 2);
    assert.ok(out.change.moveCount > 0);
    for (const m of out.change.moves) assert.ok(m.to === "d" && m.from !== null, JSON.stringify(m));
    assert.equal(out.change.after.nodes.find((n) => n.id === "d")!.replicas, out.change.moveCount);
  });
});
