/**
 * `ringleader bridge`: runs the firmware bridge. Arduino boards on USB serial send sensor
 * readings; the bridge writes each one exactly once into the cluster under
 * `sensors/{<device>}/<sensor>/<time>`, keeps them in a local outbox while the cluster cannot
 * commit, and serves its counters at `/metrics`. It runs until SIGINT or SIGTERM.
 */
import { once } from "node:events";
import { SerialPort } from "serialport";
import type { Argv, CommandModule } from "yargs";
import {
  Bridge,
  DEFAULT_OUTBOX_LIMITS,
  defaultBridgeOptions,
} from "../../../../firmware-bridge/src/bridge.js";
import { DEFAULT_SESSION_OPTIONS } from "../../../../firmware-bridge/src/device-session.js";
import { openSerialPort } from "../../../../firmware-bridge/src/serial-ports.js";
import { createLogger } from "../../node/logger.js";
import { UsageError } from "../errors.js";
import { PartitionRouter } from "../../routing/router.js";
import {
  clientConfigFromArgs,
  clientFromArgs,
  withClientOptions,
  type ClientArgs,
  type GlobalArgs,
} from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface BridgeArgs extends GlobalArgs, ClientArgs {
  port: string[];
  baud: number;
  "state-dir": string;
  "metrics-host": string;
  "metrics-port": number;
  metrics: boolean;
  interval?: number;
  "outbox-max-mb": number;
  "outbox-max-readings": number;
  "log-format": string;
}

const BAUD_RATES = [9600, 19200, 38400, 57600, 115200, 230400, 250000, 500000, 1000000];

function portsOf(values: readonly string[]): "auto" | string[] {
  const paths = values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  if (paths.length === 0 || (paths.length === 1 && paths[0] === "auto")) return "auto";
  if (paths.includes("auto")) throw new UsageError("--port auto cannot be combined with paths");
  return paths;
}

export const bridgeCommand: CommandModule<object, BridgeArgs> = {
  command: "bridge",
  describe: "Write sensor readings from Arduino boards on USB serial into the cluster",
  builder: (y: Argv<object>): Argv<BridgeArgs> =>
    withClientOptions(y)
      .option("port", {
        type: "string",
        array: true,
        default: ["auto"],
        describe: "Serial ports to use (repeat or comma-separate); auto: every Arduino found by USB id",
      })
      .option("baud", {
        type: "number",
        default: 115200,
        describe: "Serial line speed; the sketch uses 115200",
      })
      .option("state-dir", {
        type: "string",
        default: ".data/bridge",
        describe: "Where the outbox and time anchors are kept (LMDB)",
      })
      .option("metrics-host", { type: "string", default: "127.0.0.1", describe: "Address of /metrics" })
      .option("metrics-port", {
        type: "number",
        default: 9465,
        describe: "Port of /metrics (0: any free port)",
      })
      .option("metrics", {
        type: "boolean",
        default: true,
        describe: "Serve /metrics (--no-metrics: do not)",
      })
      .option("interval", {
        type: "number",
        describe:
          "Sampling interval to set on every board, in ms (0 pauses sampling; default: the board's own)",
      })
      .option("outbox-max-mb", {
        type: "number",
        default: DEFAULT_OUTBOX_LIMITS.maxBytes / (1024 * 1024),
        describe: "Disk the outbox may use; when full, boards are told to hold their readings",
      })
      .option("outbox-max-readings", {
        type: "number",
        default: DEFAULT_OUTBOX_LIMITS.maxEntries,
        describe: "Readings the outbox may hold",
      })
      .option("log-format", { type: "string", choices: ["text", "json"], default: "text" })
      .group(["port", "baud", "interval"], "Serial:")
      .group(
        [
          "state-dir",
          "outbox-max-mb",
          "outbox-max-readings",
          "metrics",
          "metrics-host",
          "metrics-port",
          "log-format",
        ],
        "Bridge:",
      )
      .example("$0 bridge", "Use every Arduino plugged in, and the local cluster file")
      .example(
        "$0 bridge --port /dev/ttyACM0 --endpoints http://10.0.0.5:7001 --token T",
        "One board, a remote cluster",
      )
      .example("$0 bridge --interval 5000", "Make every board sample every 5 s"),
  handler: async (args) => {
    if (!BAUD_RATES.includes(args.baud))
      throw new UsageError(`--baud must be one of ${BAUD_RATES.join(", ")}`);
    if (args.interval !== undefined && !(Number.isInteger(args.interval) && args.interval >= 0)) {
      throw new UsageError("--interval must be a whole number of milliseconds, 0 or more");
    }
    if (!(args["outbox-max-mb"] > 0) || !(args["outbox-max-readings"] > 0)) {
      throw new UsageError("--outbox-max-mb and --outbox-max-readings must be positive");
    }
    const metricsPort = args["metrics-port"];
    if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
      throw new UsageError("--metrics-port must be a port number");
    }
    // The bridge runs for months: it learns which agent leads each device's partition and writes
    // there, which saves a hop per reading (refreshed every few seconds; a wrong guess costs a hop).
    const config = clientConfigFromArgs(args);
    const router = new PartitionRouter({ endpoints: config.endpoints, token: config.token, refreshMs: 5000 });
    await router.start();
    // It also learns every agent of the cluster, so boards that join later get their share.
    const client = clientFromArgs(args, config, router, true);
    const logger = createLogger({
      level: args.verbose ? "debug" : "info",
      format: args["log-format"] === "json" ? "json" : "text",
      base: { component: "bridge" },
    });
    const ports = portsOf(args.port);
    const bridge = await Bridge.start(
      defaultBridgeOptions({
        ports,
        baudRate: args.baud,
        stateDir: args["state-dir"],
        outbox: {
          maxBytes: Math.floor(args["outbox-max-mb"] * 1024 * 1024),
          maxEntries: Math.floor(args["outbox-max-readings"]),
        },
        session: { ...DEFAULT_SESSION_OPTIONS, intervalMs: args.interval },
        metrics: args.metrics ? { host: args["metrics-host"], port: metricsPort } : null,
      }),
      {
        client,
        logger,
        openPort: (path, baudRate) => openSerialPort((o) => new SerialPort(o), path, baudRate),
        listPorts: () => SerialPort.list(),
      },
    );
    const ready = {
      ports: ports === "auto" ? "auto" : ports.join(","),
      endpoints: client.endpoints,
      stateDir: args["state-dir"],
      metrics: bridge.metricsUrl,
    };
    if (args.json) await writeJson({ bridge: "running", ...ready });
    else
      await writeLine(
        `bridge running: ports ${ready.ports}, metrics ${ready.metrics ?? "off"} (Ctrl-C stops)`,
      );
    await Promise.race([once(process, "SIGINT"), once(process, "SIGTERM")]);
    logger.info("stopping", {});
    router.stop();
    await bridge.stop();
  },
};
