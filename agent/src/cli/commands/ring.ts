/**
 * `ringleader ring`: plans placement offline. It builds a ring by adding the listed nodes in order
 * (`c:2` is node c with weight 2), exactly as the cluster would when those boards join one by one,
 * and prints each node's load against its weighted share. `--add` and `--remove` show what a
 * membership change would move: the ring after it, and every replica that changes hands.
 *
 * Everything is computed by the pure functions of `../../ring/`, so the output depends only on
 * the arguments; `runRing` returns it as text, which is what the tests call.
 */
import type { Argv, CommandModule } from "yargs";
import {
  addNode,
  balanceTolerance,
  createRing,
  DEFAULT_PARTITIONS,
  DEFAULT_REPLICATION_FACTOR,
  DEFAULT_VNODES_PER_WEIGHT,
  diffPlacement,
  loadByNode,
  MAX_NODES,
  MAX_PARTITIONS,
  MAX_REPLICATION_FACTOR,
  MAX_VNODES_PER_WEIGHT,
  placement,
  removeNode,
  RingArgumentError,
  totalReplicas,
  weightedShares,
  type Move,
  type NewNode,
  type Placement,
  type Ring,
} from "../../ring/index.js";
import { UsageError } from "../errors.js";
import { failToBoundary, type GlobalArgs } from "../options.js";
import { formatTable } from "../output.js";

export interface RingArgs extends GlobalArgs {
  nodes: string;
  partitions: number;
  replication: number;
  vnodes: number;
  add?: string | string[];
  remove?: string | string[];
  "partitions-table"?: boolean;
}

/** Moves listed per line in the table for people. */
const MOVES_PER_LINE = 8;

export const ringCommand: CommandModule<object, RingArgs> = {
  command: "ring",
  describe: "Plan placement: build the hash ring for a list of nodes and show each one's load",
  builder: (y: Argv<object>): Argv<RingArgs> =>
    y
      .option("nodes", {
        type: "string",
        demandOption: true,
        describe: "Nodes in the order they join, comma-separated; id:weight gives a weight (default 1)",
      })
      .option("partitions", {
        type: "number",
        default: DEFAULT_PARTITIONS,
        describe: "Partitions, fixed when the cluster is created",
      })
      .option("replication", {
        type: "number",
        default: DEFAULT_REPLICATION_FACTOR,
        describe: "Replicas per partition",
      })
      .option("vnodes", {
        type: "number",
        default: DEFAULT_VNODES_PER_WEIGHT,
        describe: "Tokens per unit of weight",
      })
      .option("add", {
        type: "string",
        describe: "Show what joining these nodes (id[:weight], comma-separated) moves",
      })
      .option("remove", {
        type: "string",
        describe: "Show what removing these nodes (comma-separated) moves",
      })
      .option("partitions-table", {
        type: "boolean",
        default: false,
        describe: "Also print every partition's replicas, preferred leader first",
      })
      .example("$0 ring --nodes pi5a:2,pi5b:2,pi4", "loads of two Pi 5 (weight 2) and a Pi 4")
      .example("$0 ring --nodes a,b,c,d --add e", "what moves when a fifth board joins")
      .example(
        "$0 ring --nodes a,b,c,d --remove b --partitions-table",
        "what moves when b leaves, per partition",
      )
      .example("$0 ring --nodes a,b,c:2 --json", "placement and loads for a script")
      .epilogue(
        "SHARE is the node's weighted share of all replicas (capped at one replica per partition, marked *);\n" +
          "a ring is balanced when every node is within ±15% of its share, or ±1 replica for small shares.",
      )
      .fail(failToBoundary) as unknown as Argv<RingArgs>,
  handler: (args: RingArgs): void => {
    process.stdout.write(runRing(args));
  },
};

/** The command's whole output for these arguments. */
export function runRing(args: RingArgs): string {
  const plan = parsePlan(args);
  let before: Ring;
  let after: Ring;
  try {
    before = plan.nodes.reduce(addNode, createRing(plan.options));
    after = plan.remove.reduce(removeNode, before);
    after = plan.add.reduce(addNode, after);
  } catch (err) {
    if (err instanceof RingArgumentError) throw new UsageError(err.message);
    throw err;
  }
  const now = describe(before);
  const changed = plan.add.length > 0 || plan.remove.length > 0;
  const next = changed ? describe(after) : null;
  const moves = next === null ? [] : diffPlacement(now.placement, next.placement);
  if (args.json) return `${JSON.stringify(toJson(now, next, moves, plan))}\n`;
  return renderText(now, next, moves, plan, args["partitions-table"] ?? false);
}

interface Plan {
  nodes: NewNode[];
  add: NewNode[];
  remove: string[];
  options: { partitions: number; replicationFactor: number; vnodesPerWeight: number };
}

function parsePlan(args: RingArgs): Plan {
  const nodes = parseNodeList(args.nodes, "--nodes");
  if (nodes.length === 0) throw new UsageError("--nodes needs at least one node");
  const add = listOf(args.add).flatMap((spec) => parseNodeList(spec, "--add"));
  const remove = listOf(args.remove).flatMap((spec) => splitList(spec));
  for (const id of remove) {
    if (!nodes.some((n) => n.id === id)) throw new UsageError(`--remove ${id}: not one of --nodes`);
  }
  if (new Set(remove).size !== remove.length) throw new UsageError("--remove names a node twice");
  for (const [flag, value, max] of [
    ["--partitions", args.partitions, MAX_PARTITIONS],
    ["--replication", args.replication, MAX_REPLICATION_FACTOR],
    ["--vnodes", args.vnodes, MAX_VNODES_PER_WEIGHT],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
    }
  }
  return {
    nodes,
    add,
    remove,
    options: {
      partitions: args.partitions,
      replicationFactor: args.replication,
      vnodesPerWeight: args.vnodes,
    },
  };
}

function listOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function splitList(spec: string): string[] {
  return spec
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** `a,b,c:2` → nodes a and b of weight 1 and c of weight 2. Ids are checked when they join. */
export function parseNodeList(spec: string, flag: string): NewNode[] {
  const items = splitList(spec);
  if (items.length > MAX_NODES) throw new UsageError(`${flag} lists more than ${MAX_NODES} nodes`);
  const seen = new Set<string>();
  return items.map((item) => {
    const [id = "", weightText, extra] = item.split(":");
    if (extra !== undefined) throw new UsageError(`${flag} ${item}: write id or id:weight`);
    const weight = weightText === undefined ? 1 : /^\d+$/.test(weightText) ? Number(weightText) : NaN;
    if (Number.isNaN(weight)) throw new UsageError(`${flag} ${item}: the weight must be a whole number`);
    if (seen.has(id)) throw new UsageError(`${flag} lists ${id} twice`);
    seen.add(id);
    return { id, weight };
  });
}

interface NodeRow {
  id: string;
  weight: number;
  tokens: number;
  replicas: number;
  preferredLeaders: number;
  share: number;
  /** The share hit the cap of one replica per partition. */
  capped: boolean;
  deviationPercent: number;
  withinBound: boolean;
}

interface View {
  ring: Ring;
  placement: Placement;
  rows: NodeRow[];
  balanced: boolean;
}

function describe(ring: Ring): View {
  const placed = placement(ring);
  const loads = loadByNode(placed, ring);
  const shares = weightedShares(ring.nodes, ring.partitions, ring.replicationFactor);
  const rows = ring.nodes.map((node): NodeRow => {
    const load = loads.get(node.id) ?? { replicas: 0, preferredLeaders: 0 };
    const share = shares.get(node.id) ?? 0;
    return {
      id: node.id,
      weight: node.weight,
      tokens: node.tokens.length,
      replicas: load.replicas,
      preferredLeaders: load.preferredLeaders,
      share,
      capped: share >= ring.partitions - 1e-9 && ring.nodes.length > ring.replicationFactor,
      deviationPercent: share > 0 ? ((load.replicas - share) / share) * 100 : 0,
      // The small epsilon keeps a share like 2.9999999 from failing a load of 2 by rounding.
      withinBound: Math.abs(load.replicas - share) <= balanceTolerance(share) + 1e-9,
    };
  });
  return { ring, placement: placed, rows, balanced: rows.every((r) => r.withinBound) };
}

function summary(ring: Ring): string {
  const replicas = totalReplicas(ring.partitions, ring.replicationFactor, ring.nodes.length);
  const perPartition = Math.min(ring.replicationFactor, ring.nodes.length);
  return (
    `${ring.nodes.length} node${ring.nodes.length === 1 ? "" : "s"}, ${ring.partitions} partitions × ` +
    `${perPartition} replica${perPartition === 1 ? "" : "s"} = ${replicas} replicas, ` +
    `${ring.vnodesPerWeight} tokens per unit of weight`
  );
}

function loadTable(view: View): string {
  const table = formatTable(
    ["NODE", "WEIGHT", "TOKENS", "REPLICAS", "SHARE", "DEVIATION", "LEADERS"],
    view.rows.map((r) => [
      r.id,
      String(r.weight),
      String(r.tokens),
      String(r.replicas),
      `${r.share.toFixed(1)}${r.capped ? "*" : ""}`,
      `${r.deviationPercent >= 0 ? "+" : ""}${r.deviationPercent.toFixed(1)}%${r.withinBound ? "" : " !"}`,
      String(r.preferredLeaders),
    ]),
  );
  const outside = view.rows.filter((r) => !r.withinBound).map((r) => r.id);
  const verdict =
    outside.length === 0
      ? "balanced: every node is within ±15% of its share (±1 replica for small shares)"
      : `NOT balanced: ${outside.join(", ")} outside ±15% of the share (±1 replica for small shares), marked !`;
  const capped = view.rows.some((r) => r.capped)
    ? "\n* capped: a node holds at most one replica of each partition"
    : "";
  return `${table}\n${verdict}${capped}`;
}

function moveText(m: Move): string {
  if (m.from === null) return `p${m.partition} +${m.to ?? ""}`;
  if (m.to === null) return `p${m.partition} -${m.from}`;
  return `p${m.partition} ${m.from}→${m.to}`;
}

/** Per node, in ring order: replicas gained and lost through `moves`. */
function moveBalance(
  moves: readonly Move[],
  order: readonly string[],
): { gained: Map<string, number>; lost: Map<string, number> } {
  const gained = new Map<string, number>();
  const lost = new Map<string, number>();
  const sorted = [...moves].sort((a, b) => rank(a.to) - rank(b.to) || rank(a.from) - rank(b.from));
  function rank(id: string | null): number {
    return id === null ? -1 : order.indexOf(id);
  }
  for (const m of sorted) {
    if (m.to !== null) gained.set(m.to, (gained.get(m.to) ?? 0) + 1);
    if (m.from !== null) lost.set(m.from, (lost.get(m.from) ?? 0) + 1);
  }
  return { gained, lost };
}

function changeTitle(plan: Plan): string {
  const parts: string[] = [];
  if (plan.remove.length > 0) parts.push(`removing ${plan.remove.join(", ")}`);
  if (plan.add.length > 0) {
    parts.push(
      `adding ${plan.add.map((n) => (n.weight === 1 ? n.id : `${n.id} (weight ${n.weight})`)).join(", ")}`,
    );
  }
  return parts.join(" and ");
}

function renderText(
  now: View,
  next: View | null,
  moves: readonly Move[],
  plan: Plan,
  partitionsTable: boolean,
): string {
  const out: string[] = [];
  out.push(`${next === null ? "ring" : "now"}: ${summary(now.ring)}`, "", loadTable(now));
  if (next !== null) {
    out.push("", `after ${changeTitle(plan)}: ${summary(next.ring)}`, "", loadTable(next));
    const total = totalReplicas(now.ring.partitions, now.ring.replicationFactor, now.ring.nodes.length);
    const order = [...now.ring.nodes, ...next.ring.nodes].map((n) => n.id);
    const { gained, lost } = moveBalance(moves, order);
    const fmt = (m: Map<string, number>, sign: string) =>
      [...m].map(([id, n]) => `${id} ${sign}${n}`).join(", ") || "none";
    out.push(
      "",
      `replica moves: ${moves.length}` +
        (total > 0 ? ` (${((moves.length / total) * 100).toFixed(1)}% of ${total} replicas)` : ""),
      `  gained: ${fmt(gained, "+")}`,
      `  lost:   ${fmt(lost, "-")}`,
    );
    for (let i = 0; i < moves.length; i += MOVES_PER_LINE) {
      out.push(
        `  ${moves
          .slice(i, i + MOVES_PER_LINE)
          .map(moveText)
          .join("  ")}`,
      );
    }
  }
  if (partitionsTable) out.push("", partitionTable(now, next, moves));
  return `${out.join("\n")}\n`;
}

function partitionTable(now: View, next: View | null, moves: readonly Move[]): string {
  if (next === null) {
    return formatTable(
      ["PARTITION", "REPLICAS (leader first)"],
      now.placement.partitions.map((p) => [String(p.partition), p.replicas.join(", ")]),
    );
  }
  return formatTable(
    ["PARTITION", "NOW", "AFTER", "MOVES"],
    now.placement.partitions.map((p, i) => [
      String(p.partition),
      p.replicas.join(", "),
      next.placement.partitions[i]!.replicas.join(", "),
      moves
        .filter((m) => m.partition === p.partition)
        .map((m) => moveText(m).replace(/^p\d+ /, ""))
        .join(" ") || "-",
    ]),
  );
}

function viewJson(view: View): object {
  return {
    partitions: view.ring.partitions,
    replicationFactor: view.ring.replicationFactor,
    vnodesPerWeight: view.ring.vnodesPerWeight,
    totalReplicas: totalReplicas(view.ring.partitions, view.ring.replicationFactor, view.ring.nodes.length),
    balanced: view.balanced,
    nodes: view.rows,
    placement: view.placement.partitions,
  };
}

function toJson(now: View, next: View | null, moves: readonly Move[], plan: Plan): object {
  if (next === null) return viewJson(now);
  return {
    ...viewJson(now),
    change: {
      added: plan.add.map((n) => n.id),
      removed: plan.remove,
      moveCount: moves.length,
      moves,
      after: viewJson(next),
    },
  };
}
