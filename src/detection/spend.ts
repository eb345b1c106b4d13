/**
 * cost_anomaly: spend in the trailing `spend_window_ms` against the agent's baseline (baseline.ts).
 * The threshold is median + k·σ, and never below the agent's own peak interval (unflagged, remembered
 * `peak_memory_ms`): a batch buyer's daily batch or a weekly payout is its normal. Warning above the
 * threshold, critical above twice that. Silent until the baseline has `min_baseline_samples` intervals,
 * and at most a warning until `cold_start_ms` of the agent's history is known: a new agent's first
 * batch is worth a look, not a freeze (the burst rules still see a loop from its first escrows). Critical
 * also needs the money concentrated (at least half of the window's principal to one payee) and sustained:
 * the `spend_sustain_intervals` closed intervals before the window were over the threshold too. A batch
 * of 2–4 min or one large payment touches at most two of three disjoint 5-minute windows, whatever its
 * size; a drain keeps going. A spike is critical at once when the concentrated money came in an escrow
 * over `spend_outlier_multiple` (2) × the largest the agent ever made (known from at least
 * `new_payee_min_known` escrows): a size the agent never paid is a stolen key's mark, not a batch. Until
 * then a concentrated spike is a warning marked `escalates_if_sustained`, and its intervals are never
 * learned as the agent's peak (agent.ts), so a drain cannot raise its own bar while it is being confirmed.
 */
import { anomaly, credits } from './anomaly.js';
import { feesWithin, isCold, ownPeaks, spendThreshold } from './baseline.js';
import type { Thresholds } from './thresholds.js';
import type { AgentDetectionState, Anomaly, EscrowObservation, Severity } from './types.js';

const MIN = 60_000;
/** The share of the window's principal one payee must take for a spend spike to be critical. */
const SPEND_CONCENTRATION = 0.5;

export function costAnomaly(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const base = spendThreshold(s, t);
  if (!base) return undefined;
  const from = at - t.spend_window_ms;
  const own = ownPeaks(s, t, at, from);
  const peak = own?.spend ?? 0;
  const th = { ...base, threshold: Math.max(base.threshold, peak) };
  // No upper bound on created_at: an escrow stamped a little ahead of our clock is still this window's.
  const recent = paid.filter((e) => e.created_at > from);
  const principal = recent.reduce((n, e) => n + e.amount, 0);
  const fees = Math.round(feesWithin(s.fees.samples, from, at));
  const spend = principal + fees;
  if (spend <= th.threshold) return undefined;
  const cold = isCold(s, t, at);
  const top = topPayee(recent);
  // Fees are paid to one payee, the gateway: a fee spike is as concentrated as a loop.
  const share = Math.max(top?.cents ?? 0, fees) / Math.max(1, spend);
  // Critical (a freeze) only when the money goes mostly to one payee: a loop or a theft pays one target,
  // a payout run or a restocking batch spreads over many. Spread spend stays a warning for a person.
  const concentrated = share >= SPEND_CONCENTRATION;
  const spike = spend > 2 * th.threshold && !cold && concentrated;
  // The largest escrow it ever made, once enough of them are known to say what its range is.
  const largest = s.escrow_amount.n >= t.new_payee_min_known ? (own?.amount ?? 0) : 0;
  const outliers =
    largest > 0 && top
      ? recent.filter((e) => e.payee === top.payee && e.amount > t.spend_outlier_multiple * largest)
      : [];
  const goesOn = spike && (outliers.length > 0 || sustained(s, t, at, th.threshold));
  const severity: Severity = goesOn ? 'critical' : 'warning';
  return anomaly(
    id,
    at,
    'cost_anomaly',
    severity,
    `${id} spent ${credits(spend)} in ${t.spend_window_ms / MIN} min against a threshold of ${credits(th.threshold)}`,
    {
      spend_cents: spend,
      principal_cents: principal,
      fee_cents: fees,
      escrow_count: recent.length,
      threshold_cents: Math.round(th.threshold),
      critical_above_cents: Math.round(2 * th.threshold),
      baseline_median_cents: Math.round(th.median),
      sigma_cents: Math.round(th.sigma),
      k_sigma: t.k_sigma,
      own_peak_cents: Math.round(peak),
      cold_start: cold,
      baseline_intervals: s.intervals.spend.length,
      window_ms: t.spend_window_ms,
      top_payee: top?.payee ?? null,
      top_payee_share: top ? Math.round((top.cents / Math.max(1, principal)) * 100) / 100 : 0,
      concentration: Math.round(share * 100) / 100,
      sustain_intervals: t.spend_sustain_intervals,
      largest_known_escrow_cents: largest || null,
      outlier_escrows: outliers.length,
      escalates_if_sustained: spike && !goesOn,
    },
  );
}

/**
 * Whether the last `spend_sustain_intervals` learned intervals (each closed before the judged window, the
 * newest ending at most two windows ago) were each over the threshold too.
 */
function sustained(s: AgentDetectionState, t: Thresholds, at: number, threshold: number): boolean {
  const n = t.spend_sustain_intervals;
  if (n === 0) return true;
  const iv = s.intervals;
  if (iv.learned_until === null || iv.learned_until < at - 2 * t.spend_window_ms) return false;
  const last = iv.spend.slice(-n);
  return last.length === n && last.every((x) => x > threshold);
}

function topPayee(escrows: readonly EscrowObservation[]): { payee: string; cents: number } | undefined {
  const by = new Map<string, number>();
  for (const e of escrows) by.set(e.payee, (by.get(e.payee) ?? 0) + e.amount);
  let best: { payee: string; cents: number } | undefined;
  for (const [payee, cents] of by) if (!best || cents > best.cents) best = { payee, cents };
  return best;
}
