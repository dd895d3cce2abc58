/**
 * Safe bootstrap over real multicast: boards that start apart in groups smaller than `expect`
 * form exactly one cluster once their links come up; two clusters that each reached `expect`
 * apart raise the split-brain alarm when they meet, exchange no data, and one folds into the
 * other with `--fold-into`; a board with the wrong secret never joins and is counted.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CLI, Lan, lanUnavailable, type Status } from "./lan.js";

const skip = lanUnavailable();
let lan: Lan;

before(async () => {
  if (skip) return;
  lan = await Lan.create();
});

after(async () => {
  if (!skip) await lan.destroy();
});

const status = (name: string): Promise<Status | null> => lan.api<Status>(name, "/v1/status");

interface SplitBrainLine {
  level: string;
  msg: string;
  peer: string;
  theirCluster: string;
  ourCluster: string;
}

/** The `SPLIT BRAIN` lines of a board's (JSON) log. */
function splitBrainLines(name: string): SplitBrainLine[] {
  return readFileSync(lan.boards.get(name)!.logPath, "utf8")
    .split("\n")
    .filter((l) => l.includes("SPLIT BRAIN"))
    .map((l) => JSON.parse(l) as SplitBrainLine);
}

/** A gauge's value in a board's `/metrics` (whatever its labels); null when it is not exported. */
async function metric(name: string, gauge: string): Promise<number | null> {
  const m = new RegExp(`^${gauge}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec((await lan.raw(name, "/metrics")).body);
  return m ? Number(m[1]) : null;
}

test(
  "groups smaller than expect, started apart, form one cluster once connected",
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    // b1 and b2 see each other; b3 is unplugged. Neither group reaches expect (3).
    lan.addBoard("g1", "10.77.0.31");
    lan.addBoard("g2", "10.77.0.32");
    lan.addBoard("g3", "10.77.0.33", false);
    for (const b of ["g1", "g2", "g3"]) lan.start(b);
    // Each board answers /healthz from its discovery server: 503 "discovering peers".
    await lan.waitFor("all three to be discovering", 30_000, async () => {
      const h = await Promise.all(["g1", "g2", "g3"].map((b) => lan.raw(b, "/healthz")));
      return h.every((r) => r.status === 503 && r.body.includes("discovering"));
    });
    // Still discovering after several settle periods: two boards never found a cluster of three.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      for (const b of ["g1", "g2"])
        assert.ok((await lan.raw(b, "/healthz")).body.includes("discovering"), `${b} founded early`);
    }
    lan.link("g3", true);
    const ids = await lan.waitFor("one cluster of three", 60_000, async () => {
      const all = await Promise.all(["g1", "g2", "g3"].map(status));
      return all.every((s) => s?.health.ok && s.members.length === 3) ? all.map((s) => s!.clusterId) : null;
    });
    assert.ok(ids[0]);
    assert.deepEqual(ids, [ids[0], ids[0], ids[0]]);
  },
);

test(
  "a board with the wrong secret never joins, and is counted",
  { skip: skip ?? false, timeout: 90_000 },
  async () => {
    const other = `${lan.dir}/other.json`;
    lan.exec("g1", process.execPath, [CLI, "init", "--name", "lab", "--out", other]);
    lan.addBoard("rogue", "10.77.0.39");
    lan.start("rogue", { config: other });
    await lan.waitFor("the members to count the rogue", 45_000, async () => {
      const s = await status("g1");
      const c = s?.discovery?.counters;
      return c && (c["rogueAnswers"] ?? 0) > 0 && (c["rejectedProbes"] ?? 0) > 0;
    });
    const s = await status("g1");
    assert.ok(!s!.members.some((m) => m.id === "rogue"), "the rogue is not a member");
    assert.ok((await lan.raw("rogue", "/healthz")).body.includes("discovering"), "the rogue is still alone");
    const metrics = (await lan.raw("g1", "/metrics")).body;
    assert.match(metrics, /ringleader_discovery_rogue_answers_total\{[^}]*\} [1-9]/);
    // Stopping a node that is still discovering is clean: goodbye, exit 0, no SIGKILL needed.
    await lan.stopBoard("rogue");
    assert.equal(lan.boards.get("rogue")!.proc!.exitCode, 0);
  },
);

test(
  "two clusters that meet raise the alarm, stay apart, and one folds into the other",
  { skip: skip ?? false, timeout: 180_000 },
  async () => {
    // A second segment: two boards that found their own cluster (expect 2) out of sight.
    lan.addBoard("s1", "10.77.0.41", true, "br1");
    lan.addBoard("s2", "10.77.0.42", true, "br1");
    lan.start("s1", { expect: 2 });
    lan.start("s2", { expect: 2 });
    const theirs = await lan.waitFor("the second cluster", 60_000, async () => {
      const all = await Promise.all(["s1", "s2"].map(status));
      return all.every((s) => s?.health.ok && s.members.length === 2) ? all[0]!.clusterId : null;
    });
    const ours = (await status("g1"))!.clusterId!;
    assert.notEqual(theirs, ours);
    lan.move("s1", "br0");
    lan.move("s2", "br0");
    const alarm = await lan.waitFor("the split-brain alarm on g1", 60_000, async () => {
      const s = await status("g1");
      return s?.discovery?.alarm ? s : null;
    });
    assert.ok(alarm.discovery!.foreign.some((f) => f.clusterId === theirs));
    await lan.waitFor("the alarm on s1 too", 30_000, async () => (await status("s1"))?.discovery?.alarm);
    assert.match((await lan.raw("g1", "/metrics")).body, /ringleader_discovery_foreign_nodes\{[^}]*\} [1-9]/);
    const shown = lan.exec("g1", "sh", [
      "-c",
      `${process.execPath} ${CLI} status --endpoints http://127.0.0.1:7000 --token ${lan.token} 2>&1`,
    ]);
    assert.match(shown, /ALARM on g1: split brain/);
    // Loud in the logs: one error line per node of the other cluster, naming both cluster ids (not
    // one per probe answer: the answers keep coming, counted in foreign_answers_total).
    const foreignOnG1 = (await status("g1"))!.discovery!.foreign.map((f) => f.id);
    await lan.waitFor("g1 to hear from the other cluster more than once per node", 30_000, async () => {
      const answers = await metric("g1", "ringleader_discovery_foreign_answers_total");
      return answers !== null && answers > 2 * foreignOnG1.length;
    });
    const onG1 = splitBrainLines("g1");
    for (const id of foreignOnG1) {
      const lines = onG1.filter((l) => l.peer === id);
      assert.equal(lines.length, 1, `one SPLIT BRAIN line for ${id} on g1: ${JSON.stringify(onG1)}`);
      assert.equal(lines[0]!.level, "error");
      assert.equal(lines[0]!.theirCluster, theirs);
      assert.equal(lines[0]!.ourCluster, ours);
    }
    const onS1 = splitBrainLines("s1");
    assert.ok(
      onS1.some((l) => l.level === "error" && /^g[123]$/.test(l.peer) && l.theirCluster === ours),
      `s1 logs the split brain: ${JSON.stringify(onS1)}`,
    );
    // No Raft batch crossed, so none had to be refused: the member tables share no node, and
    // neither cluster addresses the other (the refusal is the backstop, counted when it fires).
    assert.equal(await metric("g1", "ringleader_discovery_refused_foreign_traffic_total"), 0);
    assert.equal(await metric("s1", "ringleader_discovery_refused_foreign_traffic_total"), 0);
    // Stayed apart: nobody joined anybody.
    assert.deepEqual((await status("g1"))!.members.map((m) => m.id).sort(), ["g1", "g2", "g3"]);
    assert.deepEqual((await status("s1"))!.members.map((m) => m.id).sort(), ["s1", "s2"]);
    // Fold the smaller cluster into ours: stop all of it, then start each with --fold-into.
    await Promise.all([lan.stopBoard("s1"), lan.stopBoard("s2")]);
    for (const b of ["s1", "s2"]) lan.start(b, { extra: ["--fold-into", ours.slice(0, 8)] });
    await lan.waitFor("s1 and s2 to be members of our cluster", 90_000, async () => {
      const s = await status("g1");
      const ids = s?.members.filter((m) => m.state === "up").map((m) => m.id) ?? [];
      return ids.includes("s1") && ids.includes("s2");
    });
    await lan.waitFor(
      "the alarm to clear",
      60_000,
      async () => (await status("g1"))?.discovery?.alarm === null,
    );
    assert.equal((await status("s1"))!.clusterId, ours);
  },
);
