/**
 * `ringleader bench`: a closed-loop load generator against a Ringleader cluster or, for
 * comparison, etcd 3.4's JSON gateway. Progress goes to stderr once a second; the summary to
 * stdout (`--json` for a machine-readable one). Ctrl-C ends the run early and still prints it.
 */
import { spawn } from "node:child_process";
import type { Argv, CommandModule } from "yargs";
import { BenchOptionsError, runBench } from "../../bench/engine.js";
import { MixError, parseMix, type Mix } from "../../bench/mix.js";
import { formatBenchResult, formatProgress } from "../../bench/report.js";
import { EtcdTarget, RingleaderTarget, type BenchTarget } from "../../bench/targets.js";
import { PartitionRouter } from "../../routing/router.js";
import { parseEndpointList } from "../../client/endpoints.js";
import { ClientConfigError } from "../../client/errors.js";
import { CheckFailedError, UsageError } from "../errors.js";
import { clientConfigFromArgs, withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface BenchArgs extends GlobalArgs, ClientArgs {
  target: string;
  concurrency: number;
  duration: number;
  ops?: number;
  "value-size": number;
  keys: number;
  "key-prefix": string;
  mix: string;
  warmup: number;
  preload: boolean;
  route: boolean;
  "on-measure"?: string;
}

const DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379";
/** Largest value the bench sends; beyond it the run measures the network, not the store. */
const MAX_VALUE_SIZE = 16 * 1024 * 1024;

async function makeTarget(args: BenchArgs): Promise<BenchTarget> {
  const http = {
    maxSockets: args.concurrency,
    timeoutMs: args.timeout,
    maxResponseBytes: Math.max(1024 * 1024, 2 * args["value-size"] + 64 * 1024),
  };
  try {
    if (args.target === "etcd") {
      const endpoints = parseEndpointList(args.endpoints ?? DEFAULT_ETCD_ENDPOINT);
      return new EtcdTarget(endpoints, { ...http, ...(args.token ? { token: args.token } : {}) });
    }
    const config = clientConfigFromArgs(args);
    let router: PartitionRouter | null = null;
    if (args.route) {
      router = new PartitionRouter({ endpoints: config.endpoints, token: config.token });
      await router.start();
      if (router.known() === 0)
        process.stderr.write("bench: no partition leaders known yet; requests go round-robin\n");
    }
    return new RingleaderTarget(config.endpoints, config.token, http, router);
  } catch (err) {
    if (err instanceof ClientConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Runs `--on-measure`'s shell command and waits for it. Its output goes to stderr, so that the
 * summary on stdout stays machine-readable.
 */
function runHook(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, { shell: true, stdio: ["ignore", 2, 2] });
    child.once("error", (err) =>
      reject(new CheckFailedError(`--on-measure could not start: ${err.message}`)),
    );
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new CheckFailedError(`--on-measure command failed (${signal ?? `exit status ${code}`})`));
    });
  });
}

function mixOrUsageError(text: string): Mix {
  try {
    return parseMix(text);
  } catch (err) {
    if (err instanceof MixError) throw new UsageError(err.message);
    throw err;
  }
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: "bench",
  describe: "Measure throughput and latency with a closed-loop load (Ringleader or etcd)",
  builder: (y: Argv<object>): Argv<BenchArgs> =>
    withClientOptions(y)
      .option("target", {
        type: "string",
        choices: ["ringleader", "etcd"],
        default: "ringleader",
        describe: "What to load",
      })
      .option("concurrency", { type: "number", default: 16, describe: "Operations in flight at once" })
      .option("duration", { type: "number", default: 10, describe: "Seconds to measure (after the warm-up)" })
      .option("ops", {
        type: "number",
        describe: "Measure this many operations instead (overrides --duration)",
      })
      .option("value-size", { type: "number", default: 100, describe: "Bytes per value written" })
      .option("keys", { type: "number", default: 10000, describe: "Size of the key space, chosen uniformly" })
      .option("key-prefix", {
        type: "string",
        default: "bench/",
        describe: "Prefix of every key the bench touches",
      })
      .option("mix", {
        type: "string",
        default: "put=1,get=0",
        describe: "Weights of put, get (strong), weak and eventual gets",
      })
      .option("warmup", { type: "number", default: 1, describe: "Seconds of load before measuring" })
      .option("route", {
        type: "boolean",
        default: true,
        describe:
          "Send writes and strong/weak reads to the key's partition leader (from /v1/routing), as the " +
          "client does; --no-route spreads them over the endpoints and lets the agents forward",
      })
      .option("preload", {
        type: "boolean",
        default: false,
        describe: "Write every key once first, so gets hit",
      })
      .option("on-measure", {
        type: "string",
        describe:
          "Shell command to run when the warm-up ends, before measuring, with nothing in flight; " +
          "scripts read the servers' CPU or disk counters in it, so that they cover the measured run only",
      })
      .example("$0 bench", "10 s of 100-byte puts with 16 in flight against the local cluster")
      .example("$0 bench --mix put=1,get=4 --preload --duration 30", "A read-heavy mix over existing keys")
      .example("$0 bench --mix weak=1 --ops 100000 --json", "100k weak gets, summary as JSON")
      .example("$0 bench --target etcd --endpoints http://127.0.0.1:2379", "The same load against etcd"),
  handler: async (args) => {
    const mix = mixOrUsageError(args.mix);
    const valueSize = args["value-size"];
    if (!Number.isInteger(valueSize) || valueSize < 0 || valueSize > MAX_VALUE_SIZE) {
      throw new UsageError(`--value-size must be 0 to ${MAX_VALUE_SIZE} bytes`);
    }
    if (!(args.timeout > 0)) throw new UsageError("--timeout must be a positive number of milliseconds");
    const hook = args["on-measure"];
    const target = await makeTarget(args);
    const interrupt = new AbortController();
    const onSigint = () => interrupt.abort();
    process.once("SIGINT", onSigint);
    try {
      const result = await runBench({
        target,
        concurrency: args.concurrency,
        ...(args.ops === undefined ? { durationMs: args.duration * 1000 } : { ops: args.ops }),
        warmupMs: args.warmup * 1000,
        valueSize,
        keySpace: args.keys,
        keyPrefix: args["key-prefix"],
        mix,
        preload: args.preload,
        signal: interrupt.signal,
        ...(hook ? { onMeasure: () => runHook(hook) } : {}),
        onProgress: (p) => process.stderr.write(`${formatProgress(p)}\n`),
      });
      if (args.json) await writeJson(result);
      else await writeLine(formatBenchResult(result));
      if (result.totalOps === 0 && result.totalErrors > 0) {
        throw new CheckFailedError(`every operation failed (${Object.keys(result.errorsByKind).join(", ")})`);
      }
    } catch (err) {
      if (err instanceof BenchOptionsError) throw new UsageError(err.message);
      throw err;
    } finally {
      process.off("SIGINT", onSigint);
      target.close();
    }
  },
};
