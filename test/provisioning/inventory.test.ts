/**
 * The dynamic inventory script runs `ringleader inventory --ansible` and hands its JSON to
 * Ansible. A fake `ringleader` on PATH prints what the real command prints (standard dynamic
 * inventory JSON), so the script is tested end to end through `ansible-inventory`, and its
 * failures (command missing, failing, printing garbage) are clear.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { PROVISIONING, run } from "./support.js";

const SCRIPT = join(PROVISIONING, "inventory", "ringleader_inventory.py");

const INVENTORY = {
  _meta: {
    hostvars: {
      pi1: {
        ansible_host: "192.168.1.21",
        ringleader_node_id: "pi1",
        ringleader_api_port: 7000,
        ringleader_peer_port: 7100,
      },
      pi2: {
        ansible_host: "192.168.1.22",
        ringleader_node_id: "pi2",
        ringleader_api_port: 7000,
        ringleader_peer_port: 7100,
      },
      pi3: {
        ansible_host: "192.168.1.23",
        ringleader_node_id: "pi3",
        ringleader_api_port: 7000,
        ringleader_peer_port: 7100,
      },
    },
  },
  ringleader: { hosts: ["pi1", "pi2", "pi3"] },
  up: { hosts: ["pi1", "pi2"] },
  draining: { hosts: ["pi3"] },
};

describe("provisioning: dynamic inventory", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-inventory-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fake(name: string, body: string): Promise<string> {
    const bin = join(dir, name);
    await writeFile(join(dir, `${name}.out`), body);
    // Records its arguments, so the test sees the script asked for --ansible.
    await writeFile(
      bin,
      `#!/bin/sh\necho "$@" > ${join(dir, `${name}.args`)}\ncat ${join(dir, `${name}.out`)}\n`,
    );
    await chmod(bin, 0o755);
    return bin;
  }

  it("ansible-inventory sees the boards, groups and hostvars the command reports", async () => {
    const bin = await fake("ringleader", JSON.stringify(INVENTORY));
    const r = await run(["ansible-inventory", "-i", SCRIPT, "--list"], {
      timeoutMs: 60_000,
      env: { RINGLEADER_BIN: bin, ANSIBLE_NOCOLOR: "1" },
    });
    assert.equal(r.code, 0, r.stderr);
    const inv = JSON.parse(r.stdout) as {
      _meta: { hostvars: Record<string, Record<string, unknown>> };
      ringleader: { hosts: string[] };
      draining: { hosts: string[] };
    };
    assert.deepEqual(inv.ringleader.hosts.sort(), ["pi1", "pi2", "pi3"]);
    assert.deepEqual(inv.draining.hosts, ["pi3"]);
    assert.equal(inv._meta.hostvars["pi2"]?.["ansible_host"], "192.168.1.22");
    assert.equal(inv._meta.hostvars["pi2"]?.["ringleader_node_id"], "pi2");
    const args = await run(["cat", join(dir, "ringleader.args")], { timeoutMs: 5000 });
    assert.match(args.stdout, /^inventory --ansible/);
  });

  it("--host answers one board's variables", async () => {
    const bin = await fake("ringleader", JSON.stringify(INVENTORY));
    const r = await run(["python3", SCRIPT, "--host", "pi3"], {
      timeoutMs: 30_000,
      env: { RINGLEADER_BIN: bin },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { ringleader_peer_port: number }).ringleader_peer_port, 7100);
  });

  it("refuses output that is not an Ansible inventory, with a clear message", async () => {
    const bin = await fake("garbage", "mdns: no answer\n");
    const r = await run(["python3", SCRIPT, "--list"], { timeoutMs: 30_000, env: { RINGLEADER_BIN: bin } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not print JSON/);
    const shape = await fake("shape", JSON.stringify({ ringleader: ["pi1"] }));
    const r2 = await run(["python3", SCRIPT, "--list"], {
      timeoutMs: 30_000,
      env: { RINGLEADER_BIN: shape },
    });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /no _meta\.hostvars/);
  });

  it("says so when the ringleader command is missing or fails", async () => {
    const missing = await run(["python3", SCRIPT, "--list"], {
      timeoutMs: 30_000,
      env: { RINGLEADER_BIN: join(dir, "no-such-ringleader") },
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not on the PATH/);
    const failing = join(dir, "failing");
    await writeFile(failing, "#!/bin/sh\necho 'no boards answered' >&2\nexit 3\n");
    await chmod(failing, 0o755);
    const r = await run(["python3", SCRIPT, "--list"], {
      timeoutMs: 30_000,
      env: { RINGLEADER_BIN: failing },
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /failed \(3\): no boards answered/);
  });
});
