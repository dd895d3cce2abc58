/**
 * Errors that callers act on. Callers test `instanceof` or `name`, never the message text.
 */

/** The requested log index is below the first index still kept (it went into a snapshot). */
export class CompactedError extends Error {
  override readonly name = "CompactedError";
  constructor(readonly index: number) {
    super(`log index ${index} is compacted into a snapshot`);
  }
}

/** The requested log index is past the last index stored. */
export class UnavailableError extends Error {
  override readonly name = "UnavailableError";
  constructor(readonly index: number) {
    super(`log index ${index} is not available yet`);
  }
}

/** A snapshot is being created and is not ready; try again later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  override readonly name = "SnapshotTemporarilyUnavailableError";
  constructor() {
    super("snapshot is temporarily unavailable");
  }
}

/** A snapshot older than the one already held was offered. */
export class SnapshotOutOfDateError extends Error {
  override readonly name = "SnapshotOutOfDateError";
  constructor(readonly index: number) {
    super(`snapshot at index ${index} is older than the current one`);
  }
}

/**
 * The core could not take a proposal: there is no leader, leadership is being transferred, or a
 * configuration change is already under way. Nothing was appended; the caller may retry.
 */
export class ProposalDroppedError extends Error {
  override readonly name = "ProposalDroppedError";
  constructor(readonly reason: string) {
    super(`proposal dropped: ${reason}`);
  }
}

/** A linearizable read cannot be served now: no leader is known, or the leader is not ready. */
export class NoLeaderError extends Error {
  override readonly name = "NoLeaderError";
  constructor(readonly reason: string = "no leader is known") {
    super(reason);
  }
}

/** A leadership transfer could not start (unknown or non-voting target, or no leader). */
export class TransferRejectedError extends Error {
  override readonly name = "TransferRejectedError";
  constructor(readonly reason: string) {
    super(`leadership transfer rejected: ${reason}`);
  }
}
