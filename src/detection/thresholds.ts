/**
 * Every number the detectors use, with the SPEC's defaults ("Detection signals"). Config overrides
 * them by name; a post-mortem tightens them per agent.
 */

export interface Thresholds {
  /** cost_anomaly: spend above baseline by k standard deviations (2.0; 2.5 recommended start). */
  k_sigma: number;
  /** cost_anomaly: the interval judged (trailing) and the length of the baseline's intervals. */
  spend_window_ms: number;
  /** Closed intervals in the baseline before cost_anomaly judges (the burst rules cover the cold start). */
  min_baseline_samples: number;
  /** Intervals the baseline keeps (288 × 5 min = 24 h); also how far back one poll may seed or catch up. */
  baseline_intervals: number;
  /** EWMA weight of a new escrow in the typical escrow amount (one of σ's floors). */
  amount_ewma_alpha: number;
  /** Floor of the spread in cents: a quiet agent's first few orders are not an anomaly. */
  min_sigma_cents: number;
  /** The spread is at least this many typical escrows: escrow traffic is lumpy, not Gaussian. */
  sigma_escrow_multiple: number;
  budget_warning_pct: number;
  budget_exhaustion_pct: number;
  reputation_warning_pct: number;
  reputation_critical_pct: number;
  /** Time constant of the reputation baseline (healthy agents move < 5 % a day). */
  reputation_baseline_ms: number;
  /** escrow_burst: the repeat window, counted from escrow creation times in one poll's list. */
  escrow_burst_window_ms: number;
  /** The rate rule's window: held escrows as payer to any payees. */
  escrow_burst_rate_window_ms: number;
  /**
   * Held escrows as payer within the rate window, any payees: the floor for an agent with no history.
   * Above the largest legitimate purchase batch (20 orders in 2–4 min).
   */
  escrow_burst_min_count: number;
  /** Held escrows of about one amount to one payee (or rotating over a few) within the repeat window. */
  escrow_burst_repeat_count: number;
  /** With history, a count must also exceed this many times the agent's own peak for that window. */
  escrow_burst_factor: number;
  /** The floor of the any-payee rules for a fan-out (each payee paid once: a payout run of 60). */
  escrow_burst_fanout_count: number;
  /** With no history, the any-payee rules count only escrows still held this long after creation. */
  escrow_burst_cold_age_ms: number;
  /** The long window: a loop seen late, after a blind spell. */
  escrow_burst_long_window_ms: number;
  escrow_burst_long_min_count: number;
  /** escrow_exploitation: more than this many escrows to one payee within the window. */
  exploitation_same_payee_count: number;
  exploitation_window_ms: number;
  /** The sustained form: more than this many escrows to one payee within the long window. */
  exploitation_long_count: number;
  exploitation_long_window_ms: number;
  /** escrow_exploitation: cancelled share of the payer's decided escrows above this within the window. */
  cancel_rate: number;
  /** Decided escrows needed before a cancellation rate means anything (no 1-of-1). */
  cancel_min_count: number;
  cancel_window_ms: number;
  /**
   * A cancellation rate must also be improbable for this agent: the binomial tail of its count, given the
   * agent's own rate (a prior of 15 % until it has history), below this.
   */
  cancel_significance: number;
  /** How long a peak outside the 24 h of intervals is remembered (a weekly payout run). */
  peak_memory_ms: number;
  /** cost_anomaly stays a warning until this much of the agent's history is known (cold start). */
  cold_start_ms: number;
  /**
   * cost_anomaly is critical only when the closed intervals just before the window (this many) were over
   * the threshold too: spending that goes on, not one batch or one large payment (either fits in two of
   * three disjoint windows). 0 judges the window alone.
   */
  spend_sustain_intervals: number;
  /**
   * …unless the concentrated money came in an escrow over this many times the largest the agent ever made
   * (its own peak, once `new_payee_min_known` of its escrows are known): sizes it never paid are a theft's
   * mark, critical at once.
   */
  spend_outlier_multiple: number;
  /**
   * The agent's own calls are failing (a failure for its circuit breaker) while the error rate it reports
   * (metric error_rate, or 1 − success_rate) is at least this…
   */
  breaker_error_rate: number;
  /** …in a reading no older than this (metrics are a slow read: the last reading stands between reads). */
  breaker_error_stale_ms: number;
  /** Stolen key: this many escrows within the window to payees the agent never paid… */
  new_payee_count: number;
  new_payee_window_ms: number;
  /** …each above this many typical escrows… */
  new_payee_amount_multiple: number;
  /** …judged once this many of the agent's escrows are known (its usual amounts and payees). */
  new_payee_min_known: number;
  cascade_min_agents: number;
  cascade_window_ms: number;
  /** Priorities that count as "alerting" for a cascade: P0..P<n>. 1 = P0 and P1; 2 adds warnings. */
  cascade_max_priority: number;
  /** A shared wallet below this many cents is exhausted. */
  shared_wallet_exhausted_cents: number;
}

const MIN = 60_000;
/** Upper bound of `baseline_intervals`, which bounds the persisted state. */
export const MAX_BASELINE_INTERVALS = 2_016;

export const DEFAULT_THRESHOLDS: Readonly<Thresholds> = Object.freeze({
  k_sigma: 2.0,
  spend_window_ms: 5 * MIN,
  min_baseline_samples: 5,
  baseline_intervals: 288,
  amount_ewma_alpha: 0.02,
  min_sigma_cents: 10_000,
  sigma_escrow_multiple: 2,
  budget_warning_pct: 80,
  budget_exhaustion_pct: 95,
  reputation_warning_pct: 15,
  reputation_critical_pct: 30,
  reputation_baseline_ms: 24 * 60 * MIN,
  escrow_burst_window_ms: 2 * MIN,
  escrow_burst_rate_window_ms: 5 * MIN,
  escrow_burst_min_count: 25,
  escrow_burst_repeat_count: 5,
  escrow_burst_factor: 2,
  escrow_burst_cold_age_ms: 3 * MIN,
  escrow_burst_fanout_count: 100,
  escrow_burst_long_window_ms: 30 * MIN,
  escrow_burst_long_min_count: 45,
  exploitation_same_payee_count: 10,
  exploitation_window_ms: 5 * MIN,
  exploitation_long_count: 30,
  exploitation_long_window_ms: 60 * MIN,
  cancel_rate: 0.5,
  cancel_min_count: 6,
  cancel_window_ms: 60 * MIN,
  cancel_significance: 0.001,
  peak_memory_ms: 8 * 24 * 60 * MIN,
  cold_start_ms: 12 * 60 * MIN,
  spend_sustain_intervals: 2,
  spend_outlier_multiple: 2,
  breaker_error_rate: 0.5,
  breaker_error_stale_ms: 15 * MIN,
  new_payee_count: 3,
  new_payee_window_ms: 30 * MIN,
  new_payee_amount_multiple: 3,
  new_payee_min_known: 20,
  cascade_min_agents: 2,
  cascade_window_ms: 5 * MIN,
  cascade_max_priority: 1,
  shared_wallet_exhausted_cents: 50_000,
});

type Rule = { min: number; max?: number; integer?: boolean; positive?: boolean };
const count: Rule = { min: 1, integer: true };
const duration: Rule = { min: 1_000, integer: true };
const pct: Rule = { min: 0, max: 100, positive: true };

const RULES: Record<keyof Thresholds, Rule> = {
  k_sigma: { min: 0, positive: true },
  spend_window_ms: duration,
  min_baseline_samples: count,
  baseline_intervals: { min: 1, max: MAX_BASELINE_INTERVALS, integer: true },
  amount_ewma_alpha: { min: 0, max: 1, positive: true },
  min_sigma_cents: { min: 0 },
  sigma_escrow_multiple: { min: 0 },
  budget_warning_pct: pct,
  budget_exhaustion_pct: pct,
  reputation_warning_pct: pct,
  reputation_critical_pct: pct,
  reputation_baseline_ms: duration,
  escrow_burst_window_ms: duration,
  escrow_burst_rate_window_ms: duration,
  escrow_burst_min_count: count,
  escrow_burst_repeat_count: count,
  escrow_burst_factor: { min: 1 },
  escrow_burst_cold_age_ms: { min: 0, integer: true },
  escrow_burst_fanout_count: count,
  escrow_burst_long_window_ms: duration,
  escrow_burst_long_min_count: count,
  exploitation_same_payee_count: count,
  exploitation_window_ms: duration,
  exploitation_long_count: count,
  exploitation_long_window_ms: duration,
  cancel_rate: { min: 0, max: 1 },
  cancel_min_count: count,
  cancel_window_ms: duration,
  cancel_significance: { min: 0, max: 1, positive: true },
  peak_memory_ms: duration,
  cold_start_ms: { min: 0, integer: true },
  spend_sustain_intervals: { min: 0, integer: true },
  spend_outlier_multiple: { min: 1 },
  breaker_error_rate: { min: 0, max: 1, positive: true },
  breaker_error_stale_ms: duration,
  new_payee_count: count,
  new_payee_window_ms: duration,
  new_payee_amount_multiple: { min: 0 },
  new_payee_min_known: count,
  cascade_min_agents: { min: 2, integer: true },
  cascade_window_ms: duration,
  cascade_max_priority: { min: 0, max: 3, integer: true },
  shared_wallet_exhausted_cents: { min: 0 },
};

function describe(r: Rule): string {
  const kind = r.integer ? 'an integer' : 'a number';
  const low = r.positive ? `> ${r.min}` : `≥ ${r.min}`;
  return r.max === undefined ? `${kind} ${low}` : `${kind} ${low} and ≤ ${r.max}`;
}

/** What is wrong with a set of threshold overrides, one line per field; empty when all are valid. */
export function thresholdProblems(overrides: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(overrides)) {
    const rule = RULES[name as keyof Thresholds] as Rule | undefined;
    if (!rule) {
      problems.push(`thresholds.${name}: unknown name (known: ${Object.keys(RULES).join(', ')})`);
      continue;
    }
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (rule.positive ? value > rule.min : value >= rule.min) &&
      (rule.max === undefined || value <= rule.max) &&
      (!rule.integer || Number.isInteger(value));
    if (!ok) problems.push(`thresholds.${name}: got ${JSON.stringify(value)}, expected ${describe(rule)}`);
  }
  return problems;
}

/**
 * Defaults (or `base`) with overrides applied, validated. Throws a RangeError listing every bad field
 * and what it accepts.
 */
export function parseThresholds(
  overrides: Readonly<Record<string, unknown>>,
  base: Readonly<Thresholds> = DEFAULT_THRESHOLDS,
): Thresholds {
  const problems = thresholdProblems(overrides);
  if (problems.length) throw new RangeError(problems.join('; '));
  return { ...base, ...(overrides as Partial<Thresholds>) };
}

/**
 * Post-mortem feedback: containment missed its target, so detection for that agent gets more sensitive
 * (k 2.0 → 1.5, burst counts down a notch). Each step has a floor below which normal traffic would
 * alarm, so repeated tightening converges instead of paging on every order. `reason` is for the
 * caller's record; the thresholds carry no history.
 */
export function tightenThresholds(t: Readonly<Thresholds>, _reason: string): Thresholds {
  return {
    ...t,
    k_sigma: lower(t.k_sigma, 0.5, 1.0),
    escrow_burst_min_count: lower(t.escrow_burst_min_count, 3, 15),
    escrow_burst_repeat_count: lower(t.escrow_burst_repeat_count, 1, 3),
    escrow_burst_long_min_count: lower(t.escrow_burst_long_min_count, 5, 25),
  };
}

/** One step down, never below the floor, and never up (a value already under the floor stays). */
function lower(value: number, step: number, floor: number): number {
  if (value <= floor) return value;
  return Math.max(floor, Math.round((value - step) * 100) / 100);
}
