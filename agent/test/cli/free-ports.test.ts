import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePorts, portsBelowEphemeral } from "../../src/cli/free-ports.js";

async function listen(port: number): Promise<Server> {
  const s = createServer().listen(port, "127.0.0.1");
  await once(s, "listening");
  return s;
}

const close = (servers: Server[]) => Promise.all(servers.map((s) => new Promise((r) => s.close(r))));

describe("freePorts", () => {
  it("hands out distinct ports, each free to listen on once it returns", async () => {
    const ports = await freePorts(64);
    assert.equal(ports.length, 64);
    assert.equal(new Set(ports).size, 64, "no port twice");
    await close(await Promise.all(ports.map(listen)));
  });

  it("takes them from below the kernel's ephemeral range, where outgoing connections never land", async () => {
    const range = portsBelowEphemeral();
    assert.ok(range, "this Linux machine's range leaves room below it");
    const ports = await freePorts(32);
    for (const p of ports) assert.ok(p >= range[0] && p < range[1], `${p} in ${range[0]}-${range[1] - 1}`);
  });

  it("skips ports that another program holds, and says so when too few are left", async () => {
    // Four ports in a row, all ours; two are let go just before the call, so that no other test's
    // agent can be on them.
    let base = 0;
    let held: Server[] = [];
    while (held.length === 0) {
      base = 20_000 + Math.floor(Math.random() * 10_000);
      const tries = await Promise.allSettled([0, 1, 2, 3].map((i) => listen(base + i)));
      const got = tries.flatMap((t) => (t.status === "fulfilled" ? [t.value] : []));
      if (got.length === 4) held = got;
      else await close(got);
    }
    await close([held[1]!, held[3]!]);
    held = [held[0]!, held[2]!];
    try {
      const got = await freePorts(2, [base, base + 4]);
      assert.deepEqual(
        got.sort((a, b) => a - b),
        [base + 1, base + 3],
      );
      await assert.rejects(freePorts(3, [base, base + 4]), /only 2 of 4 ports in \d+-\d+ are free; 3 needed/);
    } finally {
      await close(held);
    }
  });

  it("reads the range from the kernel's file, and lets the kernel choose where there is no room", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ringleader-ports-"));
    try {
      const file = join(dir, "range");
      await writeFile(file, "32768\t60999\n");
      assert.deepEqual(portsBelowEphemeral(file), [10_000, 32_768]);
      await writeFile(file, "10500\t60999\n");
      assert.equal(portsBelowEphemeral(file), null);
      assert.equal(portsBelowEphemeral(join(dir, "missing")), null);
      const ports = await freePorts(3, null);
      assert.equal(new Set(ports).size, 3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
