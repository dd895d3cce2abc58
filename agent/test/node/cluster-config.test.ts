import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newClusterConfig, newToken } from "../../src/node/cluster-config.js";

describe("cluster config: new tokens", () => {
  it("never start with a dash, so `--token <t>` on a command line is never read as options", () => {
    // Plain base64url starts with '-' one time in 64: 2,000 draws would all but surely show one.
    const tokens = Array.from({ length: 2000 }, () => newToken());
    for (const t of tokens) assert.match(t, /^rl_[A-Za-z0-9_-]{32}$/);
    assert.equal(new Set(tokens).size, tokens.length, "tokens repeat");
    const cfg = newClusterConfig("lab", new Date(0));
    assert.ok(cfg.readToken && cfg.readToken !== cfg.token);
    for (const t of [cfg.token, cfg.readToken]) assert.match(t, /^rl_/);
  });
});
