import { readFileSync } from "node:fs";

let cached: string | null = null;

/** The agent's version from package.json (shown in mDNS TXT records and `ringleader discover`). */
export function agentVersion(): string {
  if (cached !== null) return cached;
  try {
    // dist/agent/src/discovery/version.js → the repository's package.json.
    const pkg = JSON.parse(readFileSync(new URL("../../../../package.json", import.meta.url), "utf8")) as {
      version?: unknown;
    };
    cached = typeof pkg.version === "string" ? pkg.version : "0.0.0";
  } catch {
    cached = "0.0.0";
  }
  return cached;
}
