/**
 * `ringleader image build` end to end on a small image shaped like Raspberry Pi OS (made from
 * images/fixtures with dosfstools and e2fsprogs): every file, owner and mode it installs is read
 * back with debugfs and mtools, and the arm64 bundle is RUN under qemu-user with Debian's arm64
 * Node.js, which only works when the native modules are the target's. The error paths follow.
 * Downloads (npm, Debian packages) go to the cache once; later runs are offline and fast.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { newClusterConfig, writeClusterConfig } from "../../agent/src/node/cluster-config.js";
import { parseBoardsCsv, parseHostnamePattern } from "../src/boards.js";
import { buildImage, defaultCacheDir, type BuildOptions, type BuildReport } from "../src/build.js";
import { makeBundle, checkNativeModules, type Bundle } from "../src/bundle.js";
import { EM_AARCH64, EM_ARM, readElfHeader } from "../src/elf.js";
import {
  BundleError,
  ImageSettingsError,
  MissingToolError,
  NoRoomError,
  NotRaspberryPiOsError,
  TruncatedImageError,
  UnsupportedBaseError,
} from "../src/errors.js";
import { Ext4Partition } from "../src/ext4.js";
import { FatPartition } from "../src/fat.js";
import { wifiPsk } from "../src/firstboot.js";
import { parseMbr } from "../src/mbr.js";
import { silentProgress } from "../src/progress.js";
import { DebianArchive } from "../src/runtime.js";
import { REPO_ROOT, renderTemplate } from "../src/templates.js";
import { ToolRunner } from "../src/tools.js";
import { FIXTURE_DISK_ID, makeFixtureImage } from "./fixture.js";

const exec = promisify(execFile);
const HARNESS = fileURLToPath(new URL("./cli-harness.js", import.meta.url));

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HARNESS, ...args], {
      env: { PATH: process.env["PATH"] ?? "", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end();
  });
}
const tools = new ToolRunner();
const cacheDir = defaultCacheDir();
const MINUTES = 60_000;
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixtureKeyOnlyForTests0000000000000000 test@ci";
const PASSWORD_HASH = "$y$j9T$fixturesalt$fixturehashfixturehashfixturehash";
const BOARDS = "hostname,serial\npi1,aaaa0001\npi2,aaaa0002\npi3,aaaa0003\n";

interface Inode {
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** `ls -p` of many folders in one debugfs run: path → type+mode, owner, size. */
async function listDirs(fs: Ext4Partition, dirs: readonly string[]): Promise<Map<string, Inode>> {
  const file = join(await mkdtemp(join(tmpdir(), "ringleader-ls-")), "cmds");
  await writeFile(file, dirs.map((d) => `ls -p "${d}"`).join("\n") + "\n");
  const r = await tools.run("debugfs", ["-f", file, fs.device], { maxStdoutBytes: 256 * 1024 * 1024 });
  await rm(join(file, ".."), { recursive: true, force: true });
  const out = new Map<string, Inode>();
  let dir = "";
  for (const line of r.stdout.toString("utf8").split("\n")) {
    const cmd = /^debugfs: ls -p "(.*)"$/.exec(line);
    if (cmd?.[1] !== undefined) {
      dir = cmd[1];
      continue;
    }
    const m = /^\/\d+\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
    if (!m || m[4] === "." || m[4] === "..") continue;
    out.set(`${dir === "/" ? "" : dir}/${m[4]}`, {
      mode: parseInt(m[1] ?? "0", 8),
      uid: Number(m[2]),
      gid: Number(m[3]),
      size: Number(m[5] || 0),
    });
  }
  return out;
}

async function sha256File(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

async function partitions(image: string) {
  const fh = await open(image, "r");
  const sector0 = Buffer.alloc(512);
  await fh.read(sector0, 0, 512, 0);
  await fh.close();
  const table = parseMbr(sector0);
  const [p1, p2] = table.partitions;
  assert.ok(p1 && p2);
  return {
    table,
    boot: new FatPartition(tools, image, p1.startSector * 512),
    root: new Ext4Partition(tools, image, p2.startSector * 512),
  };
}

/** Runs the target's node under qemu-user (called directly: binfmt may not be registered). */
async function runOnTarget(arch: "arm64" | "armhf", sysroot: string, args: string[]) {
  const qemu = arch === "arm64" ? "qemu-aarch64-static" : "qemu-arm-static";
  await tools.require([qemu]);
  const r = await tools.run(qemu, ["-L", sysroot, join(sysroot, "usr/bin/node"), ...args], {
    okExitCodes: [0, 1, 2],
  });
  return { code: r.exitCode, stdout: r.stdout.toString("utf8"), stderr: r.stderr };
}

describe("images: build", { timeout: 15 * MINUTES }, () => {
  let dir: string;
  let clusterFile: string;
  let fixture: string;
  let out: string;
  let report: BuildReport;
  let bundle: Bundle;
  let extracted: string;
  const settings = {
    hostname: parseHostnamePattern("rl-{serial}"),
    boards: parseBoardsCsv(BOARDS),
    user: { name: "pi", passwordHash: PASSWORD_HASH, sshKeys: [SSH_KEY] },
    wifi: { ssid: "IEEE", psk: wifiPsk("IEEE", "password"), hidden: false },
    country: "GB",
    timezone: "Europe/London",
    locale: "en_GB.UTF-8",
    keyboard: "gb",
  };
  const options = (o: Partial<BuildOptions>): BuildOptions => ({
    base: fixture,
    out: join(dir, "out.img"),
    clusterConfig: clusterFile,
    overwrite: true,
    settings,
    route: "auto",
    runtime: "offline",
    apiPort: 7000,
    peerPort: 7100,
    grow: true,
    cacheDir,
    tools,
    progress: silentProgress,
    ...o,
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-build-"));
    clusterFile = join(dir, "ringleader.json");
    await writeClusterConfig(clusterFile, newClusterConfig("shelf", new Date()), false);
    fixture = join(dir, "base.img");
    await makeFixtureImage(fixture, { arch: "arm64" });
    // The main build starts from .img.xz, as users download Raspberry Pi OS.
    await exec("xz", ["-T0", "-0", "-k", fixture]);
    out = join(dir, "shelf.img");
    report = await buildImage(options({ base: `${fixture}.xz`, out, overwrite: false }));
    bundle = await makeBundle({ tools, repoRoot: REPO_ROOT, cacheDir, arch: "arm64" });
    extracted = join(dir, "extracted");
    await mkdir(extracted);
    await (await partitions(out)).root.copyOut("/opt/ringleader", extracted);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps the partition table and grows the root to fit, leaving a clean file system", async () => {
    const before = (await partitions(fixture)).table;
    const { table, root } = await partitions(out);
    assert.equal(table.diskId.toString(16), FIXTURE_DISK_ID);
    assert.deepEqual(table.partitions[0], before.partitions[0]);
    assert.ok(report.grownBytes > 0, "the fixture's root is too small for the agent, so it must grow");
    assert.equal(
      (table.partitions[1]?.sectorCount ?? 0) * 512,
      (before.partitions[1]?.sectorCount ?? 0) * 512 + report.grownBytes,
    );
    assert.equal(
      (await stat(out)).size,
      ((table.partitions[1]?.startSector ?? 0) + (table.partitions[1]?.sectorCount ?? 0)) * 512,
    );
    await root.check(undefined, true); // e2fsck -fn: throws unless clean
    const fs = await root.stats();
    assert.equal(fs.blockCount * fs.blockBytes, (table.partitions[1]?.sectorCount ?? 0) * 512);
  });

  it("installs every file of the bundle, owned by root, with its mode and its bytes", async () => {
    const { root } = await partitions(out);
    const dirs = [
      "/opt/ringleader",
      "/opt/ringleader/bin",
      ...bundle.entries.filter((e) => e.kind === "dir").map((e) => `/opt/ringleader/${e.path}`),
    ];
    const listing = await listDirs(root, dirs);
    let files = 0;
    for (const e of bundle.entries) {
      const got = listing.get(`/opt/ringleader/${e.path}`);
      assert.ok(got, `${e.path} is missing`);
      assert.equal(got.uid, 0, e.path);
      assert.equal(got.gid, 0, e.path);
      if (e.kind === "dir") assert.equal(got.mode, 0o40755, e.path);
      if (e.kind === "file") {
        files++;
        assert.equal(got.mode, e.executable ? 0o100755 : 0o100644, e.path);
        assert.equal(got.size, e.bytes, e.path);
        assert.equal(
          await sha256File(join(extracted, "ringleader", e.path)),
          await sha256File(e.hostPath),
          e.path,
        );
      }
    }
    assert.equal(files, report.bundleFiles);
    assert.ok(files > 100);
    for (const tool of [
      "ringleader",
      "ringleader-agent",
      "ringleader-firstboot",
      "ringleader-install-runtime",
    ]) {
      const got = listing.get(`/opt/ringleader/bin/${tool}`);
      assert.equal(got?.mode, 0o100755, tool);
      assert.equal(
        await readFile(join(extracted, "ringleader/bin", tool), "utf8"),
        await renderTemplate(
          tool,
          tool === "ringleader-agent" ? { API_PORT: "7000", PEER_PORT: "7100" } : {},
        ),
      );
    }
    // Our tests and source maps stay behind.
    const ours = [...listing.keys()].filter((p) => p.startsWith("/opt/ringleader/dist/"));
    assert.ok(ours.some((p) => p.endsWith("/cli/main.js")));
    assert.deepEqual(
      ours.filter((p) => p.endsWith(".map") || p.endsWith(".test.js") || /\/test(\/|$)/.test(p)),
      [],
    );
  });

  it("ships the Node.js runtime as the Debian packages the base lacks, installed on first boot", async () => {
    const { root } = await partitions(out);
    const debs = (await root.list("/opt/ringleader/runtime/debs")) ?? [];
    assert.ok(
      report.runtimePackages.some((p) => p.startsWith("nodejs=20.")),
      report.runtimePackages.join(" "),
    );
    assert.equal(debs.length, report.runtimePackages.length);
    assert.ok(debs.some((d) => d.startsWith("libnode115_")));
    // libc6 and libstdc++6 are in the base's dpkg status, so they are not shipped again.
    assert.ok(!debs.some((d) => d.startsWith("libc6_") || d.startsWith("libstdc++6_")));
    assert.equal((await root.readFile("/opt/ringleader/runtime/install.conf"))?.toString(), "MODE=offline\n");
    const image = JSON.parse((await root.readFile("/opt/ringleader/image.json"))?.toString() ?? "{}") as {
      arch?: string;
      runtime?: { packages?: string[] };
    };
    assert.equal(image.arch, "arm64");
    assert.deepEqual(image.runtime?.packages, report.runtimePackages);
  });

  it("adds the ringleader system user and gives it the config (0600) and the data folder", async () => {
    const { root } = await partitions(out);
    const { uid, gid } = report.agentUser;
    assert.ok(uid >= 100 && uid < 1000);
    const passwd = (await root.readFile("/etc/passwd"))?.toString() ?? "";
    assert.match(
      passwd,
      new RegExp(`^ringleader:x:${uid}:${gid}:Ringleader agent:/var/lib/ringleader:/usr/sbin/nologin$`, "m"),
    );
    assert.match(passwd, /^avahi:x:101:103:/m, "existing users stay");
    assert.match(
      (await root.readFile("/etc/group"))?.toString() ?? "",
      new RegExp(`^ringleader:x:${gid}:$`, "m"),
    );
    const shadow = await root.stat("/etc/shadow");
    assert.deepEqual(
      [shadow?.mode, shadow?.uid, shadow?.gid],
      [0o640, 0, 42],
      "shadow keeps its mode and group",
    );
    assert.match((await root.readFile("/etc/shadow"))?.toString() ?? "", /^ringleader:!\*:\d+::::::$/m);
    assert.match((await root.readFile("/etc/gshadow"))?.toString() ?? "", /^ringleader:!\*::$/m);

    const config = await root.stat("/etc/ringleader/ringleader.json");
    assert.deepEqual([config?.type, config?.mode, config?.uid, config?.gid], ["regular", 0o600, uid, gid]);
    assert.equal(
      (await root.readFile("/etc/ringleader/ringleader.json"))?.toString(),
      await readFile(clusterFile, "utf8"),
    );
    const etc = await root.stat("/etc/ringleader");
    assert.deepEqual([etc?.type, etc?.mode, etc?.uid, etc?.gid], ["directory", 0o750, 0, gid]);
    const data = await root.stat("/var/lib/ringleader");
    assert.deepEqual([data?.type, data?.mode, data?.uid, data?.gid], ["directory", 0o700, uid, gid]);
    const sysusers = (await root.readFile("/usr/lib/sysusers.d/ringleader.conf"))?.toString() ?? "";
    assert.match(sysusers, new RegExp(`^u ringleader ${uid}:${gid} `, "m"));
  });

  it("installs the units and enables them as systemctl enable would", async () => {
    const { root } = await partitions(out);
    for (const unit of ["ringleader.service", "ringleader-firstboot.service", "ringleader-runtime.service"]) {
      const st = await root.stat(`/etc/systemd/system/${unit}`);
      assert.deepEqual([st?.mode, st?.uid, st?.gid], [0o644, 0, 0], unit);
      assert.equal(
        (await root.readFile(`/etc/systemd/system/${unit}`))?.toString(),
        await renderTemplate(unit),
      );
    }
    const links: [string, string][] = [
      ["multi-user.target.wants/ringleader.service", "ringleader.service"],
      ["multi-user.target.wants/ringleader-runtime.service", "ringleader-runtime.service"],
      ["sysinit.target.wants/ringleader-firstboot.service", "ringleader-firstboot.service"],
    ];
    for (const [link, unit] of links) {
      const st = await root.stat(`/etc/systemd/system/${link}`);
      assert.equal(st?.type, "symlink", link);
      assert.equal(st?.linkTarget, `/etc/systemd/system/${unit}`);
    }
    const service = (await root.readFile("/etc/systemd/system/ringleader.service"))?.toString() ?? "";
    assert.match(service, /^User=ringleader$/m);
    assert.match(service, /^EnvironmentFile=-\/etc\/default\/ringleader$/m);
    assert.match(service, /^ExecStart=\/opt\/ringleader\/bin\/ringleader-agent$/m);
    assert.match(service, /^WantedBy=multi-user.target$/m);
    const cli = await root.stat("/usr/local/bin/ringleader");
    assert.equal(cli?.linkTarget, "/opt/ringleader/bin/ringleader");
  });

  it("leaves avahi-daemon as it was", async () => {
    const { root } = await partitions(out);
    const link = await root.stat("/etc/systemd/system/multi-user.target.wants/avahi-daemon.service");
    assert.equal(link?.linkTarget, "/usr/lib/systemd/system/avahi-daemon.service");
    const fixtureRoot = (await partitions(fixture)).root;
    for (const f of ["/etc/avahi/avahi-daemon.conf", "/usr/lib/systemd/system/avahi-daemon.service"]) {
      assert.deepEqual(await root.readFile(f), await fixtureRoot.readFile(f), f);
    }
  });

  it("gives the serial devices of Arduino boards to the agent's user", async () => {
    const { root } = await partitions(out);
    const rule = await root.stat("/etc/udev/rules.d/99-ringleader-serial.rules");
    assert.deepEqual([rule?.mode, rule?.uid], [0o644, 0]);
    const text = (await root.readFile("/etc/udev/rules.d/99-ringleader-serial.rules"))?.toString() ?? "";
    assert.match(
      text,
      /^SUBSYSTEM=="tty", ATTRS\{idVendor\}=="2341", OWNER="ringleader", GROUP="dialout", MODE="0660"$/m,
    );
  });

  it("names boards from the CSV on first boot and lists them as static peers", async () => {
    const { root } = await partitions(out);
    assert.equal(
      (await root.readFile("/etc/ringleader/boards.list"))
        ?.toString()
        .split("\n")
        .filter((l) => l.startsWith("serial ")).length,
      3,
    );
    const conf = (await root.readFile("/etc/ringleader/firstboot.conf"))?.toString() ?? "";
    assert.match(conf, /^HOSTNAME_PATTERN='rl-\{serial\}'$/m);
    assert.match(conf, /^BOARDS_LIST='\/etc\/ringleader\/boards.list'$/m);
    const env = (await root.readFile("/etc/default/ringleader"))?.toString() ?? "";
    assert.match(env, /^RINGLEADER_PEERS=pi1=pi1.local:7100,pi2=pi2.local:7100,pi3=pi3.local:7100$/m);
    assert.match(env, /^RINGLEADER_API=0.0.0.0:7000$/m);
  });

  it("writes cloud-init files to the boot partition in Imager's form", async () => {
    assert.equal(report.route, "cloud-init");
    const { boot } = await partitions(out);
    const userData = (await boot.readFile("user-data"))?.toString() ?? "";
    assert.ok(userData.startsWith("#cloud-config\n"));
    assert.match(userData, /^preserve_hostname: true$/m);
    assert.match(userData, /^- name: pi$/m);
    assert.ok(userData.includes(`passwd: "${PASSWORD_HASH}"`));
    assert.ok(userData.includes(`- "${SSH_KEY}"`));
    assert.match(userData, /^locale: "en_GB.UTF-8"$/m);
    const net = (await boot.readFile("network-config"))?.toString() ?? "";
    assert.match(net, /regulatory-domain: "GB"/);
    // IEEE 802.11i's PBKDF2 test vector: the passphrase never reaches the card.
    assert.match(net, /password: "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"/);
    assert.match(
      (await boot.readFile("meta-data"))?.toString() ?? "",
      /^instance-id: ringleader-shelf-\d+\n$/,
    );
    const cmdline = (await boot.readFile("cmdline.txt"))?.toString() ?? "";
    assert.match(
      cmdline,
      /^console=serial0,115200 console=tty1 root=PARTUUID=5e3da3da-02 .* cfg80211.ieee80211_regdom=GB\n$/,
    );
    const fixtureBoot = (await partitions(fixture)).boot;
    assert.deepEqual(await boot.readFile("config.txt"), await fixtureBoot.readFile("config.txt"));
  });

  it("the arm64 bundle runs: --version and a selftest of LMDB and CBOR under qemu-aarch64", async () => {
    const sysroot = await new DebianArchive({ tools, cacheDir, arch: "arm64", suite: "trixie" }).sysroot([
      "nodejs",
    ]);
    const main = join(extracted, "ringleader/dist/agent/src/cli/main.js");
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    const version = await runOnTarget("arm64", sysroot, [main, "--version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), pkg.version);
    const self = await runOnTarget("arm64", sysroot, [main, "selftest", "--json"]);
    assert.equal(self.code, 0, self.stderr + self.stdout);
    const r = JSON.parse(self.stdout) as {
      ok: boolean;
      arch: string;
      platform: string;
      node: string;
      checks: { name: string; ok: boolean }[];
    };
    assert.equal(r.ok, true);
    assert.equal(r.arch, "arm64");
    assert.equal(r.platform, "linux");
    assert.match(r.node, /^v2\d\./);
    assert.deepEqual(
      r.checks.map((c) => [c.name, c.ok]),
      [
        ["lmdb", true],
        ["cbor", true],
        ["serialport", true],
      ],
    );
  });

  it("refuses a bundle holding the build machine's native binary", async () => {
    const nm = join(dir, "fake-modules");
    await mkdir(join(nm, "@lmdb/lmdb-linux-arm64"), { recursive: true });
    const hostLmdb = join(REPO_ROOT, "node_modules/@lmdb");
    const hostPkg = (await readdir(hostLmdb)).find((p) => p.startsWith("lmdb-linux-"));
    assert.ok(hostPkg);
    const hostNode = (await readdir(join(hostLmdb, hostPkg))).find((f) => f.endsWith(".node"));
    assert.ok(hostNode);
    await writeFile(
      join(nm, "@lmdb/lmdb-linux-arm64/node.abi115.glibc.node"),
      await readFile(join(hostLmdb, hostPkg, hostNode)),
    );
    await assert.rejects(
      checkNativeModules(nm, "arm64"),
      (err: unknown) => err instanceof BundleError && /not arm64 binaries/.test(err.message),
    );
  });
});

describe("images: build variants", { timeout: 15 * MINUTES }, () => {
  let dir: string;
  let clusterFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-variants-"));
    clusterFile = join(dir, "ringleader.json");
    await writeClusterConfig(clusterFile, newClusterConfig("shelf", new Date()), false);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const settings = {
    hostname: parseHostnamePattern("kitchen"),
    boards: null,
    user: { name: "pi", passwordHash: null, sshKeys: [SSH_KEY] },
    wifi: null,
    country: null,
    timezone: null,
    locale: null,
    keyboard: null,
  };
  const options = (base: string, o: Partial<BuildOptions> = {}): BuildOptions => ({
    base,
    out: join(dir, "out.img"),
    clusterConfig: clusterFile,
    overwrite: true,
    settings,
    route: "auto",
    runtime: "offline",
    apiPort: 7000,
    peerPort: 7100,
    grow: true,
    cacheDir,
    tools,
    progress: silentProgress,
    ...o,
  });

  it("armhf: 32-bit ARM native modules, the firstrun.sh route and a fixed hostname", async () => {
    const base = join(dir, "armhf.img");
    await makeFixtureImage(base, { arch: "armhf", rootMiB: 400 });
    const out = join(dir, "armhf-out.img");
    const r = await buildImage(options(base, { out, route: "firstrun", runtime: "online" }));
    assert.equal(r.arch, "armhf");
    assert.equal(r.grownBytes, 0, "a roomy root is not grown");
    assert.deepEqual(r.runtimePackages, []);
    assert.ok(
      r.nativeModules.some((m) => m.includes("lmdb-linux-arm/")),
      r.nativeModules.join(" "),
    );
    const { boot, root } = await partitions(out);
    const extracted = join(dir, "armhf-extracted");
    await mkdir(extracted);
    await root.copyOut("/opt/ringleader/node_modules", extracted);
    let checked = 0;
    for (const m of r.nativeModules) {
      const head = await readFile(join(extracted, "node_modules", m));
      assert.deepEqual(readElfHeader(head), { bits: 32, machine: EM_ARM }, m);
      assert.notEqual(readElfHeader(head)?.machine, EM_AARCH64);
      checked++;
    }
    assert.ok(checked >= 3);
    assert.equal((await root.readFile("/opt/ringleader/runtime/install.conf"))?.toString(), "MODE=online\n");
    assert.equal(await root.stat("/opt/ringleader/runtime/debs"), null);
    const firstrun = (await boot.readFile("firstrun.sh"))?.toString() ?? "";
    assert.match(firstrun, /imager_custom set_hostname kitchen/);
    assert.match(firstrun, /enable_ssh -k 'ssh-ed25519 /);
    assert.match(
      (await boot.readFile("cmdline.txt"))?.toString() ?? "",
      / systemd\.run=\/boot\/firmware\/firstrun\.sh systemd\.run_success_action=reboot systemd\.unit=kernel-command-line\.target\n$/,
    );
    assert.equal(
      await boot.readFile("network-config").then((b) => b?.toString()),
      "# network-config template (commented out in the image)\n",
    );
    assert.match(
      (await root.readFile("/etc/ringleader/firstboot.conf"))?.toString() ?? "",
      /^HOSTNAME_PATTERN=''$/m,
    );
  });

  it("refuses an image that is not Raspberry Pi OS, and removes its output", async () => {
    const single = join(dir, "single.img");
    await makeFixtureImage(single, { shape: "single" });
    const out = join(dir, "never.img");
    await assert.rejects(
      buildImage(options(single, { out })),
      (e: unknown) => e instanceof NotRaspberryPiOsError && /partition 2/.test(e.message),
    );
    assert.equal(await stat(out).catch(() => null), null);
    const noIssue = join(dir, "noissue.img");
    await makeFixtureImage(noIssue, { omit: ["etc/rpi-issue"] });
    await assert.rejects(
      buildImage(options(noIssue, { out })),
      (e: unknown) => e instanceof NotRaspberryPiOsError && /\/etc\/rpi-issue/.test(e.message),
    );
  });

  it("refuses Raspberry Pi OS bookworm: its Node.js 18 is too old", async () => {
    const old = join(dir, "bookworm.img");
    await makeFixtureImage(old, {
      replace: {
        "etc/os-release":
          'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
      },
    });
    await assert.rejects(
      buildImage(options(old)),
      (e: unknown) =>
        e instanceof UnsupportedBaseError && /bookworm, whose Node.js 18 is too old/.test(e.message),
    );
  });

  it("says when a compressed base is truncated", async () => {
    const img = join(dir, "trunc.img");
    await makeFixtureImage(img);
    await exec("xz", ["-T0", "-0", "-k", img]);
    const whole = await readFile(`${img}.xz`);
    const cut = join(dir, "cut.img.xz");
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const out = join(dir, "never.img");
    await assert.rejects(buildImage(options(cut, { out })), TruncatedImageError);
    assert.equal(await stat(out).catch(() => null), null);
  });

  it("names the Debian package of a missing tool", async () => {
    const empty = join(dir, "empty-path");
    await mkdir(empty, { recursive: true });
    await assert.rejects(
      buildImage(options(join(dir, "whatever.img"), { tools: new ToolRunner({ searchPath: [empty] }) })),
      (e: unknown) =>
        e instanceof MissingToolError &&
        e.tool === "mcopy" &&
        e.debianPackage === "mtools" &&
        /apt-get install mtools/.test(e.message),
    );
  });

  it("says there is no room when the root may not grow", async () => {
    const small = join(dir, "small.img");
    await makeFixtureImage(small);
    const out = join(dir, "never.img");
    await assert.rejects(
      buildImage(options(small, { out, grow: false })),
      (e: unknown) => e instanceof NoRoomError && /free but the agent needs/.test(e.message),
    );
    assert.equal(await stat(out).catch(() => null), null);
  });

  it("from the command line: flags, key file, boards CSV and Wi-Fi passphrase from the environment", async () => {
    const base = join(dir, "cli-base.img");
    await makeFixtureImage(base);
    const key = join(dir, "id_ed25519.pub");
    await writeFile(key, `${SSH_KEY}\n`);
    const csv = join(dir, "boards.csv");
    await writeFile(csv, BOARDS);
    const out = join(dir, "cli.img");
    const env = { RINGLEADER_CACHE_DIR: cacheDir, RINGLEADER_WIFI_PASSWORD: "password" };
    const args = ["image", "build", "--base", base, "--config", clusterFile, "--out", out, "--user", "pi"];
    const noKey = await cli(args, env);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--user needs --password-hash or --ssh-key/);
    const r = await cli(
      [...args, "--ssh-key", key, "--boards", csv, "--wifi-ssid", "IEEE", "--wifi-country", "gb", "--json"],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as BuildReport;
    assert.equal(report.out, out);
    assert.equal(report.route, "cloud-init");
    const { boot, root } = await partitions(out);
    assert.ok((await boot.readFile("user-data"))?.toString().includes(`- "${SSH_KEY}"`));
    assert.match(
      (await boot.readFile("network-config"))?.toString() ?? "",
      /password: "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"/,
    );
    assert.match(
      (await root.readFile("/etc/default/ringleader"))?.toString() ?? "",
      /^RINGLEADER_PEERS=pi1=pi1.local:7100,/m,
    );
    const exists = await cli([...args, "--ssh-key", key], env);
    assert.equal(exists.code, 2);
    assert.match(exists.stderr, /exists; pass --force/);
  });

  it("does not overwrite an existing output without being told", async () => {
    const base = join(dir, "any.img");
    await makeFixtureImage(base);
    const out = join(dir, "exists.img");
    await writeFile(out, "precious");
    await assert.rejects(buildImage(options(base, { out, overwrite: false })), ImageSettingsError);
    assert.equal(await readFile(out, "utf8"), "precious");
  });
});
