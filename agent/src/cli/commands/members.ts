/**
 * `ringleader members list | drain <id> | remove <id>`: planned membership changes. Draining
 * takes a board's tokens off the ring, so its replicas move to the others a few at a time;
 * removing forgets a drained (or dead, with --force) board for good.
 */
import type { Argv, CommandModule } from "yargs";
import { UsageError } from "../errors.js";
import { withClientOptions, type ClientArgs, type GlobalArgs } from "../options.js";
import { formatTable, writeJson, writeLine } from "../output.js";
import { adminRequest } from "./admin-request.js";
import { machineLabel } from "../../node/machine.js";

interface MembersArgs extends GlobalArgs, ClientArgs {
  action: string;
  id?: string;
  force: boolean;
}

interface MemberRow {
  id: string;
  peer: string;
  api: string;
  weight: number;
  state: string;
  machine?: string;
  lag?: number;
  active?: boolean;
}

export const membersCommand: CommandModule<object, MembersArgs> = {
  command: "members <action> [id]",
  describe: "List the cluster's boards; drain, remove, or step one down from leadership",
  builder: (y: Argv<object>): Argv<MembersArgs> =>
    withClientOptions(y)
      .positional("action", {
        type: "string",
        choices: ["list", "drain", "remove", "step-down"],
        demandOption: true,
      })
      .positional("id", { type: "string", describe: "The member's node id (drain, remove, step-down)" })
      .option("force", {
        type: "boolean",
        default: false,
        describe: "remove: even if it still holds replicas (dead board)",
      })
      .epilogue(
        "States: joining (taking its replicas; up once it votes in every partition the ring gives it), " +
          "up, draining (its replicas move to the others), down (unreachable past --replace-after; " +
          "its replicas are rebuilt elsewhere), removed (gone for good). MACHINE: the agent's --machine, or " +
          "boot: and the start of its kernel's boot id; agents on one machine share its cores, so one of " +
          "them leads the partitions they replicate together (--json gives the whole id).",
      )
      .example("$0 members list", "Every board, its addresses, weight and state")
      .example("$0 members drain n3", "Move every replica off n3 (watch `ringleader status`)")
      .example("$0 members remove n3", "Forget n3 once drained")
      .example(
        "$0 members step-down n2",
        "Hand n2's leaderships to caught-up peers before restarting it",
      ) as Argv<MembersArgs>,
  handler: async (args) => {
    if (args.action === "list") {
      const status = await adminRequest<{ members: MemberRow[] }>(args, "GET", "/v1/status");
      if (args.json) return writeJson({ members: status.members });
      const rows = status.members.map((m) => [
        m.id,
        m.state,
        String(m.weight),
        machineLabel(m.machine),
        m.peer,
        m.api,
        m.lag === undefined ? "-" : String(m.lag),
      ]);
      return writeLine(formatTable(["ID", "STATE", "WEIGHT", "MACHINE", "PEER", "API", "META LAG"], rows));
    }
    if (!args.id)
      throw new UsageError(
        `members ${args.action} needs a node id, e.g. \`ringleader members ${args.action} n3\``,
      );
    if (args.action === "step-down") {
      const path = `/v1/members/${encodeURIComponent(args.id)}/step-down`;
      const r = await adminRequest<{ id: string; transferred: number; stillLeading: number }>(
        args,
        "POST",
        path,
      );
      if (args.json) return writeJson(r);
      return writeLine(
        `${r.id} handed over ${r.transferred} leaderships` +
          (r.stillLeading > 0
            ? `; it still leads ${r.stillLeading} (no caught-up peer yet)`
            : "; it leads none now"),
      );
    }
    const result =
      args.action === "drain"
        ? await adminRequest<MemberRow>(args, "POST", `/v1/members/${encodeURIComponent(args.id)}/drain`)
        : await adminRequest<MemberRow>(
            args,
            "DELETE",
            `/v1/members/${encodeURIComponent(args.id)}${args.force ? "?force=true" : ""}`,
          );
    if (args.json) return writeJson(result);
    return writeLine(
      args.action === "drain"
        ? `${result.id} is draining: its replicas move to the other boards. \`ringleader status\` shows progress.`
        : `${result.id} is removed from the cluster.`,
    );
  },
};
