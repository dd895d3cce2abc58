/**
 * Which followers a leader has heard from lately, per partition. The Raft core's `recentActive`
 * flag is cleared at every election timeout and set again by the next heartbeat response, so a
 * single look catches a healthy follower "inactive" one time in five or so. This tracker looks
 * every `checkMs` and remembers when each follower was last seen active; a follower is inactive
 * only when it has not been seen for `graceMs`.
 */
import type { LedPartition } from "./record.js";

export interface LedGroupStatus {
  readonly partition: number;
  readonly term: number;
  readonly commit: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Members the core currently flags as recently active. */
  readonly recentActive: ReadonlySet<string>;
}

export class ActivityTracker {
  /** partition → follower → monotonic ms last seen active. */
  private readonly seen = new Map<number, Map<string, number>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly self: string,
    private readonly led: () => readonly LedGroupStatus[],
    private readonly opts: { checkMs: number; graceMs: number; monotonic?: () => number },
  ) {}

  private now(): number {
    return (this.opts.monotonic ?? (() => performance.now()))();
  }

  start(): void {
    this.timer = setInterval(() => this.check(), this.opts.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Records who is active now; returns the led partitions it looked at. */
  check(): readonly LedGroupStatus[] {
    const now = this.now();
    const led = this.led();
    const current = new Set<number>();
    for (const g of led) {
      current.add(g.partition);
      let m = this.seen.get(g.partition);
      if (!m) {
        // A new leader gives its followers the benefit of the doubt for one grace period.
        m = new Map(g.voters.map((v) => [v, now]));
        this.seen.set(g.partition, m);
      }
      for (const id of g.recentActive) m.set(id, now);
    }
    for (const p of this.seen.keys()) if (!current.has(p)) this.seen.delete(p);
    return led;
  }

  /** The led partitions with the voters seen active within the grace period. */
  leads(): LedPartition[] {
    const now = this.now();
    return this.check().map((g) => {
      const m = this.seen.get(g.partition);
      const active = g.voters.filter(
        (v) => v === this.self || (m?.get(v) !== undefined && now - m.get(v)! <= this.opts.graceMs),
      );
      return {
        partition: g.partition,
        term: g.term,
        voters: g.voters,
        learners: g.learners,
        active,
        commit: g.commit,
      };
    });
  }
}
