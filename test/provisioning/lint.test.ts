/**
 * provisioning/ is a real Ansible project: every playbook passes `ansible-playbook
 * --syntax-check` (monitoring/targets.yml included) and the whole folder passes `ansible-lint` (Debian's packages) with no rule
 * skipped. The udev rule the role installs matches the one images get, so an Ansible-built
 * board and an image-built one treat Arduino boards alike.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { PROVISIONING, REPO, ansiblePlaybook, run, type RunResult } from "./support.js";

const PLAYBOOKS = ["site.yml", "upgrade.yml", "backup.yml", "monitoring/targets.yml"];

/** `ansible-lint` over a whole provisioning folder, exactly as `make provision-check` runs it. */
function lint(dir: string): Promise<RunResult> {
  return run(["ansible-lint", "--nocolor", "--profile", "production"], {
    cwd: dir,
    timeoutMs: 180_000,
    env: { ANSIBLE_CONFIG: join(dir, "ansible.cfg") },
  });
}

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

  it("ansible-lint passes on the whole folder, as `make provision-check` runs it: production profile, nothing skipped", async () => {
    const config = await readFile(join(PROVISIONING, ".ansible-lint"), "utf8").catch(() => "");
    assert.doesNotMatch(config, /^skip_list:\s*\n\s*-/m, "no rules may be skipped");
    const r = await lint(PROVISIONING);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(
      `${r.stdout}\n${r.stderr}`,
      /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/,
    );
  });

  it("that lint covers monitoring/targets.yml: a copy with a flaw there fails, naming the file", async () => {
    const copy = await mkdtemp(join(tmpdir(), "ringleader-lint-"));
    try {
      await cp(PROVISIONING, copy, { recursive: true, filter: (src) => !src.endsWith(".tar.gz") });
      const targets = join(copy, "monitoring/targets.yml");
      const text = await readFile(targets, "utf8");
      // The production profile wants fully qualified module names.
      const flawed = text.replace("ansible.builtin.template:", "template:");
      assert.notEqual(flawed, text, "the flaw was not written");
      await writeFile(targets, flawed);
      const r = await lint(copy);
      assert.notEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
      const out = `${r.stdout}\n${r.stderr}`;
      assert.match(out, /^fqcn\[action-core\]/m, out);
      assert.match(out, /^monitoring\/targets\.yml:\d+/m, out);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("the role's README documents every variable of its defaults", async () => {
    const role = join(PROVISIONING, "roles/ringleader");
    const defaults = await readFile(join(role, "defaults/main.yml"), "utf8");
    const readme = await readFile(join(role, "README.md"), "utf8");
    const names = [...defaults.matchAll(/^([a-z_][a-z0-9_]*):/gm)].map((m) => m[1]!);
    assert.ok(names.length >= 30, `only ${names.length} variables found in defaults/main.yml`);
    // A row of the variables table names the variable in backticks in its first cell.
    const rows = readme.split("\n").filter((line) => line.startsWith("| `"));
    const undocumented = names.filter(
      (name) => !rows.some((row) => row.split("|")[1]!.includes(`\`${name}\``)),
    );
    assert.deepEqual(undocumented, [], "variables missing from the README's table");
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
