/**
 * budget_warning / budget_exhaustion: daily fee spend against the daily cap.
 *
 * Only a positive cap can be exhausted. get_budget_status reports a cap of 0 as "no cap" (pct 0), and
 * 0 is also the cap our containment sets to freeze an agent: a frozen agent must not then raise
 * budget_exhaustion about its own freeze. The gateway also accepts negative caps (CONTRACT §8); they
 * block like 0 and are treated the same. The percentage is computed from spend and cap, not taken from
 * `daily_pct`, which the gateway zeroes whenever it considers the cap absent.
 */
import { anomaly, credits } from './anomaly.js';
import type { Thresholds } from './thresholds.js';
import type { AgentObservation, Anomaly } from './types.js';

export function budgetSignals(
  id: string,
  at: number,
  b: NonNullable<AgentObservation['budget']>,
  t: Thresholds,
): Anomaly | undefined {
  const cap = b.daily_cap;
  if (cap === null || !(cap > 0)) return undefined;
  const pct = (b.daily_spend / cap) * 100;
  const details = {
    daily_spend_cents: b.daily_spend,
    daily_cap_cents: cap,
    daily_pct: Math.round(pct * 10) / 10,
    warning_pct: t.budget_warning_pct,
    exhaustion_pct: t.budget_exhaustion_pct,
  };
  const summary = `${id} used ${pct.toFixed(0)} % of its daily budget (${credits(b.daily_spend)} of ${credits(cap)})`;
  if (pct >= t.budget_exhaustion_pct)
    return anomaly(id, at, 'budget_exhaustion', 'critical', summary, details);
  if (pct >= t.budget_warning_pct) return anomaly(id, at, 'budget_warning', 'warning', summary, details);
  return undefined;
}
