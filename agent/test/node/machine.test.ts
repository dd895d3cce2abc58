/**
 * Which machine an agent says it runs on: the kernel's boot id by default, so agents on one
 * machine (network namespaces and containers too) name the same one, and nothing at all where the
 * kernel does not say.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BOOT_ID_FILE, MACHINE_PATTERN, machineLabel, machineId } from "../../src/node/machine.js";

describe("machineId", () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("is this kernel's boot id, the same at every call", () => {
    const id = machineId();
    assert.match(
      id ?? "",
      /^boot:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      BOOT_ID_FILE,
    );
    assert.equal(machineId(), id);
  });

  it("reads the file it is given, and is undefined where it is missing or empty", async () => {
    const dir = await mkdtemp(join(tmpdir(), "machine-"));
    dirs.push(dir);
    await writeFile(join(dir, "id"), "1234-abcd\n");
    assert.equal(machineId(join(dir, "id")), "boot:1234-abcd");
    await writeFile(join(dir, "empty"), "\n");
    assert.equal(machineId(join(dir, "empty")), undefined);
    assert.equal(machineId(join(dir, "missing")), undefined);
  });

  it("accepts what a member record may carry: printable, no spaces, 128 characters at most", () => {
    assert.ok(MACHINE_PATTERN.test("pi-4.local"));
    assert.ok(!MACHINE_PATTERN.test("two words"));
    assert.ok(!MACHINE_PATTERN.test(""));
    assert.ok(!MACHINE_PATTERN.test("x".repeat(129)));
  });

  it("is labelled in tables by a boot id's first 8 hex digits, or a given name whole", () => {
    assert.equal(machineLabel("boot:3f2a9c1e-0b7d-4c55-9e1a-77d0c2b4e6f1"), "boot:3f2a9c1e");
    assert.equal(machineLabel("pi-4.local"), "pi-4.local");
    assert.equal(machineLabel(undefined), "-");
  });
});
