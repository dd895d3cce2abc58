/**
 * The image's `ringleader-agent` starts Node with the flags `cluster up` uses (agentNodeFlags in
 * agent/src/node/runtime-flags.ts), the heap cap included: the script is run with a stand-in for
 * Node that prints what it was given.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { agentNodeFlags } from "../../agent/src/node/runtime-flags.js";
import { renderTemplate } from "../src/templates.js";

const MAIN = "/opt/ringleader/dist/agent/src/cli/main.js";
const dir = mkdtempSync(join(tmpdir(), "rl-launcher-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function nodeFlags(nodeOptions: string | undefined): Promise<string[]> {
  const stub = join(dir, "node");
  writeFileSync(stub, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n");
  chmodSync(stub, 0o755);
  const script = (await renderTemplate("ringleader-agent", { API_PORT: "7000", PEER_PORT: "7100" })).replace(
    "exec /usr/bin/node ",
    `exec ${stub} `,
  );
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
  const run = spawnSync("sh", ["-c", script], { env, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const args = run.stdout.trimEnd().split("\n");
  assert.ok(args.includes(MAIN), run.stdout);
  return args.slice(0, args.indexOf(MAIN));
}

describe("ringleader-agent (the image's launcher)", () => {
  it("gives Node the flags cluster up gives it on this machine", async () => {
    assert.deepEqual(await nodeFlags(undefined), agentNodeFlags(totalmem(), ""));
  });

  it("adds no heap cap when NODE_OPTIONS sets one", async () => {
    const options = "--max-old-space-size=300";
    assert.deepEqual(await nodeFlags(options), agentNodeFlags(totalmem(), options));
    assert.ok(!(await nodeFlags(options)).some((f) => f.startsWith("--max-old-space-size")));
  });
});
