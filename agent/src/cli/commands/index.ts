import type { CommandModule } from "yargs";
import { agentCommand } from "./agent.js";
import { aggCommand } from "./agg.js";
import { membersCommand } from "./members.js";
import { benchCommand } from "./bench.js";
import { bridgeCommand } from "./bridge.js";
import { casCommand } from "./cas.js";
import { clusterCommand } from "./cluster.js";
import { delCommand } from "./del.js";
import { getCommand } from "./get.js";
import { imageCommand } from "./image.js";
import { selftestCommand } from "./selftest.js";
import { initCommand } from "./init.js";
import { putCommand } from "./put.js";
import { ringCommand } from "./ring.js";
import { scanCommand } from "./scan.js";
import { simCommand } from "./sim.js";
import { statusCommand } from "./status.js";

/** Every `ringleader` command, in the order `--help` lists them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' CommandModule generics differ per command.
export const commands: CommandModule<any, any>[] = [
  initCommand,
  agentCommand,
  clusterCommand,
  putCommand,
  getCommand,
  delCommand,
  scanCommand,
  casCommand,
  statusCommand,
  membersCommand,
  ringCommand,
  aggCommand,
  imageCommand,
  selftestCommand,
  benchCommand,
  bridgeCommand,
  simCommand,
];
