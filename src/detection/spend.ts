/**
 * cost_anomaly: spend in the trailing `spend_window_ms` against the agent's baseline (baseline.ts).
 * Warning above median + k·σ, critical above twice that. Silent until the baseline has
 * `min_baseline_samples` intervals; the burst rules cover the cold start.
 */
import { anomaly, dollars } from './anomaly.js';
import { feesWithin, spendThreshold } from './baseline.js';
import type { Thresholds } from './thresholds.js';
import type { AgentDetectionState, Anomaly, EscrowObservation, Severity } from './types.js';

const MIN = 60_000;

export function costAnomaly(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const th = spendThreshold(s, t);
  if (!th) return undefined;
  const from = at - t.spend_window_ms;
  // No upper bound on created_at: an escrow stamped a little ahead of our clock is still this window's.
  const recent = paid.filter((e) => e.created_at > from);
  const principal = recent.reduce((n, e) => n + e.amount, 0);
  const fees = Math.round(feesWithin(s.fees.samples, from, at));
  const spend = principal + fees;
  if (spend <= th.threshold) return undefined;
  const severity: Severity = spend > 2 * th.threshold ? 'critical' : 'warning';
  const top = topPayee(recent);
  return anomaly(
    id,
    at,
    'cost_anomaly',
    severity,
    `${id} spent ${dollars(spend)} in ${t.spend_window_ms / MIN} min against a threshold of ${dollars(th.threshold)}`,
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
      baseline_intervals: s.intervals.spend.length,
      window_ms: t.spend_window_ms,
      top_payee: top?.payee ?? null,
      top_payee_share: top ? Math.round((top.cents / Math.max(1, principal)) * 100) / 100 : 0,
    },
  );
}

function topPayee(escrows: readonly EscrowObservation[]): { payee: string; cents: number } | undefined {
  const by = new Map<string, number>();
  for (const e of escrows) by.set(e.payee, (by.get(e.payee) ?? 0) + e.amount);
  let best: { payee: string; cents: number } | undefined;
  for (const [payee, cents] of by) if (!best || cents > best.cents) best = { payee, cents };
  return best;
}
