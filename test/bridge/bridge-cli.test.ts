/**
 * `ringleader bridge` as a process: simulated firmware on a port path, readings into a 3-node
 * cluster, `/metrics`, and the board unplugged and plugged back in (the path points to a new
 * pseudo-terminal, as /dev/ttyACM0 comes back after a replug).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, symlink, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { RingleaderClient } from "../../agent/src/client/client.js";
import { freshModuleRecords, moduleWatchEnv } from "../support/fixtures/module-watch.js";
import type { LocalCluster } from "../support/local-cluster.js";
import { waitFor } from "../support/wait.js";
import { buildFirmware, SimBoard, startCluster } from "./sim-board.js";

const RUNNER = fileURLToPath(new URL("./bridge-cli-main.js", import.meta.url));

let cluster: LocalCluster;
let dir: string;

async function bootsStored(client: RingleaderClient, device: string): Promise<Map<number, number>> {
  const boots = new Map<number, number>();
  for await (const item of client.scanAll({ prefix: `sensors/{${device}}/`, limit: 1000 })) {
    const v = JSON.parse(Buffer.from(item.value).toString("utf8")) as { boot: number };
    boots.set(v.boot, (boots.get(v.boot) ?? 0) + 1);
  }
  return boots;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\d+(?:\\.\\d+)?)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

describe("ringleader bridge (the CLI process)", { timeout: 180_000 }, () => {
  before(async () => {
    buildFirmware();
    dir = await mkdtemp(join(tmpdir(), "ringleader-bridge-cli-"));
    cluster = await startCluster();
  });

  after(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes readings, serves /metrics, and survives unplug and replug", async () => {
    const device = "cli-board";
    const eeprom = join(dir, "board.eeprom");
    const port = join(dir, "ttyACM-sim");
    let board = await SimBoard.start({ id: device, eeprom });
    await symlink(board.pty, port);
    const client = new RingleaderClient({ endpoints: cluster.endpoints(), token: cluster.token });
    const args = [RUNNER, "bridge", "--json", "--port", port, "--endpoints", cluster.endpoints().join(",")];
    args.push(
      "--token",
      cluster.token,
      "--state-dir",
      join(dir, "state"),
      "--metrics-port",
      "0",
      "--interval",
      "50",
    );
    const moduleDir = join(dir, "modules");
    await mkdir(moduleDir);
    const bridge: ChildProcess = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...moduleWatchEnv(moduleDir) },
    });
    let stderr = "";
    bridge.stderr!.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
    try {
      // Bounded: a bridge that dies or hangs at start fails here with its own words, not at the
      // suite's timeout.
      const [line] = (await Promise.race([
        once(bridge.stdout!, "data"),
        once(bridge, "exit").then(([code]) => {
          throw new Error(`the bridge exited (${String(code)}) before it was ready:\n${stderr}`);
        }),
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error(`the bridge was not ready after 30 s:\n${stderr}`)),
            30_000,
          ).unref(),
        ),
      ])) as [Buffer];
      const ready = JSON.parse(line.toString().split("\n")[0]!) as { bridge: string; metrics: string };
      assert.equal(ready.bridge, "running");
      // The bridge asks WHO when it opens the port, so a board that booted earlier links up too.
      let seen = new Map<number, number>();
      // What a wait that timed out saw: the readings stored per boot, and the bridge's own words.
      const context = (): string =>
        `readings stored per boot: ${JSON.stringify([...seen])}\nthe bridge's log:\n${stderr}`;
      const first = await waitFor(
        "readings of the first boot",
        30_000,
        async () => {
          seen = await bootsStored(client, device);
          return seen.size === 1 && [...seen.values()][0]! >= 30 ? seen : null;
        },
        { everyMs: 250, context },
      );
      const firstBoot = [...first.keys()][0]!;

      // Unplug: the board's pseudo-terminal goes away. Replug: a new one behind the same path.
      await board.stop();
      board = await SimBoard.start({ id: device, eeprom });
      await unlink(port);
      await symlink(board.pty, port);
      const boots = await waitFor(
        `readings of the next boot (the first was ${firstBoot})`,
        30_000,
        async () => {
          seen = await bootsStored(client, device);
          return (seen.get(firstBoot + 1) ?? 0) >= 30 ? seen : null;
        },
        { everyMs: 250, context },
      );
      assert.ok(boots.get(firstBoot)! >= 30);

      // Unplugged for good: whatever a slow cluster left in the outbox drains (on a loaded machine
      // direct writes may time out into it), and nothing new comes in meanwhile.
      await board.stop();
      const text = await waitFor(
        "the outbox to drain",
        30_000,
        async () => {
          const t = await (await fetch(ready.metrics)).text();
          return metric(t, "ringleader_bridge_outbox_depth") === 0 ? t : null;
        },
        { everyMs: 250, context: () => `the bridge's log:\n${stderr}` },
      );
      // A path that committed nothing has no series yet.
      const committed = (path: string): number =>
        metric(text, `ringleader_bridge_readings_committed_total{path="${path}"}`) || 0;
      assert.ok(committed("direct") + committed("outbox") >= 60, text);
      assert.ok(metric(text, "ringleader_bridge_frames_ok_total") >= 60);
      assert.ok(Number.isFinite(metric(text, "ringleader_bridge_resyncs_total")));
      assert.match(stderr, /serial port closed/);

      // It wrote, learnt the cluster's agents and routes without the global fetch (undici would
      // add ~10 MB to a process that runs for months: agent/src/net/http-fetch.ts).
      const since = Date.now();
      const report = await waitFor("the bridge to report its modules", 10_000, async () =>
        (await freshModuleRecords(moduleDir, since)).get(bridge.pid!),
      );
      assert.deepEqual(report.undici, []);

      bridge.kill("SIGTERM");
      const [code] = (await once(bridge, "exit")) as [number | null];
      assert.equal(code, 0, stderr);
    } finally {
      if (bridge.exitCode === null) bridge.kill("SIGKILL");
      await board.stop();
    }
  });
});
