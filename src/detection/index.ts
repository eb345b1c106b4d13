/**
 * Detection: pure functions over what one poll of the gateway tells, plus a small JSON-serializable
 * per-agent state (baselines) that the caller persists. No network, no clock: every time is passed in.
 *
 * Better than the naive balance-delta rule (which needs 5 samples of 30 s polls before it can judge):
 * the escrow list already carries creation times, payees and statuses, so a retry loop is visible on the
 * first poll as a burst of held escrows; spend is measured over a window from those timestamps, not
 * from balance deltas, so one poll is a full measurement.
 */
export { type BreakerState, CircuitBreaker } from './breaker.js';
export { DEFAULT_ESCALATION, type EscalationTier, escalate } from './escalation.js';
export { type NaiveState, naiveStep } from './naive.js';
export * from './signals.js';
