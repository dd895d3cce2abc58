/**
 * A release tarball: the same bundle an image gets (bundle.ts: compiled dist/, package.json and a
 * production node_modules for the target), packed as `ringleader-<version>-<arch>.tar.gz` for the
 * Ansible role (provisioning/roles/ringleader), which unpacks it under /opt/ringleader/releases.
 * The tarball is reproducible (sorted names, owner root, fixed times, gzip without a timestamp),
 * so building it again from the same checkout gives the same bytes and Ansible sees no change.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { makeBundle, type BundleArch } from "./bundle.js";
import type { ToolRunner } from "./tools.js";

export interface ReleaseOptions {
  readonly tools: ToolRunner;
  readonly repoRoot: string;
  readonly cacheDir: string;
  readonly arch: BundleArch;
  /** A folder (the file gets its standard name inside) or a `.tar.gz` path. */
  readonly out: string;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
}

export interface ReleaseReport {
  readonly file: string;
  readonly version: string;
  readonly arch: BundleArch;
  readonly bytes: number;
  readonly sha256: string;
  readonly bundleBytes: number;
  readonly bundleCached: boolean;
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

export function releaseFileName(version: string, arch: BundleArch): string {
  return `ringleader-${version}-${arch}.tar.gz`;
}

export async function makeRelease(options: ReleaseOptions): Promise<ReleaseReport> {
  const bundle = await makeBundle(options);
  const outIsDir = !options.out.endsWith(".tar.gz");
  const file = outIsDir ? join(options.out, releaseFileName(bundle.version, bundle.arch)) : options.out;
  await mkdir(dirname(file), { recursive: true });
  const staging = join(options.cacheDir, "releases", `.stage-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    for (const e of bundle.entries) {
      const to = join(staging, e.path);
      if (e.kind === "dir") await mkdir(to, { recursive: true });
      else if (e.kind === "symlink") await symlink(e.target, to);
      else await copyFile(e.hostPath, to);
    }
    const manifest = { name: "ringleader", version: bundle.version, arch: bundle.arch };
    await writeFile(join(staging, "release.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    options.log?.(`packing ${bundle.entries.length} entries into ${file}`);
    const tmp = `${file}.tmp-${process.pid}`;
    await options.tools.run(
      "tar",
      [
        "--sort=name",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@0",
        "--mode=u+rwX,go+rX,go-w",
        "-I",
        "gzip -n",
        "-cf",
        tmp,
        "-C",
        staging,
        ".",
      ],
      options.signal ? { signal: options.signal } : {},
    );
    await rename(tmp, file);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return {
    file,
    version: bundle.version,
    arch: bundle.arch,
    bytes: (await stat(file)).size,
    sha256: await sha256Of(file),
    bundleBytes: bundle.bytes,
    bundleCached: bundle.cached,
  };
}
