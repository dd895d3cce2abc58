/**
 * site.yml against a real Debian host: a debootstrap root (bookworm, whose own nodejs is 18, so
 * the role must take Node.js from the configured tarball), driven through Ansible's chroot
 * connection. Run twice: the second run changes nothing. Then the agent is started the way
 * systemd would start it — the unit's User, EnvironmentFile and ExecStart, read from the files
 * the role installed — and must answer /healthz on loopback.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { lstat, mkdtemp, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePorts } from "../../agent/src/cli/free-ports.js";
import {
  ansiblePlaybook,
  buildRelease,
  changedTasks,
  clusterConfig,
  debootstrapRoot,
  nodeTarball,
  recap,
  run,
  waitFor,
} from "./support.js";

/** `KEY=value` lines of a systemd EnvironmentFile (comments and blanks skipped). */
function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return env;
}

function unitField(unit: string, name: string): string {
  const m = new RegExp(`^${name}=(.*)$`, "m").exec(unit);
  assert.ok(m, `the unit has no ${name}=`);
  return m[1]!;
}

const NOT_ROOT = process.getuid?.() !== 0 ? "needs root: debootstrap, chroot and mount" : false;

describe(
  "provisioning: site.yml on a debootstrap root through the chroot connection",
  { timeout: 1_200_000, skip: NOT_ROOT },
  () => {
    let work = "";
    let root = "";
    let inventory = "";
    let apiPort = 0;
    let agent: ChildProcess | null = null;
    let procMounted = false;
    const timings: string[] = [];

    before(async () => {
      work = await mkdtemp(join(tmpdir(), "ringleader-site-"));
      root = join(work, "root");
      const t0 = Date.now();
      const made = await debootstrapRoot(root);
      timings.push(`root ${made.cached ? "from cache" : "debootstrapped"} in ${made.ms} ms`);
      const files = join(work, "files");
      const t1 = Date.now();
      const [bundle, node, config] = await Promise.all([
        buildRelease(files),
        nodeTarball(files),
        clusterConfig(files, "chroot"),
      ]);
      timings.push(`release, node tarball and config in ${Date.now() - t1} ms`);
      const [api, peerPort] = (await freePorts(2)) as [number, number];
      apiPort = api;
      inventory = join(work, "inventory.yml");
      await writeFile(
        inventory,
        [
          "ringleader:",
          "  hosts:",
          "    board1:",
          "      ansible_connection: community.general.chroot",
          `      ansible_host: ${root}`,
          "      ringleader_advertise_host: 127.0.0.1",
          "      ringleader_api_host: 127.0.0.1",
          "      ringleader_peer_host: 127.0.0.1",
          `      ringleader_api_port: ${apiPort}`,
          `      ringleader_peer_port: ${peerPort}`,
          // No network for apt in the test; bookworm's nodejs is 18 anyway.
          "      ringleader_apt_update: false",
          `      ringleader_node_tarball: ${node}`,
          `      ringleader_bundle: ${bundle}`,
          `      ringleader_cluster_config: ${config}`,
          "      ringleader_bridge_enabled: true",
          "",
        ].join("\n"),
      );
      timings.push(`setup total ${Date.now() - t0} ms`);
    });

    after(async () => {
      if (agent && agent.exitCode === null && agent.signalCode === null) {
        agent.kill("SIGTERM");
        const t = setTimeout(() => agent?.kill("SIGKILL"), 10_000);
        await once(agent, "exit");
        clearTimeout(t);
      }
      if (procMounted) await run(["umount", "-l", join(root, "proc")], { timeoutMs: 30_000 });
      if (work) await rm(work, { recursive: true, force: true });
      process.stderr.write(`# site-chroot timings: ${timings.join("; ")}\n`);
    });

    it("the first run provisions the board", async () => {
      const t = Date.now();
      const r = await ansiblePlaybook(["-i", inventory, "site.yml"], 900_000);
      timings.push(`first site.yml ${Date.now() - t} ms`);
      assert.equal(r.code, 0, r.stdout.slice(-6000) + r.stderr);
      const rc = recap(r.stdout).get("board1");
      assert.ok(rc && rc.failed === 0 && rc.changed > 0, r.stdout.slice(-2000));
      assert.match(r.stdout, /Node\.js v?2\d\.\d+\.\d+ from tarball/);
    });

    it("the second run changes nothing", async () => {
      const t = Date.now();
      const r = await ansiblePlaybook(["-i", inventory, "site.yml"], 900_000);
      timings.push(`second site.yml ${Date.now() - t} ms`);
      assert.equal(r.code, 0, r.stdout.slice(-6000) + r.stderr);
      const rc = recap(r.stdout).get("board1");
      assert.equal(rc?.changed, 0, `changed tasks: ${changedTasks(r.stdout).join(", ")}`);
      assert.equal(rc?.failed, 0);
    });

    it("lays the board out like an image-built one", async () => {
      const passwd = await readFile(join(root, "etc/passwd"), "utf8");
      const user = /^ringleader:x:(\d+):(\d+):[^:]*:\/var\/lib\/ringleader:\/usr\/sbin\/nologin$/m.exec(
        passwd,
      );
      assert.ok(user, "the ringleader system user");
      const uid = Number(user[1]);
      assert.ok(uid < 1000, "a system user");
      assert.match(await readFile(join(root, "etc/group"), "utf8"), /^dialout:x:20:.*\bringleader\b/m);
      for (const [path, mode] of [
        ["etc/ringleader/ringleader.json", 0o600],
        ["etc/ringleader/client.env", 0o600],
        ["var/lib/ringleader", 0o700],
      ] as const) {
        const st = await stat(join(root, path));
        assert.equal(st.mode & 0o777, mode, path);
        assert.equal(st.uid, uid, `${path} belongs to ringleader`);
      }
      assert.equal((await stat(join(root, "etc/ringleader"))).mode & 0o777, 0o750);
      assert.equal(
        await readlink(join(root, "etc/systemd/system/multi-user.target.wants/ringleader.service")),
        "/etc/systemd/system/ringleader.service",
      );
      assert.equal(
        await readlink(join(root, "etc/systemd/system/multi-user.target.wants/ringleader-bridge.service")),
        "/etc/systemd/system/ringleader-bridge.service",
      );
      const bridge = await readFile(join(root, "etc/systemd/system/ringleader-bridge.service"), "utf8");
      assert.match(unitField(bridge, "ExecStart"), /ringleader bridge --port auto/);
      assert.match(
        await readFile(join(root, "etc/udev/rules.d/99-ringleader-serial.rules"), "utf8"),
        /idVendor}=="2341"/,
      );
      assert.ok((await lstat(join(root, "opt/ringleader/dist"))).isSymbolicLink());
      assert.ok((await stat(join(root, "opt/ringleader/dist/agent/src/cli/main.js"))).isFile());
      assert.equal(await readlink(join(root, "usr/local/bin/ringleader")), "/opt/ringleader/bin/ringleader");
    });

    it("the installed agent starts from the unit's files and answers /healthz", async () => {
      const unit = await readFile(join(root, "etc/systemd/system/ringleader.service"), "utf8");
      const execStart = unitField(unit, "ExecStart");
      const userName = unitField(unit, "User");
      const envFile = unitField(unit, "EnvironmentFile").replace(/^-/, "");
      const env = parseEnvironmentFile(await readFile(join(root, envFile), "utf8"));
      assert.equal(env["RINGLEADER_API"], `127.0.0.1:${apiPort}`);
      const passwd = await readFile(join(root, "etc/passwd"), "utf8");
      const ids = new RegExp(`^${userName}:x:(\\d+):(\\d+):`, "m").exec(passwd);
      assert.ok(ids, `user ${userName} in the root's passwd`);
      // The agent samples /proc for its board health, as on a real board.
      const m = await run(["mount", "-t", "proc", "proc", join(root, "proc")], { timeoutMs: 30_000 });
      procMounted = m.code === 0;
      const log = join(work, "agent.log");
      const { openSync, closeSync } = await import("node:fs");
      const fd = openSync(log, "a");
      agent = spawn("chroot", [`--userspec=${ids[1]}:${ids[2]}`, root, ...execStart.split(/\s+/)], {
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
        stdio: ["ignore", fd, fd],
      });
      closeSync(fd);
      const health = await waitFor("the installed agent's /healthz", 60_000, async () => {
        if (agent?.exitCode !== null) throw new Error(`the agent exited: ${await readFile(log, "utf8")}`);
        try {
          const res = await fetch(`http://127.0.0.1:${apiPort}/healthz`, {
            signal: AbortSignal.timeout(2000),
          });
          return res.status === 200 ? ((await res.json()) as { ok: boolean }) : null;
        } catch {
          return null;
        }
      });
      assert.deepEqual(health, { ok: true });
      // It runs as the ringleader user, from the release the role unpacked.
      const st = await stat(`/proc/${agent.pid}`);
      assert.equal(st.uid, Number(ids[1]));
      const exe = await readlink(`/proc/${agent.pid}/cwd`).catch(() => "");
      assert.ok(exe.startsWith(root), `the agent runs inside the root (cwd ${exe})`);
    });
  },
);
