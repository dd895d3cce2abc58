/**
 * The web dashboard in a real browser (Debian's chromium driven by playwright-core) against a
 * real 3-node cluster with sensor readings: it shows the three nodes, the ring (every partition
 * and token) and a chart per series, and the feed and chart update after a new reading is
 * written. Any console error or uncaught page error fails the test. Screenshots (desktop and
 * phone) go to $RINGLEADER_TEST_OUTPUT or a temp folder, printed at the end.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { buildUi } from "../../agent/src/observe/build-ui.js";
import { LocalCluster } from "../support/local-cluster.js";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function put(c: LocalCluster, base: string, key: string, value: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${base}/v1/kv/${encodeURIComponent(key)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${c.token}` },
      body: value,
      signal: AbortSignal.timeout(10_000),
    });
    if (res.ok) return;
    if (res.status !== 503 || attempt >= 40) throw new Error(`PUT ${key}: ${res.status} ${await res.text()}`);
    await new Promise((r) => setTimeout(r, 100 * Math.min(attempt + 1, 10)));
  }
}

/** Polls `probe` (Playwright calls, from this side) until it returns true, up to `timeoutMs`. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function reading(device: string, value: number, time: string): string {
  return JSON.stringify({ device, sensor: "temp", value, time });
}

describe("dashboard in a real browser", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  let context: BrowserContext | null = null;
  let profile = "";
  let readToken = "";
  const shots = process.env["RINGLEADER_TEST_OUTPUT"] ?? join(tmpdir(), "ringleader-dashboard");
  const problems: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (make deps)`);
    await buildUi();
    await mkdir(shots, { recursive: true });
    cluster = await LocalCluster.start({ nodes: 3, tickMs: 50 });
    readToken = (
      JSON.parse(await readFile(join(cluster.dir, "ringleader.json"), "utf8")) as { readToken: string }
    ).readToken;
    profile = await mkdtemp(join(tmpdir(), "ringleader-chromium-"));
  });

  after(async () => {
    await context?.close().catch(() => {});
    await cluster?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function open(api: string): Promise<Page> {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1360, height: 1000 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => {
      // A chart cancels its request when a newer one supersedes it; that is not a failure.
      if (r.failure()?.errorText !== "net::ERR_ABORTED")
        problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    });
    await page.goto(`${api}/ui/#token=${encodeURIComponent(readToken)}`);
    return page;
  }

  it("shows nodes, ring and charts, and updates after a write", async () => {
    const [a, b, c] = cluster.endpoints() as [string, string, string];
    // Half an hour of readings from two devices, one a minute.
    const start = Date.now() - 30 * 60_000;
    for (let i = 0; i < 30; i++) {
      const t = new Date(start + i * 60_000).toISOString();
      await put(cluster, a, `sensors/{kitchen}/temp/${t}`, reading("kitchen", 20 + Math.sin(i / 5) * 2, t));
      await put(cluster, b, `sensors/{garage}/temp/${t}`, reading("garage", 12 + Math.cos(i / 4), t));
    }

    // The read-only token reads but cannot write.
    const denied = await fetch(`${c}/v1/kv/x`, {
      method: "PUT",
      headers: { authorization: `Bearer ${readToken}` },
      body: "1",
    });
    assert.equal(denied.status, 401);

    const page = await open(c);
    // The token left the address bar for sessionStorage.
    await until("the token to leave the URL", async () => new URL(page.url()).hash === "");

    const cards = page.locator('[data-testid="node-card"]');
    await until("three node cards", async () => (await cards.count()) === 3);
    const ids = await Promise.all((await cards.all()).map((c) => c.getAttribute("data-node")));
    assert.deepEqual(ids.sort(), ["n1", "n2", "n3"]);
    // Every node's board health arrives (peers pull each other's records).
    await until(
      "every node up",
      async () =>
        (await cards.locator(".pill").first().allTextContents()).length > 0 &&
        (await Promise.all((await cards.all()).map((c) => c.locator(".pill").first().textContent()))).every(
          (t) => t === "up",
        ),
    );

    // The ring: 64 partition arcs, each with a known leader, and 3 × 16 tokens.
    const arcs = page.locator('[data-testid="partition-arc"]');
    await until("64 partition arcs with leaders", async () => {
      if ((await arcs.count()) !== 64) return false;
      const leaders = await Promise.all((await arcs.all()).map((a) => a.getAttribute("data-leader")));
      return leaders.every((l) => l !== null && l !== "");
    });
    assert.equal(await page.locator('[data-testid="token"]').count(), 48);

    // A chart per series, with the readings in it.
    const charts = page.locator('[data-testid="chart"]');
    const readingsIn = async (prefix: string) =>
      page.locator(`[data-testid="chart"][data-prefix="${prefix}"]`).getAttribute("data-readings");
    await until("two charts of 30 readings", async () => {
      if ((await charts.count()) !== 2) return false;
      return (
        (await readingsIn("sensors/{kitchen}/temp/")) === "30" &&
        (await readingsIn("sensors/{garage}/temp/")) === "30"
      );
    });
    await page.screenshot({ path: join(shots, "dashboard-desktop.png"), fullPage: true });

    // A new reading shows in the feed and in its chart.
    const now = new Date().toISOString();
    await put(cluster, b, `sensors/{kitchen}/temp/${now}`, reading("kitchen", 31.25, now));
    const kitchen =
      '[data-testid="sensor-row"][data-prefix="sensors/{kitchen}/temp/"] [data-testid="sensor-value"]';
    await until(
      "the new reading in the feed",
      async () => (await page.locator(kitchen).textContent()) === "31.3",
    );
    await until(
      "the new reading in the chart",
      async () => (await readingsIn("sensors/{kitchen}/temp/")) === "31",
    );

    // On a phone: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone`);
    await page.screenshot({ path: join(shots, "dashboard-phone.png"), fullPage: true });

    assert.deepEqual(problems, []);
    process.stderr.write(`# dashboard screenshots in ${shots}\n`);
  });
});
