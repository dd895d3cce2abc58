/** The node's durable store: one LMDB environment per node, every Raft group inside it. */
export * from "./errors.js";
export { NodeStore } from "./node-store.js";
export { MAX_SCAN_LIMIT } from "./types.js";
export type {
  AppliedEntry,
  AppliedInfo,
  ApplyContext,
  GroupUpdate,
  InstallOptions,
  KeyInput,
  KvScanOptions,
  NodeStoreOptions,
  SnapshotStreamOptions,
} from "./types.js";
export { LmdbGroupStorage, type GroupUpdateOf } from "./group-storage.js";
export type { KvRecord } from "./codec.js";
export { readSnapshotHeader } from "./snapshot-format.js";
