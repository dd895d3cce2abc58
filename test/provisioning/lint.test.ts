/**
 * provisioning/ is a real Ansible project: every playbook passes `ansible-playbook
 * --syntax-check` and the whole folder passes `ansible-lint` (Debian's packages) with no rule
 * skipped. The udev rule the role installs matches the one images get, so an Ansible-built
 * board and an image-built one treat Arduino boards alike.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PROVISIONING, REPO, ansiblePlaybook, run } from "./support.js";

const PLAYBOOKS = ["site.yml", "upgrade.yml", "backup.yml"];

describe("provisioning: syntax and lint", () => {
  for (const playbook of PLAYBOOKS) {
    it(`${playbook} passes ansible-playbook --syntax-check`, async () => {
      const r = await ansiblePlaybook(["--syntax-check", playbook], 120_000);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`playbook: ${playbook.replace(".", "\\.")}`));
    });
  }

  it("a broken playbook fails the syntax check (the check can fail)", async () => {
    const r = await ansiblePlaybook(["--syntax-check", "roles/ringleader/defaults/main.yml"], 120_000);
    assert.notEqual(r.code, 0);
  });

  it("ansible-lint passes on the playbooks, the role and the inventory, production profile, nothing skipped", async () => {
    const config = await readFile(join(PROVISIONING, ".ansible-lint"), "utf8").catch(() => "");
    assert.doesNotMatch(config, /^skip_list:\s*\n\s*-/m, "no rules may be skipped");
    // This files; `make provision-check` lints the whole folder (monitoring/ included).
    const paths = [...PLAYBOOKS, "roles/ringleader", "inventory"];
    const r = await run(["ansible-lint", "--nocolor", "--profile", "production", ...paths], {
      cwd: PROVISIONING,
      timeoutMs: 180_000,
      env: { ANSIBLE_CONFIG: join(PROVISIONING, "ansible.cfg") },
    });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(
      `${r.stdout}\n${r.stderr}`,
      /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/,
    );
  });

  it("the role's udev rule matches the image's", async () => {
    const rules = (text: string) => text.split("\n").filter((l) => l.startsWith("SUBSYSTEM=="));
    const role = rules(
      await readFile(join(PROVISIONING, "roles/ringleader/files/99-ringleader-serial.rules"), "utf8"),
    );
    const image = rules(await readFile(join(REPO, "images/templates/99-ringleader-serial.rules"), "utf8"));
    assert.deepEqual(role, image);
    for (const vendor of ["2341", "2a03", "1a86", "0403"]) {
      assert.ok(
        role.some((l) => l.includes(`ATTRS{idVendor}=="${vendor}"`) && l.includes('GROUP="dialout"')),
        `vendor ${vendor}`,
      );
    }
  });
});
