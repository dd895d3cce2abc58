/**
 * Every `ringleader` command, in the order `--help` lists them. Commands load on demand: the
 * agent on a Pi Zero 2 W should not carry the simulator, the bench, the image builder or the
 * serial bridge in its memory (together about 17 MB of RSS) when it only runs `agent`.
 */
import type { CommandModule } from "yargs";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' CommandModule generics differ per command.
type AnyCommand = CommandModule<any, any>;

const LOADERS: readonly (readonly [names: readonly string[], load: () => Promise<AnyCommand>])[] = [
  [["init"], async () => (await import("./init.js")).initCommand],
  [["agent"], async () => (await import("./agent.js")).agentCommand],
  [["cluster"], async () => (await import("./cluster.js")).clusterCommand],
  [["put"], async () => (await import("./put.js")).putCommand],
  [["get"], async () => (await import("./get.js")).getCommand],
  [["del", "delete", "rm"], async () => (await import("./del.js")).delCommand],
  [["scan", "ls"], async () => (await import("./scan.js")).scanCommand],
  [["cas"], async () => (await import("./cas.js")).casCommand],
  [["status"], async () => (await import("./status.js")).statusCommand],
  [["top"], async () => (await import("./top.js")).topCommand],
  [["dashboard", "ui"], async () => (await import("./dashboard.js")).dashboardCommand],
  [["members"], async () => (await import("./members.js")).membersCommand],
  [["discover"], async () => (await import("./discover.js")).discoverCommand],
  [["inventory"], async () => (await import("./inventory.js")).inventoryCommand],
  [["snapshot"], async () => (await import("./snapshot.js")).snapshotCommand],
  [["health"], async () => (await import("./health.js")).healthCommand],
  [["ring"], async () => (await import("./ring.js")).ringCommand],
  [["agg"], async () => (await import("./agg.js")).aggCommand],
  [["image"], async () => (await import("./image.js")).imageCommand],
  [["release"], async () => (await import("./release.js")).releaseCommand],
  [["selftest"], async () => (await import("./selftest.js")).selftestCommand],
  [["bench"], async () => (await import("./bench.js")).benchCommand],
  [["bridge"], async () => (await import("./bridge.js")).bridgeCommand],
  [["sim"], async () => (await import("./sim.js")).simCommand],
];

/** The command named first on the command line, or every command (for help and suggestions). */
export async function loadCommands(args: readonly string[]): Promise<AnyCommand[]> {
  const first = args.find((a) => !a.startsWith("-"));
  const match = LOADERS.find(([names]) => first !== undefined && names.includes(first));
  if (match) return [await match[1]()];
  return Promise.all(LOADERS.map(([, load]) => load()));
}
