/**
 * Runs the Debian tools the image builder stands on (mtools, debugfs, xz, apt-get, ...). The
 * builder never mounts anything: every read and write of the image goes through these tools, so
 * it runs unprivileged in CI and on a laptop. Missing tools are reported with the package that
 * brings them; output is bounded, and every run can be cancelled.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { AbortedError, MissingToolError, ToolFailedError } from "./errors.js";

/** The Debian package that ships each tool we call. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  mcopy: "mtools",
  mtype: "mtools",
  mdir: "mtools",
  mdel: "mtools",
  debugfs: "e2fsprogs",
  e2fsck: "e2fsprogs",
  resize2fs: "e2fsprogs",
  "mkfs.ext4": "e2fsprogs",
  "mkfs.vfat": "dosfstools",
  sfdisk: "fdisk",
  xz: "xz-utils",
  "apt-get": "apt",
  "dpkg-deb": "dpkg",
  "qemu-aarch64-static": "qemu-user-static",
  "qemu-arm-static": "qemu-user-static",
  lsblk: "util-linux",
  blockdev: "util-linux",
  findmnt: "util-linux",
  flock: "util-linux",
  npm: "npm",
};

/** What a tool printed; stderr is text, stdout stays bytes (files read out of the image). */
export interface ToolResult {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string | Uint8Array;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly signal?: AbortSignal;
  /** Exit codes that are not failures (e2fsck uses 1 for "fixed something"). */
  readonly okExitCodes?: readonly number[];
  /** Kill the tool when its stdout grows past this; protects memory from a runaway `cat`. */
  readonly maxStdoutBytes?: number;
}

const DEFAULT_MAX_STDOUT_BYTES = 64 * 1024 * 1024;
const MAX_STDERR_CHARS = 64 * 1024;

export interface ToolRunnerOptions {
  /** Directories searched for tools; default: $PATH plus the sbin folders non-root users lack. */
  readonly searchPath?: readonly string[];
  /** Extra environment for every tool. */
  readonly env?: Readonly<Record<string, string>>;
}

export class ToolRunner {
  private readonly searchPath: readonly string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly resolved = new Map<string, string>();

  constructor(options: ToolRunnerOptions = {}) {
    this.searchPath = options.searchPath ?? [
      ...(process.env["PATH"] ?? "").split(delimiter).filter(Boolean),
      "/usr/sbin",
      "/sbin",
    ];
    // mtools refuses images whose FAT geometry looks odd unless told not to check; and a user's
    // ~/.mtoolsrc must not change what the builder does. LC_ALL=C keeps messages parseable.
    this.env = { ...process.env, MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null", LC_ALL: "C", ...options.env };
  }

  /** The absolute path of `tool`, or null when it is not installed. */
  async which(tool: string): Promise<string | null> {
    const known = this.resolved.get(tool);
    if (known !== undefined) return known;
    for (const dir of this.searchPath) {
      const candidate = join(dir, tool);
      try {
        await access(candidate, constants.X_OK);
        this.resolved.set(tool, candidate);
        return candidate;
      } catch {
        // Not in this directory; try the next.
      }
    }
    return null;
  }

  /** Throws `MissingToolError` for the first of `tools` that is not installed. */
  async require(tools: readonly string[]): Promise<void> {
    for (const tool of tools) {
      if ((await this.which(tool)) === null) throw new MissingToolError(tool, TOOL_PACKAGES[tool] ?? tool);
    }
  }

  /** Starts `tool` with its stdio as pipes; the caller owns the process. */
  async spawn(tool: string, args: readonly string[], options: RunOptions = {}): Promise<ChildProcess> {
    const path = await this.which(tool);
    if (path === null) throw new MissingToolError(tool, TOOL_PACKAGES[tool] ?? tool);
    return spawn(path, args, {
      env: { ...this.env, ...options.env },
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  /** Runs `tool` to completion; throws `ToolFailedError` on an exit code not in `okExitCodes`. */
  async run(tool: string, args: readonly string[], options: RunOptions = {}): Promise<ToolResult> {
    options.signal?.throwIfAborted();
    const child = await this.spawn(tool, args, options);
    const maxStdout = options.maxStdoutBytes ?? DEFAULT_MAX_STDOUT_BYTES;
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = "";
    let overflow = false;
    const onAbort = (): void => {
      child.kill("SIGTERM");
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout?.on("data", (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxStdout) {
        overflow = true;
        child.kill("SIGTERM");
        return;
      }
      out.push(chunk);
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      if (stderr.length < MAX_STDERR_CHARS) stderr += chunk;
    });
    // A tool that exits without reading its stdin makes our write fail with EPIPE; the exit code
    // tells what happened, so the pipe error itself is not interesting.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input ?? "");
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve(code));
    }).finally(() => options.signal?.removeEventListener("abort", onAbort));
    if (options.signal?.aborted) throw new AbortedError(tool);
    if (overflow) throw new ToolFailedError(tool, exitCode, `printed more than ${maxStdout} bytes`);
    const ok = options.okExitCodes ?? [0];
    if (exitCode === null || !ok.includes(exitCode)) throw new ToolFailedError(tool, exitCode, stderr);
    return { exitCode, stdout: Buffer.concat(out), stderr };
  }
}
