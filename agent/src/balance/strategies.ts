/**
 * How a request picks one of several equivalent targets: the replica that serves an `eventual`
 * read (the agent), or the entry agent a client talks to (the CLI, the serial bridge). One
 * implementation for all of them, so `--strategy ip-hash` means the same thing everywhere.
 *
 *  - `random`: uniform;
 *  - `round-robin`: each call starts one further along the list;
 *  - `ip-hash`: rendezvous hashing of the client's address with each candidate (XXH32), so one
 *    client keeps hitting one target while that target stands, and different clients spread;
 *    without an address it falls back to round-robin;
 *  - `least-loaded`: lowest load score first (a `LoadSource`); candidates whose load is unknown
 *    come after every known one, and overloaded ones (score ≥ `overloadedAt`) last of all, so
 *    they are tried only when nothing else answers. Equal scores take turns.
 *
 * `order` returns every candidate, best first: the caller tries them in turn when one fails.
 */
import { xxhash32String } from "../ring/hash.js";
import type { LoadSource } from "./load.js";

export type Strategy = "random" | "round-robin" | "ip-hash" | "least-loaded";

export const STRATEGIES: readonly Strategy[] = ["random", "round-robin", "ip-hash", "least-loaded"];

/** A score at or above this marks a target overloaded (the health score of a busy, throttled board). */
export const DEFAULT_OVERLOADED_AT = 2;

/** A strategy name that is not one of `STRATEGIES`. */
export class UnknownStrategyError extends Error {
  override readonly name = "UnknownStrategyError";
  constructor(readonly value: string) {
    super(`unknown strategy "${value.slice(0, 40)}"; choose one of ${STRATEGIES.join(", ")}`);
  }
}

export function isStrategy(value: unknown): value is Strategy {
  return typeof value === "string" && (STRATEGIES as readonly string[]).includes(value);
}

/** The strategy named `value`, or an `UnknownStrategyError`. */
export function parseStrategy(value: string): Strategy {
  if (!isStrategy(value)) throw new UnknownStrategyError(value);
  return value;
}

export interface BalancerOptions {
  /** The strategy when a call names none. */
  readonly strategy?: Strategy;
  /** Scores for `least-loaded`; without one, every candidate counts as unknown (then round-robin). */
  readonly load?: LoadSource;
  readonly overloadedAt?: number;
  /** Values in [0, 1); injected so tests are repeatable. */
  readonly random?: () => number;
}

export interface PickContext {
  /** Overrides the balancer's strategy for this call (a per-request `?strategy=`). */
  readonly strategy?: Strategy;
  /** The client's address, for `ip-hash`. */
  readonly clientAddress?: string;
}

export class Balancer {
  readonly strategy: Strategy;
  private readonly load: LoadSource | undefined;
  private readonly overloadedAt: number;
  private readonly random: () => number;
  private turn = 0;

  constructor(opts: BalancerOptions = {}) {
    this.strategy = opts.strategy ?? "round-robin";
    this.load = opts.load;
    this.overloadedAt = opts.overloadedAt ?? DEFAULT_OVERLOADED_AT;
    this.random = opts.random ?? Math.random;
  }

  /** Every candidate id, best first, by the call's strategy (or the balancer's). */
  order(candidates: readonly string[], ctx: PickContext = {}): string[] {
    const n = candidates.length;
    if (n <= 1) return [...candidates];
    switch (ctx.strategy ?? this.strategy) {
      case "random":
        return rotate(candidates, Math.min(n - 1, Math.floor(this.random() * n)));
      case "round-robin":
        return rotate(candidates, this.nextTurn(n));
      case "ip-hash": {
        if (ctx.clientAddress === undefined || ctx.clientAddress === "")
          return rotate(candidates, this.nextTurn(n));
        // Rendezvous hashing: each target scores hash(client, target), highest first. A target
        // missing from one agent's view (not registered yet, or gone) moves only the clients
        // it had; hashing modulo the count would move almost all of them.
        const address = ctx.clientAddress;
        const score = new Map(candidates.map((id) => [id, xxhash32String(`${address}\u0000${id}`)]));
        return [...candidates].sort((a, b) => score.get(b)! - score.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
      }
      case "least-loaded":
        return this.byLoad(candidates);
    }
  }

  private nextTurn(n: number): number {
    const i = this.turn % n;
    this.turn = (this.turn + 1) % 1_000_000_007;
    return i;
  }

  private byLoad(candidates: readonly string[]): string[] {
    // Rotating first makes equal scores take turns (the sort below is stable).
    const turned = rotate(candidates, this.nextTurn(candidates.length));
    const scored = turned.map((id) => {
      const s = this.load?.loadOf(id);
      const known = s !== undefined && Number.isFinite(s);
      // Rank 0: known and fine; 1: unknown; 2: overloaded.
      const rank = !known ? 1 : s >= this.overloadedAt ? 2 : 0;
      return { id, rank, score: known ? s : 0 };
    });
    scored.sort((a, b) => a.rank - b.rank || a.score - b.score);
    return scored.map((x) => x.id);
  }
}

function rotate<T>(items: readonly T[], start: number): T[] {
  return [...items.slice(start), ...items.slice(0, start)];
}
