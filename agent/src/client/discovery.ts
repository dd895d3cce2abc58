/**
 * Where a command-line client finds the cluster: flags first, then environment variables, then
 * the cluster file `ringleader cluster up` writes. Endpoints and token are looked up separately,
 * so `--endpoints` can point at one node while the token still comes from the cluster file.
 */
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { parseEndpointList } from "./endpoints.js";
import { ClientConfigError } from "./errors.js";

export const DEFAULT_CLUSTER_FILE = ".data/cluster/cluster.json";
/** A cluster file lists a few nodes; anything bigger is not one. */
const MAX_CLUSTER_FILE_BYTES = 1024 * 1024;

export interface ClientConfigSources {
  /** `--endpoints`, comma-separated. */
  endpoints?: string | undefined;
  /** `--token`. */
  token?: string | undefined;
  /** `--cluster-file`; when given it must exist. */
  clusterFile?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

export interface ClientConfig {
  endpoints: string[];
  token: string;
  /** Where each part came from, for error messages and `--verbose`. */
  endpointsFrom: string;
  tokenFrom: string;
}

export interface ClusterFile {
  token: string;
  endpoints: string[];
}

const HOW_TO_START =
  "Start a local cluster with `make run` or `ringleader cluster up`, or pass --endpoints and --token " +
  "(or set RINGLEADER_ENDPOINTS and RINGLEADER_TOKEN).";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the token and the nodes' API URLs from the text of a cluster file. */
export function parseClusterFile(text: string, path: string): ClusterFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ClientConfigError(`${path} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isRecord(data)) throw new ClientConfigError(`${path}: expected an object`);
  const token = data["token"];
  const nodes = data["nodes"];
  if (typeof token !== "string" || token.length === 0) throw new ClientConfigError(`${path}: no "token"`);
  if (!Array.isArray(nodes)) throw new ClientConfigError(`${path}: no "nodes" list`);
  const apis = nodes.map((node: unknown) => (isRecord(node) ? node["api"] : undefined));
  const urls = apis.filter((api): api is string => typeof api === "string" && api.length > 0);
  if (urls.length === 0) throw new ClientConfigError(`${path}: no node has an "api" URL`);
  return { token, endpoints: parseEndpointList(urls.join(",")) };
}

function readClusterFile(path: string, required: boolean): ClusterFile | null {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    if (required) throw new ClientConfigError(`cluster file ${path} not found. ${HOW_TO_START}`);
    return null;
  }
  if (size > MAX_CLUSTER_FILE_BYTES)
    throw new ClientConfigError(`${path} is larger than a cluster file can be`);
  return parseClusterFile(readFileSync(path, "utf8"), path);
}

/** Finds endpoints and token, or throws a `ClientConfigError` that says how to get a cluster. */
export function resolveClientConfig(sources: ClientConfigSources): ClientConfig {
  const fromFlag = (value: string | undefined) =>
    value !== undefined && value.trim() !== "" ? value : undefined;
  let endpointsRaw = fromFlag(sources.endpoints);
  let endpointsFrom = "--endpoints";
  if (endpointsRaw === undefined && fromFlag(sources.env["RINGLEADER_ENDPOINTS"]) !== undefined) {
    endpointsRaw = sources.env["RINGLEADER_ENDPOINTS"];
    endpointsFrom = "RINGLEADER_ENDPOINTS";
  }
  let token = fromFlag(sources.token);
  let tokenFrom = "--token";
  if (token === undefined && fromFlag(sources.env["RINGLEADER_TOKEN"]) !== undefined) {
    token = sources.env["RINGLEADER_TOKEN"];
    tokenFrom = "RINGLEADER_TOKEN";
  }
  let endpoints = endpointsRaw === undefined ? undefined : parseEndpointList(endpointsRaw);

  if (endpoints === undefined || token === undefined) {
    const named = fromFlag(sources.clusterFile);
    const path = resolve(sources.cwd, named ?? DEFAULT_CLUSTER_FILE);
    const file = readClusterFile(path, named !== undefined);
    if (file === null) {
      const missing = endpoints === undefined ? "endpoints" : "token";
      throw new ClientConfigError(`no cluster ${missing} found (looked for ${path}). ${HOW_TO_START}`);
    }
    if (endpoints === undefined) {
      endpoints = file.endpoints;
      endpointsFrom = path;
    }
    if (token === undefined) {
      token = file.token;
      tokenFrom = path;
    }
  }
  if (endpoints.length === 0)
    throw new ClientConfigError(`${endpointsFrom} lists no endpoints. ${HOW_TO_START}`);
  if (token === undefined) throw new ClientConfigError(`no token found. ${HOW_TO_START}`);
  return { endpoints, token, endpointsFrom, tokenFrom };
}
