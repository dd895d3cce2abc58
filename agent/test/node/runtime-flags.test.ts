import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AGENT_MAX_OLD_SPACE_MIB, agentNodeFlags } from "../../src/node/runtime-flags.js";

const GiB = 1024 ** 3;
const CAP = `--max-old-space-size=${AGENT_MAX_OLD_SPACE_MIB}`;

describe("agentNodeFlags", () => {
  it("caps the old generation at 1 GiB only where V8 would pick more (over 4 GiB of memory)", () => {
    assert.deepEqual(agentNodeFlags(0.5 * GiB, ""), ["--max-semi-space-size=8"]);
    assert.deepEqual(agentNodeFlags(4 * GiB, ""), ["--max-semi-space-size=8"]);
    assert.deepEqual(agentNodeFlags(4 * GiB + 4096, ""), ["--max-semi-space-size=8", CAP]);
    assert.deepEqual(agentNodeFlags(24 * GiB, ""), ["--max-semi-space-size=8", CAP]);
  });

  it("leaves a cap set in NODE_OPTIONS alone (a command-line flag would override it)", () => {
    assert.deepEqual(agentNodeFlags(24 * GiB, "--max-old-space-size=300"), ["--max-semi-space-size=8"]);
    assert.deepEqual(agentNodeFlags(24 * GiB, "--trace-gc"), ["--max-semi-space-size=8", CAP]);
  });
});
