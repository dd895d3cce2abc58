/** Balancing strategies shared by the agent (eventual reads), the CLI and the serial bridge (entry agent). */
export {
  Balancer,
  STRATEGIES,
  DEFAULT_OVERLOADED_AT,
  UnknownStrategyError,
  isStrategy,
  parseStrategy,
  type Strategy,
  type BalancerOptions,
  type PickContext,
} from "./strategies.js";
export {
  LocalLoadTracker,
  ReportedLoad,
  type LoadSource,
  type LocalLoadOptions,
  type ReportedLoadSource,
} from "./load.js";
export { clientAddress, normalizeAddress, ownAddress } from "./address.js";
