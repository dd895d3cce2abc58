/**
 * What the client HTTP API needs from the agent. The agent implements `KvService`; the server in
 * `server.ts` only translates HTTP to these calls and their results (and the errors in
 * `errors.ts`) back to HTTP. Tests implement it with an in-memory map.
 */

/**
 * How fresh a read must be. `strong`: linearizable (ReadIndex through the partition leader).
 * `weak`: the leader's local state without a quorum round. `eventual`: any replica's local state,
 * possibly stale.
 */
import type { Strategy } from "../balance/index.js";
import type { AggregateOptions, AggregateResult } from "./aggregate.js";

export type Consistency = "strong" | "weak" | "eventual";

export const CONSISTENCIES: readonly Consistency[] = ["strong", "weak", "eventual"];

/**
 * Versions are opaque strings of decimal digits: callers compare them for equality only. The
 * version `"0"` is reserved and means "absent": a write with `cas: "0"` succeeds only if the key
 * does not exist.
 */
export const ABSENT_VERSION = "0";

export interface KvItem {
  key: string;
  value: Uint8Array;
  version: string;
}

/** Options of a write (`PUT`, `DELETE`). */
export interface WriteOptions {
  cas?: string;
  signal?: AbortSignal;
  /** How many times the request was already forwarded between nodes (loop guard). */
  hops?: number;
}

export interface GetOptions {
  consistency: Consistency;
  signal?: AbortSignal;
  hops?: number;
  /** How an eventual read picks its replica (`?strategy=`; the node's own by default). */
  strategy?: Strategy;
  /** The client's address, for `ip-hash`. */
  clientAddress?: string;
}

export interface ScanOptions {
  prefix: string;
  limit: number;
  after?: string;
  consistency: Consistency;
  signal?: AbortSignal;
  /** How many times the request was already forwarded between nodes (loop guard). */
  hops?: number;
  /** Internal fan-out: scan only this partition (scatter-gather across nodes). */
  partition?: number;
}

/**
 * The key-value operations behind `/v1`. Every operation may throw the errors of `errors.ts`
 * (`CasMismatchError`, `ServiceUnavailableError`, `BadRequestError`, `PayloadTooLargeError`);
 * anything else becomes a 500. `signal` fires when the client disconnects or the request times
 * out; the service should stop waiting then (a write already proposed may still commit).
 */
export interface KvService {
  put(key: string, value: Uint8Array, opts: WriteOptions): Promise<{ version: string }>;
  get(
    key: string,
    opts: GetOptions,
  ): Promise<{ value: Uint8Array; version: string; servedBy?: string } | null>;
  del(key: string, opts: WriteOptions): Promise<{ version: string; deleted: boolean }>;
  scan(opts: ScanOptions): Promise<{ items: KvItem[]; next: string | null }>;
  /** `GET /v1/aggregate`: count/sum/min/max/avg over numeric values under a prefix (`aggregate.ts`). */
  aggregate?(opts: AggregateOptions): Promise<AggregateResult>;
  /** `/v1/members`: the cluster's membership (absent in services without one). */
  members?: MembershipService;
  /** `GET /v1/snapshot?partition=P`: every key of one partition at one linearizable point. */
  snapshotPartition?(
    partition: number,
    opts: { maxBytes: number; signal?: AbortSignal; hops?: number },
  ): Promise<PartitionSnapshot>;
  /** A JSON-able view of the cluster, served as `GET /v1/status`. */
  status(): Promise<unknown>;
  /** The Prometheus text exposition, served as `GET /metrics`. */
  metrics(): Promise<string>;
  /** Served as `GET /healthz`: 200 when ok, 503 with the reason otherwise. */
  healthy(): { ok: boolean; reason?: string };
}

export type { AggregateFn, AggregateOptions, AggregateResult } from "./aggregate.js";

/**
 * One partition's keys as of one applied Raft index, read after a strong (ReadIndex) barrier and
 * in one synchronous pass over the local table, so no write lands halfway through the read.
 */
export interface PartitionSnapshot {
  partition: number;
  /** The Raft index the read reflects (the replica's applied index when it read). */
  index: number;
  items: KvItem[];
}

export interface MembershipService {
  list(): Promise<unknown[]>;
  /** A new node asks to join: `{id, peer, api, weight}`. */
  join(body: unknown, signal?: AbortSignal): Promise<unknown>;
  drain(id: string, signal?: AbortSignal): Promise<unknown>;
  remove(id: string, force: boolean, signal?: AbortSignal): Promise<unknown>;
  /** Hands every leadership `id` holds to caught-up peers (before a restart or an upgrade). */
  stepDown?(id: string, signal?: AbortSignal, hops?: number): Promise<unknown>;
}
