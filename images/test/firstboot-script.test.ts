/**
 * templates/ringleader-firstboot, the shell script that names a board on its first boot, run
 * against folders that stand in for the board's /etc, /proc and /sys. Its pattern expansion must
 * agree with the TypeScript the builder validates patterns with.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { boardsList, expandPattern, parseBoardsCsv } from "../src/boards.js";
import { TEMPLATES_DIR } from "../src/templates.js";

const run = promisify(execFile);
const SCRIPT = join(TEMPLATES_DIR, "ringleader-firstboot");

interface Board {
  serial?: string;
  cpuinfoSerial?: string;
  mac?: string;
}

describe("images: first-boot hostname script", () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-firstboot-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the script for one board; returns the hostname it left and what it printed. */
  async function boot(board: Board, conf: { pattern: string; csv?: string }) {
    const root = join(dir, `root${n}`);
    const sys = join(dir, `sys${n++}`);
    await mkdir(join(root, "etc/ringleader"), { recursive: true });
    await writeFile(join(root, "etc/hostname"), "raspberrypi\n");
    await writeFile(join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n");
    const list = conf.csv ? "/etc/ringleader/boards.list" : "";
    if (conf.csv) await writeFile(join(root, list), boardsList(parseBoardsCsv(conf.csv)));
    await writeFile(
      join(root, "etc/ringleader/firstboot.conf"),
      `HOSTNAME_PATTERN='${conf.pattern}'\nBOARDS_LIST='${list}'\n`,
    );
    if (board.serial !== undefined) {
      await mkdir(join(sys, "proc/device-tree"), { recursive: true });
      await writeFile(join(sys, "proc/device-tree/serial-number"), `${board.serial}\0`);
    }
    if (board.cpuinfoSerial !== undefined) {
      await mkdir(join(sys, "proc"), { recursive: true });
      await writeFile(
        join(sys, "proc/cpuinfo"),
        `processor\t: 0\nSerial\t\t: ${board.cpuinfoSerial}\nModel\t\t: Raspberry Pi 4\n`,
      );
    }
    if (board.mac !== undefined) {
      await mkdir(join(sys, "sys/class/net/eth0"), { recursive: true });
      await writeFile(join(sys, "sys/class/net/eth0/address"), `${board.mac}\n`);
    }
    const { stdout, stderr } = await run("sh", [SCRIPT], {
      env: { PATH: process.env["PATH"] ?? "", RINGLEADER_ROOT: root, RINGLEADER_SYS: sys },
    });
    const hostname = (await readFile(join(root, "etc/hostname"), "utf8")).trim();
    const hosts = await readFile(join(root, "etc/hosts"), "utf8");
    const done = await stat(join(root, "var/lib/ringleader/.firstboot-done")).then(
      () => true,
      () => false,
    );
    return { hostname, hosts, stdout, stderr, done };
  }

  const csv = "hostname,serial,mac\npi1,abcdef12,\npi2,,dc:a6:32:0a:0b:0c\npi3,10000000deadbeef,\n";

  it("finds the board in the list by the end of its serial number", async () => {
    const r = await boot(
      { serial: "10000000ABCDEF12", mac: "dc:a6:32:99:99:99" },
      { pattern: "rl-{serial}", csv },
    );
    assert.equal(r.hostname, "pi1");
    assert.match(r.hosts, /^127\.0\.1\.1\tpi1$/m);
    assert.doesNotMatch(r.hosts, /raspberrypi/);
    assert.match(r.stdout, /hostname raspberrypi -> pi1/);
    assert.equal(r.done, true);
  });

  it("finds the board by its MAC address when the serial is not listed", async () => {
    const r = await boot(
      { serial: "1000000011112222", mac: "DC:A6:32:0A:0B:0C" },
      { pattern: "rl-{serial}", csv },
    );
    assert.equal(r.hostname, "pi2");
  });

  it("reads the serial from /proc/cpuinfo on boards without it in the device tree", async () => {
    const r = await boot({ cpuinfoSerial: "10000000deadbeef" }, { pattern: "rl-{serial}", csv });
    assert.equal(r.hostname, "pi3");
  });

  it("falls back to the pattern, expanding it exactly as the builder does", async () => {
    const board = { serial: "10000000AA55CC33", mac: "DC:A6:32:12:34:56" };
    const r = await boot(board, { pattern: "rl-{serial}-{mac}", csv });
    assert.equal(r.hostname, expandPattern("rl-{serial}-{mac}", board.serial, board.mac));
    assert.equal(r.hostname, "rl-55cc33-123456");
    assert.match(r.stderr, /not in \/etc\/ringleader\/boards.list; using the pattern/);
  });

  it("keeps the image's name when neither a list nor a pattern applies", async () => {
    const r = await boot({ serial: "1000000011112222" }, { pattern: "" });
    assert.equal(r.hostname, "raspberrypi");
    assert.equal(r.done, true);
  });
});
