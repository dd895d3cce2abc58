/**
 * The cluster configuration that `ringleader init` creates: the cluster's name, the secret that
 * authenticates peers, and the token clients present. It is baked into images and inventories,
 * so it is one small JSON file, written with mode 0600.
 */
import { randomBytes } from "node:crypto";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";

export interface ClusterConfig {
  readonly version: 1;
  readonly clusterName: string;
  /** 32 random bytes, base64: the pre-shared key material for peer TLS. */
  readonly secret: string;
  /** The bearer token clients send to the HTTP API. */
  readonly token: string;
  /**
   * A token that may only read (GET): for the dashboard and monitoring, so a screen on the wall
   * does not hold the key to every write. Configs made before it existed have none.
   */
  readonly readToken?: string;
  readonly createdAt: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(message: string) {
    super(message);
  }
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function validateClusterName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new ConfigError(
      `cluster name ${JSON.stringify(name)} must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit`,
    );
  }
  return name;
}

/**
 * A new API token: 192 random bits in base64url behind a fixed `rl_` prefix. The prefix keeps a
 * token from ever starting with `-`, which a command line would read as options (`--token -dT…`
 * failed so, 1 time in 64), and makes a leaked token easy to recognise.
 */
export function newToken(): string {
  return `rl_${randomBytes(24).toString("base64url")}`;
}

export function newClusterConfig(clusterName: string, now: Date): ClusterConfig {
  return {
    version: 1,
    clusterName: validateClusterName(clusterName),
    secret: randomBytes(32).toString("base64"),
    token: newToken(),
    readToken: newToken(),
    createdAt: now.toISOString(),
  };
}

export async function writeClusterConfig(
  path: string,
  cfg: ClusterConfig,
  overwrite: boolean,
): Promise<void> {
  await writeFile(path, JSON.stringify(cfg, null, 2) + "\n", { mode: 0o600, flag: overwrite ? "w" : "wx" });
  // The mode of `writeFile` only applies to new files; make sure an overwritten one is private too.
  await chmod(path, 0o600);
}

export async function readClusterConfig(path: string): Promise<ClusterConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new ConfigError(`no cluster config at ${path}; create one with \`ringleader init\``);
    }
    throw err;
  }
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path} is not valid JSON`);
  }
  const c = raw as Partial<ClusterConfig>;
  if (c.version !== 1) throw new ConfigError(`${path}: unsupported config version ${String(c.version)}`);
  if (typeof c.clusterName !== "string") throw new ConfigError(`${path}: clusterName is missing`);
  validateClusterName(c.clusterName);
  if (typeof c.secret !== "string" || Buffer.from(c.secret, "base64").length < 16) {
    throw new ConfigError(`${path}: secret is missing or shorter than 16 bytes`);
  }
  if (typeof c.token !== "string" || c.token.length < 16)
    throw new ConfigError(`${path}: token is missing or too short`);
  if (c.readToken !== undefined && (typeof c.readToken !== "string" || c.readToken.length < 16)) {
    throw new ConfigError(`${path}: readToken is too short`);
  }
  if (c.readToken === c.token) throw new ConfigError(`${path}: readToken must differ from token`);
  return {
    version: 1,
    clusterName: c.clusterName,
    secret: c.secret,
    token: c.token,
    ...(c.readToken !== undefined ? { readToken: c.readToken } : {}),
    createdAt: String(c.createdAt ?? ""),
  };
}
