/**
 * The size of the data directory, walked with bounds (files, depth) and cached: LMDB keeps a few
 * large files, so a walk is short, but it should not run every sample on an SD card either.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

export interface DirSize {
  /** Bytes allocated on disk (st_blocks × 512), which is what fills an SD card. */
  readonly bytes: number;
  /** The part of it in LMDB data files (`*.mdb`). */
  readonly lmdbBytes: number;
  readonly files: number;
  /** True when the walk stopped at a bound; `bytes` is then a lower bound. */
  readonly truncated: boolean;
  readonly measuredAt: number;
}

export interface DirSizeLimits {
  readonly maxFiles: number;
  readonly maxDepth: number;
}

export const DEFAULT_DIR_SIZE_LIMITS: DirSizeLimits = { maxFiles: 10_000, maxDepth: 8 };

export async function measureDir(
  root: string,
  limits: DirSizeLimits = DEFAULT_DIR_SIZE_LIMITS,
): Promise<DirSize> {
  let bytes = 0;
  let lmdbBytes = 0;
  let files = 0;
  let truncated = false;
  const stack: [string, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [dir, depth] = stack.pop()!;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (files >= limits.maxFiles) {
        truncated = true;
        break;
      }
      const path = join(dir, name);
      let st;
      try {
        st = await lstat(path);
      } catch {
        continue; // Deleted meanwhile.
      }
      files++;
      const onDisk = st.blocks * 512;
      if (st.isDirectory()) {
        if (depth + 1 <= limits.maxDepth) stack.push([path, depth + 1]);
        else truncated = true;
      } else if (st.isFile()) {
        bytes += onDisk;
        if (name.endsWith(".mdb")) lmdbBytes += onDisk;
      }
    }
  }
  return { bytes, lmdbBytes, files, truncated, measuredAt: Date.now() };
}

/** Measures at most once per `maxAgeMs`; concurrent callers share one walk. */
export class DirSizeCache {
  private last: DirSize | null = null;
  private running: Promise<DirSize> | null = null;

  constructor(
    private readonly root: string,
    private readonly opts: { maxAgeMs: number; limits?: DirSizeLimits; now?: () => number },
  ) {}

  async get(): Promise<DirSize> {
    const now = (this.opts.now ?? Date.now)();
    if (this.last && now - this.last.measuredAt < this.opts.maxAgeMs) return this.last;
    this.running ??= measureDir(this.root, this.opts.limits).finally(() => (this.running = null));
    this.last = { ...(await this.running), measuredAt: now };
    return this.last;
  }
}
