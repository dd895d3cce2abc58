/**
 * Logs a recurring problem once per burst: the first occurrence at once, then at most one line
 * per `quietMs` saying how many more there were. A port full of line noise or a cluster that is
 * down must not flood the log (or the SD card it lives on).
 */
import type { Logger } from "../../agent/src/node/logger.js";

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
