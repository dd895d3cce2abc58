/**
 * `ringleader dashboard`: prints the address of the web dashboard with a token in the URL
 * fragment (`/ui/#token=...`). Browsers never send the fragment to the server; the page moves the
 * token to sessionStorage and clears it from the address bar. It prefers the cluster's read-only
 * token (`readToken` in ringleader.json), so a link shared with the family cannot write.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Argv, CommandModule } from "yargs";
import { DEFAULT_CLUSTER_FILE } from "../../client/discovery.js";
import { readClusterConfig } from "../../node/cluster-config.js";
import { clientConfigFromArgs, withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";
import { writeJson, writeLine } from "../output.js";

interface DashboardArgs extends GlobalArgs, ClientArgs {
  config?: string;
}

/** The cluster config to take the read-only token from: --config, or the one beside the cluster file. */
function configPath(args: DashboardArgs): string | null {
  if (args.config) return resolve(args.config);
  const beside = join(dirname(resolve(args["cluster-file"] ?? DEFAULT_CLUSTER_FILE)), "ringleader.json");
  if (existsSync(beside)) return beside;
  return existsSync("ringleader.json") ? resolve("ringleader.json") : null;
}

export const dashboardCommand: CommandModule<object, DashboardArgs> = {
  command: "dashboard",
  describe: "Print the web dashboard's address, with the read-only token to sign in",
  builder: (y: Argv<object>): Argv<DashboardArgs> =>
    withClientOptions(y)
      .option("config", {
        type: "string",
        describe: "Cluster config holding readToken (default: beside the cluster file, or ./ringleader.json)",
      })
      .example("$0 dashboard", "The local cluster's dashboard: open the printed address in a browser")
      .example(
        "$0 dashboard --endpoints http://pi1.local:7000 --config /etc/ringleader/ringleader.json",
        "A board's dashboard, signed in with the read-only token",
      ),
  handler: async (args) => {
    const client = clientConfigFromArgs(args);
    const path = configPath(args);
    const cfg = path ? await readClusterConfig(path) : null;
    const readOnly = cfg?.readToken !== undefined;
    const token = cfg?.readToken ?? client.token;
    const urls = client.endpoints.map((e) => `${new URL("/ui/", e).href}#token=${encodeURIComponent(token)}`);
    if (args.json) {
      await writeJson({ urls, readOnly });
      return;
    }
    await writeLine(urls[0] ?? "no endpoint known");
    if (!readOnly) {
      process.stderr.write("(this link carries the full token: the cluster config has no readToken)\n");
    }
  },
};
