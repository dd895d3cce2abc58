/** The deterministic simulator of the Raft core; `runSimulation` is the entry point. */
export {
  runSimulation,
  SimOptionsError,
  DEFAULT_TICKS,
  DEFAULT_LIVENESS_TICKS,
  MAX_TICKS,
  type SimOptions,
  type SimResult,
  type SimStats,
} from "./simulation.js";
export { SafetyChecker, type Violation, type ViolationKind, type LogView } from "./checkers.js";
export { deriveConfig, describeConfig, defaultNodeCount, UNITS_PER_TICK, type SimConfig } from "./config.js";
export { Random } from "./random.js";
export { EventQueue } from "./event-queue.js";
export { Network, RELIABLE_NETWORK, type NetworkParams } from "./network.js";
export { KvStore, encodeCommand, decodeCommand } from "./kv.js";
export { BUG_NAMES, type BugName } from "../raft/index.js";
