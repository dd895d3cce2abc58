/**
 * Test support for provisioning/: runs the real `ansible-playbook`, reads its recap, and makes
 * what the playbooks copy (an agent release tarball for this machine, a cluster config, a
 * Node.js tarball from the Node running the tests).
 */
import type { LocalCluster } from "../support/local-cluster.js";
import { waitFor as pollFor } from "../support/wait.js";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const PROVISIONING = join(REPO, "provisioning");
export const CLI = join(REPO, "dist", "agent", "src", "cli", "main.js");
/** Shared between runs: the debootstrap root and the release's node_modules are slow to make. */
export const CACHE_DIR = process.env["RINGLEADER_TEST_CACHE"] ?? "/var/cache/ringleader-test";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(
  argv: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout = (stdout + b.toString()).slice(-400_000)));
    child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-100_000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `ansible-playbook` from provisioning/ with its ansible.cfg, no colours. */
export function ansiblePlaybook(args: readonly string[], timeoutMs = 300_000): Promise<RunResult> {
  return run(["ansible-playbook", ...args], {
    cwd: PROVISIONING,
    timeoutMs,
    env: {
      ANSIBLE_CONFIG: join(PROVISIONING, "ansible.cfg"),
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_FORCE_COLOR: "0",
      ANSIBLE_LOCALHOST_WARNING: "false",
      ANSIBLE_INVENTORY_UNPARSED_WARNING: "false",
      PY_COLORS: "0",
    },
  });
}

export interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

/** The PLAY RECAP line of each host. */
export function recap(stdout: string): Map<string, Recap> {
  const out = new Map<string, Recap>();
  const re = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm;
  for (const m of stdout.matchAll(re)) {
    out.set(m[1]!, {
      ok: Number(m[2]),
      changed: Number(m[3]),
      unreachable: Number(m[4]),
      failed: Number(m[5]),
    });
  }
  return out;
}

/** The names of the tasks that reported `changed`, to say what broke idempotence. */
export function changedTasks(stdout: string): string[] {
  const names: string[] = [];
  let task = "";
  for (const line of stdout.split("\n")) {
    const t = /^(?:TASK|RUNNING HANDLER) \[(.*)\]/.exec(line);
    if (t) task = t[1]!;
    else if (line.startsWith("changed:")) names.push(task);
  }
  return names;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function sha256File(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

/**
 * The agent release for this machine (amd64), built by `ringleader release` from the current
 * dist/ (node_modules come from the bundle cache after the first time).
 */
export async function buildRelease(outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, "ringleader-test-amd64.tar.gz");
  const r = await run([process.execPath, CLI, "release", "--arch", "amd64", "--out", file, "--json"], {
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`ringleader release failed (${r.code}): ${r.stderr}`);
  return file;
}

/** A Node.js tarball (`node/bin/node`) made from the Node running this test: the "configured source". */
export async function nodeTarball(outDir: string): Promise<string> {
  const stage = join(outDir, "node-stage");
  await mkdir(join(stage, "node", "bin"), { recursive: true });
  const file = join(outDir, "node-test.tar.gz");
  const cp = await run(["cp", process.execPath, join(stage, "node", "bin", "node")], { timeoutMs: 60_000 });
  if (cp.code !== 0) throw new Error(`cp node: ${cp.stderr}`);
  const tar = await run(["tar", "-C", stage, "-czf", file, "node"], { timeoutMs: 120_000 });
  if (tar.code !== 0) throw new Error(`tar node: ${tar.stderr}`);
  await rm(stage, { recursive: true, force: true });
  return file;
}

/** A fresh cluster config from `ringleader init`. */
export async function clusterConfig(outDir: string, name: string): Promise<string> {
  const file = join(outDir, "ringleader.json");
  const r = await run([process.execPath, CLI, "init", "--name", name, "--out", file], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`ringleader init failed: ${r.stderr}`);
  return file;
}

/**
 * A Debian bookworm minbase root with python3 (Ansible needs it), made once with debootstrap and
 * kept as a tarball keyed by `ROOT_KEY`; each test unpacks a fresh copy.
 */
const ROOT_KEY = "bookworm-minbase-python3-v1";
const MIRROR = process.env["RINGLEADER_DEBIAN_MIRROR"] ?? "http://deb.debian.org/debian";

export async function debootstrapRoot(target: string): Promise<{ cached: boolean; ms: number }> {
  const started = Date.now();
  const tarball = join(CACHE_DIR, `debootstrap-${ROOT_KEY}.tar`);
  let cached = true;
  if (!(await exists(tarball))) {
    cached = false;
    await mkdir(CACHE_DIR, { recursive: true });
    const build = join(CACHE_DIR, `.build-${process.pid}`);
    await rm(build, { recursive: true, force: true });
    try {
      const r = await run(
        ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", build, MIRROR],
        { timeoutMs: 900_000 },
      );
      if (r.code !== 0)
        throw new Error(`debootstrap failed (${r.code}): ${r.stdout.slice(-3000)}${r.stderr}`);
      const tmp = `${tarball}.tmp-${process.pid}`;
      const t = await run(["tar", "-C", build, "-cf", tmp, "."], { timeoutMs: 300_000 });
      if (t.code !== 0) throw new Error(`tar of the root failed: ${t.stderr}`);
      await rename(tmp, tarball);
    } finally {
      await rm(build, { recursive: true, force: true });
    }
  }
  await mkdir(target, { recursive: true });
  const x = await run(["tar", "-C", target, "-xf", tarball], { timeoutMs: 300_000 });
  if (x.code !== 0) throw new Error(`unpacking the cached root failed: ${x.stderr}`);
  return { cached, ms: Date.now() - started };
}

/** Polls `probe` until it returns something truthy, or throws after `timeoutMs`. */
export function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null | false>,
): Promise<T> {
  return pollFor(what, timeoutMs, probe, { everyMs: 200 });
}

/**
 * An inventory (YAML text) whose hosts are a local cluster's agents, driven through the local
 * connection with the cluster's config and this checkout's CLI; `hostVars` and `vars` add lines.
 */
export function localInventory(
  cluster: LocalCluster,
  opts: { hostVars?: (id: string) => string[]; vars?: string[] } = {},
): string {
  const hosts = [...cluster.nodes.values()].flatMap((n) => [
    `    ${n.id}:`,
    `      ringleader_node_id: ${n.id}`,
    `      ringleader_api_port: ${new URL(n.api).port}`,
    ...(opts.hostVars?.(n.id) ?? []).map((line) => `      ${line}`),
  ]);
  return [
    "ringleader:",
    "  hosts:",
    ...hosts,
    "  vars:",
    "    ansible_connection: local",
    "    ansible_become: false",
    "    ansible_python_interpreter: /usr/bin/python3",
    `    ringleader_cluster_config: ${join(cluster.dir, "ringleader.json")}`,
    `    ringleader_cli: ["${process.execPath}", "${CLI}"]`,
    ...(opts.vars ?? []).map((line) => `    ${line}`),
    "",
  ].join("\n");
}
