/**
 * upgrade.yml against a running local cluster of three agents. The inventory maps one host per
 * agent (ansible_connection=local); the role installs the release into a folder per node, and its
 * restart handler — systemd on a board — is pointed at this test, which restarts that agent from
 * the release just installed. The playbook drives everything else: the health gate before each
 * board, the leadership hand-over, the install, the restart, the wait for health, one board at a
 * time. A client writes throughout, and no write may stay failing for longer than an election.
 * Then, with one agent killed, the playbook must refuse before touching anything.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../support/local-cluster.js";
import { ansiblePlaybook, buildRelease, localInventory, recap } from "./support.js";

const TICK_MS = 50;
const ELECTION_TICKS = 10;
/** A follower campaigns after 1-2 election timeouts; one election round then settles it. */
const ELECTION_MS = 2 * ELECTION_TICKS * TICK_MS;
/** Scheduling noise on a shared two-core machine while Ansible runs next to three agents. */
const SLACK_MS = 1500;
const RESTART_PY =
  "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'), timeout=120)";

interface RestartEvent {
  id: string;
  atMs: number;
  /**
   * Partitions the node led when the restart came. Reported, not asserted: the controller's leader
   * balancer may hand a leadership back between the step-down and the restart, and the agent
   * hands it over again on SIGTERM.
   */
  leaderOf: number | null;
  /** Whether every other node answered /healthz 200 at that moment. */
  othersHealthy: boolean;
}

class Writer {
  private stopped = false;
  private lastAckMs = performance.now();
  longestGapMs = 0;
  /** Gaps over half a second, with when they ended (wall clock), to line up with the restarts. */
  readonly slowGaps: { atMs: number; gapMs: number }[] = [];
  acked = new Map<string, string>();
  failures = 0;
  private n = 0;
  private done: Promise<void> | null = null;

  constructor(
    private readonly endpoints: string[],
    private readonly token: string,
  ) {}

  start(): void {
    this.done = this.loop();
  }

  private async writeOnce(key: string, value: string): Promise<boolean> {
    // Each write goes to the next endpoint; a refused connection moves on to the next at once.
    for (let i = 0; i < this.endpoints.length; i++) {
      const base = this.endpoints[(this.n + i) % this.endpoints.length]!;
      try {
        const res = await fetch(`${base}/v1/kv/${encodeURIComponent(key)}`, {
          method: "PUT",
          headers: { authorization: `Bearer ${this.token}` },
          body: value,
          // A client that gives an attempt about an election before trying the next node.
          signal: AbortSignal.timeout(ELECTION_MS),
        });
        await res.arrayBuffer();
        if (res.status === 200) return true;
      } catch {
        // Try the next endpoint.
      }
    }
    return false;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const key = `upgrade/${this.n}`;
      const value = `v${this.n}`;
      this.n++;
      if (await this.writeOnce(key, value)) {
        const now = performance.now();
        this.longestGapMs = Math.max(this.longestGapMs, now - this.lastAckMs);
        if (now - this.lastAckMs > 500)
          this.slowGaps.push({ atMs: Date.now(), gapMs: Math.round(now - this.lastAckMs) });
        this.lastAckMs = now;
        this.acked.set(key, value);
      } else {
        this.failures++;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    this.longestGapMs = Math.max(this.longestGapMs, performance.now() - this.lastAckMs);
  }
}

describe("provisioning: upgrade.yml, one board at a time, on a local cluster", { timeout: 600_000 }, () => {
  let cluster: LocalCluster;
  let work = "";
  let control: http.Server;
  let controlPort = 0;
  const events: RestartEvent[] = [];
  let inventory = "";

  async function healthy(api: string): Promise<boolean> {
    try {
      const res = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** The restart mechanism the playbook's handler calls: stop the agent, start it from its new release. */
  async function restartFromRelease(id: string): Promise<RestartEvent> {
    const node = cluster.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    let leaderOf: number | null = null;
    try {
      const res = await fetch(`${node.api}/v1/status`, {
        headers: { authorization: `Bearer ${cluster.token}` },
        signal: AbortSignal.timeout(2000),
      });
      leaderOf = ((await res.json()) as { leaderOf?: number }).leaderOf ?? null;
    } catch {
      leaderOf = null;
    }
    const others = [...cluster.nodes.values()].filter((n) => n.id !== id);
    const othersHealthy = (await Promise.all(others.map((n) => healthy(n.api)))).every(Boolean);
    const event = { id, atMs: Date.now(), leaderOf, othersHealthy };
    await cluster.terminate(id);
    // The same command, with the installed copy of the agent instead of the checkout's.
    const main = node.command.findIndex((arg) => arg.endsWith("/cli/main.js"));
    node.command[main] = join(work, id, "opt/ringleader/dist/agent/src/cli/main.js");
    cluster.restart(id);
    return event;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "ringleader-upgrade-"));
    cluster = await LocalCluster.start({ nodes: 3, tickMs: TICK_MS });
    await cluster.waitFor("every node healthy", 60_000, async () =>
      (await Promise.all(cluster.endpoints().map(healthy))).every(Boolean),
    );
    control = http.createServer((req, res) => {
      const m = /^\/restart\/([A-Za-z0-9._-]+)$/.exec(req.url ?? "");
      if (req.method !== "POST" || !m) {
        res.writeHead(404).end();
        return;
      }
      restartFromRelease(m[1]!).then(
        (event) => {
          events.push(event);
          res.writeHead(200).end("restarted\n");
        },
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
    controlPort = (control.address() as AddressInfo).port;
    inventory = join(work, "inventory.yml");
    await writeFile(
      inventory,
      localInventory(cluster, {
        hostVars: (id) => [`ringleader_prefix: ${join(work, id, "opt/ringleader")}`],
        vars: [
          // python3 is there wherever Ansible is; the POST returns once the agent is started again.
          `ringleader_restart_command: [python3, -c, "${RESTART_PY}", "http://127.0.0.1:${controlPort}/restart/{id}"]`,
          "ringleader_health_wait_seconds: 90",
          "ringleader_health_precheck_seconds: 10",
        ],
      }),
    );
  });

  after(async () => {
    await new Promise<void>((resolve) => (control ? control.close(() => resolve()) : resolve()));
    if (cluster) await cluster.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("upgrades every board in turn while a client keeps writing", async () => {
    const release = await buildRelease(join(work, "files"));
    const writer = new Writer(cluster.endpoints(), cluster.token);
    writer.start();
    const t0 = Date.now();
    const r = await ansiblePlaybook(
      ["-i", inventory, "upgrade.yml", "-e", `ringleader_bundle=${release}`],
      400_000,
    );
    await writer.stop();
    const elapsedMs = Date.now() - t0;
    process.stderr.write(
      `# upgrade.yml: ${elapsedMs} ms; ${writer.acked.size} writes acknowledged, ${writer.failures} failed, ` +
        `longest gap without an acknowledged write ${Math.round(writer.longestGapMs)} ms\n`,
    );
    process.stderr.write(
      `# restarts at ${events.map((e) => `${e.id}@${e.atMs - t0} (leading ${e.leaderOf})`).join(", ")} ms; slow gaps ${writer.slowGaps
        .map((g) => `${g.gapMs} ms ending @${g.atMs - t0}`)
        .join(", ")}\n`,
    );
    assert.equal(r.code, 0, r.stdout.slice(-8000) + r.stderr);
    // One board at a time, in inventory order, each restart only after the previous board recovered.
    assert.deepEqual(
      events.map((e) => e.id),
      ["n1", "n2", "n3"],
    );
    for (const e of events) {
      assert.ok(e.othersHealthy, `the other boards were healthy when ${e.id} restarted`);
    }
    for (const id of ["n1", "n2", "n3"]) {
      const rc = recap(r.stdout).get(id);
      assert.ok(rc && rc.failed === 0 && rc.changed > 0, `recap of ${id}`);
      // The agent now runs from the release the playbook installed.
      const cmdline = await readFile(`/proc/${cluster.pid(id)}/cmdline`, "utf8");
      assert.ok(cmdline.includes(join(work, id, "opt/ringleader/dist/agent/src/cli/main.js")), cmdline);
    }
    // The playbook itself gated each board: health, step-down, install, restart, health again.
    const order = [...r.stdout.matchAll(/^(?:TASK|RUNNING HANDLER) \[(?:ringleader : )?([^\]]+)\]/gm)].map(
      (m) => m[1],
    );
    const gate = order.filter((t) =>
      /^(Check the whole cluster is healthy|Hand this board's|Restart the agent with the configured command|Wait until the whole cluster)/.test(
        t ?? "",
      ),
    );
    assert.equal(gate.length, 12, gate.join(" | "));
    assert.ok(writer.acked.size > 50, `the client kept writing (${writer.acked.size} acknowledged)`);
    assert.ok(
      writer.longestGapMs <= ELECTION_MS + SLACK_MS,
      `writes stalled for ${Math.round(writer.longestGapMs)} ms, more than an election (${ELECTION_MS} ms + ${SLACK_MS} ms slack)`,
    );
    // Every acknowledged write survived the restarts.
    const sample = [...writer.acked.entries()].filter((_, i) => i % 10 === 0);
    for (const [key, value] of sample) {
      const res = await fetch(`${cluster.endpoints()[0]}/v1/kv/${encodeURIComponent(key)}`, {
        headers: { authorization: `Bearer ${cluster.token}` },
      });
      assert.equal(await res.text(), value, key);
    }
  });

  it("refuses to start when the cluster is unhealthy, before touching any board", async () => {
    const before = events.length;
    const releasesBefore = await readdir(join(work, "n1", "opt/ringleader/releases"));
    cluster.kill9("n3");
    await cluster.waitExit("n3");
    // A different release, so an install would show.
    const other = join(work, "files2");
    const release = await buildRelease(other);
    await writeFile(join(other, "marker"), "");
    const r = await ansiblePlaybook(
      ["-i", inventory, "upgrade.yml", "-e", `ringleader_bundle=${release}`],
      300_000,
    );
    assert.notEqual(r.code, 0, "the playbook must fail");
    assert.match(r.stdout, /Refusing to upgrade n1: the cluster is not healthy/);
    assert.match(r.stdout, /n3 \(http:\/\/127\.0\.0\.1:\d+\) does not answer/);
    assert.equal(events.length, before, "no board was restarted");
    assert.deepEqual(
      await readdir(join(work, "n1", "opt/ringleader/releases")),
      releasesBefore,
      "nothing installed",
    );
    assert.doesNotMatch(r.stdout, /TASK \[[^\]]*Hand this board's leaderships/);
    const rc = recap(r.stdout);
    assert.equal(rc.get("n1")?.changed, 0);
    assert.equal(rc.has("n2") ? rc.get("n2")?.ok : 0, 0, "n2 is never reached");
  });
});
