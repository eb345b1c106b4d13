/**
 * reputation_drift: a fall from the agent's own baseline, in composite reputation or in a quality
 * metric where higher is better. Warning at ≥ `reputation_warning_pct`, critical at
 * ≥ `reputation_critical_pct`.
 *
 * The real gateway computes reputation once, when a key is provisioned, so it is usually all zeros.
 * A zero (or found: false) is "not computed": it never forms a baseline and never reads as a 100 %
 * fall. An agent with no reputation row at all (`no_record`: its key was made directly) is
 * judged on its quality metrics alone, and a drift it shows says so. While a reading is within the warning band the baseline follows it with a time constant of
 * `reputation_baseline_ms` (healthy agents move < 5 % a day), so a decline over hours is measured from
 * where the agent was rather than chased; once drifting, the baseline stays put until it recovers.
 */
import { anomaly } from './anomaly.js';
import type { Thresholds } from './thresholds.js';
import type { AgentDetectionState, AgentObservation, Anomaly, ScoreBaseline, Severity } from './types.js';

/** Metrics (CONTRACT §7 ingest names) where a fall is a degradation. Others are ignored. */
export const HIGHER_IS_BETTER: ReadonlySet<string> = new Set([
  'success_rate',
  'task_completion_rate',
  'uptime',
  'accuracy',
  'precision',
  'recall',
  'f1_score',
  'signal_accuracy_30d',
  'win_rate_30d',
]);

interface Drift {
  source: string;
  baseline: number;
  current: number;
  drop_pct: number;
}

/**
 * Updates the baselines and returns the worst drift as one anomaly (others listed in its details),
 * or details of why nothing could be judged when the gateway has no scores.
 */
export function reputationDrift(
  id: string,
  at: number,
  obs: Pick<AgentObservation, 'reputation' | 'metrics'>,
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const drifts: Drift[] = [];
  const r = obs.reputation;
  if (r && r.found !== false && r.composite_score > 0) {
    if (!s.reputation) s.reputation = { baseline: r.composite_score, at, n: 1 };
    const d = track('composite_score', r.composite_score, s.reputation, at, t);
    if (d) drifts.push(d);
  }
  for (const [name, value] of Object.entries(obs.metrics ?? {})) {
    if (!HIGHER_IS_BETTER.has(name) || !(typeof value === 'number' && value > 0 && Number.isFinite(value)))
      continue;
    s.metrics[name] ??= { baseline: value, at, n: 1 };
    const d = track(`metric:${name}`, value, s.metrics[name], at, t);
    if (d) drifts.push(d);
  }
  if (drifts.length === 0) return undefined;
  drifts.sort((a, b) => b.drop_pct - a.drop_pct);
  const worst = drifts[0]!;
  const severity: Severity = worst.drop_pct >= t.reputation_critical_pct ? 'critical' : 'warning';
  const what = worst.source === 'composite_score' ? 'reputation' : worst.source.slice('metric:'.length);
  return anomaly(
    id,
    at,
    'reputation_drift',
    severity,
    `${id}'s ${what} fell ${worst.drop_pct.toFixed(0)} % (${worst.baseline.toFixed(3)} → ${worst.current.toFixed(3)})`,
    {
      ...worst,
      warning_pct: t.reputation_warning_pct,
      critical_pct: t.reputation_critical_pct,
      ...(r?.no_record
        ? { reputation_record: 'none: the gateway has no reputation row for this agent' }
        : {}),
      ...(drifts.length > 1 ? { also: drifts.slice(1) } : {}),
    },
  );
}

function track(
  source: string,
  current: number,
  b: ScoreBaseline,
  at: number,
  t: Thresholds,
): Drift | undefined {
  const dropPct = ((b.baseline - current) / b.baseline) * 100;
  if (dropPct < t.reputation_warning_pct) {
    const dt = Math.max(0, at - b.at);
    b.baseline += (1 - Math.exp(-dt / t.reputation_baseline_ms)) * (current - b.baseline);
    b.at = at;
    b.n++;
    return undefined;
  }
  return {
    source,
    baseline: Math.round(b.baseline * 10_000) / 10_000,
    current,
    drop_pct: Math.round(dropPct * 10) / 10,
  };
}
