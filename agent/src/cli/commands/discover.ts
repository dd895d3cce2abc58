/**
 * `ringleader discover`: every Ringleader agent advertising on this LAN (mDNS), whatever its
 * cluster: a quick look before plugging in a board, or when a split-brain alarm fires.
 */
import type { Argv, CommandModule } from "yargs";
import { scanLan } from "../../discovery/lan-scan.js";
import { UsageError } from "../errors.js";
import type { GlobalArgs } from "../options.js";
import { formatTable, writeJson, writeLine } from "../output.js";

interface DiscoverArgs extends GlobalArgs {
  timeout: number;
  cluster?: string;
}

export const discoverCommand: CommandModule<object, DiscoverArgs> = {
  command: "discover",
  describe: "List the Ringleader agents on this LAN (mDNS): cluster, node, address, version, state",
  builder: (y: Argv<object>): Argv<DiscoverArgs> =>
    y
      .option("timeout", { type: "number", default: 3, describe: "Seconds to listen" })
      .option("cluster", { type: "string", describe: "Only this cluster name" })
      .epilogue(
        "STATE is what each agent says of itself: new (looking for peers), locked/preparing (agreeing on " +
          "founders), joining, member. CLUSTER-ID is the first 8 hex digits of the cluster id: two ids " +
          "under one name mean two clusters (split brain; see `ringleader agent --help`, --fold-into). " +
          "Advertisements are hints: agents trust each other only after proving the cluster secret.",
      )
      .example("$0 discover", "what is on the LAN")
      .example("$0 discover --timeout 10 --json", "for scripts") as Argv<DiscoverArgs>,
  handler: async (args) => {
    if (!(args.timeout > 0 && args.timeout <= 600)) throw new UsageError("--timeout must be 0-600 seconds");
    const nodes = (await scanLan(args.timeout * 1000)).filter(
      (n) => !args.cluster || n.cluster === args.cluster,
    );
    if (args.json) return writeJson({ nodes });
    if (nodes.length === 0) return writeLine(`no Ringleader agents answered within ${args.timeout} s`);
    await writeLine(
      formatTable(
        ["CLUSTER", "CLUSTER-ID", "NODE", "ADDRESS", "API", "PEER", "VERSION", "STATE"],
        nodes.map((n) => [
          n.cluster,
          n.clusterId || "-",
          n.node,
          n.address,
          String(n.apiPort),
          String(n.peerPort),
          n.version,
          n.state,
        ]),
      ),
    );
  },
};
