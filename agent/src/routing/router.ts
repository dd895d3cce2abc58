/**
 * The client side of partition routing: keeps a merged routing table fresh and names the API
 * endpoint that leads a key's partition. Used by `ringleader bench` and the CLI client; with no
 * table yet (or a partition whose leader is unknown) callers fall back to their own endpoint
 * choice, so routing only ever removes a hop, never an answer.
 */
import { partitionForKey } from "../ring/keys.js";
import { mergeRoutingTables, parseRoutingTable, type RoutingTable } from "./table.js";
import { httpFetch } from "../net/http-fetch.js";

export interface PartitionRouterOptions {
  readonly endpoints: readonly string[];
  readonly token: string;
  /** How often the table is read again (leaders move on failover and rebalancing). */
  readonly refreshMs?: number;
  /** Per-request timeout of a table read. */
  readonly timeoutMs?: number;
}

export class PartitionRouter {
  private partitions = 0;
  private leaders: (string | undefined)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  /** Table reads that failed (a node down or too old to have `/v1/routing`). */
  failures = 0;

  constructor(private readonly opts: PartitionRouterOptions) {}

  /** Reads the table once now, then every `refreshMs` in the background until `stop`. */
  async start(): Promise<void> {
    await this.refresh();
    const every = this.opts.refreshMs ?? 1000;
    this.timer = setInterval(() => void this.refresh(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The API URL of the leader of `key`'s partition, if known. */
  endpointFor(key: string): string | undefined {
    if (this.partitions === 0) return undefined;
    return this.leaders[partitionForKey(this.partitions, key)];
  }

  /** How many partitions have a known leader (for progress output and tests). */
  known(): number {
    return this.leaders.filter((l) => l !== undefined).length;
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.readAll().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async readAll(): Promise<void> {
    const tables = await Promise.all(this.opts.endpoints.map((e) => this.read(e)));
    const merged = mergeRoutingTables(tables.filter((t): t is RoutingTable => t !== null));
    if (!merged) return;
    this.partitions = merged.partitions;
    this.leaders = merged.leaders;
  }

  private async read(endpoint: string): Promise<RoutingTable | null> {
    try {
      const res = await httpFetch(new URL("/v1/routing", endpoint), {
        headers: { authorization: `Bearer ${this.opts.token}` },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 2000),
      });
      if (!res.ok) {
        this.failures++;
        await res.body?.cancel();
        return null;
      }
      return parseRoutingTable(await res.json());
    } catch {
      this.failures++;
      return null;
    }
  }
}
