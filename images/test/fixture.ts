/**
 * Builds a small image shaped like Raspberry Pi OS from images/fixtures/ with Debian's own tools
 * (sfdisk, mkfs.vfat, mkfs.ext4 -d, mcopy, debugfs): an MBR, a FAT32 boot partition and an ext4
 * root. Variants leave things out or change them, for the builder's error paths.
 */
import {
  cp,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  mkdir,
  truncate,
  writeFile,
  lstat,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { ToolRunner } from "../src/tools.js";

export const FIXTURES = fileURLToPath(new URL("../../../images/fixtures/", import.meta.url));
export const FIXTURE_DISK_ID = "5e3da3da";

const MIB = 1024 * 1024;
const BOOT_START_SECTOR = 8192; // 4 MiB, as Raspberry Pi OS
export const FIXTURE_TOOLS = ["sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "debugfs"];

export interface FixtureOptions {
  readonly arch?: "arm64" | "armhf";
  /** Root paths (relative, e.g. `etc/rpi-issue`) to leave out. */
  readonly omit?: readonly string[];
  /** Replace a root file's content. */
  readonly replace?: Readonly<Record<string, string>>;
  readonly bootMiB?: number;
  readonly rootMiB?: number;
  /** `rpi`: FAT + ext4; `single`: one FAT partition only. */
  readonly shape?: "rpi" | "single";
}

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    yield p;
    if (e.isDirectory()) yield* walk(p);
  }
}

/** Writes the fixture image to `out`. */
export async function makeFixtureImage(
  out: string,
  options: FixtureOptions = {},
  tools = new ToolRunner(),
): Promise<void> {
  await tools.require(FIXTURE_TOOLS);
  const bootMiB = options.bootMiB ?? 64;
  const rootMiB = options.rootMiB ?? 96;
  const bootSectors = (bootMiB * MIB) / 512;
  const rootStart = BOOT_START_SECTOR + bootSectors;
  const rootSectors = (rootMiB * MIB) / 512;
  await rm(out, { force: true });
  await writeFile(out, "");
  await truncate(out, (rootStart + rootSectors) * 512);
  const table =
    options.shape === "single"
      ? `label: dos\nlabel-id: 0x${FIXTURE_DISK_ID}\nstart=${BOOT_START_SECTOR}, size=${bootSectors}, type=c\n`
      : `label: dos\nlabel-id: 0x${FIXTURE_DISK_ID}\nstart=${BOOT_START_SECTOR}, size=${bootSectors}, type=c\n` +
        `start=${rootStart}, size=${rootSectors}, type=83\n`;
  await tools.run("sfdisk", ["-q", out], { input: table });
  await tools.run("mkfs.vfat", [
    "-F",
    "32",
    "-s",
    "1",
    "-n",
    "bootfs",
    "--offset",
    String(BOOT_START_SECTOR),
    out,
    String(bootMiB * 1024),
  ]);
  const bootDrive = `${out}@@${BOOT_START_SECTOR * 512}`;
  for (const name of await readdir(join(FIXTURES, "bootfs"))) {
    await tools.run("mcopy", ["-o", "-i", bootDrive, join(FIXTURES, "bootfs", name), `::/${name}`]);
  }
  if (options.shape === "single") return;

  const tree = await mkdtemp(join(tmpdir(), "ringleader-fixture-root-"));
  try {
    await cp(join(FIXTURES, "rootfs"), tree, { recursive: true });
    for (const p of options.omit ?? []) await rm(join(tree, p), { recursive: true, force: true });
    for (const [p, text] of Object.entries(options.replace ?? {})) await writeFile(join(tree, p), text);
    if (options.arch === "armhf") {
      const status = join(tree, "var/lib/dpkg/status");
      await writeFile(
        status,
        (await readFile(status, "utf8")).replace(/^Architecture: arm64$/gm, "Architecture: armhf"),
      );
    }
    // Empty folders and links git does not keep: the mount point, merged /usr, avahi enabled.
    for (const d of [
      "boot/firmware",
      "usr/bin",
      "usr/sbin",
      "etc/systemd/system/multi-user.target.wants",
      "etc/udev/rules.d",
      "opt",
      "var/lib/systemd",
      "home",
      "tmp",
    ]) {
      await mkdir(join(tree, d), { recursive: true });
    }
    for (const d of ["bin", "lib", "sbin"]) await symlink(`usr/${d}`, join(tree, d));
    await symlink(
      "/usr/lib/systemd/system/avahi-daemon.service",
      join(tree, "etc/systemd/system/multi-user.target.wants/avahi-daemon.service"),
    );
    const offset = rootStart * 512;
    await tools.run("mkfs.ext4", [
      "-q",
      "-F",
      "-b",
      "4096",
      "-L",
      "rootfs",
      "-d",
      tree,
      "-E",
      `offset=${offset}`,
      out,
      `${rootMiB * 1024}k`,
    ]);
    // mkfs -d copies the owners of the checkout; Raspberry Pi OS has root everywhere, shadow group on the shadow files.
    const cmds: string[] = [];
    for await (const p of walk(tree)) {
      const rel = `/${relative(tree, p)}`;
      if ((await lstat(p)).isSymbolicLink()) continue;
      cmds.push(`sif "${rel}" uid 0`, `sif "${rel}" gid 0`);
    }
    cmds.push('sif "/" uid 0', 'sif "/" gid 0');
    for (const f of ["/etc/shadow", "/etc/gshadow"]) {
      if (!(options.omit ?? []).includes(f.slice(1)))
        cmds.push(`sif "${f}" mode 0100640`, `sif "${f}" gid 42`);
    }
    const cmdFile = join(tree, "..", `${relative(tmpdir(), tree)}.cmds`);
    await writeFile(cmdFile, cmds.join("\n") + "\n");
    try {
      await tools.run("debugfs", ["-w", "-f", cmdFile, `${out}?offset=${offset}`]);
    } finally {
      await rm(cmdFile, { force: true });
    }
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}
