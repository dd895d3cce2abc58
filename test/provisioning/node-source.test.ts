/**
 * The role's Node.js step on a board whose packages are too old (Debian 12 offers nodejs 18):
 * with no other source configured it must stop with a message that names the candidate version
 * and the variables that fix it, before anything is installed. The role's own `node` tasks run
 * against localhost, with a stand-in `apt-cache` on the PATH that answers as Debian 12's does;
 * nothing on this machine is changed, so no chroot is needed.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { PROVISIONING, run, type RunResult } from "./support.js";

const BOOKWORM_POLICY = `nodejs:
  Installed: (none)
  Candidate: 18.19.0+dfsg-6~deb12u2
  Version table:
     18.19.0+dfsg-6~deb12u2 500
        500 http://deb.debian.org/debian bookworm/main arm64 Packages
`;

const FAILURE = "Fail when nothing gives Node.js 20 or later";

describe("provisioning: Node.js source when the OS packages are too old", { timeout: 240_000 }, () => {
  let dir: string;
  let playbook: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ringleader-node-source-"));
    await writeFile(join(dir, "apt-cache"), `#!/bin/sh\ncat <<'EOF'\n${BOOKWORM_POLICY}EOF\n`);
    await chmod(join(dir, "apt-cache"), 0o755);
    playbook = join(dir, "node.yml");
    // The role's defaults come with include_role; only the apt refresh is turned off (no network).
    await writeFile(
      playbook,
      [
        "- name: Node.js step of the ringleader role",
        "  hosts: localhost",
        "  connection: local",
        "  gather_facts: false",
        "  tasks:",
        "    - name: Run the role's node tasks",
        "      ansible.builtin.include_role:",
        "        name: ringleader",
        "        tasks_from: node",
        "      vars:",
        "        ringleader_apt_update: false",
        "",
      ].join("\n"),
    );
    env = {
      PATH: `${dir}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
      ANSIBLE_CONFIG: join(PROVISIONING, "ansible.cfg"),
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_FORCE_COLOR: "0",
      ANSIBLE_LOCALHOST_WARNING: "false",
      PY_COLORS: "0",
    };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function runNodeTasks(extraVars: Record<string, string>): Promise<RunResult> {
    const argv = ["ansible-playbook", "-i", "localhost,", "-e", JSON.stringify(extraVars), playbook];
    return run(argv, { cwd: PROVISIONING, env, timeoutMs: 180_000 });
  }

  it("fails with the candidate version and every variable that fixes it when no source is set", async () => {
    const r = await runNodeTasks({});
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 2, out);
    assert.match(r.stdout, new RegExp(`TASK \\[ringleader : ${FAILURE}\\]`), out);
    assert.match(r.stdout, /fatal: \[localhost\]: FAILED!/, out);
    const message = out.replace(/\s+/g, " ");
    assert.match(
      message,
      /Node\.js 20 or later is needed, but this system's packages offer nodejs 18\.19\.0/,
    );
    for (const variable of ["ringleader_node_apt_repo", "ringleader_node_deb", "ringleader_node_tarball"]) {
      assert.ok(message.includes(variable), `the message names ${variable}: ${out}`);
    }
    // It stopped there: no install task was reached.
    assert.doesNotMatch(r.stdout, /TASK \[ringleader : Install/, out);
    assert.match(r.stdout, /localhost\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1/, out);
  });

  it("goes on to the configured source instead when one is set (the failure is conditional)", async () => {
    // A .deb that does not exist fails at the copy, on the controller, before the board is touched.
    const r = await runNodeTasks({ ringleader_node_deb: join(dir, "missing-nodejs.deb") });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.notEqual(r.code, 0, out);
    assert.match(
      r.stdout,
      new RegExp(`TASK \\[ringleader : ${FAILURE}\\] \\**\\n\\s*skipping: \\[localhost\\]`),
      out,
    );
    assert.match(r.stdout, /TASK \[ringleader : Copy the \.deb to the board\]/, out);
    assert.doesNotMatch(out, /Node\.js 20 or later is needed/);
  });
});
