/**
 * `GET /v1/snapshot?partition=P`: one partition's keys, values and versions at one linearizable
 * point (see `KvService.snapshotPartition`). `ringleader snapshot save` asks for every partition
 * in turn and writes them to one file; the answer is JSON with base64 values, like a scan page.
 */
import { BadRequestError, NotFoundError } from "./errors.js";
import { parseQuery } from "./parse.js";
import type { KvService } from "./service.js";

/** The largest partition (keys plus values, in bytes) one snapshot answer carries. */
export const MAX_SNAPSHOT_PARTITION_BYTES = 64 * 1024 * 1024;

export interface SnapshotReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export async function snapshotReply(
  service: KvService,
  query: string,
  signal: AbortSignal,
  hops: number,
): Promise<SnapshotReply> {
  const raw = parseQuery(query, ["partition"]).get("partition");
  if (!service.snapshotPartition) throw new NotFoundError("this service has no snapshots");
  if (raw === undefined || !/^\d{1,4}$/.test(raw)) {
    throw new BadRequestError("partition must be a partition number, e.g. /v1/snapshot?partition=0");
  }
  const snap = await service.snapshotPartition(Number(raw), {
    maxBytes: MAX_SNAPSHOT_PARTITION_BYTES,
    signal,
    hops,
  });
  const items = snap.items.map((i) => ({
    key: i.key,
    value: Buffer.from(i.value.buffer, i.value.byteOffset, i.value.byteLength).toString("base64"),
    version: i.version,
  }));
  return {
    status: 200,
    headers: { "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify({ partition: snap.partition, index: snap.index, items }),
  };
}
