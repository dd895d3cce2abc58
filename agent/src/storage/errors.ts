/**
 * Errors of the node's durable store that callers act on. The Raft-level ones (`CompactedError`,
 * `UnavailableError`, `SnapshotOutOfDateError`) come from `../raft/errors.ts` so that the LMDB
 * store throws exactly what `MemoryStorage` throws.
 */

/** The store was closed; nothing more can be read or written through this instance. */
export class StoreClosedError extends Error {
  override readonly name = "StoreClosedError";
  constructor() {
    super("the node store is closed");
  }
}

/**
 * A write reached LMDB in an unknown state (a failed fsync, a batch that broke half way). The
 * store refuses every later operation: the only safe reaction is to exit and reopen from disk.
 */
export class StoreFailedError extends Error {
  override readonly name = "StoreFailedError";
  constructor(override readonly cause: unknown) {
    super(`the node store failed and must be reopened: ${String(cause)}`);
  }
}

/** The data directory holds something this code cannot read (a newer format, a damaged record). */
export class StoreCorruptError extends Error {
  override readonly name = "StoreCorruptError";
  constructor(readonly detail: string) {
    super(`the node store is corrupt or from an unknown version: ${detail}`);
  }
}

/** Too many writes are queued; the caller should slow down (bounded queue). */
export class StoreOverloadedError extends Error {
  override readonly name = "StoreOverloadedError";
  constructor(readonly pendingJobs: number) {
    super(`the node store has ${pendingJobs} writes queued; refusing more`);
  }
}

/** This node already belongs to another cluster. */
export class ClusterIdMismatchError extends Error {
  override readonly name = "ClusterIdMismatchError";
  constructor(
    readonly stored: string,
    readonly offered: string,
  ) {
    super(`this node belongs to cluster ${stored}, not ${offered}`);
  }
}

/** Appending would leave a hole in the log (the first new index is past `lastIndex() + 1`). */
export class LogGapError extends Error {
  override readonly name = "LogGapError";
  constructor(
    readonly lastIndex: number,
    readonly appendAt: number,
  ) {
    super(`missing log entry: last index ${lastIndex}, appending at ${appendAt}`);
  }
}

/** Committed entries must be applied in order, without holes. */
export class ApplyOrderError extends Error {
  override readonly name = "ApplyOrderError";
  constructor(
    readonly appliedIndex: number,
    readonly entryIndex: number,
  ) {
    super(`cannot apply entry ${entryIndex}: applied index is ${appliedIndex}`);
  }
}

/** A snapshot point must already be applied, or the log below it would be lost unapplied. */
export class SnapshotNotAppliedError extends Error {
  override readonly name = "SnapshotNotAppliedError";
  constructor(
    readonly index: number,
    readonly appliedIndex: number,
  ) {
    super(`cannot snapshot at ${index}: only ${appliedIndex} is applied`);
  }
}

/** Only one snapshot may be installed into a group at a time. */
export class SnapshotInProgressError extends Error {
  override readonly name = "SnapshotInProgressError";
  constructor(readonly group: number) {
    super(`a snapshot is already being installed into group ${group}`);
  }
}

/** A snapshot stream was malformed, truncated, or does not match the metadata it claims. */
export class SnapshotCorruptError extends Error {
  override readonly name = "SnapshotCorruptError";
  constructor(readonly detail: string) {
    super(`bad snapshot stream: ${detail}`);
  }
}

/** A key, value, entry or request is larger than the store accepts. */
export class StoreLimitError extends Error {
  override readonly name = "StoreLimitError";
  constructor(
    readonly what: string,
    readonly size: number,
    readonly limit: number,
  ) {
    super(`${what} is ${size}, the limit is ${limit}`);
  }
}

/** `bootstrap` was asked for a group that already has state here. */
/** The group's data is being deleted here; it cannot be created again until that is done. */
export class GroupDeletingError extends Error {
  override readonly name = "GroupDeletingError";
  constructor(readonly group: number) {
    super(`group ${group} is being deleted on this node; try again shortly`);
  }
}

export class GroupExistsError extends Error {
  override readonly name = "GroupExistsError";
  constructor(readonly group: number) {
    super(`group ${group} already has state on this node`);
  }
}
