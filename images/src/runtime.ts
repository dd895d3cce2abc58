/**
 * Node.js for the target, from Debian. We keep a private apt configuration (sources, lists,
 * downloads) under the cache folder and never touch the machine's own apt: `APT::Architecture`
 * is the target's, and `Dir::State::status` is the BASE IMAGE's dpkg status, so apt answers
 * exactly "what must be added to this image for `nodejs`". Those .debs ship in the image and
 * dpkg installs them at first boot, offline (see images/README.md for why).
 */
import { mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ToolFailedError } from "./errors.js";
import type { TargetArch } from "./layout.js";
import type { ToolRunner } from "./tools.js";

export const DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian";
export const DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security";
/** Security updates replace (and remove) older .debs, so package lists older than this are refreshed. */
const MAX_LIST_AGE_MS = 12 * 60 * 60 * 1000;
const UPDATE_ATTEMPTS = 3;

export interface DebPackage {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
}

export interface DownloadedDeb extends DebPackage {
  readonly file: string;
  readonly bytes: number;
}

export interface DebianArchiveOptions {
  readonly tools: ToolRunner;
  readonly cacheDir: string;
  readonly arch: TargetArch;
  /** Debian release, e.g. `trixie`: the base image's own. */
  readonly suite: string;
  readonly mirror?: string;
  readonly securityMirror?: string;
  readonly now?: () => number;
  readonly log?: (line: string) => void;
}

/** `Inst name [old] (version origin [arch])` lines of `apt-get -s install`. */
export function parseSimulatedInstall(output: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const line of output.split("\n")) {
    const m = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)/.exec(line);
    if (m?.[1] && m[2] && m[3]) out.push({ name: m[1], version: m[2], architecture: m[3] });
  }
  return out;
}

/** The file name `apt-get download` gives a package (an epoch's colon is escaped). */
export function debFileName(p: DebPackage): string {
  return `${p.name}_${p.version.replace(/:/g, "%3a")}_${p.architecture}.deb`;
}

export class DebianArchive {
  readonly dir: string;
  private readonly archives: string;

  constructor(private readonly o: DebianArchiveOptions) {
    if (!/^[a-z]+$/.test(o.suite)) throw new RangeError(`odd Debian suite name ${o.suite}`);
    this.dir = join(o.cacheDir, "apt", `${o.suite}-${o.arch}`);
    this.archives = join(this.dir, "archives");
  }

  private aptOptions(statusFile: string): string[] {
    const d = this.dir;
    return [
      `-o=Dir::Etc::sourcelist=${join(d, "sources.list")}`,
      "-o=Dir::Etc::sourceparts=-",
      `-o=Dir::State=${join(d, "state")}`,
      `-o=Dir::State::status=${statusFile}`,
      `-o=Dir::Cache=${join(d, "cache")}`,
      `-o=Dir::Cache::archives=${this.archives}`,
      `-o=APT::Architecture=${this.o.arch}`,
      `-o=APT::Architectures::=${this.o.arch}`,
      // Our private state needs no lock of the machine's apt; runs of ours are serialised by flock.
      "-o=Debug::NoLocking=1",
      "-o=APT::Install-Recommends=false",
      "-o=APT::Sandbox::User=root",
    ];
  }

  private async prepare(): Promise<void> {
    const mirror = this.o.mirror ?? DEFAULT_DEBIAN_MIRROR;
    const security = this.o.securityMirror ?? DEFAULT_SECURITY_MIRROR;
    const arch = this.o.arch;
    const keyring = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg";
    for (const sub of ["state/lists/partial", "cache", "archives/partial"]) {
      await mkdir(join(this.dir, sub), { recursive: true });
    }
    await writeFile(
      join(this.dir, "sources.list"),
      `deb [arch=${arch} ${keyring}] ${mirror} ${this.o.suite} main\n` +
        `deb [arch=${arch} ${keyring}] ${mirror} ${this.o.suite}-updates main\n` +
        `deb [arch=${arch} ${keyring}] ${security} ${this.o.suite}-security main\n`,
    );
    await writeFile(join(this.dir, "empty-status"), "");
  }

  /** apt-get under an exclusive lock of this cache folder, so parallel builds do not collide. */
  private apt(args: readonly string[], statusFile: string, signal?: AbortSignal, cwd?: string) {
    return this.o.tools.run(
      "flock",
      [join(this.dir, "lock"), "apt-get", ...this.aptOptions(statusFile), ...args],
      {
        signal,
        ...(cwd ? { cwd } : {}),
      },
    );
  }

  /** Refreshes the package lists when they are missing or stale (or when `force`). */
  async update(signal?: AbortSignal, force = false): Promise<void> {
    await this.prepare();
    const stamp = join(this.dir, "updated");
    const now = this.o.now?.() ?? Date.now();
    const age = await stat(stamp).then(
      (s) => now - s.mtimeMs,
      () => Infinity,
    );
    if (!force && age < MAX_LIST_AGE_MS) return;
    this.o.log?.(`updating Debian ${this.o.suite} package lists for ${this.o.arch}`);
    // A mirror in the middle of a sync serves a Release and a Packages file that disagree; the
    // next try usually gets a consistent pair.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.apt(["-q", "update"], join(this.dir, "empty-status"), signal);
        break;
      } catch (err) {
        if (!(err instanceof ToolFailedError) || attempt >= UPDATE_ATTEMPTS) throw err;
        this.o.log?.(`apt-get update failed (try ${attempt} of ${UPDATE_ATTEMPTS}); trying again`);
      }
    }
    await writeFile(stamp, "");
    await utimes(stamp, now / 1000, now / 1000);
  }

  /** What apt would add to a system whose dpkg status is `statusText` to install `packages`. */
  async resolve(
    packages: readonly string[],
    statusText: string,
    signal?: AbortSignal,
  ): Promise<DebPackage[]> {
    await this.update(signal);
    const statusFile = join(this.dir, `status-${process.pid}`);
    await writeFile(statusFile, statusText);
    try {
      const r = await this.apt(["-s", "-q", "install", ...packages], statusFile, signal);
      return parseSimulatedInstall(r.stdout.toString("utf8"));
    } finally {
      await rm(statusFile, { force: true });
    }
  }

  /** Downloads what is not cached yet; returns the files. Refreshes stale lists once on a 404. */
  async download(packages: readonly DebPackage[], signal?: AbortSignal): Promise<DownloadedDeb[]> {
    const have = new Set(await readdir(this.archives).catch(() => [] as string[]));
    const missing = packages.filter((p) => !have.has(debFileName(p)));
    if (missing.length > 0) {
      this.o.log?.(`downloading ${missing.length} Debian packages for ${this.o.arch}`);
      const args = ["-q", "download", ...missing.map((p) => `${p.name}=${p.version}`)];
      const statusFile = join(this.dir, "empty-status");
      try {
        await this.apt(args, statusFile, signal, this.archives);
      } catch (err) {
        if (!(err instanceof ToolFailedError)) throw err;
        await this.update(signal, true);
        await this.apt(args, statusFile, signal, this.archives);
      }
    }
    const out: DownloadedDeb[] = [];
    for (const p of packages) {
      const file = join(this.archives, debFileName(p));
      out.push({ ...p, file, bytes: (await stat(file)).size });
    }
    return out;
  }

  /**
   * A folder holding `packages` and everything they need, unpacked (not installed) with
   * dpkg-deb: enough to run the target's `node` under qemu-user in tests.
   */
  async sysroot(packages: readonly string[], signal?: AbortSignal): Promise<string> {
    const resolved = await this.resolve(packages, "", signal);
    const key = resolved.map(debFileName).sort().join("\n");
    const root = join(this.dir, "sysroot");
    const stampFile = join(root, ".ringleader-sysroot");
    const current = await readFile(stampFile, "utf8").catch(() => "");
    if (current === key) return root;
    const debs = await this.download(resolved, signal);
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    for (const deb of debs) await this.o.tools.run("dpkg-deb", ["-x", deb.file, root], { signal });
    // Debian 13 has merged /usr; base-files would make these links, but we unpack only libraries.
    for (const dir of ["lib", "bin", "sbin"])
      await symlink(`usr/${dir}`, join(root, dir)).catch(() => undefined);
    await writeFile(stampFile, key);
    return root;
  }
}

/** What a .deb takes once installed, from its control file's Installed-Size (KiB). */
export async function installedBytes(
  tools: ToolRunner,
  debFile: string,
  signal?: AbortSignal,
): Promise<number> {
  const r = await tools.run("dpkg-deb", ["-f", debFile, "Installed-Size"], { signal });
  const kib = Number(r.stdout.toString("utf8").trim());
  return Number.isFinite(kib) ? kib * 1024 : 0;
}
