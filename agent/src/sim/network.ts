/**
 * The simulated network between Raft peers: every message gets a random delay (so messages
 * overtake each other), may be dropped or duplicated, and never crosses a link that is cut.
 * Links are directed, so a one-way partition ("A hears B but B does not hear A") is just one cut
 * link. A message is checked against the links both when it is sent and when it would arrive: a
 * cut made while it is on the wire loses it, as a real connection reset would.
 */
import type { Random } from "./random.js";

export class NetworkParamsError extends Error {
  override readonly name = "NetworkParamsError";
  constructor(message: string) {
    super(message);
  }
}

/** Times are in the simulator's time units (several per tick). */
export interface NetworkParams {
  readonly minDelay: number;
  readonly maxDelay: number;
  /** Chance that a message takes the slow path, up to `slowMaxDelay` (reordering across ticks). */
  readonly slowChance: number;
  readonly slowMaxDelay: number;
  readonly dropChance: number;
  readonly duplicateChance: number;
  /** Bound on messages on the wire; past it new messages are dropped (a full socket buffer). */
  readonly maxInFlight: number;
}

export const RELIABLE_NETWORK: NetworkParams = {
  minDelay: 1,
  maxDelay: 10,
  slowChance: 0,
  slowMaxDelay: 10,
  dropChance: 0,
  duplicateChance: 0,
  maxInFlight: 100_000,
};

export interface Addressed {
  readonly from: string;
  readonly to: string;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  cut: number;
  overflow: number;
}

export type PartitionMode = "both" | "in" | "out";

export class Network<M extends Addressed> {
  private params: NetworkParams;
  private readonly cutLinks = new Set<string>();
  private inFlight = 0;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cut: 0, overflow: 0 };

  /**
   * @param schedule hands a message to the event queue for delivery at `time`; the event must
   *   call `arrive` when it fires.
   */
  constructor(
    private readonly random: Random,
    params: NetworkParams,
    private readonly schedule: (time: number, msg: M) => void,
  ) {
    this.params = checkParams(params);
  }

  setParams(params: NetworkParams): void {
    this.params = checkParams(params);
  }

  getParams(): NetworkParams {
    return this.params;
  }

  get messagesInFlight(): number {
    return this.inFlight;
  }

  send(msg: M, now: number): void {
    this.stats.sent++;
    if (!this.linkUp(msg.from, msg.to)) {
      this.stats.cut++;
      return;
    }
    const p = this.params;
    if (this.random.chance(p.dropChance)) {
      this.stats.dropped++;
      return;
    }
    const copies = this.random.chance(p.duplicateChance) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (this.inFlight >= p.maxInFlight) {
        this.stats.overflow++;
        return;
      }
      const slow = this.random.chance(p.slowChance);
      const delay = slow
        ? this.random.int(p.maxDelay, p.slowMaxDelay)
        : this.random.int(p.minDelay, p.maxDelay);
      this.inFlight++;
      this.schedule(now + delay, msg);
    }
  }

  /** Called when a scheduled message is due; false means it was lost on a link cut meanwhile. */
  arrive(msg: M): boolean {
    this.inFlight--;
    if (!this.linkUp(msg.from, msg.to)) {
      this.stats.cut++;
      return false;
    }
    this.stats.delivered++;
    return true;
  }

  linkUp(from: string, to: string): boolean {
    return this.cutLinks.size === 0 || !this.cutLinks.has(linkKey(from, to));
  }

  cut(from: string, to: string): void {
    if (from !== to) this.cutLinks.add(linkKey(from, to));
  }

  /**
   * Cuts `node` off from `others`: "both" in both directions, "in" so that it hears nobody (but
   * is heard), "out" so that nobody hears it (but it hears them).
   */
  isolate(node: string, others: readonly string[], mode: PartitionMode): void {
    for (const other of others) {
      if (mode !== "out") this.cut(other, node);
      if (mode !== "in") this.cut(node, other);
    }
  }

  /** Splits the nodes into two sides; with `oneWay`, only messages from `a` to `b` are lost. */
  split(a: readonly string[], b: readonly string[], oneWay: boolean): void {
    for (const x of a) {
      for (const y of b) {
        this.cut(x, y);
        if (!oneWay) this.cut(y, x);
      }
    }
  }

  healAll(): void {
    this.cutLinks.clear();
  }

  /** The cut links, sorted, for traces ("n1>n2"). */
  describeCuts(): string {
    return [...this.cutLinks].sort().join(" ");
  }

  get partitioned(): boolean {
    return this.cutLinks.size > 0;
  }
}

function linkKey(from: string, to: string): string {
  return `${from}>${to}`;
}

function checkParams(p: NetworkParams): NetworkParams {
  const ok =
    Number.isInteger(p.minDelay) &&
    Number.isInteger(p.maxDelay) &&
    Number.isInteger(p.slowMaxDelay) &&
    p.minDelay >= 1 &&
    p.maxDelay >= p.minDelay &&
    (p.slowChance === 0 || p.slowMaxDelay >= p.maxDelay) &&
    p.dropChance >= 0 &&
    p.dropChance < 1 &&
    p.duplicateChance >= 0 &&
    p.duplicateChance < 1 &&
    p.slowChance >= 0 &&
    p.slowChance <= 1 &&
    Number.isInteger(p.maxInFlight) &&
    p.maxInFlight > 0;
  if (!ok) throw new NetworkParamsError(`bad network parameters ${JSON.stringify(p)}`);
  return p;
}
