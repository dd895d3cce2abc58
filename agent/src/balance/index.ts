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
export { LocalLoadTracker, type LoadSource, type LocalLoadOptions } from "./load.js";
export { clientAddress, normalizeAddress, ownAddress } from "./address.js";
