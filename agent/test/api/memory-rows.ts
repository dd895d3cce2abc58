/** A partition's table in memory, read as `partition-aggregate.ts` reads a replica's store. */
import type { PartitionRows } from "../../src/node/partition-aggregate.js";

export function mapRows(data: ReadonlyMap<string, { value: Uint8Array; version: string }>): PartitionRows {
  return {
    scan: (o) =>
      [...data.keys()]
        .filter((k) => k.startsWith(o.prefix) && (o.after === undefined || k > o.after))
        .sort()
        .slice(0, o.limit)
        .map((key) => ({ key, record: data.get(key)! })),
    get: (key) => data.get(key) ?? null,
  };
}
