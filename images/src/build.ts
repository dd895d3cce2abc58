/**
 * `ringleader image build`: a Raspberry Pi OS image with the agent inside, made without mounting
 * anything. The steps, each in its own module:
 *
 *   1. copy or decompress the base into the output file (sparse)            base-image.ts
 *   2. check it is Raspberry Pi OS, and for which architecture and release  layout.ts
 *   3. the agent bundle and the Node.js runtime .debs for that target       bundle.ts, runtime.ts
 *   4. grow the root partition and file system when they do not fit        mbr.ts, ext4.ts
 *   5. write /opt/ringleader, the user, units, udev rule and config         ext4.ts (debugfs)
 *   6. write the first-boot configuration to the boot partition            firstboot.ts (mtools)
 *
 * A build that fails removes its half-made output, so no card is ever flashed from one.
 */
import { open, readFile, stat, truncate, unlink, mkdtemp, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { readClusterConfig } from "../../agent/src/node/cluster-config.js";
import { addSystemUser, type SystemUser } from "./accounts.js";
import { checkBuildDiskRoom, copyBaseImage, imageSize, isCompressed } from "./base-image.js";
import { boardsList, peersFor } from "./boards.js";
import { makeBundle, type Bundle } from "./bundle.js";
import { ImageSettingsError, NoRoomError, UnsupportedBaseError } from "./errors.js";
import { Ext4Batch, type Attrs } from "./ext4.js";
import { bootFiles, patchCmdline, type FirstBootRoute, type FirstBootSettings } from "./firstboot.js";
import { inspectImage, type BaseImage, type TargetArch } from "./layout.js";
import { SECTOR_BYTES, withRootSectors } from "./mbr.js";
import { formatBytes, type ProgressSink } from "./progress.js";
import { DebianArchive, installedBytes, type DownloadedDeb } from "./runtime.js";
import { REPO_ROOT, renderTemplate } from "./templates.js";
import type { ToolRunner } from "./tools.js";

export type RuntimeMode = "offline" | "online";

export interface BuildOptions {
  readonly base: string;
  readonly out: string;
  /** The cluster config from `ringleader init` (mode 0600). */
  readonly clusterConfig: string;
  readonly overwrite: boolean;
  readonly settings: FirstBootSettings;
  readonly route: FirstBootRoute | "auto";
  readonly runtime: RuntimeMode;
  /** When set, the base must be for this architecture. */
  readonly arch?: TargetArch;
  /** Static peers for /etc/default/ringleader; default: from the boards CSV, else empty. */
  readonly peers?: string;
  readonly apiPort: number;
  readonly peerPort: number;
  /** Grow the root partition when the agent does not fit (default true). */
  readonly grow: boolean;
  readonly cacheDir: string;
  readonly repoRoot?: string;
  readonly mirror?: string;
  readonly tools: ToolRunner;
  readonly progress: ProgressSink;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

export interface BuildReport {
  readonly out: string;
  readonly arch: TargetArch;
  readonly baseOs: string;
  readonly imageBytes: number;
  readonly grownBytes: number;
  readonly route: FirstBootRoute;
  readonly runtime: RuntimeMode;
  readonly runtimePackages: readonly string[];
  readonly runtimeBytes: number;
  readonly bundleBytes: number;
  readonly bundleFiles: number;
  readonly bundleCached: boolean;
  readonly nativeModules: readonly string[];
  readonly agentUser: SystemUser;
  readonly elapsedMs: number;
}

export const INSTALL_DIR = "/opt/ringleader";
const ROOT_DIR: Attrs = { mode: 0o755, uid: 0, gid: 0 };
const ROOT_FILE: Attrs = { mode: 0o644, uid: 0, gid: 0 };
const ROOT_EXEC: Attrs = { mode: 0o755, uid: 0, gid: 0 };
/** Room left free in the root after the build, besides what first boot installs. */
const HEADROOM_BYTES = 32 * 1024 * 1024;
/** What `apt-get install nodejs` downloads and unpacks on a first boot in online mode. */
const ONLINE_INSTALL_BYTES = 160 * 1024 * 1024;
/** Partitions grow in whole 4 MiB steps, the alignment Raspberry Pi OS uses. */
const GROW_STEP_BYTES = 4 * 1024 * 1024;
const MAX_MBR_SECTORS = 0xffffffff;

function requiredTools(o: BuildOptions): string[] {
  const tools = ["mcopy", "mdir", "debugfs", "e2fsck", "resize2fs", "npm"];
  if (isCompressed(o.base)) tools.push("xz");
  if (o.runtime === "offline") tools.push("apt-get", "dpkg-deb", "flock");
  return tools;
}

export async function buildImage(o: BuildOptions): Promise<BuildReport> {
  const started = performance.now();
  const now = o.now ?? (() => new Date());
  await o.tools.require(requiredTools(o));
  const clusterText = await readFile(o.clusterConfig, "utf8");
  const cluster = await readClusterConfig(o.clusterConfig);
  if (!(await stat(o.base).catch(() => null))?.isFile())
    throw new ImageSettingsError(`no base image at ${o.base}`);
  if (!o.overwrite && (await stat(o.out).catch(() => null))) {
    throw new ImageSettingsError(`${o.out} exists; pass --force to replace it`);
  }
  const size = await imageSize(o.tools, o.base, o.signal);
  await checkBuildDiskRoom(o.out, size + 512 * 1024 * 1024);
  await copyBaseImage({
    tools: o.tools,
    base: o.base,
    out: o.out,
    overwrite: o.overwrite,
    progress: o.progress,
    signal: o.signal,
  });
  // Scratch space next to the output: /tmp may be a small tmpfs, and the root partition may be copied here.
  const work = await mkdtemp(join(dirname(resolve(o.out)), ".ringleader-build-"));
  try {
    const base = await inspectImage(o.tools, o.out, o.signal);
    if (o.arch && o.arch !== base.arch) {
      throw new UnsupportedBaseError(
        `--arch ${o.arch} was asked for, but ${basename(o.base)} is an ${base.arch} image`,
      );
    }
    o.progress.note(`base: ${base.prettyName}, ${base.arch}, ${formatBytes(base.imageBytes)}`);
    if (!base.hasAvahi)
      o.progress.note("note: the base image has no avahi-daemon; boards will not answer to name.local");
    await checkBaseForInstall(base, o.settings, o.signal);

    const bundle = await makeBundle({
      tools: o.tools,
      repoRoot: o.repoRoot ?? REPO_ROOT,
      cacheDir: o.cacheDir,
      arch: base.arch,
      signal: o.signal,
      log: (line) => o.progress.note(line),
    });
    o.progress.note(
      `bundle: ${bundle.entries.length} entries, ${formatBytes(bundle.bytes)}${bundle.cached ? " (cached)" : ""}`,
    );
    const debs = o.runtime === "offline" ? await runtimeDebs(o, base) : [];
    let firstBootBytes = o.runtime === "online" ? ONLINE_INSTALL_BYTES : 0;
    for (const deb of debs) firstBootBytes += await installedBytes(o.tools, deb.file, o.signal);

    const grownBytes = await makeRoom(o, base, work, bundle, debs, firstBootBytes);
    const agentUser = await installIntoRoot(o, base, bundle, debs, clusterText, work, now());
    await base.root.check(o.signal);

    const route: FirstBootRoute =
      o.route === "auto" ? (base.hasCloudInit ? "cloud-init" : "firstrun") : o.route;
    const files = bootFiles(
      o.settings,
      route,
      base.bootMount,
      `ringleader-${cluster.clusterName}-${now().getTime()}`,
    );
    const cmdline = (await base.boot.readFile("cmdline.txt", o.signal))?.toString("utf8") ?? "";
    files.set("cmdline.txt", patchCmdline(cmdline, route, base.bootMount, o.settings.country));
    await base.boot.writeFiles(files, o.signal);

    return {
      out: o.out,
      arch: base.arch,
      baseOs: base.prettyName,
      imageBytes: (await stat(o.out)).size,
      grownBytes,
      route,
      runtime: o.runtime,
      runtimePackages: debs.map((d) => `${d.name}=${d.version}`),
      runtimeBytes: debs.reduce((sum, d) => sum + d.bytes, 0),
      bundleBytes: bundle.bytes,
      bundleFiles: bundle.entries.filter((e) => e.kind === "file").length,
      bundleCached: bundle.cached,
      nativeModules: bundle.nativeModules,
      agentUser,
      elapsedMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    await unlink(o.out).catch(() => undefined);
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What the settings need from the image, checked before any work is spent. */
async function checkBaseForInstall(
  base: BaseImage,
  s: FirstBootSettings,
  signal?: AbortSignal,
): Promise<void> {
  if ((await base.root.stat(INSTALL_DIR, signal)) !== null) {
    throw new ImageSettingsError(
      `the base image already has ${INSTALL_DIR}; build from a clean Raspberry Pi OS image`,
    );
  }
  if (s.timezone && (await base.root.stat(`/usr/share/zoneinfo/${s.timezone}`, signal)) === null) {
    throw new ImageSettingsError(`the image knows no timezone ${s.timezone} (see /usr/share/zoneinfo)`);
  }
}

async function runtimeDebs(o: BuildOptions, base: BaseImage): Promise<DownloadedDeb[]> {
  const installed = base.packages.get("nodejs");
  if (installed && Number(installed.version.split(".")[0]) >= 20) {
    o.progress.note(`runtime: the base already has nodejs ${installed.version}`);
    return [];
  }
  const archive = new DebianArchive({
    tools: o.tools,
    cacheDir: o.cacheDir,
    arch: base.arch,
    suite: base.codename,
    ...(o.mirror ? { mirror: o.mirror } : {}),
    log: (line) => o.progress.note(line),
  });
  const wanted = await archive.resolve(["nodejs"], base.dpkgStatus.toString("utf8"), o.signal);
  if (!wanted.some((p) => p.name === "nodejs"))
    throw new UnsupportedBaseError(`Debian ${base.codename} offers no nodejs for ${base.arch}`);
  const debs = await archive.download(wanted, o.signal);
  const node = debs.find((d) => d.name === "nodejs");
  o.progress.note(
    `runtime: nodejs ${node?.version ?? "?"} and ${debs.length - 1} packages it needs, ${formatBytes(debs.reduce((s, d) => s + d.bytes, 0))}`,
  );
  return debs;
}

function blocksFor(bytes: number, blockBytes: number): number {
  return Math.ceil(bytes / blockBytes);
}

/** Grows partition 2 and its file system when the additions would not fit; returns bytes added. */
async function makeRoom(
  o: BuildOptions,
  base: BaseImage,
  work: string,
  bundle: Bundle,
  debs: readonly DownloadedDeb[],
  firstBootBytes: number,
): Promise<number> {
  const fs = await base.root.stats(o.signal);
  const blk = fs.blockBytes;
  let blocks = 64; // units, config, account files, folders of /etc
  let inodes = 64;
  for (const e of bundle.entries) {
    blocks += e.kind === "file" ? blocksFor(e.bytes, blk) : 1;
    inodes++;
  }
  for (const d of debs) blocks += blocksFor(d.bytes, blk);
  inodes += debs.length;
  const neededBytes = blocks * blk + firstBootBytes + HEADROOM_BYTES;
  const freeBytes = fs.freeBlocks * blk;
  if (freeBytes >= neededBytes && fs.freeInodes >= inodes) return 0;
  const short = Math.max(neededBytes - freeBytes, 0);
  if (!o.grow || !base.layout.rootIsLast) {
    throw new NoRoomError(
      `the root file system has ${formatBytes(freeBytes)} free but the agent needs ${formatBytes(neededBytes)}` +
        (o.grow
          ? "; it cannot grow because another partition follows it"
          : "; allow growing (drop --no-grow)"),
    );
  }
  // Growing by what is missing plus a quarter keeps the inode count (it scales with size) ahead too.
  const growBytes = Math.ceil((short + short / 4 + HEADROOM_BYTES) / GROW_STEP_BYTES) * GROW_STEP_BYTES;
  const root = base.layout.root;
  const newSectors = root.sectorCount + growBytes / SECTOR_BYTES;
  if (root.startSector + newSectors > MAX_MBR_SECTORS)
    throw new NoRoomError("the image would outgrow what an MBR can address (2 TiB)");
  // The partition is copied next to the output while it grows.
  await checkBuildDiskRoom(o.out, growBytes * 2 + root.sectorCount * SECTOR_BYTES + bundle.bytes);
  o.progress.note(`growing the root partition by ${formatBytes(growBytes)}`);
  await truncate(o.out, (root.startSector + newSectors) * SECTOR_BYTES);
  const fh = await open(o.out, "r+");
  try {
    const sector0 = Buffer.alloc(SECTOR_BYTES);
    await fh.read(sector0, 0, SECTOR_BYTES, 0);
    await fh.write(withRootSectors(sector0, newSectors), 0, SECTOR_BYTES, 0);
  } finally {
    await fh.close();
  }
  await base.root.grow(root.sectorCount * SECTOR_BYTES, newSectors * SECTOR_BYTES, work, o.signal);
  const after = await base.root.stats(o.signal);
  if (after.freeBlocks * blk < neededBytes) {
    throw new NoRoomError(
      `the root file system has only ${formatBytes(after.freeBlocks * blk)} free after growing`,
    );
  }
  return growBytes;
}

async function readAccounts(base: BaseImage, signal?: AbortSignal) {
  const read = async (p: string) => (await base.root.readFile(p, signal))?.toString("utf8") ?? null;
  return {
    passwd: (await read("/etc/passwd")) ?? "",
    group: (await read("/etc/group")) ?? "",
    shadow: await read("/etc/shadow"),
    gshadow: await read("/etc/gshadow"),
  };
}

/** Everything under the root file system, in one debugfs run. */
async function installIntoRoot(
  o: BuildOptions,
  base: BaseImage,
  bundle: Bundle,
  debs: readonly DownloadedDeb[],
  clusterText: string,
  work: string,
  builtAt: Date,
): Promise<SystemUser> {
  const root = base.root;
  const batch = new Ext4Batch(root, work);
  const accounts = await readAccounts(base, o.signal);
  const { files, user } = addSystemUser(accounts, "ringleader", {
    home: "/var/lib/ringleader",
    gecos: "Ringleader agent",
    now: builtAt,
  });
  if (user.added) {
    for (const [path, text] of [
      ["/etc/passwd", files.passwd],
      ["/etc/group", files.group],
      ["/etc/shadow", files.shadow],
      ["/etc/gshadow", files.gshadow],
    ] as const) {
      if (text === null) continue;
      const was = await root.stat(path, o.signal);
      const attrs = was ? { mode: was.mode, uid: was.uid, gid: was.gid } : ROOT_FILE;
      await batch.writeBytes(path, text, attrs, was !== null);
    }
  }
  const agent: Attrs = { mode: 0o600, uid: user.uid, gid: user.gid };

  // /opt/ringleader: code owned by root, so the agent cannot rewrite itself.
  await batch.mkdirs(INSTALL_DIR, ROOT_DIR, o.signal);
  for (const e of bundle.entries) {
    const path = `${INSTALL_DIR}/${e.path}`;
    if (e.kind === "dir") await batch.mkdirs(path, ROOT_DIR, o.signal);
    else if (e.kind === "symlink") batch.symlink(path, e.target);
    else batch.writeFile(path, e.hostPath, e.executable ? ROOT_EXEC : ROOT_FILE);
  }
  await batch.mkdirs(`${INSTALL_DIR}/bin`, ROOT_DIR, o.signal);
  const ports = { API_PORT: String(o.apiPort), PEER_PORT: String(o.peerPort) };
  await batch.writeBytes(`${INSTALL_DIR}/bin/ringleader`, await renderTemplate("ringleader"), ROOT_EXEC);
  await batch.writeBytes(
    `${INSTALL_DIR}/bin/ringleader-agent`,
    await renderTemplate("ringleader-agent", ports),
    ROOT_EXEC,
  );
  await batch.writeBytes(
    `${INSTALL_DIR}/bin/ringleader-firstboot`,
    await renderTemplate("ringleader-firstboot"),
    ROOT_EXEC,
  );
  await batch.writeBytes(
    `${INSTALL_DIR}/bin/ringleader-install-runtime`,
    await renderTemplate("ringleader-install-runtime"),
    ROOT_EXEC,
  );
  await batch.mkdirs(`${INSTALL_DIR}/runtime`, ROOT_DIR, o.signal);
  await batch.writeBytes(`${INSTALL_DIR}/runtime/install.conf`, `MODE=${o.runtime}\n`, ROOT_FILE);
  if (debs.length > 0) {
    await batch.mkdirs(`${INSTALL_DIR}/runtime/debs`, ROOT_DIR, o.signal);
    for (const d of debs)
      batch.writeFile(`${INSTALL_DIR}/runtime/debs/${basename(d.file)}`, d.file, ROOT_FILE);
  }
  const info = {
    ringleader: bundle.version,
    arch: base.arch,
    base: basename(o.base),
    baseOs: base.prettyName,
    builtAt: builtAt.toISOString(),
    runtime: { mode: o.runtime, packages: debs.map((d) => `${d.name}=${d.version}`) },
    nativeModules: bundle.nativeModules,
  };
  await batch.writeBytes(`${INSTALL_DIR}/image.json`, JSON.stringify(info, null, 2) + "\n", ROOT_FILE);
  await batch.writeBytes(`${INSTALL_DIR}/README.txt`, readme(), ROOT_FILE);
  await batch.mkdirs("/usr/local/bin", ROOT_DIR, o.signal);
  batch.symlink("/usr/local/bin/ringleader", `${INSTALL_DIR}/bin/ringleader`);

  // Config: the folder is root's, readable by the agent's group; the config (with the secret) is the agent's alone.
  await batch.mkdirs("/etc/ringleader", { mode: 0o750, uid: 0, gid: user.gid }, o.signal);
  await batch.writeBytes("/etc/ringleader/ringleader.json", clusterText, agent);
  const s = o.settings;
  const conf = [
    "# Written by `ringleader image build`; read once by ringleader-firstboot on the first boot.",
    `HOSTNAME_PATTERN='${s.boards !== null || s.hostname.perBoard ? s.hostname.pattern : ""}'`,
    `BOARDS_LIST='${s.boards ? "/etc/ringleader/boards.list" : ""}'`,
  ];
  await batch.writeBytes("/etc/ringleader/firstboot.conf", conf.join("\n") + "\n", ROOT_FILE);
  if (s.boards) await batch.writeBytes("/etc/ringleader/boards.list", boardsList(s.boards), ROOT_FILE);
  const peers = o.peers ?? (s.boards ? peersFor(s.boards, o.peerPort) : "");
  await batch.mkdirs("/etc/default", ROOT_DIR, o.signal);
  await batch.writeBytes(
    "/etc/default/ringleader",
    await renderTemplate("ringleader.default", { ...ports, PEERS: peers }),
    ROOT_FILE,
  );

  const units = "/etc/systemd/system";
  await batch.mkdirs(units, ROOT_DIR, o.signal);
  for (const unit of ["ringleader.service", "ringleader-firstboot.service", "ringleader-runtime.service"]) {
    await batch.writeBytes(`${units}/${unit}`, await renderTemplate(unit), ROOT_FILE);
  }
  // What `systemctl enable` would do: links in the wants folders of each unit's WantedBy target.
  for (const [target, unit] of [
    ["multi-user.target", "ringleader.service"],
    ["multi-user.target", "ringleader-runtime.service"],
    ["sysinit.target", "ringleader-firstboot.service"],
  ] as const) {
    await batch.mkdirs(`${units}/${target}.wants`, ROOT_DIR, o.signal);
    batch.symlink(`${units}/${target}.wants/${unit}`, `${units}/${unit}`);
  }
  await batch.mkdirs("/etc/udev/rules.d", ROOT_DIR, o.signal);
  await batch.writeBytes(
    "/etc/udev/rules.d/99-ringleader-serial.rules",
    await renderTemplate("99-ringleader-serial.rules"),
    ROOT_FILE,
  );
  await batch.mkdirs("/usr/lib/sysusers.d", ROOT_DIR, o.signal);
  await batch.writeBytes(
    "/usr/lib/sysusers.d/ringleader.conf",
    await renderTemplate("ringleader.sysusers", { UID: String(user.uid), GID: String(user.gid) }),
    ROOT_FILE,
  );
  await batch.mkdirs("/var/lib/ringleader", { mode: 0o700, uid: user.uid, gid: user.gid }, o.signal);
  await root.apply(batch.commands, o.signal);
  return user;
}

function readme(): string {
  return [
    "Ringleader agent, installed by `ringleader image build`.",
    "",
    "  /opt/ringleader/dist, node_modules   the agent (native modules built for this board)",
    "  /opt/ringleader/image.json           what went into this image",
    "  /etc/ringleader/ringleader.json      cluster config with the peer secret (0600, user ringleader)",
    "  /etc/default/ringleader              ports, static peers, extra flags",
    "  /var/lib/ringleader                  data (LMDB)",
    "",
    "  systemctl status ringleader          the agent",
    "  journalctl -u ringleader-runtime     the first-boot Node.js install",
    "  journalctl -u ringleader-firstboot   how this board got its hostname",
    "",
  ].join("\n");
}

/** Where bundles and Debian packages are cached: $RINGLEADER_CACHE_DIR, else the XDG cache folder. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env["RINGLEADER_CACHE_DIR"];
  if (explicit) return explicit;
  return join(env["XDG_CACHE_HOME"] || join(homedir(), ".cache"), "ringleader");
}
