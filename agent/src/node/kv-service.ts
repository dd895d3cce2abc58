/**
 * The agent's side of the client API: it turns HTTP requests into Raft proposals and read
 * barriers on the right group, and local LMDB reads once the barrier is passed.
 */
import { CasMismatchError, ServiceUnavailableError } from "../api/errors.js";
import { ABSENT_VERSION, type Consistency, type KvItem, type KvService } from "../api/service.js";
import type { KvCommandInput } from "../kv/commands.js";
import type { GroupId } from "../raft/index.js";
import { UnavailableError, type RaftHost } from "./host.js";
import type { DurableStore } from "./ports.js";

/** Until the ring lands (issue 4), one data group holds every key. */
export const DATA_GROUP: GroupId = 1;

export interface KvServiceDeps {
  readonly host: RaftHost;
  readonly store: DurableStore;
  readonly status: () => Promise<unknown>;
  readonly metrics: () => Promise<string>;
  readonly healthy: () => { ok: boolean; reason?: string };
}

export class RaftKvService implements KvService {
  constructor(private readonly deps: KvServiceDeps) {}

  private groupFor(_key: string): GroupId {
    return DATA_GROUP;
  }

  private async write(
    cmd: KvCommandInput,
    signal?: AbortSignal,
  ): Promise<{ version: string; deleted?: boolean }> {
    const result = await mapUnavailable(() => this.deps.host.propose(this.groupFor(cmd.key), cmd, signal));
    if (!result.ok) {
      throw new CasMismatchError(
        `version of ${JSON.stringify(cmd.key)} is ${result.current === ABSENT_VERSION ? "absent (0)" : result.current}, not ${cmd.cas}`,
      );
    }
    return result;
  }

  async put(
    key: string,
    value: Uint8Array,
    opts: { cas?: string; signal?: AbortSignal },
  ): Promise<{ version: string }> {
    const r = await this.write({ op: "put", key, value, cas: opts.cas ?? null }, opts.signal);
    return { version: r.version };
  }

  async del(
    key: string,
    opts: { cas?: string; signal?: AbortSignal },
  ): Promise<{ version: string; deleted: boolean }> {
    const r = await this.write({ op: "del", key, cas: opts.cas ?? null }, opts.signal);
    return { version: r.version, deleted: r.deleted ?? false };
  }

  async get(
    key: string,
    opts: { consistency: Consistency; signal?: AbortSignal },
  ): Promise<{ value: Uint8Array; version: string } | null> {
    const group = this.groupFor(key);
    await mapUnavailable(() => this.deps.host.readBarrier(group, opts.consistency, opts.signal));
    return this.deps.store.get(group, key);
  }

  async scan(opts: {
    prefix: string;
    limit: number;
    after?: string;
    consistency: Consistency;
    signal?: AbortSignal;
  }): Promise<{ items: KvItem[]; next: string | null }> {
    const group = DATA_GROUP;
    await mapUnavailable(() => this.deps.host.readBarrier(group, opts.consistency, opts.signal));
    // One extra row tells whether another page follows.
    const rows = this.deps.store.scan(group, {
      prefix: opts.prefix,
      limit: opts.limit + 1,
      ...(opts.after !== undefined ? { after: opts.after } : {}),
    });
    const page = rows.slice(0, opts.limit);
    const items = page.map((r) => ({ key: r.key, value: r.record.value, version: r.record.version }));
    const next = rows.length > opts.limit ? (page[page.length - 1]?.key ?? null) : null;
    return { items, next };
  }

  status(): Promise<unknown> {
    return this.deps.status();
  }

  metrics(): Promise<string> {
    return this.deps.metrics();
  }

  healthy(): { ok: boolean; reason?: string } {
    return this.deps.healthy();
  }
}

async function mapUnavailable<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UnavailableError) throw new ServiceUnavailableError(err.message, 1);
    throw err;
  }
}
