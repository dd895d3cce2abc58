/**
 * `ringleader image build` and `ringleader image flash`: a ready-to-flash Raspberry Pi OS image
 * with the agent and the cluster config inside, and a flasher that refuses the wrong disk and
 * verifies what it wrote. The work lives in images/src/; this file maps flags and errors.
 */
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import type { CommandModule } from "yargs";
import { ConfigError } from "../../node/cluster-config.js";
import { CheckFailedError, UsageError } from "../errors.js";
import { failToBoundary } from "../options.js";

interface BuildArgs {
  base: string;
  config: string;
  out: string;
  force: boolean;
  hostname: string;
  boards?: string;
  user?: string;
  "password-hash"?: string;
  "ssh-key"?: string[];
  "wifi-ssid"?: string;
  "wifi-password"?: string;
  "wifi-hidden": boolean;
  "wifi-country"?: string;
  timezone?: string;
  locale?: string;
  keyboard?: string;
  firstboot: string;
  runtime: string;
  arch?: string;
  peers?: string;
  "api-port": number;
  "peer-port": number;
  grow: boolean;
  "cache-dir"?: string;
  mirror?: string;
  json: boolean;
}

interface FlashArgs {
  image: string;
  device: string;
  yes: boolean;
  force: boolean;
  verify: boolean;
  json: boolean;
}

/** The images/ modules load only when an image command runs, so the agent starts without them. */
const images = {
  build: () => import("../../../../images/src/build.js"),
  flash: () => import("../../../../images/src/flash.js"),
  boards: () => import("../../../../images/src/boards.js"),
  firstboot: () => import("../../../../images/src/firstboot.js"),
  errors: () => import("../../../../images/src/errors.js"),
  tools: () => import("../../../../images/src/tools.js"),
  progress: () => import("../../../../images/src/progress.js"),
};

/** Errors the user can act on become usage errors (exit 2); a failed verification is exit 1. */
async function explainImageError(err: unknown): Promise<unknown> {
  const e = await images.errors();
  const userFixable = [
    e.ImageSettingsError,
    e.MissingToolError,
    e.NotRaspberryPiOsError,
    e.UnsupportedBaseError,
    e.TruncatedImageError,
    e.NoRoomError,
    e.FlashRefusedError,
    e.NotConfirmedError,
    ConfigError,
  ];
  if (userFixable.some((cls) => err instanceof cls)) return new UsageError((err as Error).message);
  if (err instanceof e.VerifyFailedError) return new CheckFailedError(err.message);
  if (err instanceof e.AbortedError) return new CheckFailedError(err.message);
  return err;
}

/** Ctrl-C cancels the running operation cleanly instead of killing it mid-write. */
function cancelOnSigint(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once("SIGINT", onSigint);
  return { signal: controller.signal, dispose: () => process.off("SIGINT", onSigint) };
}

async function settingsFromArgs(args: BuildArgs) {
  const { parseHostnamePattern, parseBoardsCsv } = await images.boards();
  const fb = await images.firstboot();
  const boards = args.boards
    ? parseBoardsCsv(
        await readFile(args.boards, "utf8").catch(() => {
          throw new UsageError(`cannot read the boards CSV ${args.boards}`);
        }),
      )
    : null;
  const sshKeys: string[] = [];
  for (const file of args["ssh-key"] ?? []) {
    const text = await readFile(file, "utf8").catch(() => {
      throw new UsageError(`cannot read the SSH key file ${file}`);
    });
    for (const line of text.split("\n"))
      if (line.trim() !== "" && !line.startsWith("#")) sshKeys.push(fb.validateSshKey(line));
  }
  const passwordHash = args["password-hash"] ? fb.validatePasswordHash(args["password-hash"]) : null;
  if ((passwordHash || sshKeys.length > 0) && !args.user)
    throw new UsageError("--password-hash and --ssh-key need --user");
  if (args.user && !passwordHash && sshKeys.length === 0) {
    throw new UsageError("--user needs --password-hash or --ssh-key, or nobody could log in");
  }
  const country = args["wifi-country"] ? fb.validateCountry(args["wifi-country"]) : null;
  const ssid = args["wifi-ssid"];
  const wifiPassword = args["wifi-password"] ?? process.env["RINGLEADER_WIFI_PASSWORD"];
  if (ssid !== undefined && (!country || wifiPassword === undefined)) {
    throw new UsageError(
      "--wifi-ssid needs --wifi-country and --wifi-password (or $RINGLEADER_WIFI_PASSWORD)",
    );
  }
  if (ssid !== undefined && (ssid.length === 0 || Buffer.byteLength(ssid) > 32))
    throw new UsageError("--wifi-ssid must be 1-32 bytes");
  return {
    hostname: parseHostnamePattern(args.hostname),
    boards,
    user: args.user ? { name: fb.validateUserName(args.user), passwordHash, sshKeys } : null,
    wifi:
      ssid !== undefined && wifiPassword !== undefined
        ? { ssid, psk: fb.wifiPsk(ssid, wifiPassword), hidden: args["wifi-hidden"] }
        : null,
    country,
    timezone: args.timezone ? fb.validateTimezone(args.timezone) : null,
    locale: args.locale ? fb.validateLocale(args.locale) : null,
    keyboard: args.keyboard ? fb.validateKeyboard(args.keyboard) : null,
  };
}

function port(value: number, flag: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new UsageError(`${flag} must be a port number`);
  return value;
}

const buildCommand: CommandModule<object, BuildArgs> = {
  command: "build",
  describe: "Make a ready-to-flash Raspberry Pi OS image with the agent and the cluster config inside",
  builder: (y) =>
    y
      .option("base", {
        type: "string",
        demandOption: true,
        describe: "Raspberry Pi OS (trixie or later) .img or .img.xz",
      })
      .option("config", {
        type: "string",
        default: "ringleader.json",
        describe: "Cluster config from `ringleader init`",
      })
      .option("out", { type: "string", demandOption: true, describe: "The image to write (.img)" })
      .option("force", { type: "boolean", default: false, describe: "Replace --out if it exists" })
      .option("hostname", {
        type: "string",
        default: "ringleader-{serial}",
        describe: "Hostname, or a pattern with {serial} / {mac} (last 6 hex digits) for one name per board",
      })
      .option("boards", {
        type: "string",
        describe: "CSV of boards (hostname,serial or hostname,mac): names and static peers",
      })
      .option("user", { type: "string", describe: "Login user to create on first boot" })
      .option("password-hash", {
        type: "string",
        describe: "The user's password as a crypt hash (mkpasswd -m yescrypt)",
      })
      .option("ssh-key", {
        type: "string",
        array: true,
        describe: "Public key file(s) for the user (enables SSH)",
      })
      .option("wifi-ssid", { type: "string", describe: "Wi-Fi network name" })
      .option("wifi-password", {
        type: "string",
        describe: "Wi-Fi passphrase (default: $RINGLEADER_WIFI_PASSWORD); stored as its PSK",
      })
      .option("wifi-hidden", {
        type: "boolean",
        default: false,
        describe: "The network does not broadcast its name",
      })
      .option("wifi-country", { type: "string", describe: "Wi-Fi country (regulatory domain), e.g. GB" })
      .option("timezone", { type: "string", describe: "e.g. Europe/London" })
      .option("locale", { type: "string", describe: "e.g. en_GB.UTF-8" })
      .option("keyboard", { type: "string", describe: "Keyboard layout, e.g. gb" })
      .option("firstboot", {
        type: "string",
        choices: ["auto", "cloud-init", "firstrun"],
        default: "auto",
        describe: "First-boot route: cloud-init (current Raspberry Pi OS) or the older firstrun.sh",
      })
      .option("runtime", {
        type: "string",
        choices: ["offline", "online"],
        default: "offline",
        describe: "Node.js: Debian packages shipped in the image, or fetched on first boot",
      })
      .option("arch", {
        type: "string",
        choices: ["arm64", "armhf"],
        describe: "Fail unless the base is for this architecture",
      })
      .option("peers", {
        type: "string",
        describe: "Static peers id=host:port,... (default: from --boards, else empty)",
      })
      .option("api-port", { type: "number", default: 7000, describe: "Client API port on the boards" })
      .option("peer-port", { type: "number", default: 7100, describe: "Peer port on the boards" })
      .option("grow", {
        type: "boolean",
        default: true,
        describe: "Grow the root partition when needed (--no-grow: fail instead)",
      })
      .option("cache-dir", {
        type: "string",
        describe: "Bundle and package cache (default: $RINGLEADER_CACHE_DIR or ~/.cache/ringleader)",
      })
      .option("mirror", { type: "string", describe: "Debian mirror for the Node.js packages" })
      .option("json", { type: "boolean", default: false })
      .example(
        "$0 image build --base 2025-11-24-raspios-trixie-arm64-lite.img.xz --config ringleader.json --out shelf.img --ssh-key ~/.ssh/id_ed25519.pub --user pi",
        "one image for every board; each names itself ringleader-<serial>",
      )
      .example(
        "$0 image build --base raspios.img.xz --out shelf.img --boards boards.csv --wifi-ssid home --wifi-country GB",
        "names and static peers from a CSV of boards; Wi-Fi passphrase from $RINGLEADER_WIFI_PASSWORD",
      )
      .fail(failToBoundary),
  handler: async (args) => {
    const { buildImage, defaultCacheDir } = await images.build();
    const { ToolRunner } = await images.tools();
    const { TerminalProgress, silentProgress, formatBytes } = await images.progress();
    const cancel = cancelOnSigint();
    try {
      const settings = await settingsFromArgs(args);
      const report = await buildImage({
        base: args.base,
        out: args.out,
        clusterConfig: args.config,
        overwrite: args.force,
        settings,
        route: args.firstboot as "auto" | "cloud-init" | "firstrun",
        runtime: args.runtime as "offline" | "online",
        ...(args.arch ? { arch: args.arch as "arm64" | "armhf" } : {}),
        ...(args.peers !== undefined ? { peers: args.peers } : {}),
        apiPort: port(args["api-port"], "--api-port"),
        peerPort: port(args["peer-port"], "--peer-port"),
        grow: args.grow,
        cacheDir: args["cache-dir"] ?? defaultCacheDir(),
        ...(args.mirror ? { mirror: args.mirror } : {}),
        tools: new ToolRunner(),
        progress: args.json ? silentProgress : new TerminalProgress(process.stderr),
        signal: cancel.signal,
      });
      if (args.json) {
        process.stdout.write(JSON.stringify(report) + "\n");
        return;
      }
      process.stdout.write(
        `Built ${report.out}: ${report.baseOs} ${report.arch}, ${formatBytes(report.imageBytes)}` +
          (report.grownBytes > 0 ? ` (root grown by ${formatBytes(report.grownBytes)})` : "") +
          ` in ${(report.elapsedMs / 1000).toFixed(1)} s.\n` +
          `Agent ${formatBytes(report.bundleBytes)} in /opt/ringleader; Node.js ${report.runtime === "offline" ? `from ${report.runtimePackages.length} packages in the image` : "installed from the network"} on first boot; first boot via ${report.route}.\n` +
          `Flash it with: ringleader image flash ${report.out} /dev/sdX\n`,
      );
    } catch (err) {
      throw await explainImageError(err);
    } finally {
      cancel.dispose();
    }
  },
};

async function askOnTerminal(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new UsageError("there is no terminal to confirm on; pass --yes to write without asking");
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

const flashCommand: CommandModule<object, FlashArgs> = {
  command: "flash <image> <device>",
  describe: "Write an image to an SD card (or a file) and verify it by reading it back",
  builder: (y) =>
    y
      .positional("image", { type: "string", demandOption: true, describe: "The .img or .img.xz" })
      .positional("device", {
        type: "string",
        demandOption: true,
        describe: "The card (/dev/sdX, /dev/mmcblk0) or a file",
      })
      .option("yes", {
        alias: "y",
        type: "boolean",
        default: false,
        describe: "Do not ask before writing (for scripts)",
      })
      .option("force", {
        type: "boolean",
        default: false,
        describe: "Write even to a mounted, non-removable or system disk",
      })
      .option("verify", {
        type: "boolean",
        default: true,
        describe: "Read back and compare (--no-verify to skip)",
      })
      .option("json", { type: "boolean", default: false })
      .example("$0 image flash shelf.img /dev/sdb", "write and verify, after asking")
      .example("$0 image flash shelf.img /dev/mmcblk0 --yes --json", "for scripts")
      .fail(failToBoundary),
  handler: async (args) => {
    const { flashImage, summary } = await images.flash();
    const { ToolRunner } = await images.tools();
    const { TerminalProgress, silentProgress } = await images.progress();
    const cancel = cancelOnSigint();
    try {
      const report = await flashImage({
        tools: new ToolRunner(),
        image: args.image,
        target: args.device,
        force: args.force,
        verify: args.verify,
        confirm: args.yes ? async () => true : askOnTerminal,
        progress: args.json ? silentProgress : new TerminalProgress(process.stderr),
        signal: cancel.signal,
      });
      process.stdout.write(args.json ? JSON.stringify(report) + "\n" : summary(report) + "\n");
    } catch (err) {
      throw await explainImageError(err);
    } finally {
      cancel.dispose();
    }
  },
};

export const imageCommand: CommandModule<object, object> = {
  command: "image <command>",
  describe: "Build a Raspberry Pi OS image with the agent inside, and flash it to SD cards",
  builder: (y) =>
    y
      .command(buildCommand)
      .command(flashCommand)
      .demandCommand(1, "Name an image command: build or flash")
      .fail(failToBoundary),
  handler: () => undefined,
};
