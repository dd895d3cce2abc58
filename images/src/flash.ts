/**
 * `ringleader image flash`: writes an image to an SD card the way balenaEtcher does — refuse
 * disks that are mounted, fixed or hold the running system unless forced, ask before erasing,
 * show progress with throughput, then read the card back and compare checksums. A plain file is
 * a valid target too, which is how the tests exercise all of it.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, constants as fsConstants } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { resolve } from "node:path";
import type { Readable } from "node:stream";
import { imageSize, isCompressed } from "./base-image.js";
import {
  AbortedError,
  FlashRefusedError,
  NotConfirmedError,
  TruncatedImageError,
  VerifyFailedError,
} from "./errors.js";
import { formatBytes, formatRate, type ProgressSink } from "./progress.js";
import type { ToolRunner } from "./tools.js";

/** Writes and reads in chunks of this size; each chunk's hash locates a bad region. */
export const CHUNK_BYTES = 4 * 1024 * 1024;
/** Mount points that mean "this disk runs the machine". */
const SYSTEM_MOUNTS = new Set([
  "/",
  "/boot",
  "/boot/efi",
  "/boot/firmware",
  "/usr",
  "/var",
  "/home",
  "[SWAP]",
]);

/** One row of `lsblk --json`, with the children it lists. */
export interface LsblkDevice {
  readonly name?: string;
  readonly path?: string;
  readonly size?: number | string | null;
  readonly rm?: boolean | string | null;
  readonly hotplug?: boolean | string | null;
  readonly type?: string | null;
  readonly tran?: string | null;
  readonly model?: string | null;
  readonly mountpoints?: readonly (string | null)[] | null;
  readonly mountpoint?: string | null;
  readonly children?: readonly LsblkDevice[];
}

export interface BlockDevice {
  readonly path: string;
  readonly sizeBytes: number;
  readonly removable: boolean;
  readonly type: string;
  readonly description: string;
  /** Where this device or its partitions are mounted. */
  readonly mountpoints: readonly string[];
}

function flag(v: boolean | string | null | undefined): boolean {
  return v === true || v === "1";
}

function mountsOf(d: LsblkDevice): string[] {
  const own = [...(d.mountpoints ?? []), d.mountpoint ?? null].filter(
    (m): m is string => typeof m === "string" && m !== "",
  );
  return [...own, ...(d.children ?? []).flatMap(mountsOf)];
}

/** The device `lsblk --json --bytes -o NAME,PATH,SIZE,RM,HOTPLUG,TYPE,TRAN,MODEL,MOUNTPOINTS` describes. */
export function blockDeviceFromLsblk(json: string, path: string): BlockDevice {
  const parsed = JSON.parse(json) as { blockdevices?: LsblkDevice[] };
  const d = parsed.blockdevices?.[0];
  if (!d) throw new FlashRefusedError(path, ["lsblk does not know it"]);
  const size = Number(d.size ?? 0);
  const removable = flag(d.rm) || flag(d.hotplug) || d.tran === "usb" || d.tran === "mmc";
  const model = (d.model ?? "").trim();
  return {
    path: d.path ?? path,
    sizeBytes: size,
    removable,
    type: d.type ?? "unknown",
    description: [model || null, d.tran ? d.tran.toUpperCase() : null, formatBytes(size)]
      .filter(Boolean)
      .join(", "),
    mountpoints: mountsOf(d),
  };
}

/** Why writing `d` needs `--force` (empty: it looks like an SD card or USB stick). */
export function refusalReasons(d: BlockDevice): string[] {
  const reasons: string[] = [];
  const system = d.mountpoints.filter((m) => SYSTEM_MOUNTS.has(m));
  if (system.length > 0) reasons.push(`it holds the running system (${system.join(", ")})`);
  const other = d.mountpoints.filter((m) => !SYSTEM_MOUNTS.has(m));
  if (other.length > 0) reasons.push(`it is mounted at ${other.join(", ")}; unmount it first`);
  if (!d.removable) reasons.push("it is not a removable disk");
  if (d.type !== "disk" && d.type !== "loop") reasons.push(`it is a ${d.type}, not a whole disk`);
  return reasons;
}

export type FlashTarget =
  | { readonly kind: "file"; readonly path: string; readonly existingBytes: number | null }
  | { readonly kind: "block"; readonly path: string; readonly device: BlockDevice };

/** Looks at the target path: a plain file (new or existing) or a block device described by lsblk. */
export async function inspectTarget(
  tools: ToolRunner,
  path: string,
  signal?: AbortSignal,
): Promise<FlashTarget> {
  const st = await stat(path).catch(() => null);
  if (st === null || st.isFile()) return { kind: "file", path, existingBytes: st?.size ?? null };
  if (!st.isBlockDevice())
    throw new FlashRefusedError(path, ["it is neither a block device nor a regular file"]);
  await tools.require(["lsblk"]);
  const r = await tools.run(
    "lsblk",
    ["--json", "--bytes", "--output", "NAME,PATH,SIZE,RM,HOTPLUG,TYPE,TRAN,MODEL,MOUNTPOINTS", path],
    { signal },
  );
  return { kind: "block", path, device: blockDeviceFromLsblk(r.stdout.toString("utf8"), path) };
}

export interface FlashOptions {
  readonly tools: ToolRunner;
  readonly image: string;
  readonly target: string;
  /** Write even when `refusalReasons` lists something. */
  readonly force: boolean;
  /** Asked once, before anything is written; the CLI's `--yes` answers it. */
  readonly confirm: (question: string) => Promise<boolean>;
  readonly verify: boolean;
  readonly progress: ProgressSink;
  readonly signal?: AbortSignal;
  /** Runs between writing and reading back; tests use it to damage the card. */
  readonly beforeVerify?: () => Promise<void>;
}

export interface FlashReport {
  readonly image: string;
  readonly target: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly verified: boolean;
  readonly writeMs: number;
  readonly verifyMs: number;
  readonly writeBytesPerSecond: number;
}

async function openSource(
  tools: ToolRunner,
  image: string,
): Promise<{ stream: Readable; done: () => Promise<void> }> {
  if (!isCompressed(image)) {
    const stream = createReadStream(image, { highWaterMark: CHUNK_BYTES });
    return { stream, done: async () => undefined };
  }
  const child = await tools.spawn("xz", ["-dc", "-T0", image]);
  child.stdin?.end();
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (c: string) => {
    if (stderr.length < 4096) stderr += c;
  });
  const closed = once(child, "close") as Promise<[number | null]>;
  const stream = child.stdout;
  if (!stream) throw new Error("xz has no stdout");
  return {
    stream,
    done: async () => {
      const [code] = await closed;
      if (code !== 0) throw new TruncatedImageError(image, stderr.trim() || `xz exited with ${code}`);
    },
  };
}

/** Re-chunks a stream into exact CHUNK_BYTES pieces (the last may be shorter). */
async function* chunks(stream: Readable): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let size = 0;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    pending.push(piece);
    size += piece.length;
    while (size >= CHUNK_BYTES) {
      const all = Buffer.concat(pending, size);
      yield all.subarray(0, CHUNK_BYTES);
      pending = [all.subarray(CHUNK_BYTES)];
      size -= CHUNK_BYTES;
    }
  }
  if (size > 0) yield Buffer.concat(pending, size);
}

function describe(target: FlashTarget): string {
  if (target.kind === "block") return `${target.path} (${target.device.description})`;
  return target.existingBytes === null
    ? `the new file ${target.path}`
    : `the file ${target.path} (${formatBytes(target.existingBytes)})`;
}

export async function flashImage(o: FlashOptions): Promise<FlashReport> {
  const imagePath = resolve(o.image);
  const targetPath = resolve(o.target);
  if (imagePath === targetPath) throw new FlashRefusedError(o.target, ["it is the image itself"]);
  const bytes = await imageSize(o.tools, o.image, o.signal);
  const target = await inspectTarget(o.tools, o.target, o.signal);
  if (target.kind === "block") {
    if (target.device.sizeBytes < bytes) {
      throw new FlashRefusedError(o.target, [
        `it holds ${formatBytes(target.device.sizeBytes)} and the image is ${formatBytes(bytes)}`,
      ]);
    }
    const reasons = refusalReasons(target.device);
    if (reasons.length > 0 && !o.force)
      throw new FlashRefusedError(o.target, [...reasons, "pass --force if you are sure"]);
  }
  const question = `Write ${formatBytes(bytes)} to ${describe(target)}? Everything on it will be erased.`;
  if (!(await o.confirm(question))) throw new NotConfirmedError("nothing was written");

  // O_EXCL on a block device fails with EBUSY while anything (a mount, LVM) holds it.
  const fh =
    target.kind === "block"
      ? await open(targetPath, fsConstants.O_WRONLY | fsConstants.O_EXCL)
      : await open(targetPath, "w");
  const chunkHashes: string[] = [];
  const whole = createHash("sha256");
  const writeStarted = performance.now();
  try {
    const source = await openSource(o.tools, o.image);
    o.progress.phase("writing", bytes);
    let position = 0;
    try {
      for await (const chunk of chunks(source.stream)) {
        if (o.signal?.aborted) throw new AbortedError("flashing (the target is now incomplete)");
        if (position + chunk.length > bytes)
          throw new TruncatedImageError(o.image, "longer than its index says");
        whole.update(chunk);
        chunkHashes.push(createHash("sha256").update(chunk).digest("hex"));
        await writeFully(fh, chunk, position);
        position += chunk.length;
        o.progress.advance(position);
      }
    } finally {
      source.stream.destroy();
    }
    await source.done();
    if (position !== bytes)
      throw new TruncatedImageError(o.image, `${position} bytes where ${bytes} were expected`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  o.progress.finish();
  const writeMs = performance.now() - writeStarted;
  const sha256 = whole.digest("hex");
  if (target.kind === "block") {
    // Drop the kernel's cached copy, so the read-back comes from the card and not from memory.
    await o.tools.run("blockdev", ["--flushbufs", targetPath], { signal: o.signal });
  }
  await o.beforeVerify?.();
  let verifyMs = 0;
  if (o.verify) {
    const started = performance.now();
    await verifyTarget(targetPath, bytes, chunkHashes, sha256, o);
    verifyMs = performance.now() - started;
  }
  if (target.kind === "block") {
    // Let the kernel see the new partition table; harmless when it cannot (the card is re-plugged anyway).
    await o.tools.run("blockdev", ["--rereadpt", targetPath], { okExitCodes: [0, 1] }).catch(() => undefined);
  }
  return {
    image: o.image,
    target: o.target,
    bytes,
    sha256,
    verified: o.verify,
    writeMs: Math.round(writeMs),
    verifyMs: Math.round(verifyMs),
    writeBytesPerSecond: writeMs > 0 ? Math.round((bytes * 1000) / writeMs) : 0,
  };
}

async function writeFully(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`the target stopped accepting data at byte ${position + done}`);
    done += bytesWritten;
  }
}

/** Reads the first `bytes` of the target back and compares chunk by chunk, then as a whole. */
async function verifyTarget(
  path: string,
  bytes: number,
  chunkHashes: readonly string[],
  expected: string,
  o: FlashOptions,
): Promise<void> {
  o.progress.phase("verifying", bytes);
  const fh = await open(path, "r");
  const whole = createHash("sha256");
  const buffer = Buffer.alloc(CHUNK_BYTES);
  let firstBad = -1;
  try {
    for (let i = 0, position = 0; position < bytes; i++) {
      if (o.signal?.aborted) throw new AbortedError("verifying");
      const want = Math.min(CHUNK_BYTES, bytes - position);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buffer, got, want - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const piece = buffer.subarray(0, got);
      whole.update(piece);
      if (
        firstBad < 0 &&
        (got < want || createHash("sha256").update(piece).digest("hex") !== chunkHashes[i])
      ) {
        firstBad = position;
      }
      position += want;
      o.progress.advance(position);
      if (got < want) break;
    }
  } finally {
    await fh.close();
  }
  o.progress.finish();
  const actual = whole.digest("hex");
  if (firstBad >= 0 || actual !== expected)
    throw new VerifyFailedError(path, Math.max(firstBad, 0), expected, actual);
}

export function summary(r: FlashReport): string {
  return (
    `Wrote ${formatBytes(r.bytes)} to ${r.target} at ${formatRate(r.writeBytesPerSecond)}` +
    (r.verified ? `; verified (sha256 ${r.sha256.slice(0, 16)}…).` : "; not verified.")
  );
}
