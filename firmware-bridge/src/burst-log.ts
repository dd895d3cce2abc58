/**
 * Logging of recurring problems without flooding the log (or the SD card it lives on): a port
 * full of line noise or a cluster that is down must not write a line per occurrence.
 */
import type { Logger } from "../../agent/src/node/logger.js";

/**
 * For a state that goes bad and comes back (the cluster, a port that will not open): the first
 * occurrence at once, then at most one line per `quietMs` saying how many more there were, and
 * a line when the caller sees it `recovered`.
 */
export class BurstLog {
  private suppressed = 0;
  private lastLoggedAt = -Infinity;
  private active = false;

  constructor(
    private readonly logger: Logger,
    private readonly level: "warn" | "error" | "info",
    private readonly message: string,
    private readonly quietMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  note(fields: Record<string, unknown> = {}): void {
    const t = this.now();
    if (this.active && t - this.lastLoggedAt < this.quietMs) {
      this.suppressed++;
      return;
    }
    const more = this.suppressed > 0 ? { more: this.suppressed } : {};
    this.logger[this.level](this.message, { ...fields, ...more });
    this.suppressed = 0;
    this.lastLoggedAt = t;
    this.active = true;
  }

  /** Ends the burst; says so when one was going on. */
  recovered(message: string, fields: Record<string, unknown> = {}): void {
    if (!this.active) return;
    this.logger.info(message, this.suppressed > 0 ? { ...fields, more: this.suppressed } : fields);
    this.active = false;
    this.suppressed = 0;
  }
}

/**
 * Logs a problem that comes in bursts (line noise, a board at the wrong baud rate, frames of a
 * newer protocol) as one line per burst saying how many there were and of which kinds. A burst
 * ends after `quietMs` without the problem; one that goes on is logged every `quietMs`. The line
 * comes up to `quietMs` after the burst began, so the caller calls `flush()` from a periodic tick
 * (and once when it stops); the metrics count every occurrence at once.
 */
export class BurstCounter {
  private count = 0;
  private firstAt = 0;
  private lastAt = 0;
  private kinds = new Map<string, number>();
  private extra: Record<string, number> = {};

  constructor(
    private readonly logger: Logger,
    private readonly message: string,
    private readonly fields: Record<string, unknown>,
    private readonly quietMs: number,
    private readonly now: () => number,
  ) {}

  /** One occurrence of `kind`; `amounts` (e.g. bytes dropped) are summed over the burst. */
  note(kind: string, amounts: Record<string, number> = {}): void {
    const t = this.now();
    if (this.count === 0) this.firstAt = t;
    this.count++;
    this.lastAt = t;
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    for (const [k, v] of Object.entries(amounts)) this.extra[k] = (this.extra[k] ?? 0) + v;
  }

  /** Logs the burst if it is over or has lasted `quietMs`; with `final`, whatever was counted. */
  flush(final = false): void {
    if (this.count === 0) return;
    const t = this.now();
    if (!final && t - this.lastAt < this.quietMs && t - this.firstAt < this.quietMs) return;
    this.logger.warn(this.message, {
      ...this.fields,
      count: this.count,
      kinds: [...this.kinds].map(([k, n]) => `${k}=${n}`).join(","),
      ...this.extra,
      overMs: Math.round(this.lastAt - this.firstAt),
    });
    this.count = 0;
    this.kinds = new Map();
    this.extra = {};
  }
}
