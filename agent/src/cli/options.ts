/**
 * Option builders shared by the commands that talk to a cluster, and the translation of client
 * errors into the CLI's error boundary (exit 2 for what the user must fix, 1 for what went wrong).
 */
import { readFile, stat } from "node:fs/promises";
import type { Argv } from "yargs";
import type { Consistency } from "../api/service.js";
import { CONSISTENCIES } from "../api/service.js";
import {
  BadRequestError,
  CasMismatchError,
  PayloadTooLargeError,
  RingleaderClient,
  ServiceUnavailableError,
  UnauthorizedError,
  type RingleaderClientOptions,
} from "../client/client.js";
import { DEFAULT_CLUSTER_FILE, resolveClientConfig, type ClientConfig } from "../client/discovery.js";
import { STRATEGIES, type Strategy } from "../client/endpoints.js";
import { BadResponseError, ClientConfigError, EndpointsUnreachableError } from "../client/errors.js";
import { CheckFailedError, UsageError } from "./errors.js";

/** The root's global options, as every command's handler sees them. */
export interface GlobalArgs {
  json?: boolean;
  verbose?: boolean;
}

export interface ClientArgs {
  endpoints?: string;
  token?: string;
  "cluster-file"?: string;
  strategy: string;
  timeout: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** `--endpoints`, `--token`, `--cluster-file`, `--strategy`, `--timeout`. */
export function withClientOptions<T>(y: Argv<T>): Argv<T & ClientArgs> {
  return y
    .option("endpoints", {
      type: "string",
      describe:
        "Comma-separated API URLs, e.g. http://127.0.0.1:7001 (default: $RINGLEADER_ENDPOINTS, then the cluster file)",
    })
    .option("token", {
      type: "string",
      describe: "API token (default: $RINGLEADER_TOKEN, then the cluster file)",
    })
    .option("cluster-file", {
      type: "string",
      describe: `The file \`ringleader cluster up\` writes (default: ${DEFAULT_CLUSTER_FILE})`,
    })
    .option("strategy", {
      type: "string",
      choices: STRATEGIES,
      default: "round-robin",
      describe:
        "Which agent a request enters by: random, round-robin, ip-hash (this machine's address picks one agent), " +
        "least-loaded (the lowest load the boards report: CPU, temperature, throttling; among every agent " +
        "the cluster names, not only --endpoints)",
    })
    .option("timeout", { type: "number", default: DEFAULT_TIMEOUT_MS, describe: "Milliseconds per attempt" })
    .group(["endpoints", "token", "cluster-file", "strategy", "timeout"], "Connection:")
    .fail(failToBoundary);
}

/**
 * yargs' own failure printer shows the whole help and exits on the spot, also for errors thrown
 * by an async handler, so they would never reach the CLI's error boundary. This sends handler
 * errors on unchanged and turns validation messages into `UsageError`s.
 */
export function failToBoundary(message: string | null, err: Error | undefined): never {
  if (err) throw err;
  throw new UsageError(`${message ?? "invalid arguments"} (see --help)`);
}

export function withConsistencyOption<T>(y: Argv<T>): Argv<T & { consistency: string }> {
  return y.option("consistency", {
    type: "string",
    choices: CONSISTENCIES,
    default: "strong",
    describe: "strong: linearizable; weak: the leader's state; eventual: any replica, maybe stale",
  });
}

export function asConsistency(value: string): Consistency {
  const found = CONSISTENCIES.find((c) => c === value);
  if (found === undefined) throw new UsageError(`--consistency must be one of ${CONSISTENCIES.join(", ")}`);
  return found;
}

function asStrategy(value: string): Strategy {
  const found = STRATEGIES.find((s) => s === value);
  if (found === undefined) throw new UsageError(`--strategy must be one of ${STRATEGIES.join(", ")}`);
  return found;
}

/** Endpoints and token from the flags, the environment or the cluster file. */
export function clientConfigFromArgs(args: ClientArgs, env: NodeJS.ProcessEnv = process.env): ClientConfig {
  try {
    return resolveClientConfig({
      endpoints: args.endpoints,
      token: args.token,
      clusterFile: args["cluster-file"],
      env,
      cwd: process.cwd(),
    });
  } catch (err) {
    if (err instanceof ClientConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The client of a command. `learnAgents` (default: only for `least-loaded`, which needs the
 * boards' scores) makes it ask the cluster for every agent; a one-shot command with another
 * strategy would pay a request for a list it has no time to use, a long-running one (the bridge) should.
 */
export function clientFromArgs(
  args: ClientArgs,
  config: ClientConfig = clientConfigFromArgs(args),
  router?: RingleaderClientOptions["router"],
  learnAgents?: boolean,
): RingleaderClient {
  if (!(args.timeout > 0)) throw new UsageError("--timeout must be a positive number of milliseconds");
  const strategy = asStrategy(args.strategy);
  return new RingleaderClient({
    endpoints: config.endpoints,
    token: config.token,
    strategy,
    timeoutMs: args.timeout,
    learnAgents: learnAgents ?? strategy === "least-loaded",
    ...(router ? { router } : {}),
  });
}

/**
 * Runs a command's client calls and turns client errors into the boundary's errors, with a hint of
 * what to do about each.
 */
export async function withClientErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw explainClientError(err);
  }
}

export function explainClientError(err: unknown): unknown {
  if (err instanceof ClientConfigError) return new UsageError(err.message);
  if (err instanceof UnauthorizedError) {
    return new UsageError(
      `the cluster refused the token (check --token, $RINGLEADER_TOKEN or the cluster file)`,
    );
  }
  if (err instanceof BadRequestError || err instanceof PayloadTooLargeError)
    return new UsageError(err.message);
  if (err instanceof CasMismatchError) return new CheckFailedError(`cas mismatch: ${err.message}`);
  if (err instanceof ServiceUnavailableError) {
    return new CheckFailedError(`the cluster is unavailable: ${err.message} (try again shortly)`);
  }
  if (err instanceof EndpointsUnreachableError) {
    return new CheckFailedError(
      `${err.message}. Is the cluster running? Start a local one with \`make run\` or \`ringleader cluster up\`.`,
    );
  }
  if (err instanceof BadResponseError) return new CheckFailedError(`unexpected answer: ${err.message}`);
  return err;
}

/**
 * The most a command reads from a file or stdin for one value. The server's own limit (1 MiB by
 * default) is usually lower; this bound only keeps a mistaken `put k - < disk.img` from eating memory.
 */
export const MAX_INPUT_VALUE_BYTES = 64 * 1024 * 1024;

async function readStream(stream: NodeJS.ReadableStream, maxBytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    total += bytes.length;
    if (total > maxBytes) throw new UsageError(`stdin holds more than ${maxBytes} bytes`);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, total);
}

/**
 * The value of `put`/`cas`: the argument as UTF-8, or stdin when the argument is `-`, or the
 * contents of `--file`. Exactly one of them. `rawArgs` are the command line's words: yargs parses
 * a lone `-` into an empty string, so only they tell `put k -` from `put k ""`.
 */
export async function readValueInput(
  parsedValue: string | undefined,
  file: string | undefined,
  rawArgs: readonly string[] = process.argv.slice(2),
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<Uint8Array> {
  const value = parsedValue === "" && rawArgs.includes("-") ? "-" : parsedValue;
  if (value !== undefined && file !== undefined) throw new UsageError("give the value or --file, not both");
  if (file !== undefined) {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      throw new UsageError(`cannot read ${file}`);
    }
    if (size > MAX_INPUT_VALUE_BYTES)
      throw new UsageError(`${file} is larger than ${MAX_INPUT_VALUE_BYTES} bytes`);
    return readFile(file);
  }
  if (value === undefined) throw new UsageError("give a value, `-` to read it from stdin, or --file PATH");
  if (value === "-") return readStream(stdin, MAX_INPUT_VALUE_BYTES);
  return new TextEncoder().encode(value);
}
