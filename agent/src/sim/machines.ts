/**
 * What the one-group simulator (`simulation.ts`) and the multi-Raft one (`multi/simulation.ts`)
 * do alike: run the events due on the virtual clock, crash machines and bring them back through
 * the event queue, and check the client history at the end of a run, folding it into the run's
 * digest. A machine is a node of the first and a board of the second.
 */
import { checkKvHistory, type CheckResult, type Operation } from "../check/linearizability.js";
import type { NodeId } from "../raft/index.js";
import { UNITS_PER_TICK } from "./config.js";
import type { EventQueue } from "./event-queue.js";
import type { Digest } from "./hash.js";

/** Characters of the checker's explanation kept in a violation's one-line description. */
const MAX_EXPLANATION = 240;
/** Model steps for the linearizability check of one run (enough for several thousand operations). */
const LINEARIZABILITY_STEPS = 2_000_000;

export interface Machine {
  readonly id: NodeId;
  readonly up: boolean;
  decommissioned: boolean;
  /** Bumped by every crash, so a restart scheduled before a later crash is recognised as stale. */
  readonly incarnation: number;
  crash(): void;
}

/** The event that brings a crashed machine back. */
export interface RestartEvent {
  readonly kind: "restart";
  readonly node: NodeId;
  readonly incarnation: number;
}

/** Runs every queued event due before `time`, in order, telling `run` each event's own time. */
export function runDue<E>(queue: EventQueue<E>, time: number, run: (at: number, ev: E) => void): void {
  while (queue.peekTime() < time) {
    const ev = queue.pop()!;
    run(ev.time, ev.value);
  }
}

/** Crashes, restarts and retirements of a simulation's machines. */
export class Machines<T extends Machine> {
  constructor(
    private readonly all: ReadonlyMap<NodeId, T>,
    private readonly schedule: (at: number, ev: RestartEvent) => void,
    private readonly now: () => number,
    private readonly trace: (line: string) => void,
  ) {}

  /** Machines down for now (crashed and due back), not those retired for good. */
  downCount(): number {
    let n = 0;
    for (const m of this.all.values()) if (!m.up && !m.decommissioned) n++;
    return n;
  }

  crash(id: NodeId, downTicks: number, why: string): void {
    const m = this.all.get(id);
    if (m === undefined || !m.up) return;
    m.crash();
    this.trace(`${id} crashed (${why}); restarts in ${downTicks} ticks`);
    this.schedule(this.now() + downTicks * UNITS_PER_TICK, {
      kind: "restart",
      node: id,
      incarnation: m.incarnation,
    });
  }

  /** The machine a restart event brings back, or null when the event went stale meanwhile. */
  restarting(ev: RestartEvent): T | null {
    const m = this.all.get(ev.node);
    if (m === undefined || m.up || m.decommissioned || m.incarnation !== ev.incarnation) return null;
    this.trace(`${m.id} restarts`);
    return m;
  }

  /** Shuts a machine down for good; `from` says what it was removed from, for the trace. */
  decommission(id: NodeId, from: string): void {
    const m = this.all.get(id);
    if (m === undefined || m.decommissioned) return;
    m.crash();
    m.decommissioned = true;
    this.trace(`${id} removed from ${from} and shut down`);
  }
}

/**
 * Folds the client history into the run's digest and checks it for linearizability. A violation
 * is handed to `violation` with the gist of the checker's explanation (its last sentence says
 * what broke); a check that runs out of steps is traced.
 */
export function checkRunHistory(
  history: readonly Operation[],
  digest: Digest,
  violation: (res: Extract<CheckResult, { kind: "violation" }>, gist: string) => void,
  trace: (line: string) => void,
): CheckResult["kind"] {
  for (const op of history) {
    digest.addNumber(op.id);
    digest.addNumber(op.call);
    digest.addNumber(Number.isFinite(op.ret) ? op.ret : 0);
  }
  const res = checkKvHistory(history, { maxSteps: LINEARIZABILITY_STEPS });
  if (res.kind === "violation") {
    const why = res.explanation.split("\n")[0] ?? "";
    violation(res, why.length > MAX_EXPLANATION ? `…${why.slice(-MAX_EXPLANATION)}` : why);
  } else if (res.kind === "unknown") {
    trace(`linearizability check gave up: ${res.reason}`);
  }
  return res.kind;
}

/** An exception that escaped a run, as one line: name, message and the first stack frame. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return `threw ${String(err)}`;
  const frame = err.stack
    ?.split("\n")
    .find((l) => l.trim().startsWith("at "))
    ?.trim();
  return `${err.name}: ${err.message}${frame ? ` (${frame})` : ""}`;
}
