/**
 * `least-loaded` on the client side between real agents: one board reports itself hot and
 * throttled (its agent reads a made-up sysfs through `--sysfs`: 85 °C, firmware throttling), and
 * the client library and `ringleader get --strategy least-loaded` enter the cluster by the other
 * boards, although the CLI is given only the hot board's address: both learn the agents and
 * their scores from the cluster's health view. Round-robin, as a control, does reach the hot board.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { RingleaderClient } from "../../agent/src/client/client.js";
import { runCli as cli } from "../support/cli.js";
import { LocalCluster } from "../support/local-cluster.js";

const HOT = "n3";
const KEY = "balance/least-loaded";
const REQUESTS = 30;

interface HealthNode {
  id: string;
  api: string | null;
  load: number | null;
}

/** A sysfs with a CPU at 85 °C and the firmware reporting throttling now (bits 2 and 18). */
async function hotSysfs(root: string): Promise<void> {
  const zone = join(root, "class/thermal/thermal_zone0");
  await mkdir(zone, { recursive: true });
  await writeFile(join(zone, "type"), "cpu-thermal\n");
  await writeFile(join(zone, "temp"), "85000\n");
  const firmware = join(root, "devices/platform/soc/soc:firmware");
  await mkdir(firmware, { recursive: true });
  await writeFile(join(firmware, "get_throttled"), "50004\n");
}

describe("client least-loaded entry between real agents", { timeout: 300_000 }, () => {
  let cluster: LocalCluster;
  let sysfs: string;

  async function health(via: string): Promise<HealthNode[] | null> {
    try {
      const res = await fetch(`${cluster.nodes.get(via)!.api}/v1/health`, {
        headers: { authorization: `Bearer ${cluster.token}` },
        signal: AbortSignal.timeout(3000),
      });
      return res.ok ? ((await res.json()) as { nodes: HealthNode[] }).nodes : null;
    } catch {
      return null;
    }
  }

  /** The `GET /v1/kv/:key` requests a node has served (entered by, or forwarded to it). */
  async function kvGets(id: string): Promise<number> {
    const res = await fetch(`${cluster.nodes.get(id)!.api}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    let total = 0;
    for (const m of text.matchAll(/^ringleader_api_requests_total\{([^}]*)\} (\d+)$/gm)) {
      if (m[1]!.includes('route="GET /v1/kv/:key"')) total += Number(m[2]);
    }
    return total;
  }

  async function leaderOf(id: string): Promise<number | null> {
    const s = (await cluster.status(id, 3000)) as unknown as { leaderOf?: number } | null;
    return s?.leaderOf ?? null;
  }

  before(async () => {
    sysfs = await mkdtemp(join(tmpdir(), "ringleader-hot-sysfs-"));
    await hotSysfs(sysfs);
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
    await cluster.waitHealthy(90_000);
    // The hot board: the same node, restarted with its board readings taken from the made-up sysfs.
    const hot = cluster.nodes.get(HOT)!;
    await cluster.terminate(HOT);
    cluster.nodes.set(HOT, { ...hot, command: [...hot.command, "--sysfs", sysfs] });
    cluster.restart(HOT);
    await cluster.waitHealthy(90_000);
    const writer = new RingleaderClient({
      endpoints: cluster.endpoints(),
      token: cluster.token,
      maxAttempts: 32,
    });
    await writer.put(KEY, "cool");
    // Every board's view names the hot one overloaded (score >= 2) and the others below it.
    await cluster.waitFor("every agent to see n3 hot and the others cooler", 90_000, async () => {
      for (const via of cluster.nodes.keys()) {
        const nodes = await health(via);
        const load = (id: string) => nodes?.find((n) => n.id === id)?.load ?? null;
        const hotLoad = load(HOT);
        if (hotLoad === null || hotLoad < 2) return null;
        for (const id of ["n1", "n2"]) {
          const l = load(id);
          if (l === null || l >= hotLoad) return null;
        }
      }
      return true;
    });
    // Take the hot board's leaderships away (a step-down keeps them away for two minutes), so
    // every request its API serves is one that entered there.
    const down = await cli([
      "members",
      "step-down",
      HOT,
      "--endpoints",
      cluster.endpoints().join(","),
      "--token",
      cluster.token,
    ]);
    assert.equal(down.code, 0, down.stderr);
    await cluster.waitFor("n3 to lead no partition", 30_000, async () => (await leaderOf(HOT)) === 0);
  });
  after(async () => {
    await cluster?.stop();
    await rm(sysfs, { recursive: true, force: true });
  });

  it("the client library sends its requests to the board that reports the lowest load", async () => {
    const entered: string[] = [];
    let view: HealthNode[] | null = null;
    // The real fetch, watched: which agent each request entered by, and the view the client read.
    const watched = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input));
      const res = await fetch(input, init);
      if (url.pathname === "/v1/health") view = ((await res.clone().json()) as { nodes: HealthNode[] }).nodes;
      else entered.push(url.origin);
      return res;
    }) as typeof fetch;
    const client = new RingleaderClient({
      endpoints: cluster.endpoints(),
      token: cluster.token,
      strategy: "least-loaded",
      fetch: watched,
      // One view for the whole run, so "the least-loaded board" is one board throughout.
      agentsRefreshMs: 600_000,
    });
    for (let i = 0; i < REQUESTS; i++) {
      const got = await client.get(KEY);
      assert.equal(got && Buffer.from(got.value).toString(), "cool");
    }
    assert.ok(view, "the client read the cluster's health view");
    const scored = (view as HealthNode[]).filter((n) => n.load !== null && n.api !== null);
    const lowest = Math.min(...scored.map((n) => n.load!));
    // Boards of this one machine can report the same score (the same load average): they share.
    const coolest = scored.filter((n) => n.load === lowest);
    assert.ok(!coolest.some((n) => n.id === HOT));
    const byNode = (api: string) => entered.filter((e) => e === api).length;
    const hotApi = cluster.nodes.get(HOT)!.api;
    assert.equal(entered.length, REQUESTS);
    const toCoolest = coolest.reduce((sum, n) => sum + byNode(n.api!), 0);
    const scores = scored.map((n) => `${n.id}=${n.load}`).join(" ");
    assert.ok(toCoolest >= 0.9 * REQUESTS, `${toCoolest} of ${REQUESTS} to the coolest (${scores})`);
    assert.equal(byNode(hotApi), 0, `the hot board got ${byNode(hotApi)} requests`);

    // The control: round-robin over the same agents does reach the hot board.
    const rr = new RingleaderClient({ endpoints: cluster.endpoints(), token: cluster.token, fetch: watched });
    entered.length = 0;
    for (let i = 0; i < 9; i++) await rr.get(KEY);
    assert.ok(byNode(hotApi) >= 2, `round-robin sent ${byNode(hotApi)} of 9 to the hot board`);
  });

  it("ringleader get --strategy least-loaded, given only the hot board, enters by a cooler one", async () => {
    const hotApi = cluster.nodes.get(HOT)!.api;
    const before = await kvGets(HOT);
    for (let i = 0; i < 5; i++) {
      const r = await cli([
        "get",
        KEY,
        "--strategy",
        "least-loaded",
        "--endpoints",
        hotApi,
        "--token",
        cluster.token,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "cool");
    }
    assert.equal(
      await leaderOf(HOT),
      0,
      "n3 took a leadership back: its counter would include forwarded reads",
    );
    assert.equal((await kvGets(HOT)) - before, 0, "a get entered by the hot board");
    // The control: round-robin from the same single address can only enter there.
    const r = await cli(["get", KEY, "--endpoints", hotApi, "--token", cluster.token]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await kvGets(HOT)) - before, 1);
  });
});
