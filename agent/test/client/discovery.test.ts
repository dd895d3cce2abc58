import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseClusterFile, resolveClientConfig } from "../../src/client/discovery.js";
import { ClientConfigError } from "../../src/client/errors.js";

describe("client configuration discovery", () => {
  let dir: string;
  let empty: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "ringleader-discovery-"));
    mkdirSync(join(dir, ".data/cluster"), { recursive: true });
    const file = {
      token: "file-token",
      nodes: [
        { id: "n1", pid: 1, api: "http://127.0.0.1:7001", command: ["node"], cwd: "/" },
        { id: "n2", pid: 2, api: "http://127.0.0.1:7002/", command: ["node"], cwd: "/" },
      ],
    };
    writeFileSync(join(dir, ".data/cluster/cluster.json"), JSON.stringify(file));
    empty = mkdtempSync(join(tmpdir(), "ringleader-empty-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });

  it("reads endpoints and token from the default cluster file", () => {
    const config = resolveClientConfig({ env: {}, cwd: dir });
    assert.deepEqual(config.endpoints, ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]);
    assert.equal(config.token, "file-token");
  });

  it("prefers flags to environment variables to the cluster file, each part on its own", () => {
    const env = { RINGLEADER_ENDPOINTS: "http://127.0.0.1:8001", RINGLEADER_TOKEN: "env-token" };
    const fromEnv = resolveClientConfig({ env, cwd: dir });
    assert.deepEqual(fromEnv.endpoints, ["http://127.0.0.1:8001"]);
    assert.equal(fromEnv.token, "env-token");
    const mixed = resolveClientConfig({ endpoints: "http://127.0.0.1:9001", env: {}, cwd: dir });
    assert.deepEqual(mixed.endpoints, ["http://127.0.0.1:9001"]);
    assert.equal(mixed.token, "file-token", "the token still comes from the cluster file");
    const flags = resolveClientConfig({
      endpoints: "http://127.0.0.1:9001",
      token: "flag-token",
      env,
      cwd: empty,
    });
    assert.equal(flags.token, "flag-token");
  });

  it("says how to start a local cluster when nothing is found", () => {
    assert.throws(
      () => resolveClientConfig({ env: {}, cwd: empty }),
      (err: unknown) =>
        err instanceof ClientConfigError && /make run/.test(err.message) && /cluster up/.test(err.message),
    );
  });

  it("fails clearly when a named cluster file is missing or broken", () => {
    assert.throws(() => resolveClientConfig({ clusterFile: "nope.json", env: {}, cwd: empty }), /not found/);
    assert.throws(() => parseClusterFile("{", "x.json"), /not JSON/);
    assert.throws(
      () => parseClusterFile('{"token":"t","nodes":[{"id":"n1"}]}', "x.json"),
      /no node has an "api"/,
    );
    assert.throws(() => parseClusterFile('{"nodes":[]}', "x.json"), /no "token"/);
  });
});
