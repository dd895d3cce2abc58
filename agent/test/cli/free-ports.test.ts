import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import { freePorts } from "../../src/cli/free-ports.js";

describe("freePorts", () => {
  it("hands out distinct ports, each free to listen on once it returns", async () => {
    const ports = await freePorts(64);
    assert.equal(ports.length, 64);
    assert.equal(new Set(ports).size, 64, "no port twice");
    const servers = ports.map((p) => createServer().listen(p, "127.0.0.1"));
    try {
      await Promise.all(servers.map((s) => once(s, "listening")));
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  });
});
