/** The multi-Raft simulator: a meta group and P partitions, the real controller, faults, clients. */
export {
  runMultiSimulation,
  MultiSimOptionsError,
  DEFAULT_MULTI_TICKS,
  DEFAULT_MULTI_LIVENESS_TICKS,
  type MultiSimOptions,
  type MultiSimResult,
  type MultiSimStats,
} from "./simulation.js";
export {
  deriveMultiConfig,
  describeMultiConfig,
  MAX_SIM_PARTITIONS,
  MIN_FOUNDERS,
  MAX_FOUNDERS,
} from "./config.js";
