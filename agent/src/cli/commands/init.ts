import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { CommandModule } from "yargs";
import { newClusterConfig, writeClusterConfig } from "../../node/cluster-config.js";
import { UsageError } from "../errors.js";

interface InitArgs {
  name: string;
  out: string;
  force: boolean;
  json: boolean;
}

export const initCommand: CommandModule<object, InitArgs> = {
  command: "init",
  describe: "Create a new cluster config: its name, peer secret and client token (mode 0600)",
  builder: (y) =>
    y
      .option("name", {
        type: "string",
        default: "home",
        describe: "Cluster name (lowercase letters, digits, dashes)",
      })
      .option("out", { type: "string", default: "ringleader.json", describe: "Where to write the config" })
      .option("force", {
        type: "boolean",
        default: false,
        describe: "Overwrite an existing config (old secret is lost!)",
      })
      .option("json", { type: "boolean", default: false })
      .example(
        "$0 init --name shelf --out /etc/ringleader/ringleader.json",
        "a config for the cluster 'shelf'",
      ),
  handler: async (args) => {
    const path = resolve(args.out);
    await mkdir(dirname(path), { recursive: true });
    const cfg = newClusterConfig(args.name, new Date());
    try {
      await writeClusterConfig(path, cfg, args.force);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new UsageError(
          `${path} exists; pass --force to replace it (every node then needs the new file)`,
        );
      }
      throw err;
    }
    if (args.json) {
      process.stdout.write(JSON.stringify({ path, clusterName: cfg.clusterName }) + "\n");
      return;
    }
    process.stdout.write(
      `Created cluster "${cfg.clusterName}" in ${path} (mode 0600).\n` +
        `Copy this file to every board (or bake it into the image); it holds the peer secret.\n` +
        `Clients authenticate with the token in it: RINGLEADER_TOKEN=$(jq -r .token ${path})\n`,
    );
  },
};
