/** The Raft core: a pure state machine. See `raw-node.ts` for the entry point. */
export * from "./types.js";
export * from "./errors.js";
export * from "./storage.js";
export { RawNode, committedOnDisk, type RaftStatus, type ProgressStatus } from "./raw-node.js";
export { BUG_NAMES, type BugName, type RaftConfig } from "./raft.js";
export {
  encodeConfChange,
  decodeConfChange,
  nextConfState,
  confChangeProblem,
  InvalidConfChangeError,
} from "./confchange.js";
export { majority, committedIndex, voteResult, hasQuorum } from "./quorum.js";
