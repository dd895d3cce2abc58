/**
 * What one node tells the others about itself (`GET /v1/health/local`): its board's health and a
 * summary of the partitions it leads. Health travels by an authenticated HTTP pull between agents
 * rather than through Raft: it changes every few seconds and nobody needs it to be durable, so
 * writing it to the logs would only wear the SD cards.
 */
import type { BoardHealth } from "./board.js";

export const HEALTH_RECORD_VERSION = 1;

/** A partition as its leader sees it. */
export interface LedPartition {
  readonly partition: number;
  readonly term: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Voters (the leader included) that the leader heard from within the last election timeout. */
  readonly active: readonly string[];
  readonly commit: number;
}

/**
 * A replica the ring moved away that the node keeps, because no leader has confirmed that the
 * node is out of the partition (see `ClusterController.heldReplicas`).
 */
export interface HeldReplica {
  readonly partition: number;
  readonly waitingMs: number;
}

export interface HealthRecord {
  readonly v: typeof HEALTH_RECORD_VERSION;
  readonly node: string;
  /** The sender's wall clock when it answered, ms since the epoch: receivers estimate skew from it. */
  readonly sentAt: number;
  /** null until the first sample is taken. */
  readonly board: BoardHealth | null;
  readonly leads: readonly LedPartition[];
  /** Absent from agents older than the field (they never hold a replica back). */
  readonly held?: readonly HeldReplica[];
}

export class HealthRecordError extends Error {
  override readonly name = "HealthRecordError";
}

const MAX_LEADS = 4096;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function strings(v: unknown, at: string, max = 256): string[] {
  if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === "string" && s.length <= 64)) {
    throw new HealthRecordError(`${at} must be a list of node ids`);
  }
  return v as string[];
}

function uint(v: unknown, at: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    throw new HealthRecordError(`${at} must be a whole number`);
  return v;
}

/**
 * Checks the shape of a record from a peer. The board part is taken field by field where it is
 * read (numbers or null), so only the parts we index into are checked strictly here.
 */
export function parseHealthRecord(raw: unknown): HealthRecord {
  if (!isRecord(raw)) throw new HealthRecordError("a health record must be an object");
  if (raw.v !== HEALTH_RECORD_VERSION)
    throw new HealthRecordError(`unsupported health record version ${String(raw.v)}`);
  if (typeof raw.node !== "string" || raw.node.length === 0 || raw.node.length > 64) {
    throw new HealthRecordError("node must be a node id");
  }
  const sentAt = uint(raw.sentAt, "sentAt");
  if (raw.board !== null && !isRecord(raw.board))
    throw new HealthRecordError("board must be an object or null");
  if (!Array.isArray(raw.leads) || raw.leads.length > MAX_LEADS)
    throw new HealthRecordError("leads must be a list");
  const leads = raw.leads.map((l, i): LedPartition => {
    if (!isRecord(l)) throw new HealthRecordError(`leads[${i}] must be an object`);
    return {
      partition: uint(l.partition, `leads[${i}].partition`),
      term: uint(l.term, `leads[${i}].term`),
      voters: strings(l.voters, `leads[${i}].voters`),
      learners: strings(l.learners, `leads[${i}].learners`),
      active: strings(l.active, `leads[${i}].active`),
      commit: uint(l.commit, `leads[${i}].commit`),
    };
  });
  const heldRaw = raw.held ?? [];
  if (!Array.isArray(heldRaw) || heldRaw.length > MAX_LEADS)
    throw new HealthRecordError("held must be a list");
  const held = heldRaw.map((h: unknown, i): HeldReplica => {
    if (!isRecord(h)) throw new HealthRecordError(`held[${i}] must be an object`);
    return {
      partition: uint(h.partition, `held[${i}].partition`),
      waitingMs: uint(h.waitingMs, `held[${i}].waitingMs`),
    };
  });
  return {
    v: HEALTH_RECORD_VERSION,
    node: raw.node,
    sentAt,
    board: (raw.board as BoardHealth | null) ?? null,
    leads,
    held,
  };
}
