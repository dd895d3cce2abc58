/**
 * The agent as it goes into `/opt/ringleader`: the compiled `dist/` (without tests and source
 * maps), `package.json`, and a production `node_modules` for the TARGET architecture. npm picks
 * the target's optional prebuilt packages (`@lmdb/lmdb-linux-arm64`, ...) from `--cpu/--os/--libc`;
 * install scripts stay off, as in development. Afterwards every native module is checked: other
 * platforms' prebuilds are removed, and any `.node` file that is not an ELF for the target fails
 * the build. node_modules is cached per architecture and lockfile, so repeated builds are fast.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  copyFile,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { BundleError, ToolFailedError } from "./errors.js";
import { EM_AARCH64, EM_ARM, EM_X86_64, describeMachine, readElfHeader } from "./elf.js";
import type { TargetArch } from "./layout.js";
import type { ToolRunner } from "./tools.js";

/** Bump when the way bundles are made changes, so old cached ones are not reused. */
const BUNDLE_FORMAT = 2;
/** Cached node_modules kept per architecture; older ones are removed. */
const KEEP_CACHED_PER_ARCH = 3;
/** A runaway dependency tree would fill the image; the agent's is ~40 MB. */
const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

interface ArchFacts {
  /** `process.arch` on the target, which is also npm's `--cpu`. */
  readonly nodeArch: string;
  readonly elfMachine: number;
  readonly elfBits: 32 | 64;
}

/**
 * Architectures a bundle can be made for: the images' two, plus amd64 for boards (and test
 * machines) that Ansible provisions (`ringleader release`); images stay arm64/armhf.
 */
export type BundleArch = TargetArch | "amd64";

export const ARCH_FACTS: Readonly<Record<BundleArch, ArchFacts>> = {
  arm64: { nodeArch: "arm64", elfMachine: EM_AARCH64, elfBits: 64 },
  armhf: { nodeArch: "arm", elfMachine: EM_ARM, elfBits: 32 },
  amd64: { nodeArch: "x64", elfMachine: EM_X86_64, elfBits: 64 },
};

export type BundleEntry =
  | { readonly kind: "dir"; readonly path: string }
  | {
      readonly kind: "file";
      readonly path: string;
      readonly hostPath: string;
      readonly executable: boolean;
      readonly bytes: number;
    }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string };

export interface Bundle {
  readonly arch: BundleArch;
  readonly version: string;
  /** Paths relative to the install folder, parents before children. */
  readonly entries: readonly BundleEntry[];
  readonly bytes: number;
  /** Native modules found, relative paths, each checked to be an ELF for the target. */
  readonly nativeModules: readonly string[];
  /** True when node_modules came from the cache. */
  readonly cached: boolean;
}

export interface BundleOptions {
  readonly tools: ToolRunner;
  /** The checkout: `package.json`, `package-lock.json` and the compiled `dist/`. */
  readonly repoRoot: string;
  readonly cacheDir: string;
  readonly arch: BundleArch;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The cache key: what npm installs is decided by these bytes and the target. */
async function modulesKey(repoRoot: string, arch: BundleArch): Promise<string> {
  const h = createHash("sha256");
  h.update(`format ${BUNDLE_FORMAT}\narch ${arch}\n`);
  const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as Record<string, unknown>;
  h.update(JSON.stringify([pkg["dependencies"], pkg["overrides"], pkg["optionalDependencies"]]));
  h.update(await readFile(join(repoRoot, "package-lock.json")));
  return h.digest("hex").slice(0, 16);
}

/** Makes (or finds in the cache) a production node_modules for `arch`; returns its folder. */
export async function targetNodeModules(options: BundleOptions): Promise<{ dir: string; cached: boolean }> {
  const { tools, repoRoot, cacheDir, arch, signal } = options;
  const key = await modulesKey(repoRoot, arch);
  const bundles = join(cacheDir, "bundles");
  const done = join(bundles, `${arch}-${key}`);
  if (await exists(join(done, "node_modules"))) return { dir: join(done, "node_modules"), cached: true };
  await mkdir(bundles, { recursive: true });
  const staging = join(bundles, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging, { recursive: true });
  try {
    await copyFile(join(repoRoot, "package.json"), join(staging, "package.json"));
    await copyFile(join(repoRoot, "package-lock.json"), join(staging, "package-lock.json"));
    options.log?.(`installing production node_modules for linux/${ARCH_FACTS[arch].nodeArch} (npm ci)`);
    try {
      await tools.run(
        "npm",
        [
          "ci",
          "--omit=dev",
          `--cpu=${ARCH_FACTS[arch].nodeArch}`,
          "--os=linux",
          "--libc=glibc",
          // Native modules come prebuilt; an install script would compile for the build machine.
          "--ignore-scripts",
          "--no-bin-links",
          "--no-audit",
          "--no-fund",
          "--loglevel=error",
        ],
        { cwd: staging, signal },
      );
    } catch (err) {
      if (err instanceof ToolFailedError)
        throw new BundleError(`npm ci for ${arch} failed: ${err.stderr.trim()}`);
      throw err;
    }
    await pruneForeignPrebuilds(join(staging, "node_modules"), arch);
    await checkNativeModules(join(staging, "node_modules"), arch);
    // Another build may have finished the same bundle meanwhile; either copy is the same.
    await rename(staging, done).catch(async () => {
      if (!(await exists(join(done, "node_modules"))))
        throw new BundleError(`cannot move the bundle into ${done}`);
    });
    await pruneOldBundles(bundles, arch, done);
    return { dir: join(done, "node_modules"), cached: false };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function pruneOldBundles(bundles: string, arch: BundleArch, keep: string): Promise<void> {
  const mine = [];
  for (const name of await readdir(bundles)) {
    if (!name.startsWith(`${arch}-`)) continue;
    const path = join(bundles, name);
    mine.push({ path, mtimeMs: (await stat(path)).mtimeMs });
  }
  mine.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const old of mine.slice(KEEP_CACHED_PER_ARCH)) {
    if (old.path !== keep) await rm(old.path, { recursive: true, force: true });
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    yield path;
    if (entry.isDirectory()) yield* walk(path);
  }
}

/**
 * Packages such as serialport ship prebuilds for every platform in one tarball
 * (`prebuilds/<platform>-<arch>/`); only the target's stay. musl builds go too: Raspberry Pi OS
 * is glibc.
 */
export async function pruneForeignPrebuilds(nodeModules: string, arch: BundleArch): Promise<void> {
  const wanted = `linux-${ARCH_FACTS[arch].nodeArch}`;
  const doomed: string[] = [];
  for await (const path of walk(nodeModules)) {
    const parts = path.split(sep);
    const parent = parts[parts.length - 2];
    const name = parts[parts.length - 1] ?? "";
    if (parent === "prebuilds" && (await lstat(path)).isDirectory() && name !== wanted) doomed.push(path);
    else if (name.endsWith(".node") && name.includes(".musl.")) doomed.push(path);
  }
  for (const path of doomed) await rm(path, { recursive: true, force: true });
}

/** Every `.node` file must be an ELF for the target; returns them (relative to `nodeModules`). */
export async function checkNativeModules(nodeModules: string, arch: BundleArch): Promise<string[]> {
  const facts = ARCH_FACTS[arch];
  const found: string[] = [];
  const wrong: string[] = [];
  for await (const path of walk(nodeModules)) {
    if (!path.endsWith(".node") || !(await lstat(path)).isFile()) continue;
    const fh = await open(path, "r");
    const head = Buffer.alloc(20);
    try {
      await fh.read(head, 0, 20, 0);
    } finally {
      await fh.close();
    }
    const elf = readElfHeader(head);
    const rel = relative(nodeModules, path);
    if (elf?.machine !== facts.elfMachine || elf.bits !== facts.elfBits)
      wrong.push(`${rel} (${describeMachine(elf)})`);
    else found.push(rel);
  }
  if (wrong.length > 0) {
    throw new BundleError(`native modules that are not ${arch} binaries: ${wrong.slice(0, 10).join(", ")}`);
  }
  for (const pkg of ["lmdb", "cbor-extract"]) {
    if ((await exists(join(nodeModules, pkg))) && !found.some((f) => f.includes(`${pkg}-linux-`))) {
      throw new BundleError(
        `no prebuilt ${pkg} binary for linux/${facts.nodeArch}; is it in package-lock.json?`,
      );
    }
  }
  return found;
}

/** Parts of dist/ that do not run on a board: tests, source maps, the compiler's state. */
function isShippedDistFile(rel: string): boolean {
  const parts = rel.split(sep);
  if (parts.includes("test") || parts.includes("tests")) return false;
  return !rel.endsWith(".map") && !rel.endsWith(".test.js") && !rel.endsWith(".tsbuildinfo");
}

async function collect(
  hostRoot: string,
  prefix: string,
  include: (rel: string) => boolean,
  out: BundleEntry[],
): Promise<number> {
  let bytes = 0;
  const dirs = new Set<string>();
  for await (const host of walk(hostRoot)) {
    const rel = relative(hostRoot, host);
    const st = await lstat(host);
    const path = `${prefix}/${rel.split(sep).join("/")}`;
    if (st.isDirectory()) {
      dirs.add(path);
      continue;
    }
    if (!include(rel)) continue;
    // Folders are listed only when something in them ships, so filtered trees leave no empty ones.
    const parents = path.split("/").slice(0, -1);
    for (let i = 1; i <= parents.length; i++) {
      const dir = parents.slice(0, i).join("/");
      if (dirs.has(dir)) {
        out.push({ kind: "dir", path: dir });
        dirs.delete(dir);
      }
    }
    if (st.isSymbolicLink()) out.push({ kind: "symlink", path, target: await readlink(host) });
    else if (st.isFile()) {
      out.push({ kind: "file", path, hostPath: host, executable: (st.mode & 0o111) !== 0, bytes: st.size });
      bytes += st.size;
    }
  }
  return bytes;
}

/** The whole install folder's contents for `arch`. */
export async function makeBundle(options: BundleOptions): Promise<Bundle> {
  const { repoRoot, arch } = options;
  const dist = join(repoRoot, "dist");
  if (!(await exists(join(dist, "agent", "src", "cli", "main.js")))) {
    throw new BundleError(`${dist} has no compiled agent; run \`make build\` first`);
  }
  const pkgText = await readFile(join(repoRoot, "package.json"), "utf8");
  const version = String((JSON.parse(pkgText) as { version?: unknown }).version ?? "0.0.0");
  const modules = await targetNodeModules(options);
  const entries: BundleEntry[] = [];
  let bytes = 0;
  const pkgStat = await stat(join(repoRoot, "package.json"));
  entries.push({
    kind: "file",
    path: "package.json",
    hostPath: join(repoRoot, "package.json"),
    executable: false,
    bytes: pkgStat.size,
  });
  bytes += pkgStat.size;
  entries.push({ kind: "dir", path: "dist" });
  bytes += await collect(dist, "dist", isShippedDistFile, entries);
  entries.push({ kind: "dir", path: "node_modules" });
  bytes += await collect(modules.dir, "node_modules", () => true, entries);
  if (bytes > MAX_BUNDLE_BYTES)
    throw new BundleError(`the bundle is ${bytes} bytes, over the ${MAX_BUNDLE_BYTES} limit`);
  const nativeModules = await checkNativeModules(modules.dir, arch);
  return { arch, version, entries, bytes, nativeModules, cached: modules.cached };
}
