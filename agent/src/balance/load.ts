/**
 * Load scores for the `least-loaded` strategy. `LoadSource` is the seam: the board-health
 * monitor (`agent/src/health/`) reports each node's CPU, temperature and throttling as a score
 * (agents read it from each other; clients from `GET /v1/health`, combined by `ReportedLoad`);
 * where none is at hand, `LocalLoadTracker` scores what this process sees itself: requests it
 * has in flight to each target and how long recent ones took.
 *
 * Scores share one scale: about 0 for an idle target, 1 for one at its capacity, 2 and more for
 * an overloaded one (see `DEFAULT_OVERLOADED_AT`).
 */

/** What `least-loaded` asks: lower is better, undefined when unknown. */
export interface LoadSource {
  loadOf(node: string): number | undefined;
}

export interface LocalLoadOptions {
  /** Requests in flight to one target that count as its full capacity (score 1). */
  readonly capacity?: number;
  /** A recent latency this long adds 1 to the score. */
  readonly latencyScaleMs?: number;
  /** Weight of the newest latency in the moving average (0-1]. */
  readonly alpha?: number;
  /** Bound on the targets tracked; the least recently used one is forgotten past it. */
  readonly maxTargets?: number;
  /** Milliseconds from an arbitrary origin. */
  readonly now?: () => number;
}

interface TargetLoad {
  inFlight: number;
  latencyMs: number;
}

/** Scores targets by in-flight requests and recent latency, as seen from this process. */
export class LocalLoadTracker implements LoadSource {
  private readonly targets = new Map<string, TargetLoad>();
  private readonly capacity: number;
  private readonly latencyScaleMs: number;
  private readonly alpha: number;
  private readonly maxTargets: number;
  private readonly now: () => number;

  constructor(opts: LocalLoadOptions = {}) {
    this.capacity = opts.capacity ?? 16;
    this.latencyScaleMs = opts.latencyScaleMs ?? 1000;
    this.alpha = opts.alpha ?? 0.2;
    this.maxTargets = opts.maxTargets ?? 1024;
    this.now = opts.now ?? (() => performance.now());
    if (!(this.capacity > 0 && this.latencyScaleMs > 0 && this.alpha > 0 && this.alpha <= 1)) {
      throw new RangeError("LocalLoadTracker: capacity and latencyScaleMs must be positive, alpha in (0, 1]");
    }
  }

  /** A request to `target` starts; call the returned function once it ends (answered or not). */
  begin(target: string): () => void {
    const t = this.entry(target);
    t.inFlight++;
    const started = this.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      t.inFlight = Math.max(0, t.inFlight - 1);
      const ms = Math.max(0, this.now() - started);
      t.latencyMs = t.latencyMs === 0 ? ms : t.latencyMs + this.alpha * (ms - t.latencyMs);
    };
  }

  /** A target never used scores 0: nothing in flight, nothing slow seen. */
  loadOf(target: string): number {
    const t = this.targets.get(target);
    if (t === undefined) return 0;
    return t.inFlight / this.capacity + t.latencyMs / this.latencyScaleMs;
  }

  inFlight(target: string): number {
    return this.targets.get(target)?.inFlight ?? 0;
  }

  /** The in-flight part of the score alone: 1 when `capacity` requests are under way. */
  inFlightLoad(target: string): number {
    return this.inFlight(target) / this.capacity;
  }

  private entry(target: string): TargetLoad {
    let t = this.targets.get(target);
    if (t !== undefined) {
      // Re-insert: the map's order is least recently used first.
      this.targets.delete(target);
      this.targets.set(target, t);
      return t;
    }
    if (this.targets.size >= this.maxTargets) {
      const oldest = this.targets.keys().next().value;
      if (oldest !== undefined) this.targets.delete(oldest);
    }
    t = { inFlight: 0, latencyMs: 0 };
    this.targets.set(target, t);
    return t;
  }
}

/** Scores reported by the targets themselves (the board-health score), when there are any. */
export interface ReportedLoadSource extends LoadSource {
  /** Whether any target has a current score; when none has, the reports are not used at all. */
  hasScores(): boolean;
}

/**
 * `least-loaded` for a client: the targets' reported scores while it has them, plus what this
 * process itself has in flight to each (so a busy client does not send every request to the one
 * coolest board until the next report); when no report is at hand, the local tracker alone.
 * The two are never mixed across targets: a reported score and a local guess are not comparable.
 */
export class ReportedLoad implements LoadSource {
  constructor(
    private readonly reported: ReportedLoadSource,
    private readonly local: LocalLoadTracker,
  ) {}

  loadOf(target: string): number | undefined {
    if (!this.reported.hasScores()) return this.local.loadOf(target);
    const score = this.reported.loadOf(target);
    return score === undefined ? undefined : score + this.local.inFlightLoad(target);
  }
}
