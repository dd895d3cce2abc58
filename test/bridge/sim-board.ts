/**
 * Test support for the firmware bridge: the real Uno firmware running in simavr on a
 * pseudo-terminal (`uno-pty`), the noisy cable (`pty-proxy`), and a bridge wired to a cluster.
 * Every wait polls a real condition with a deadline; nothing sleeps in place of synchronisation.
 */
import { waitFor as pollFor } from "../support/wait.js";
import { PartitionRouter } from "../../agent/src/routing/router.js";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SerialPort } from "serialport";
import { RingleaderClient } from "../../agent/src/client/client.js";
import { createLogger, type Logger } from "../../agent/src/node/logger.js";
import { Bridge, defaultBridgeOptions, type BridgeOptions } from "../../firmware-bridge/src/bridge.js";
import { LocalCluster } from "../support/local-cluster.js";
import { DEFAULT_SESSION_OPTIONS } from "../../firmware-bridge/src/device-session.js";
import { openSerialPort } from "../../firmware-bridge/src/serial-ports.js";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const FIRMWARE = `${ROOT}firmware-bridge/build/firmware/ringleader_sensors.elf`;
export const UNO_PTY = `${ROOT}firmware-bridge/build/uno-pty`;
export const PTY_PROXY = `${ROOT}firmware-bridge/build/pty-proxy`;

/** Builds the firmware and the harness (`make firmware`) unless a fresh build is there. */
export function buildFirmware(): void {
  try {
    execFileSync("make", ["-s", "-C", ROOT, "firmware"], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(
      `make firmware failed; it needs gcc-avr avr-libc arduino-core-avr simavr libsimavr-dev libelf-dev pkg-config\n${stderr}`,
    );
  }
  for (const f of [FIRMWARE, UNO_PTY, PTY_PROXY]) if (!existsSync(f)) throw new Error(`${f} was not built`);
}

/** Resolves with the first stdout line of `child` that starts with `prefix`. */
function lineStartingWith(child: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    let stderr = "";
    const timer = setTimeout(
      () => done(new Error(`no "${prefix}" line within ${timeoutMs} ms: ${stderr}`)),
      timeoutMs,
    );
    const onData = (b: Buffer) => {
      buffered += b.toString();
      for (const line of buffered.split("\n")) {
        if (line.startsWith(prefix)) return done(null, line.slice(prefix.length).trim());
      }
    };
    const onErr = (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000));
    const onExit = (code: number | null) => done(new Error(`exited (${code}) before "${prefix}": ${stderr}`));
    const done = (err: Error | null, value?: string) => {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.stderr!.off("data", onErr);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(value!);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onErr);
    child.once("exit", onExit);
  });
}

async function stopChild(child: ChildProcess): Promise<string> {
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
  return stderr;
}

/** One simulated Uno running the demo sketch. */
export class SimBoard {
  private constructor(
    readonly child: ChildProcess,
    readonly pty: string,
  ) {}

  static async start(opts: { id: string; eeprom: string }): Promise<SimBoard> {
    const child = spawn(UNO_PTY, ["--id", opts.id, "--eeprom", opts.eeprom, FIRMWARE], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pty = await lineStartingWith(child, "pty ", 10_000);
    child.stdout!.resume();
    return new SimBoard(child, pty);
  }

  /** Resets the MCU, as a real Uno resets when the host opens its port. */
  reset(): void {
    this.child.kill("SIGUSR1");
  }

  /** Stops the simulation; returns what it said on stderr (its lag report). */
  stop(): Promise<string> {
    return stopChild(this.child);
  }
}

/** The noisy cable between a board's pty and the bridge. */
export class NoisyCable {
  private constructor(
    readonly child: ChildProcess,
    readonly pty: string,
  ) {}

  static async start(
    target: string,
    opts: { seed: number; flip: number; drop: number; garbage: number; off?: boolean },
  ): Promise<NoisyCable> {
    const args = ["--seed", String(opts.seed), "--flip", String(opts.flip), "--drop", String(opts.drop)];
    args.push("--garbage", String(opts.garbage), ...(opts.off ? ["--off"] : []), target);
    const child = spawn(PTY_PROXY, args, { stdio: ["ignore", "pipe", "pipe"] });
    const pty = await lineStartingWith(child, "pty ", 5000);
    child.stdout!.resume();
    return new NoisyCable(child, pty);
  }

  damageOn(): void {
    this.child.kill("SIGUSR1");
  }

  damageOff(): void {
    this.child.kill("SIGUSR2");
  }

  stop(): Promise<string> {
    return stopChild(this.child);
  }
}

export function quietLogger(): Logger {
  return createLogger({
    level: process.env["BRIDGE_TEST_LOG"] ? "debug" : "error",
    format: "text",
    base: { component: "bridge" },
  });
}

/** A bridge on real serial ports (ptys here), writing to `endpoints`. */
export async function startBridge(opts: {
  ports: string[];
  endpoints: string[];
  token: string;
  stateDir: string;
  overrides?: Partial<BridgeOptions>;
  /** Write to each device's partition leader, as `ringleader bridge` does (the router stops with the process). */
  route?: boolean;
}): Promise<Bridge> {
  let router: PartitionRouter | undefined;
  if (opts.route) {
    router = new PartitionRouter({ endpoints: opts.endpoints, token: opts.token, refreshMs: 5000 });
    await router.start();
  }
  const client = new RingleaderClient({
    endpoints: opts.endpoints,
    token: opts.token,
    timeoutMs: 2000,
    ...(router ? { router } : {}),
  });
  return Bridge.start(
    defaultBridgeOptions({
      ports: opts.ports,
      stateDir: opts.stateDir,
      rescanMs: 500,
      session: { ...DEFAULT_SESSION_OPTIONS },
      ...opts.overrides,
    }),
    {
      client,
      logger: quietLogger(),
      openPort: (path, baudRate) => openSerialPort((o) => new SerialPort(o), path, baudRate),
      listPorts: () => SerialPort.list(),
    },
  );
}

/**
 * A 3-node local cluster with a leader. `cluster up` once exited early (status 0, right after
 * bootstrapping) on a busy machine; one more try keeps that from failing the bridge's tests,
 * and the first failure is printed so it is not hidden.
 */
export async function startCluster(): Promise<LocalCluster> {
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.start({ nodes: 3 });
  } catch (err) {
    process.stderr.write(`starting the local cluster failed once, trying again: ${String(err)}\n`);
    cluster = await LocalCluster.start({ nodes: 3 });
  }
  await cluster.waitFor("a leader", 20_000, () => cluster.leader());
  return cluster;
}

/** Polls `probe` until it returns a truthy value, up to `timeoutMs`. */
export function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  everyMs = 50,
): Promise<T> {
  return pollFor(what, timeoutMs, probe, { everyMs });
}
