/**
 * Makes the output image from the base: a sparse copy of a `.img`, or the decompressed stream of
 * an `.img.xz`. All-zero blocks are skipped rather than written, so a 5 GB image with 2 GB of
 * data takes 2 GB on the build disk. A truncated `.xz` is caught before anything is written.
 */
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { open, stat, statfs, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { AbortedError, NoRoomError, ToolFailedError, TruncatedImageError } from "./errors.js";
import { formatBytes, type ProgressSink } from "./progress.js";
import type { ToolRunner } from "./tools.js";

/** Writes go out in blocks of this size; an all-zero block is left as a hole. */
const BLOCK_BYTES = 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK_BYTES);

export function isCompressed(path: string): boolean {
  return path.endsWith(".xz");
}

/**
 * The size of the decompressed image. `xz --list` reads the index at the end of the file, so a
 * download that stopped early fails here, before any work is done.
 */
export async function imageSize(tools: ToolRunner, path: string, signal?: AbortSignal): Promise<number> {
  if (!isCompressed(path)) return (await stat(path)).size;
  let out: string;
  try {
    out = (await tools.run("xz", ["--robot", "--list", path], { signal })).stdout.toString("utf8");
  } catch (err) {
    if (err instanceof ToolFailedError)
      throw new TruncatedImageError(path, err.stderr.trim() || "xz --list failed");
    throw err;
  }
  const totals = out.split("\n").find((line) => line.startsWith("totals\t"));
  const size = Number(totals?.split("\t")[4]);
  if (!Number.isSafeInteger(size) || size <= 0)
    throw new TruncatedImageError(path, "no size in the xz index");
  return size;
}

/** Fails early when the build disk cannot hold the image and what we add to it. */
export async function checkBuildDiskRoom(outPath: string, neededBytes: number): Promise<void> {
  const fs = await statfs(dirname(outPath));
  const free = fs.bavail * fs.bsize;
  if (free < neededBytes) {
    throw new NoRoomError(
      `${dirname(outPath)} has ${formatBytes(free)} free; the image needs up to ${formatBytes(neededBytes)}`,
    );
  }
}

export interface CopyBaseOptions {
  readonly tools: ToolRunner;
  readonly base: string;
  readonly out: string;
  /** Replace an existing `out`. */
  readonly overwrite: boolean;
  readonly progress: ProgressSink;
  readonly signal?: AbortSignal;
}

/** Copies or decompresses `base` into a new sparse file `out`; returns its size in bytes. */
export async function copyBaseImage(options: CopyBaseOptions): Promise<number> {
  const { tools, base, out, progress, signal } = options;
  const expected = await imageSize(tools, base, signal);
  const fh = await open(out, options.overwrite ? "w" : "wx");
  let ok = false;
  try {
    progress.phase(isCompressed(base) ? "decompress" : "copy", expected);
    const written = isCompressed(base)
      ? await fromXz(tools, base, fh, expected, progress, signal)
      : await copyStream(
          createReadStream(base, { highWaterMark: BLOCK_BYTES }),
          fh,
          expected,
          progress,
          signal,
        );
    if (written !== expected) {
      throw new TruncatedImageError(base, `${written} bytes where the index promises ${expected}`);
    }
    await fh.truncate(written);
    progress.finish();
    ok = true;
    return written;
  } finally {
    await fh.close();
    if (!ok) await unlink(out).catch(() => undefined);
  }
}

async function fromXz(
  tools: ToolRunner,
  base: string,
  fh: import("node:fs/promises").FileHandle,
  expected: number,
  progress: ProgressSink,
  signal?: AbortSignal,
): Promise<number> {
  const child = await tools.spawn("xz", ["-dc", "-T0", base]);
  child.stdin?.end();
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    if (stderr.length < 4096) stderr += chunk;
  });
  const closed = once(child, "close") as Promise<[number | null]>;
  const stdout = child.stdout;
  if (!stdout) throw new Error("xz has no stdout");
  let written: number;
  try {
    written = await copyStream(stdout, fh, expected, progress, signal);
  } catch (err) {
    child.kill("SIGTERM");
    throw err;
  }
  const [code] = await closed;
  if (code !== 0) throw new TruncatedImageError(base, stderr.trim() || `xz exited with ${code}`);
  return written;
}

/** Streams into `fh`, leaving holes for all-zero blocks; bounded to one block of buffering. */
async function copyStream(
  input: Readable,
  fh: import("node:fs/promises").FileHandle,
  expected: number,
  progress: ProgressSink,
  signal?: AbortSignal,
): Promise<number> {
  const block = Buffer.alloc(BLOCK_BYTES);
  let fill = 0;
  let position = 0;
  const flush = async (): Promise<void> => {
    if (fill === 0) return;
    if (!block.subarray(0, fill).equals(ZERO_BLOCK.subarray(0, fill))) {
      await fh.write(block, 0, fill, position);
    }
    position += fill;
    fill = 0;
    progress.advance(position);
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    if (signal?.aborted) {
      input.destroy();
      throw new AbortedError("writing the image");
    }
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, BLOCK_BYTES - fill);
      chunk.copy(block, fill, at, at + n);
      fill += n;
      at += n;
      if (fill === BLOCK_BYTES) await flush();
      if (position + fill > expected) {
        input.destroy();
        throw new TruncatedImageError("the base image", `more than the ${expected} bytes it announced`);
      }
    }
  }
  await flush();
  return position;
}
