/**
 * Detection: pure functions over what one poll of the gateway tells, plus a small JSON-serializable
 * per-agent state that the caller persists. No network, no storage, no clock: every time is passed in.
 *
 *   detectAgent(obs, state, thresholds, pinnedKey) → { anomalies, state, pinKey? }
 *       every per-agent signal; pinKey is set on first sighting of a public key, for the caller to pin
 *   detectFleet(results, { at, sharedWallets, recentAlerts }, thresholds) → cascade anomalies
 *   escalate(anomaly, overrides) → alert_human | auto_contain | fleet_shutdown
 *   tightenThresholds(thresholds, reason) → the post-mortem's stricter thresholds, floored
 *   CircuitBreaker, naiveStep (the benchmark's seed rule)
 *
 * Better than the naive balance-delta rule (5 samples of 30 s polls before it can judge): the escrow list
 * already carries creation times, payees, amounts and statuses, so
 *   - a retry loop is an escrow_burst on the first poll that sees it, with no history: 5 held escrows to
 *     one payee of one amount within 2 minutes (8 s of a 30/min loop), or 8 to any payees;
 *   - the spend baseline (median and MAD of closed 5-minute intervals) is seeded from the same list's
 *     history on the first poll, so cost_anomaly judges as soon as the history covers 5 intervals, and
 *     a loop caught up on after a blind spell stays an outlier instead of becoming the new normal;
 *   - with a baseline, the burst counts scale with the agent's own creation rate, so busy agents are
 *     judged against themselves.
 * A check that failed is a detection_failure naming the signals it leaves unjudged: blind is never clear.
 *
 * Files: types (observations, anomalies, state), thresholds (defaults, validation, tightening),
 * escrow (burst, exploitation), baseline + spend (cost_anomaly), budget, reputation, identity,
 * agent (detectAgent), fleet (cascade), escalation, breaker, naive, state (restoring persisted state).
 */
export { type AgentDetection, BLIND_TO, detectAgent } from './agent.js';
export { PRIORITY } from './anomaly.js';
export { type BreakerSnapshot, type BreakerState, CircuitBreaker } from './breaker.js';
export {
  DEFAULT_ESCALATION,
  ESCALATION_TIERS,
  type EscalationRules,
  type EscalationTier,
  escalate,
  escalationProblems,
} from './escalation.js';
export { detectFleet, type FleetObservation } from './fleet.js';
export { normalizeKey } from './identity.js';
export { type NaiveState, naiveStep } from './naive.js';
export {
  fromIntent,
  fromSubscription,
  fromTransaction,
  type PaymentRow,
  type WalletTransaction,
} from './payments.js';
export { HIGHER_IS_BETTER } from './reputation.js';
export { freshState, restoreState } from './state.js';
export {
  DEFAULT_THRESHOLDS,
  parseThresholds,
  type Thresholds,
  thresholdProblems,
  tightenThresholds,
} from './thresholds.js';
export * from './types.js';
