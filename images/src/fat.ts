/**
 * The FAT boot partition, read and written in place inside the image file with mtools
 * (`image@@offset`), so nothing is mounted.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ToolFailedError } from "./errors.js";
import type { ToolRunner } from "./tools.js";

export const FAT_TOOLS = ["mcopy", "mdir", "mtype"] as const;

/** Files on the boot partition are small (config.txt, user-data); anything bigger is a mistake. */
const MAX_BOOT_FILE_BYTES = 16 * 1024 * 1024;

export class FatPartition {
  constructor(
    private readonly tools: ToolRunner,
    readonly imagePath: string,
    readonly offsetBytes: number,
  ) {}

  private get drive(): string {
    return `${this.imagePath}@@${this.offsetBytes}`;
  }

  /** Names in the root folder, as the FAT stores them (`config.txt`, `overlays/`). */
  async list(signal?: AbortSignal): Promise<string[]> {
    const r = await this.tools.run("mdir", ["-a", "-b", "-i", this.drive, "::/"], { signal });
    return r.stdout
      .toString("utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line.startsWith("::/"))
      .map((line) => line.slice(3));
  }

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    const names = await this.list(signal);
    return names.some((n) => n.toLowerCase() === name.toLowerCase());
  }

  /** The file's bytes, or null when it does not exist. */
  async readFile(name: string, signal?: AbortSignal): Promise<Buffer | null> {
    try {
      const r = await this.tools.run("mcopy", ["-n", "-i", this.drive, `::/${name}`, "-"], {
        signal,
        maxStdoutBytes: MAX_BOOT_FILE_BYTES,
      });
      return r.stdout;
    } catch (err) {
      if (err instanceof ToolFailedError && /not found/i.test(err.stderr)) return null;
      throw err;
    }
  }

  /** Writes (or replaces) files in the root folder, all in one mcopy run per file. */
  async writeFiles(files: ReadonlyMap<string, string | Uint8Array>, signal?: AbortSignal): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "ringleader-fat-"));
    try {
      for (const [name, content] of files) {
        if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RangeError(`unexpected boot file name ${name}`);
        const local = join(dir, name);
        await writeFile(local, content);
        await this.tools.run("mcopy", ["-o", "-i", this.drive, local, `::/${name}`], { signal });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
