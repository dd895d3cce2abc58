/**
 * The bootstrap agreement's durable state (a lock granted, or a founding decision), kept in
 * `bootstrap.json` in the data directory: written to a temporary file, fsynced and renamed, so a
 * crash leaves the old or the new state, never half of one.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Durable } from "./protocol.js";
import type { DurableBootstrapState } from "./service.js";

export const BOOTSTRAP_FILE = "bootstrap.json";

export class FileBootstrapState implements DurableBootstrapState {
  private readonly path: string;
  constructor(dataDir: string) {
    this.path = join(dataDir, BOOTSTRAP_FILE);
  }

  load(): Durable {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "new" };
      throw err;
    }
    const d = JSON.parse(text) as Durable;
    if (d.kind !== "new" && d.kind !== "locked" && d.kind !== "committed")
      throw new Error(`${this.path} holds an unknown bootstrap state`);
    return d;
  }

  save(state: Durable): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(state) + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    return Promise.resolve();
  }
}
