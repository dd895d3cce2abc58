/**
 * `ringleader inventory --ansible`: the cluster's boards as Ansible dynamic-inventory JSON, for
 * the provisioning playbooks (`provisioning/inventory/` calls it). The shape is a contract: see
 * `agent/src/discovery/inventory.ts` and the epilogue below.
 */
import type { Argv, CommandModule } from "yargs";
import { buildInventory, nodesFromStatus, type InventoryNode } from "../../discovery/inventory.js";
import { scanLan } from "../../discovery/lan-scan.js";
import { UsageError } from "../errors.js";
import { withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";
import { writeJson } from "../output.js";
import { adminRequest } from "./admin-request.js";

interface InventoryArgs extends GlobalArgs, ClientArgs {
  ansible: boolean;
  list: boolean;
  host?: string;
  from: string;
  "listen-seconds": number;
  cluster?: string;
}

const SHAPE = `Output (stable; provisioning relies on it):
  {"_meta": {"hostvars": {"<node id>": {"ansible_host": "10.0.0.5", "ringleader_node_id": "n1",
      "ringleader_cluster": "lab", "ringleader_cluster_id": "3fa1c2d0", "ringleader_api_port": 7000,
      "ringleader_peer_port": 7100, "ringleader_state": "up", "ringleader_role": "leader",
      "ringleader_version": "0.1.0"}}},
   "all": {"children": ["ringleader", "ungrouped"]},
   "ringleader": {"hosts": [...]},  every board
   "leaders"/"followers": {"hosts": [...]},  role in the meta group (api source only)
   "joining"/"up"/"draining"/"down": {"hosts": [...]},  member state
   "new": {"hosts": [...]}}  on the LAN, not in a cluster yet (mdns source only)
Every group is always present; hosts are named by node id; ansible_host is the address.
Sources: api (a member's /v1/status: states and leaders), mdns (the LAN: also new boards, versions;
a member shows as "up"), both (merged), auto (api when --endpoints/$RINGLEADER_ENDPOINTS is set,
else mdns).`;

export const inventoryCommand: CommandModule<object, InventoryArgs> = {
  command: "inventory",
  describe: "Print the cluster's boards as Ansible dynamic-inventory JSON (--ansible)",
  builder: (y: Argv<object>): Argv<InventoryArgs> =>
    withClientOptions(y)
      .option("ansible", { type: "boolean", default: false, describe: "Ansible dynamic-inventory JSON" })
      .option("list", { type: "boolean", default: false, describe: "Ansible's --list (same as the default)" })
      .option("host", { type: "string", describe: "Ansible's --host <node id>: that host's variables only" })
      .option("from", {
        type: "string",
        choices: ["auto", "api", "mdns", "both"],
        default: "auto",
        describe: "Where the list comes from (see below)",
      })
      .option("listen-seconds", { type: "number", default: 3, describe: "mdns: seconds to listen" })
      .option("cluster", { type: "string", describe: "mdns: only this cluster name" })
      .epilogue(SHAPE)
      .example("$0 inventory --ansible", "the boards on this LAN, from mDNS")
      .example("$0 inventory --ansible --endpoints http://pi1.local:7000", "from a member (states, leaders)")
      .example(
        "ansible-inventory -i provisioning/inventory/ringleader.sh --graph",
        "what Ansible makes of it",
      ) as Argv<InventoryArgs>,
  handler: async (args) => {
    if (!args.ansible) throw new UsageError("name the format: --ansible (the only one so far)");
    const from =
      args.from === "auto"
        ? args.endpoints || process.env["RINGLEADER_ENDPOINTS"]
          ? "api"
          : "mdns"
        : args.from;
    const byId = new Map<string, InventoryNode>();
    if (from === "api" || from === "both") {
      const status = await adminRequest<Parameters<typeof nodesFromStatus>[0]>(args, "GET", "/v1/status");
      for (const n of nodesFromStatus(status)) byId.set(n.id, n);
    }
    if (from === "mdns" || from === "both") {
      for (const l of await scanLan(args["listen-seconds"] * 1000)) {
        if (args.cluster && l.cluster !== args.cluster) continue;
        const known = byId.get(l.node);
        if (known) {
          byId.set(l.node, { ...known, version: l.version, host: known.host || l.address });
          continue;
        }
        byId.set(l.node, {
          id: l.node,
          host: l.address,
          apiPort: l.apiPort,
          peerPort: l.peerPort,
          cluster: l.cluster,
          clusterId: l.clusterId,
          state: l.state === "member" ? "up" : "new",
          role: "none",
          version: l.version,
        });
      }
    }
    const inventory = buildInventory([...byId.values()]);
    if (args.host !== undefined) return writeJson(inventory._meta.hostvars[args.host] ?? {});
    return writeJson(inventory);
  },
};
