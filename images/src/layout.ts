/**
 * Looks inside a base image and decides whether the agent can go into it: Raspberry Pi OS's
 * layout (MBR, FAT boot with config.txt and cmdline.txt, ext4 root with /etc/rpi-issue), its
 * architecture and Debian release, and how it configures itself on first boot.
 */
import { open } from "node:fs/promises";
import { NotRaspberryPiOsError, ToolFailedError, UnsupportedBaseError } from "./errors.js";
import { Ext4Partition } from "./ext4.js";
import { FatPartition } from "./fat.js";
import { installedPackages, parseOsRelease, type InstalledPackage } from "./dpkg.js";
import { SECTOR_BYTES, findRaspberryPiLayout, parseMbr, type RaspberryPiLayout } from "./mbr.js";
import type { ToolRunner } from "./tools.js";

export type TargetArch = "arm64" | "armhf";
export const TARGET_ARCHES: readonly TargetArch[] = ["arm64", "armhf"];

/** Debian releases too old for the agent: their Node.js is older than 20 (serialport 13 needs 20). */
const TOO_OLD = new Map([
  ["buster", "Node.js 10"],
  ["bullseye", "Node.js 12"],
  ["bookworm", "Node.js 18"],
]);

export interface BaseImage {
  readonly layout: RaspberryPiLayout;
  readonly imageBytes: number;
  readonly arch: TargetArch;
  /** Debian release the image is based on (`trixie`). */
  readonly codename: string;
  readonly prettyName: string;
  /** Where the running system mounts the boot partition (`/boot/firmware` since bookworm). */
  readonly bootMount: string;
  readonly hasCloudInit: boolean;
  readonly hasAvahi: boolean;
  readonly packages: ReadonlyMap<string, InstalledPackage>;
  /** The dpkg status file as it is in the image: the runtime's dependencies are resolved against it. */
  readonly dpkgStatus: Buffer;
  readonly boot: FatPartition;
  readonly root: Ext4Partition;
}

async function readSector0(path: string): Promise<{ sector0: Buffer; size: number }> {
  const fh = await open(path, "r");
  try {
    const sector0 = Buffer.alloc(SECTOR_BYTES);
    const { bytesRead } = await fh.read(sector0, 0, SECTOR_BYTES, 0);
    return { sector0: sector0.subarray(0, bytesRead), size: (await fh.stat()).size };
  } finally {
    await fh.close();
  }
}

export async function inspectImage(
  tools: ToolRunner,
  imagePath: string,
  signal?: AbortSignal,
): Promise<BaseImage> {
  const { sector0, size } = await readSector0(imagePath);
  const layout = findRaspberryPiLayout(parseMbr(sector0), size);
  const boot = new FatPartition(tools, imagePath, layout.boot.startSector * SECTOR_BYTES);
  const root = new Ext4Partition(tools, imagePath, layout.root.startSector * SECTOR_BYTES);

  let bootNames: string[];
  try {
    bootNames = (await boot.list(signal)).map((n) => n.toLowerCase());
  } catch (err) {
    if (err instanceof ToolFailedError)
      throw new NotRaspberryPiOsError("partition 1 is not a FAT file system");
    throw err;
  }
  for (const name of ["config.txt", "cmdline.txt"]) {
    if (!bootNames.includes(name)) throw new NotRaspberryPiOsError(`the boot partition has no ${name}`);
  }

  try {
    await root.stats(signal);
  } catch (err) {
    if (err instanceof ToolFailedError)
      throw new NotRaspberryPiOsError("partition 2 is not an ext4 file system");
    throw err;
  }
  const need = async (path: string): Promise<Buffer> => {
    const bytes = await root.readFile(path, signal);
    if (bytes === null) throw new NotRaspberryPiOsError(`the root file system has no ${path}`);
    return bytes;
  };
  const osRelease = parseOsRelease((await need("/etc/os-release")).toString("utf8"));
  await need("/etc/rpi-issue");
  await need("/etc/passwd");
  const dpkgStatus = await need("/var/lib/dpkg/status");
  const packages = installedPackages(dpkgStatus.toString("utf8"));

  const libcArch = packages.get("libc6")?.architecture;
  if (libcArch !== "arm64" && libcArch !== "armhf") {
    throw new UnsupportedBaseError(
      `the image is for ${libcArch ?? "an unknown architecture"} (libc6); Ringleader images are arm64 or armhf`,
    );
  }
  const codename = osRelease.get("VERSION_CODENAME") ?? "";
  const oldNode = TOO_OLD.get(codename);
  if (oldNode !== undefined || codename === "") {
    throw new UnsupportedBaseError(
      `the image is based on Debian ${codename || "(unknown release)"}, whose ${oldNode ?? "Node.js"} is too old: ` +
        `the agent needs Node.js 20 or later. Use Raspberry Pi OS based on Debian 13 (trixie) or later.`,
    );
  }
  const bootFirmware = await root.stat("/boot/firmware", signal);
  return {
    layout,
    imageBytes: size,
    arch: libcArch,
    codename,
    prettyName: osRelease.get("PRETTY_NAME") ?? codename,
    bootMount: bootFirmware?.type === "directory" ? "/boot/firmware" : "/boot",
    hasCloudInit: packages.has("cloud-init"),
    hasAvahi: packages.has("avahi-daemon"),
    packages,
    dpkgStatus,
    boot,
    root,
  };
}
