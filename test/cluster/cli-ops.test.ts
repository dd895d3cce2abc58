/**
 * The operator commands end to end against one real four-agent cluster, run as child processes
 * exactly as a person types them: `ringleader agg` over numbers spread across partitions, and
 * `ringleader members list | drain | remove` taking the fourth board out. Then, once the three
 * that remain settle, the leader balancer has spread the 64 partition leaderships evenly.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RingleaderClient } from "../../agent/src/client/client.js";
import { runCli, type CliRun } from "../support/cli.js";
import { LocalCluster } from "../support/local-cluster.js";

interface MemberRow {
  id: string;
  state: string;
  api: string;
  peer: string;
  weight: number;
  machine?: string;
}

interface NodeStatus {
  leaderOf: number;
  ring: { nodes: string[] } | null;
  members: MemberRow[];
  partitions: { partition: number; role: string; voters: string[]; learners: string[] }[];
}

const VALUES = 40;
/** Zero-padded, so key order is number order and --from/--to pick a plain range. */
const numberKey = (i: number) => `agg/n/${String(i).padStart(3, "0")}`;

describe("operator commands against a real cluster", { timeout: 300_000 }, () => {
  let cluster: LocalCluster;
  let client: RingleaderClient;

  /** `ringleader <args> --endpoints … --token …` with nothing from the developer's environment. */
  function cli(args: string[], endpoints = cluster.endpoints()): Promise<CliRun> {
    return runCli([...args, "--endpoints", endpoints.join(","), "--token", cluster.token]);
  }

  async function cliJson<T>(args: string[]): Promise<T> {
    const r = await cli([...args, "--json"]);
    assert.equal(r.code, 0, `ringleader ${args.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async function statuses(ids: string[]): Promise<Map<string, NodeStatus>> {
    const out = new Map<string, NodeStatus>();
    for (const id of ids) {
      const s = (await cluster.status(id, 3000)) as unknown as NodeStatus | null;
      if (s) out.set(id, s);
    }
    return out;
  }

  before(async () => {
    cluster = await LocalCluster.start({ nodes: 4, tickMs: 50 });
    await cluster.waitHealthy(90_000);
    client = new RingleaderClient({ endpoints: cluster.endpoints(), token: cluster.token, maxAttempts: 32 });
    for (let i = 1; i <= VALUES; i++) await client.put(numberKey(i), String(i));
    await client.put("agg/n/zz-note", "not a number");
    for (const [i, t] of [19.5, 21, 22.5].entries())
      await client.put(`sensors/{kitchen}/temp/${i}`, String(t));
  });
  after(async () => {
    await cluster?.stop();
  });

  it("agg sums, counts, averages and bounds numbers across partitions, skipping what is not a number", async () => {
    const sum = await cliJson<{ value: number; count: number; skipped: number; partitions: number }>([
      "agg",
      "sum",
      "--prefix",
      "agg/n/",
    ]);
    assert.equal(sum.value, (VALUES * (VALUES + 1)) / 2);
    assert.equal(sum.count, VALUES);
    assert.equal(sum.skipped, 1);
    // Forty keys without a hash tag land in many partitions; the answer combines them all.
    assert.ok(sum.partitions > 1, `only ${sum.partitions} partition(s) answered`);

    const expect = { count: VALUES, min: 1, max: VALUES, avg: (VALUES + 1) / 2 };
    for (const [fn, value] of Object.entries(expect)) {
      const r = await cliJson<{ value: number }>(["agg", fn, "--prefix", "agg/n/"]);
      assert.equal(r.value, value, fn);
    }
    // --from is inclusive, --to exclusive: 10 through 19.
    const range = await cliJson<{ value: number; count: number }>([
      "agg",
      "sum",
      "--prefix",
      "agg/n/",
      "--from",
      numberKey(10),
      "--to",
      numberKey(20),
    ]);
    assert.deepEqual([range.value, range.count], [145, 10]);

    const text = await cli(["agg", "avg", "--prefix", "sensors/{kitchen}/temp/"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^avg = 21 over 3 values from \d+ partition\(s\)\n$/);
    const none = await cli(["agg", "max", "--prefix", "agg/nothing-here/"]);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /^max = \(no values\) over 0 values/);
    const bad = await cli(["agg", "median", "--prefix", "agg/n/"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Choices: "count", "sum", "min", "max", "avg"/);
  });

  it("members list shows every board with its state and addresses, as a table and as JSON", async () => {
    const { members } = await cliJson<{ members: MemberRow[] }>(["members", "list"]);
    assert.deepEqual(members.map((m) => m.id).sort(), ["n1", "n2", "n3", "n4"]);
    for (const m of members) {
      assert.equal(m.state, "up", m.id);
      assert.equal(m.api, cluster.nodes.get(m.id)!.api, m.id);
      assert.match(m.peer, /^127\.0\.0\.1:\d+$/, m.id);
      // The test cluster gives each node a machine of its own, as separate boards.
      assert.equal(m.machine, `${m.id}.local`, m.id);
    }
    const table = await cli(["members", "list"]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID +STATE +WEIGHT +MACHINE +PEER +API +META LAG$/);
    const rows = lines.slice(1).map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((r) => r[0]).sort(), ["n1", "n2", "n3", "n4"]);
    for (const r of rows)
      assert.deepEqual([r[1], r[3], r[5]], ["up", `${r[0]}.local`, cluster.nodes.get(r[0]!)!.api]);
  });

  it("members drain moves n4's replicas to the others, and members remove then forgets it", async () => {
    const founders = ["n1", "n2", "n3"];
    const placedOnN4 = await cluster.waitFor("n4 to hold replicas", 60_000, async () => {
      const all = await statuses([...founders, "n4"]);
      const leaders = [...all.values()].flatMap((s) => s.partitions.filter((p) => p.role === "leader"));
      const onN4 = leaders.filter((p) => p.voters.includes("n4")).length;
      return onN4 > 0 ? onN4 : null;
    });
    assert.ok(placedOnN4 > 0);
    // A board that still holds replicas cannot be removed without --force: a clear usage error.
    const early = await cli(["members", "remove", "n4"]);
    assert.equal(early.code, 2, early.stdout);
    assert.match(early.stderr, /n4 still holds replicas; drain it first/);

    const drain = await cli(["members", "drain", "n4"]);
    assert.equal(drain.code, 0, drain.stderr);
    assert.match(drain.stdout, /^n4 is draining: its replicas move to the other boards/);
    const listed = await cliJson<{ members: MemberRow[] }>(["members", "list"]);
    assert.equal(listed.members.find((m) => m.id === "n4")?.state, "draining");

    await cluster.waitFor("n4 to leave the ring and hold no replica", 180_000, async () => {
      const all = await statuses(founders);
      if (all.size !== 3 || [...all.values()].some((s) => s.ring?.nodes.includes("n4"))) return null;
      const leaders = [...all.values()].flatMap((s) => s.partitions.filter((p) => p.role === "leader"));
      if (new Set(leaders.map((p) => p.partition)).size !== 64) return null;
      return leaders.every(
        (p) => !p.voters.includes("n4") && !p.learners.includes("n4") && p.voters.length === 3,
      )
        ? true
        : null;
    });

    const removed = await cli(["members", "remove", "n4"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, "n4 is removed from the cluster.\n");
    const after = await cliJson<{ members: MemberRow[] }>(["members", "list"]);
    const n4 = after.members.find((m) => m.id === "n4");
    assert.ok(n4 === undefined || n4.state === "removed", JSON.stringify(n4));
    for (const id of founders) assert.equal(after.members.find((m) => m.id === id)?.state, "up", id);

    // The cluster still serves every key, through the CLI.
    const got = await cli(["get", numberKey(7)]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), "7");
    const noId = await cli(["members", "drain"]);
    assert.equal(noId.code, 2, noId.stderr);
    assert.match(noId.stderr, /members drain needs a node id/);
    const unknown = await cli(["members", "drain", "nobody"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no member nobody/);
  });

  it("once n4 is gone, spreads partition leaders evenly: each of the 3 nodes leads 64/3 ± 4", async () => {
    const ids = ["n1", "n2", "n3"];
    const low = Math.ceil(64 / 3 - 4);
    const high = Math.floor(64 / 3 + 4);
    const counts = await cluster.waitFor(
      `each node to lead ${low}-${high} of 64 partitions`,
      120_000,
      async () => {
        const all = await statuses(ids);
        if (all.size !== 3) return null;
        const led = ids.map((id) => all.get(id)!.leaderOf);
        const total = led.reduce((a, b) => a + b, 0);
        return total === 64 && led.every((n) => n >= low && n <= high) ? led : null;
      },
    );
    assert.equal(counts.length, 3);
  });
});
