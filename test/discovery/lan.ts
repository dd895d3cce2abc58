/**
 * Test support: a LAN of network namespaces joined by a Linux bridge, and agents started inside
 * them with no peer list, to test real mDNS discovery. The bridge lives in a namespace of its
 * own (the "switch"), so nothing is created in the host's namespace and deleting the switch and
 * the board namespaces removes everything. Names carry a per-run suffix, so parallel runs do
 * not collide; addresses (10.77.0.0/24) exist only inside these namespaces.
 *
 * Every wait polls a real condition (an HTTP answer, a process exit) with a deadline.
 */
import { waitFor as pollFor } from "../support/wait.js";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../agent/src/cli/main.js", import.meta.url));

/** Why the LAN cannot be built here (not root, no `ip netns`), or null when it can. */
export function lanUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    return "`ip netns` is not available (install iproute2)";
  }
  return null;
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export interface Board {
  readonly name: string;
  readonly ns: string;
  address: string;
  readonly dataDir: string;
  readonly logPath: string;
  proc: ChildProcess | null;
  startedAt: number;
}

export interface StartOptions {
  expect?: number;
  config?: string;
  extra?: string[];
  dataDir?: string;
}

export class Lan {
  readonly boards = new Map<string, Board>();
  readonly sw: string;
  private links = 0;
  private readonly daemons: ChildProcess[] = [];

  private constructor(
    readonly dir: string,
    readonly prefix: string,
    readonly config: string,
    readonly token: string,
  ) {
    this.sw = `${prefix}sw`;
  }

  static async create(): Promise<Lan> {
    const dir = await mkdtemp(join(tmpdir(), "ringleader-lan-"));
    const prefix = `rl${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
    const config = join(dir, "ringleader.json");
    execFileSync(process.execPath, [CLI, "init", "--name", "lab", "--out", config], { stdio: "ignore" });
    const token = (JSON.parse(readFileSync(config, "utf8")) as { token: string }).token;
    const lan = new Lan(dir, prefix, config, token);
    ip("netns", "add", lan.sw);
    for (const br of ["br0", "br1"]) {
      ip("-n", lan.sw, "link", "add", br, "type", "bridge");
      ip("-n", lan.sw, "link", "set", br, "up");
    }
    ip("-n", lan.sw, "link", "set", "lo", "up");
    return lan;
  }

  /**
   * A new board: its namespace, one link to the switch (up unless `linkUp` is false), an address.
   * Boards on `br1` form a second LAN segment until `move` plugs them into `br0`.
   */
  addBoard(name: string, address: string, linkUp = true, bridge = "br0"): Board {
    const ns = `${this.prefix}${name}`;
    const port = `v${++this.links}`;
    ip("netns", "add", ns);
    ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", this.sw);
    ip("-n", this.sw, "link", "set", port, "master", bridge);
    ip("-n", this.sw, "link", "set", port, linkUp ? "up" : "down");
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
    ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0");
    const board: Board = {
      name,
      ns,
      address,
      dataDir: join(this.dir, name),
      logPath: join(this.dir, `${name}.log`),
      proc: null,
      startedAt: 0,
    };
    (board as { port?: string }).port = port;
    this.boards.set(name, board);
    return board;
  }

  /** Brings a board's link to the switch up or down (unplugging its cable). */
  link(name: string, up: boolean): void {
    const port = (this.boards.get(name) as { port?: string }).port!;
    ip("-n", this.sw, "link", "set", port, up ? "up" : "down");
  }

  /** Drops a board's multicast route: its mDNS goes nowhere (a network that blocks multicast). */
  blockMulticast(name: string): void {
    ip("-n", this.boards.get(name)!.ns, "route", "del", "224.0.0.0/4", "dev", "eth0");
  }

  /** Plugs a board into another segment of the switch. */
  move(name: string, bridge: string): void {
    const port = (this.boards.get(name) as { port?: string }).port!;
    ip("-n", this.sw, "link", "set", port, "master", bridge);
  }

  /** Gives a board a new address (DHCP handed out another one). */
  readdress(name: string, address: string): void {
    const b = this.boards.get(name)!;
    ip("-n", b.ns, "addr", "flush", "dev", "eth0");
    ip("-n", b.ns, "addr", "add", `${address}/24`, "dev", "eth0");
    ip("-n", b.ns, "route", "replace", "224.0.0.0/4", "dev", "eth0");
    b.address = address;
  }

  /** Starts `ringleader agent --data DIR` in the board's namespace: no peer list. */
  start(name: string, opts: StartOptions = {}): Board {
    const b = this.boards.get(name)!;
    const args = [
      "netns",
      "exec",
      b.ns,
      process.execPath,
      CLI,
      "agent",
      "--config",
      opts.config ?? this.config,
      "--data",
      opts.dataDir ?? b.dataDir,
      "--id",
      name,
      "--api",
      "0.0.0.0:7000",
      "--peer",
      "0.0.0.0:7100",
      "--advertise-host",
      b.address,
      "--tick-ms",
      "50",
      "--bootstrap-expect",
      String(opts.expect ?? 3),
      "--partitions",
      "8",
      "--log-format",
      "json",
      "--log-level",
      "info",
      ...(opts.extra ?? []),
    ];
    const log = openSync(b.logPath, "a");
    const proc = spawn("ip", args, { stdio: ["ignore", log, log] });
    proc.once("exit", () => closeSync(log));
    b.proc = proc;
    b.startedAt = Date.now();
    return b;
  }

  async stopBoard(name: string): Promise<void> {
    const p = this.boards.get(name)?.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await once(p, "exit");
    clearTimeout(t);
  }

  /** Runs a command inside a board's namespace and returns its stdout. */
  exec(name: string, cmd: string, args: string[], env: Record<string, string> = {}): string {
    const b = this.boards.get(name)!;
    return execFileSync("ip", ["netns", "exec", b.ns, cmd, ...args], {
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
  }

  /**
   * Starts a long-running command inside a board's namespace (`ip netns exec` execs it, so the
   * child's pid is the command's own and a signal reaches it directly); `destroy` stops it.
   */
  spawnIn(name: string, cmd: string, args: string[]): ChildProcess {
    const b = this.boards.get(name)!;
    const child = spawn("ip", ["netns", "exec", b.ns, cmd, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.daemons.push(child);
    return child;
  }

  /** GET a board's API (JSON) from inside its namespace; null unless it answered 200. */
  async api<T>(name: string, path: string): Promise<T | null> {
    const r = await this.raw(name, path);
    if (r.status !== 200) return null;
    try {
      return JSON.parse(r.body) as T;
    } catch {
      return r.body as T;
    }
  }

  /** GET a board's API path from inside its namespace: the status and the body text. */
  async raw(name: string, path: string): Promise<{ status: number; body: string }> {
    const b = this.boards.get(name)!;
    const script = `fetch(${JSON.stringify(`http://127.0.0.1:7000${path}`)},{headers:{authorization:${JSON.stringify(
      `Bearer ${this.token}`,
    )}},signal:AbortSignal.timeout(3000)}).then(async r=>{process.stdout.write(r.status+"\\n"+await r.text())}).catch(()=>process.stdout.write("0\\n"))`;
    const child = spawn("ip", ["netns", "exec", b.ns, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await once(child, "exit");
    const nl = out.indexOf("\n");
    return { status: Number(out.slice(0, nl)), body: out.slice(nl + 1) };
  }

  waitFor<T>(
    what: string,
    timeoutMs: number,
    probe: () => Promise<T | null | undefined | false>,
  ): Promise<T> {
    return pollFor(what, timeoutMs, probe, { everyMs: 200, context: () => this.tails() });
  }

  tails(): string {
    return [...this.boards.values()]
      .map((b) => {
        let text = "";
        try {
          text = readFileSync(b.logPath, "utf8");
        } catch {
          return `--- ${b.name}: no log`;
        }
        return `--- ${b.name}\n${text.split("\n").slice(-12).join("\n")}`;
      })
      .join("\n");
  }

  /**
   * Starts avahi-daemon in a board's namespace with a private D-Bus (its own bus daemon and
   * socket in the LAN's directory) and a private /run/avahi-daemon (a tmpfs in a mount
   * namespace), so it neither meets the host's avahi nor another test's. Returns the environment
   * under which `avahi-browse` talks to it.
   */
  async startAvahi(name: string): Promise<Record<string, string>> {
    const b = this.boards.get(name)!;
    const dir = join(this.dir, `avahi-${name}`);
    mkdirSync(dir, { recursive: true });
    const socket = join(dir, "bus");
    writeFileSync(
      join(dir, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/><allow send_destination="*"/><allow receive_type="*"/></policy>
</busconfig>\n`,
    );
    writeFileSync(
      join(dir, "avahi.conf"),
      "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\nenable-dbus=yes\nratelimit-burst=1000\n" +
        "[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\n",
    );
    const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` };
    const bus = spawn(
      "ip",
      ["netns", "exec", b.ns, "dbus-daemon", "--nofork", `--config-file=${join(dir, "bus.conf")}`],
      {
        stdio: "ignore",
      },
    );
    this.daemons.push(bus);
    await this.waitFor("the private D-Bus socket", 10_000, async () => existsSync(socket));
    const script =
      "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && " +
      `exec avahi-daemon -f ${join(dir, "avahi.conf")} --no-drop-root --no-chroot --no-rlimits`;
    const log = openSync(join(dir, "avahi.log"), "a");
    const avahi = spawn("ip", ["netns", "exec", b.ns, "unshare", "-m", "sh", "-c", script], {
      stdio: ["ignore", log, log],
      env: { ...process.env, ...env },
    });
    avahi.once("exit", () => closeSync(log));
    this.daemons.push(avahi);
    await this.waitFor("avahi-daemon on its D-Bus", 15_000, async () => {
      try {
        execFileSync("ip", ["netns", "exec", b.ns, "avahi-browse", "-atp", "--no-db-lookup"], {
          env: { ...process.env, ...env },
          stdio: "ignore",
          timeout: 5000,
        });
        return true;
      } catch {
        return false;
      }
    });
    return env;
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.boards.keys()].map((n) => this.stopBoard(n).catch(() => {})));
    for (const d of this.daemons.reverse()) {
      if (d.exitCode !== null || d.signalCode !== null) continue;
      d.kill("SIGTERM");
      const t = setTimeout(() => d.kill("SIGKILL"), 5000);
      await once(d, "exit");
      clearTimeout(t);
    }
    for (const b of this.boards.values()) {
      try {
        ip("netns", "del", b.ns);
      } catch {
        // Already gone.
      }
    }
    try {
      ip("netns", "del", this.sw);
    } catch {
      // Already gone.
    }
    if (process.env["RINGLEADER_KEEP_LAN"] === "1") process.stderr.write(`# LAN kept in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}

export interface Status {
  id: string;
  clusterId: string | null;
  leader: string | null;
  health: { ok: boolean };
  members: { id: string; peer: string; api: string; state: string }[];
  replicaOf: number;
  discovery: {
    alarm: string | null;
    foreign: { id: string; clusterId: string }[];
    counters: Record<string, number>;
  } | null;
}
