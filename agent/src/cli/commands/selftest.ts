/**
 * `ringleader selftest`: proves on a board (or under qemu-user in CI) that the native modules in
 * this install are the right binaries for the machine — it opens an LMDB environment, writes and
 * reads it back, and round-trips CBOR through cbor-x with the native string extractor. serialport's
 * binding is loaded when it is installed. Hidden from `--help`: it is for operators and images.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandModule } from "yargs";
import { CheckFailedError } from "../errors.js";

interface SelftestArgs {
  dir?: string;
  json: boolean;
}

export interface SelftestCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface SelftestReport {
  readonly ok: boolean;
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  readonly checks: readonly SelftestCheck[];
}

async function check(name: string, run: () => Promise<string>): Promise<SelftestCheck> {
  try {
    return { name, ok: true, detail: await run() };
  } catch (err) {
    return { name, ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

async function lmdbCheck(parent: string): Promise<string> {
  const { open } = await import("lmdb");
  const dir = await mkdtemp(join(parent, "ringleader-selftest-"));
  try {
    const db = open<Uint8Array, string>({ path: dir, encoding: "binary" });
    const value = new Uint8Array([0, 1, 2, 253, 254, 255]);
    await db.put("selftest/key", value);
    const back = db.get("selftest/key");
    await db.close();
    assert.deepEqual(back === undefined ? undefined : new Uint8Array(back), value);
    return "opened an environment, wrote and read a value";
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function cborCheck(): Promise<string> {
  const cbor = await import("cbor-x");
  const encoder = new cbor.Encoder({ useRecords: false, mapsAsObjects: true });
  // Enough strings that the decoder takes its native extraction path.
  const message = {
    kind: "selftest",
    n: 42,
    tags: Array.from({ length: 16 }, (_, i) => `tag-${i}`),
    bytes: new Uint8Array([7, 8, 9]),
  };
  const back = encoder.decode(encoder.encode(message)) as typeof message;
  assert.deepEqual({ ...back, bytes: new Uint8Array(back.bytes) }, message);
  if (!cbor.isNativeAccelerationEnabled)
    throw new Error("cbor-x runs without its native extractor (cbor-extract did not load)");
  return "round-tripped a message with the native extractor";
}

async function serialportCheck(): Promise<string> {
  const require = createRequire(import.meta.url);
  let bindings: { autoDetect?: unknown };
  try {
    bindings = require("@serialport/bindings-cpp") as { autoDetect?: unknown };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "MODULE_NOT_FOUND") return "not installed";
    throw err;
  }
  if (typeof bindings.autoDetect !== "function")
    throw new Error("@serialport/bindings-cpp has no autoDetect");
  return "native binding loaded";
}

export async function runSelftest(parentDir: string = tmpdir()): Promise<SelftestReport> {
  const checks = [
    await check("lmdb", () => lmdbCheck(parentDir)),
    await check("cbor", cborCheck),
    await check("serialport", serialportCheck),
  ];
  return {
    ok: checks.every((c) => c.ok),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    checks,
  };
}

export const selftestCommand: CommandModule<object, SelftestArgs> = {
  command: "selftest",
  describe: false,
  builder: (y) =>
    y
      .option("dir", {
        type: "string",
        describe: "Where to make the scratch LMDB environment (default: the temp folder)",
      })
      .option("json", { type: "boolean", default: false })
      .example("$0 selftest", "check that LMDB, CBOR and serialport load on this machine"),
  handler: async (args) => {
    const report = await runSelftest(args.dir);
    if (args.json) process.stdout.write(JSON.stringify(report) + "\n");
    else {
      for (const c of report.checks)
        process.stdout.write(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}\n`);
      process.stdout.write(
        `${report.ok ? "selftest ok" : "selftest FAILED"}: node ${report.node} ${report.platform}/${report.arch}\n`,
      );
    }
    if (!report.ok) throw new CheckFailedError("selftest failed");
  },
};
