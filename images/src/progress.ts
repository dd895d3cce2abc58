/**
 * Progress of long operations (decompressing, writing a card, verifying): a bar with throughput
 * and time left on a terminal, a line every tenth on a log, nothing for `--json`.
 */

/** What long operations report to; a phase is one pass over `totalBytes`. */
export interface ProgressSink {
  phase(label: string, totalBytes: number): void;
  advance(doneBytes: number): void;
  /** A one-line note between phases ("growing the root partition by 64 MiB"). */
  note(text: string): void;
  finish(): void;
}

export const silentProgress: ProgressSink = {
  phase: () => undefined,
  advance: () => undefined,
  note: () => undefined,
  finish: () => undefined,
};

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Throughput in the unit card vendors print (MB/s, decimal). */
export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** The pieces of one progress line, computed without any IO so tests can check them. */
export function renderBar(
  label: string,
  doneBytes: number,
  totalBytes: number,
  bytesPerSecond: number,
  width = 24,
): string {
  const fraction = totalBytes > 0 ? Math.min(1, doneBytes / totalBytes) : 1;
  const filled = Math.round(fraction * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const eta = bytesPerSecond > 0 ? (totalBytes - doneBytes) / bytesPerSecond : NaN;
  return (
    `${label.padEnd(12)} [${bar}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ` +
    `${formatBytes(doneBytes)} / ${formatBytes(totalBytes)}  ${formatRate(bytesPerSecond)}  ETA ${formatDuration(eta)}`
  );
}

/** Keeps the last few seconds of samples so the rate follows the card, not the page cache. */
const RATE_WINDOW_MS = 3000;
const REDRAW_EVERY_MS = 200;

export class TerminalProgress implements ProgressSink {
  private label = "";
  private total = 0;
  private done = 0;
  private samples: { atMs: number; bytes: number }[] = [];
  private lastDrawMs = -Infinity;
  private lastTenth = -1;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  phase(label: string, totalBytes: number): void {
    this.endLine();
    this.label = label;
    this.total = totalBytes;
    this.done = 0;
    this.samples = [{ atMs: this.nowMs(), bytes: 0 }];
    this.lastTenth = -1;
    this.lastDrawMs = -Infinity;
    this.draw(true);
  }

  /** Bytes per second over the recent window. */
  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.atMs <= first.atMs) return 0;
    return ((last.bytes - first.bytes) * 1000) / (last.atMs - first.atMs);
  }

  advance(doneBytes: number): void {
    this.done = doneBytes;
    const now = this.nowMs();
    this.samples.push({ atMs: now, bytes: doneBytes });
    while (this.samples.length > 2 && (this.samples[0]?.atMs ?? now) < now - RATE_WINDOW_MS)
      this.samples.shift();
    this.draw(false);
  }

  note(text: string): void {
    this.endLine();
    this.out.write(`${text}\n`);
  }

  finish(): void {
    this.draw(true);
    this.endLine();
    this.label = "";
  }

  private draw(force: boolean): void {
    if (this.label === "") return;
    const line = renderBar(this.label, this.done, this.total, this.rate());
    if (this.out.isTTY) {
      const now = this.nowMs();
      if (!force && now - this.lastDrawMs < REDRAW_EVERY_MS) return;
      this.lastDrawMs = now;
      this.out.write(`\r${line}\x1b[K`);
      this.drawn = true;
      return;
    }
    // A log gets one line per tenth, so a CI log shows progress without thousands of lines.
    const tenth = this.total > 0 ? Math.floor((this.done / this.total) * 10) : 10;
    if (tenth === this.lastTenth) return;
    this.lastTenth = tenth;
    this.out.write(`${line}\n`);
  }

  private endLine(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
