/**
 * The ext4 root partition, read and written in place inside the image file with e2fsprogs'
 * debugfs (`image?offset=N`), so nothing is mounted and no root privileges are needed. Writes
 * are collected into one debugfs command file, because the bundle has thousands of files and
 * one process per file would take minutes.
 */
import { mkdtemp, open, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ToolFailedError } from "./errors.js";
import type { ToolRunner } from "./tools.js";

export const EXT4_TOOLS = ["debugfs", "e2fsck", "resize2fs"] as const;

/** The dpkg status of a full desktop image is a few MB; nothing we read is near this. */
const MAX_READ_BYTES = 64 * 1024 * 1024;

export type InodeType = "regular" | "directory" | "symlink" | "other";

export interface InodeInfo {
  readonly type: InodeType;
  /** Permission bits only (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** The target of a symlink, else null. */
  readonly linkTarget: string | null;
}

export interface FsStats {
  readonly blockBytes: number;
  readonly blockCount: number;
  readonly freeBlocks: number;
  readonly freeInodes: number;
}

/**
 * Quotes a path for debugfs' command parser. Names with quotes, backslashes or control
 * characters cannot be expressed there; none of ours have them, so they are refused.
 */
export function debugfsQuote(path: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is refused.
  if (/["\\\u0000-\u001f\u007f]/.test(path)) throw new RangeError(`cannot write ${JSON.stringify(path)}`);
  return `"${path}"`;
}

/** debugfs prints its version banner on stderr; everything else there is an error. */
function debugfsErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !/^debugfs \d/.test(line));
}

export class Ext4Partition {
  constructor(
    private readonly tools: ToolRunner,
    readonly imagePath: string,
    readonly offsetBytes: number,
  ) {}

  /** The device name e2fsprogs accepts for a file system inside a bigger file. */
  get device(): string {
    return `${this.imagePath}?offset=${this.offsetBytes}`;
  }

  private async request(
    command: string,
    signal?: AbortSignal,
  ): Promise<{ stdout: Buffer; errors: string[] }> {
    const r = await this.tools.run("debugfs", ["-R", command, this.device], {
      signal,
      maxStdoutBytes: MAX_READ_BYTES,
    });
    return { stdout: r.stdout, errors: debugfsErrors(r.stderr) };
  }

  async stats(signal?: AbortSignal): Promise<FsStats> {
    const { stdout, errors } = await this.request("stats -h", signal);
    const text = stdout.toString("utf8");
    const field = (name: string): number => {
      const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
      if (!m?.[1]) throw new ToolFailedError("debugfs", 0, errors.join("\n") || `no "${name}" in stats`);
      return Number(m[1]);
    };
    return {
      blockBytes: field("Block size"),
      blockCount: field("Block count"),
      freeBlocks: field("Free blocks"),
      freeInodes: field("Free inodes"),
    };
  }

  /** What the inode at `path` is, or null when nothing is there. */
  async stat(path: string, signal?: AbortSignal): Promise<InodeInfo | null> {
    const { stdout, errors } = await this.request(`stat ${debugfsQuote(path)}`, signal);
    const text = stdout.toString("utf8");
    const head = /Type:\s+(\S+)\s+Mode:\s+([0-7]+)/.exec(text);
    if (!head?.[1] || !head[2]) {
      if (errors.some((e) => /not found/i.test(e))) return null;
      throw new ToolFailedError("debugfs", 0, errors.join("\n") || `cannot stat ${path}`);
    }
    const owner = /User:\s+(\d+)\s+Group:\s+(\d+).*?Size:\s+(\d+)/s.exec(text);
    const link = /Fast link dest:\s+"(.*)"/.exec(text);
    const kind = head[1];
    const type: InodeType = kind === "regular" || kind === "directory" || kind === "symlink" ? kind : "other";
    return {
      type,
      mode: parseInt(head[2], 8) & 0o7777,
      uid: Number(owner?.[1] ?? NaN),
      gid: Number(owner?.[2] ?? NaN),
      size: Number(owner?.[3] ?? NaN),
      linkTarget: type === "symlink" ? (link?.[1] ?? (await this.readLink(path, signal))) : null,
    };
  }

  /** Long symlink targets live in a data block; `cat` prints them. */
  private async readLink(path: string, signal?: AbortSignal): Promise<string> {
    const { stdout } = await this.request(`cat ${debugfsQuote(path)}`, signal);
    return stdout.toString("utf8");
  }

  /** The file's bytes, or null when it does not exist. */
  async readFile(path: string, signal?: AbortSignal): Promise<Buffer | null> {
    const info = await this.stat(path, signal);
    if (info === null) return null;
    if (info.type !== "regular") throw new ToolFailedError("debugfs", 0, `${path} is a ${info.type}`);
    const { stdout, errors } = await this.request(`cat ${debugfsQuote(path)}`, signal);
    if (errors.length > 0) throw new ToolFailedError("debugfs", 0, errors.join("\n"));
    return stdout;
  }

  /** Names in a directory (without `.` and `..`), or null when it does not exist. */
  async list(path: string, signal?: AbortSignal): Promise<string[] | null> {
    const { stdout, errors } = await this.request(`ls -p ${debugfsQuote(path)}`, signal);
    if (errors.some((e) => /not found/i.test(e))) return null;
    // `ls -p` prints /inode/mode/uid/gid/name/size/ per entry.
    return stdout
      .toString("utf8")
      .split("\n")
      .map((line) => line.split("/"))
      .filter((f) => f.length >= 7 && f[5] !== "." && f[5] !== "..")
      .map((f) => f[5] ?? "");
  }

  /** Copies a folder of the image to the host (as the invoking user; owners are not kept). */
  async copyOut(path: string, hostDir: string, signal?: AbortSignal): Promise<void> {
    const { errors } = await this.request(`rdump ${debugfsQuote(path)} ${debugfsQuote(hostDir)}`, signal);
    if (errors.length > 0) throw new ToolFailedError("debugfs", 0, errors.join("\n"));
  }

  /** Runs a batch of debugfs commands with write access; any complaint fails the batch. */
  async apply(commands: readonly string[], signal?: AbortSignal): Promise<void> {
    if (commands.length === 0) return;
    const dir = await mkdtemp(join(tmpdir(), "ringleader-debugfs-"));
    try {
      const file = join(dir, "commands");
      await writeFile(file, commands.join("\n") + "\n");
      const r = await this.tools.run("debugfs", ["-w", "-f", file, this.device], {
        signal,
        maxStdoutBytes: 256 * 1024 * 1024,
      });
      const errors = debugfsErrors(r.stderr);
      if (errors.length > 0) throw new ToolFailedError("debugfs", 0, errors.slice(0, 20).join("\n"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Checks the file system, fixing what e2fsck may fix on its own (exit 1 means "fixed"). */
  async check(signal?: AbortSignal, readOnly = false): Promise<void> {
    await this.tools.run("e2fsck", [readOnly ? "-fn" : "-fy", this.device], {
      signal,
      okExitCodes: readOnly ? [0] : [0, 1],
    });
  }

  /**
   * Grows the file system to fill a partition that now spans `newBytes`. resize2fs must not be
   * pointed at `image?offset=`: for a regular file it extends or TRUNCATES the file to the file
   * system's size, measured from byte 0, which would cut the end off the image. So the partition
   * is copied into a file of its own, resized there, and the blocks that changed are copied back.
   */
  async grow(oldBytes: number, newBytes: number, workDir: string, signal?: AbortSignal): Promise<void> {
    await this.check(signal);
    const blockBytes = (await this.stats(signal)).blockBytes;
    const alone = join(workDir, "root.ext4");
    await copyRange(this.imagePath, this.offsetBytes, alone, 0, oldBytes, false, signal);
    await truncate(alone, newBytes);
    await this.tools.run("resize2fs", [alone, String(Math.floor(newBytes / blockBytes))], { signal });
    await copyRange(alone, 0, this.imagePath, this.offsetBytes, newBytes, true, signal);
    await rm(alone, { force: true });
  }
}

const COPY_BLOCK_BYTES = 1024 * 1024;

/**
 * Copies `length` bytes from `src` at `srcOffset` to `dst` at `dstOffset`, in 1 MiB blocks. A
 * block that is all zeros is skipped when `dst` is new (it stays a hole); with `onlyChanged` a
 * block is written only when `dst` holds something else there, so copying back a resized file
 * system writes megabytes, not the whole partition.
 */
async function copyRange(
  src: string,
  srcOffset: number,
  dst: string,
  dstOffset: number,
  length: number,
  onlyChanged: boolean,
  signal?: AbortSignal,
): Promise<void> {
  const input = await open(src, "r");
  const output = await open(dst, onlyChanged ? "r+" : "w");
  const block = Buffer.alloc(COPY_BLOCK_BYTES);
  const there = Buffer.alloc(COPY_BLOCK_BYTES);
  const zero = Buffer.alloc(COPY_BLOCK_BYTES);
  try {
    for (let at = 0; at < length; at += COPY_BLOCK_BYTES) {
      signal?.throwIfAborted();
      const n = Math.min(COPY_BLOCK_BYTES, length - at);
      const { bytesRead } = await input.read(block, 0, n, srcOffset + at);
      block.fill(0, bytesRead, n); // past the end of a file reads as zeros
      const piece = block.subarray(0, n);
      if (onlyChanged) {
        const got = (await output.read(there, 0, n, dstOffset + at)).bytesRead;
        there.fill(0, got, n);
        if (piece.equals(there.subarray(0, n))) continue;
      } else if (piece.equals(zero.subarray(0, n))) continue;
      await output.write(piece, 0, n, dstOffset + at);
    }
    if (!onlyChanged) await output.truncate(length);
  } finally {
    await input.close();
    await output.close();
  }
}

/** Attributes of something the builder puts into the root file system. */
export interface Attrs {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * Collects the commands that write files, folders and links into the root, remembering what it
 * created so it never asks debugfs to make a folder twice (debugfs reports that as an error).
 */
export class Ext4Batch {
  readonly commands: string[] = [];
  private readonly created = new Set<string>();
  private readonly present = new Set<string>(["/"]);
  private tempCount = 0;

  constructor(
    private readonly fs: Ext4Partition,
    /** Where `writeBytes` puts its temporary copies; the caller removes it after `apply`. */
    private readonly tempDir: string,
  ) {}

  private setAttrs(path: string, kind: number, a: Attrs): void {
    const q = debugfsQuote(path);
    this.commands.push(
      `sif ${q} mode 0${(kind | a.mode).toString(8)}`,
      `sif ${q} uid ${a.uid}`,
      `sif ${q} gid ${a.gid}`,
    );
  }

  /** Makes `path` and its missing parents (parents as root:root 0755). */
  async mkdirs(path: string, attrs: Attrs, signal?: AbortSignal): Promise<void> {
    const parts = path.split("/").filter(Boolean);
    let at = "";
    for (let i = 0; i < parts.length; i++) {
      const parent = at || "/";
      at = `${at}/${parts[i]}`;
      if (this.present.has(at)) continue;
      // A child of a folder we made cannot exist yet; anything else must be looked up.
      const exists = !this.created.has(parent) && (await this.fs.stat(at, signal)) !== null;
      if (exists) {
        this.present.add(at);
        continue;
      }
      this.commands.push(`mkdir ${debugfsQuote(at)}`);
      const last = i === parts.length - 1;
      this.setAttrs(at, 0o040000, last ? attrs : { mode: 0o755, uid: 0, gid: 0 });
      this.created.add(at);
      this.present.add(at);
    }
  }

  /** Sets owner and mode of a folder that may already exist. */
  dirAttrs(path: string, attrs: Attrs): void {
    this.setAttrs(path, 0o040000, attrs);
  }

  /** Copies a host file into the image; `replace` removes what is there first. */
  writeFile(path: string, hostPath: string, attrs: Attrs, replace = false): void {
    if (replace) this.commands.push(`rm ${debugfsQuote(path)}`);
    this.commands.push(`write ${debugfsQuote(hostPath)} ${debugfsQuote(path)}`);
    this.setAttrs(path, 0o100000, attrs);
  }

  async writeBytes(path: string, content: string | Uint8Array, attrs: Attrs, replace = false): Promise<void> {
    const hostPath = join(this.tempDir, `f${this.tempCount++}`);
    await writeFile(hostPath, content);
    this.writeFile(path, hostPath, attrs, replace);
  }

  symlink(path: string, target: string): void {
    this.commands.push(`symlink ${debugfsQuote(path)} ${debugfsQuote(target)}`);
  }
}
