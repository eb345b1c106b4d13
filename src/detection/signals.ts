/**
 * The SPEC's signals, per agent (`detectAgent`) and across the fleet (`detectFleet`).
 */

export type Signal =
  | 'cost_anomaly'
  | 'budget_warning'
  | 'budget_exhaustion'
  | 'reputation_drift'
  | 'escrow_burst'
  | 'escrow_exploitation'
  | 'identity_compromise'
  | 'cascade'
  | 'detection_failure';
export type Severity = 'info' | 'warning' | 'critical';
export type Priority = 'P0' | 'P1' | 'P2' | 'P3';

export interface Anomaly {
  agent_id: string;
  signal: Signal;
  severity: Severity;
  priority: Priority;
  at: number;
  summary: string;
  details: Record<string, unknown>;
}

export interface EscrowObservation {
  id: string;
  payer: string;
  payee: string;
  /** cents */
  amount: number;
  status: 'held' | 'settled' | 'refunded' | 'expired' | string;
  created_at: number;
  updated_at?: number | undefined;
}

export interface AgentObservation {
  agent_id: string;
  at: number;
  balance?: number;
  budget?: {
    daily_spend: number;
    daily_cap: number | null;
    daily_pct: number;
    monthly_spend: number;
    monthly_cap: number | null;
  };
  escrows?: EscrowObservation[];
  usage?: { total_calls: number; total_cost: number };
  reputation?: {
    composite_score: number;
    payment_reliability?: number;
    found?: boolean;
    [k: string]: unknown;
  };
  identity?: { public_key: string | null };
  failures: { check: string; code: string; message: string }[];
}

/** Every number is configurable (config `thresholds`); defaults from the SPEC. */
export const DEFAULT_THRESHOLDS = {
  /** cost_anomaly: spend above baseline by k robust standard deviations (2.0; 2.5 recommended start). */
  k_sigma: 2.0,
  /** Window over which spend is measured from escrow creation times. */
  spend_window_ms: 10 * 60_000,
  /** Baseline samples needed before cost_anomaly judges (the burst rule covers the cold start). */
  min_baseline_samples: 5,
  /** Floor of the spread, in cents: a quiet agent's first few orders are not an anomaly. */
  min_sigma_cents: 10_000,
  /** The spread is at least this many typical escrows (Poisson traffic is lumpy). */
  sigma_escrow_multiple: 2,
  budget_warning_pct: 80,
  budget_exhaustion_pct: 95,
  reputation_warning_pct: 15,
  reputation_critical_pct: 30,
  /** Time constant of the reputation baseline (healthy agents move < 5 % a day). */
  reputation_baseline_ms: 24 * 60 * 60_000,
  /** escrow_burst: held escrows created as payer within the short window… */
  burst_window_ms: 2 * 60_000,
  burst_min_count: 10,
  /** …or within the long window (a loop seen late, after a blind spell). */
  burst_long_window_ms: 30 * 60_000,
  burst_long_min_count: 30,
  exploitation_same_payee_count: 10,
  exploitation_window_ms: 5 * 60_000,
  cancel_rate: 0.5,
  cancel_min_count: 6,
  cancel_window_ms: 60 * 60_000,
  cascade_min_agents: 2,
  cascade_window_ms: 5 * 60_000,
  /** A shared wallet below this (cents) is exhausted. */
  shared_wallet_exhausted_cents: 50_000,
  /** Baseline smoothing (EWMA weight of a new sample). */
  ewma_alpha: 0.2,
};

export type Thresholds = typeof DEFAULT_THRESHOLDS;

export interface AgentDetectionState {
  v: 1;
  spend: { n: number; mean: number; var: number };
  escrow_amount: { n: number; mean: number };
  reputation: { n: number; baseline: number; at?: number } | null;
  last_at: number | null;
}

function freshState(): AgentDetectionState {
  return {
    v: 1,
    spend: { n: 0, mean: 0, var: 0 },
    escrow_amount: { n: 0, mean: 0 },
    reputation: null,
    last_at: null,
  };
}

const PRIORITY: Record<Signal, Record<Severity, Priority>> = {
  cost_anomaly: { info: 'P3', warning: 'P2', critical: 'P0' },
  budget_warning: { info: 'P3', warning: 'P2', critical: 'P2' },
  budget_exhaustion: { info: 'P3', warning: 'P1', critical: 'P1' },
  reputation_drift: { info: 'P3', warning: 'P2', critical: 'P1' },
  escrow_burst: { info: 'P3', warning: 'P1', critical: 'P0' },
  escrow_exploitation: { info: 'P3', warning: 'P1', critical: 'P1' },
  identity_compromise: { info: 'P0', warning: 'P0', critical: 'P0' },
  cascade: { info: 'P0', warning: 'P0', critical: 'P0' },
  detection_failure: { info: 'P3', warning: 'P2', critical: 'P2' },
};

function anomaly(
  agent_id: string,
  at: number,
  signal: Signal,
  severity: Severity,
  summary: string,
  details: Record<string, unknown>,
): Anomaly {
  return { agent_id, signal, severity, priority: PRIORITY[signal][severity], at, summary, details };
}

const dollars = (cents: number) => `$${(cents / 100).toFixed(2)}`;

/**
 * One agent, one observation. Returns the anomalies, the next state, and the public key to pin when
 * this is the first sighting.
 */
export function detectAgent(
  obs: AgentObservation,
  prior: AgentDetectionState | undefined,
  t: Thresholds = DEFAULT_THRESHOLDS,
  pinnedKey: string | null = null,
): { anomalies: Anomaly[]; state: AgentDetectionState; pinKey?: string } {
  const state: AgentDetectionState = prior?.v === 1 ? structuredClone(prior) : freshState();
  const out: Anomaly[] = [];
  const { agent_id: id, at } = obs;
  const blind = new Set(obs.failures.map((f) => f.check));
  for (const f of obs.failures) {
    out.push(
      anomaly(id, at, 'detection_failure', 'warning', `cannot check ${f.check} for ${id}: ${f.code}`, {
        check: f.check,
        code: f.code,
        message: f.message.slice(0, 200),
        blind_to: BLIND_TO[f.check] ?? [],
      }),
    );
  }
  let pinKey: string | undefined;

  if (obs.escrows) {
    const paid = obs.escrows.filter((e) => e.payer === id);
    const bursts = burst(id, at, paid, t);
    out.push(...bursts);
    // A retry loop to one payee also matches "more than 10 escrows to the same payee"; the burst explains
    // it and its runbook cancels everything, so that payee is not also called an exploiter.
    const loopPayee = bursts[0]?.details.top_payee;
    out.push(...exploitation(id, at, paid, t).filter((a) => a.details.suspect_payee !== loopPayee));
    const windowSpend = paid
      .filter((e) => e.created_at > at - t.spend_window_ms)
      .reduce((n, e) => n + e.amount, 0);
    const cost = costAnomaly(id, at, windowSpend, state, t);
    if (cost) out.push(cost);
    for (const e of paid) {
      if (e.created_at > (state.last_at ?? 0)) {
        state.escrow_amount.n++;
        state.escrow_amount.mean +=
          (e.amount - state.escrow_amount.mean) / Math.min(state.escrow_amount.n, 50);
      }
    }
    // The baseline learns only from normal windows, so a running loop does not teach itself in.
    if (cost?.severity !== 'critical') updateSpend(state, windowSpend, t);
  }

  if (obs.budget) out.push(...budget(id, at, obs.budget, t));
  if (obs.reputation) {
    const r = reputation(id, at, obs.reputation, state, t);
    if (r) out.push(r);
  }
  if (obs.identity) {
    const key = obs.identity.public_key;
    if (key === null) {
      out.push(
        anomaly(id, at, 'identity_compromise', 'critical', `${id} has no identity record`, {
          reason: 'identity record missing',
          pinned_key: pinnedKey,
        }),
      );
    } else if (pinnedKey === null) {
      pinKey = key;
    } else if (key !== pinnedKey) {
      out.push(
        anomaly(
          id,
          at,
          'identity_compromise',
          'critical',
          `${id}'s registered public key differs from the pinned key`,
          { reason: 'public key changed', pinned_key: pinnedKey, registered_key: key },
        ),
      );
    }
  }
  if (!blind.has('escrows') && !blind.has('budget')) state.last_at = at;
  return pinKey ? { anomalies: out, state, pinKey } : { anomalies: out, state };
}

/** What each failed check leaves unjudged, so a blind check is never read as all clear. */
const BLIND_TO: Record<string, Signal[]> = {
  escrows: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
  budget: ['budget_warning', 'budget_exhaustion'],
  reputation: ['reputation_drift'],
  identity: ['identity_compromise'],
  balance: ['cascade'],
  usage: [],
};

function burst(id: string, at: number, paid: EscrowObservation[], t: Thresholds): Anomaly[] {
  const held = paid.filter((e) => e.status === 'held');
  const short = held.filter((e) => e.created_at > at - t.burst_window_ms);
  const long = held.filter((e) => e.created_at > at - t.burst_long_window_ms);
  if (short.length < t.burst_min_count && long.length < t.burst_long_min_count) return [];
  const set = short.length >= t.burst_min_count ? short : long;
  const windowMs = set === short ? t.burst_window_ms : t.burst_long_window_ms;
  const byPayee = countBy(set, (e) => e.payee);
  const [topPayee, topCount] = [...byPayee.entries()].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
  const locked = set.reduce((n, e) => n + e.amount, 0);
  const ratePerMin = (set.length / windowMs) * 60_000;
  return [
    anomaly(
      id,
      at,
      'escrow_burst',
      'critical',
      `${id} created ${set.length} held escrows in ${windowMs / 60_000} min (${ratePerMin.toFixed(1)}/min, ${dollars(locked)} locked)`,
      {
        count: set.length,
        window_ms: windowMs,
        rate_per_min: Number(ratePerMin.toFixed(2)),
        amount_locked_cents: locked,
        top_payee: topPayee,
        top_payee_count: topCount,
        escrow_ids: set.slice(0, 20).map((e) => e.id),
      },
    ),
  ];
}

function exploitation(id: string, at: number, paid: EscrowObservation[], t: Thresholds): Anomaly[] {
  const out: Anomaly[] = [];
  const recent = paid.filter((e) => e.created_at > at - t.exploitation_window_ms);
  for (const [payee, count] of countBy(recent, (e) => e.payee)) {
    if (count > t.exploitation_same_payee_count) {
      const ids = recent.filter((e) => e.payee === payee).map((e) => e.id);
      out.push(
        anomaly(
          id,
          at,
          'escrow_exploitation',
          'critical',
          `${id} opened ${count} escrows to ${payee} within ${t.exploitation_window_ms / 60_000} min`,
          {
            rule: 'same_payee',
            suspect_payee: payee,
            count,
            window_ms: t.exploitation_window_ms,
            escrow_ids: ids.slice(0, 20),
          },
        ),
      );
      return out;
    }
  }
  const hour = paid.filter((e) => e.created_at > at - t.cancel_window_ms);
  const refunded = hour.filter((e) => e.status === 'refunded');
  if (hour.length >= t.cancel_min_count && refunded.length / hour.length > t.cancel_rate) {
    const [suspect] = [...countBy(refunded, (e) => e.payee).entries()].sort((a, b) => b[1] - a[1])[0] ?? [''];
    out.push(
      anomaly(
        id,
        at,
        'escrow_exploitation',
        'critical',
        `${id} cancelled ${refunded.length} of ${hour.length} escrows within 1 h`,
        {
          rule: 'cancel_rate',
          suspect_payee: suspect,
          cancel_rate: Number((refunded.length / hour.length).toFixed(2)),
          count: hour.length,
          window_ms: t.cancel_window_ms,
        },
      ),
    );
  }
  return out;
}

function costAnomaly(
  id: string,
  at: number,
  spend: number,
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  if (s.spend.n < t.min_baseline_samples) return undefined;
  const sigma = Math.max(
    Math.sqrt(s.spend.var),
    t.min_sigma_cents,
    s.escrow_amount.mean * t.sigma_escrow_multiple,
  );
  const threshold = s.spend.mean + t.k_sigma * sigma;
  if (spend <= threshold) return undefined;
  const severity: Severity = spend > 2 * threshold ? 'critical' : 'warning';
  return anomaly(
    id,
    at,
    'cost_anomaly',
    severity,
    `${id} spent ${dollars(spend)} in ${t.spend_window_ms / 60_000} min against a threshold of ${dollars(threshold)}`,
    {
      spend_cents: spend,
      threshold_cents: Math.round(threshold),
      baseline_mean_cents: Math.round(s.spend.mean),
      sigma_cents: Math.round(sigma),
      k_sigma: t.k_sigma,
      window_ms: t.spend_window_ms,
    },
  );
}

function updateSpend(s: AgentDetectionState, spend: number, t: Thresholds): void {
  const a = s.spend.n === 0 ? 1 : Math.max(t.ewma_alpha, 1 / (s.spend.n + 1));
  const delta = spend - s.spend.mean;
  s.spend.mean += a * delta;
  s.spend.var = (1 - a) * (s.spend.var + a * delta * delta);
  s.spend.n++;
}

function budget(
  id: string,
  at: number,
  b: NonNullable<AgentObservation['budget']>,
  t: Thresholds,
): Anomaly[] {
  // get_budget_status reports a cap of 0 as "no cap" (pct 0); a cap of 0 is also what containment sets,
  // so only a positive cap can be exhausted.
  if (!b.daily_cap || b.daily_cap <= 0) return [];
  const pct = (b.daily_spend / b.daily_cap) * 100;
  const details = {
    daily_spend_cents: b.daily_spend,
    daily_cap_cents: b.daily_cap,
    daily_pct: Number(pct.toFixed(1)),
  };
  if (pct >= t.budget_exhaustion_pct)
    return [
      anomaly(
        id,
        at,
        'budget_exhaustion',
        'critical',
        `${id} used ${pct.toFixed(0)} % of its daily budget`,
        details,
      ),
    ];
  if (pct >= t.budget_warning_pct)
    return [
      anomaly(
        id,
        at,
        'budget_warning',
        'warning',
        `${id} used ${pct.toFixed(0)} % of its daily budget`,
        details,
      ),
    ];
  return [];
}

function reputation(
  id: string,
  at: number,
  r: NonNullable<AgentObservation['reputation']>,
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const score = r.composite_score;
  // The real gateway computes reputation once, at key provisioning, so it is usually all zero: a zero
  // or unknown score is "not computed", never a 100 % drop, and never enters the baseline.
  if (r.found === false || !(score > 0)) return undefined;
  if (!s.reputation) {
    s.reputation = { n: 1, baseline: score, at };
    return undefined;
  }
  const drop = ((s.reputation.baseline - score) / s.reputation.baseline) * 100;
  if (drop < t.reputation_warning_pct) {
    // Healthy agents move < 5 % a day: the baseline follows with a one-day time constant, so a steady
    // decline over hours is measured against where the agent was, not chased.
    const dt = Math.max(0, at - (s.reputation.at ?? at));
    s.reputation.baseline += (1 - Math.exp(-dt / t.reputation_baseline_ms)) * (score - s.reputation.baseline);
    s.reputation.n++;
    s.reputation.at = at;
    return undefined;
  }
  const severity: Severity = drop >= t.reputation_critical_pct ? 'critical' : 'warning';
  return anomaly(
    id,
    at,
    'reputation_drift',
    severity,
    `${id}'s reputation fell ${drop.toFixed(0)} % (${s.reputation.baseline.toFixed(3)} → ${score.toFixed(3)})`,
    {
      baseline: Number(s.reputation.baseline.toFixed(4)),
      current: score,
      drop_pct: Number(drop.toFixed(1)),
    },
  );
}

function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return m;
}

/**
 * Cascade: two or more agents alerting within the window, or a shared wallet exhausted. The root-cause
 * candidate is the agent with the largest burst or spend anomaly in this pass.
 */
export function detectFleet(
  results: { agent_id: string; anomalies: Anomaly[] }[],
  fleet: {
    at: number;
    sharedWallets: { agent_id: string; balance?: number; failure?: string }[];
    recentAlerts: { agent_id: string; at: number; signal: string; priority: string }[];
  },
  t: Thresholds = DEFAULT_THRESHOLDS,
): Anomaly[] {
  // "Alerting" means a P0/P1 anomaly: in a fleet of 40, two P2 warnings within 5 minutes are chance, not a cascade.
  const serious = (a: { signal: string; priority: string }) =>
    a.signal !== 'detection_failure' &&
    a.signal !== 'cascade' &&
    (a.priority === 'P0' || a.priority === 'P1');
  const alerting = new Set<string>();
  for (const r of results) if (r.anomalies.some(serious)) alerting.add(r.agent_id);
  for (const a of fleet.recentAlerts)
    if (a.at >= fleet.at - t.cascade_window_ms && serious(a)) alerting.add(a.agent_id);
  const exhausted = fleet.sharedWallets.filter(
    (w) => w.balance !== undefined && w.balance < t.shared_wallet_exhausted_cents,
  );
  const byAgent = new Map(results.map((r) => [r.agent_id, r.anomalies]));
  const root = [...alerting].sort((a, b) => weight(byAgent.get(b)) - weight(byAgent.get(a)))[0];
  const affected = [...alerting].sort();
  const out: Anomaly[] = [];
  if (exhausted.length > 0 && affected.length > 0) {
    out.push(
      anomaly(
        root ?? affected[0]!,
        fleet.at,
        'cascade',
        'critical',
        `shared wallet ${exhausted.map((w) => w.agent_id).join(', ')} exhausted; ${affected.length} agents alerting`,
        {
          rule: 'shared_wallet_exhausted',
          wallets: exhausted.map((w) => ({ agent_id: w.agent_id, balance_cents: w.balance })),
          affected_agents: affected,
          root_cause_candidate: root ?? null,
        },
      ),
    );
  } else if (affected.length >= t.cascade_min_agents) {
    out.push(
      anomaly(
        root ?? affected[0]!,
        fleet.at,
        'cascade',
        'critical',
        `${affected.length} agents alerting within ${t.cascade_window_ms / 60_000} min`,
        {
          rule: 'correlated_alerts',
          affected_agents: affected,
          root_cause_candidate: root ?? null,
        },
      ),
    );
  }
  return out;
}

function weight(anomalies: Anomaly[] | undefined): number {
  let w = 0;
  for (const a of anomalies ?? []) {
    const d = a.details as { amount_locked_cents?: number; spend_cents?: number };
    w = Math.max(w, d.amount_locked_cents ?? 0, d.spend_cents ?? 0);
  }
  return w;
}

/**
 * Post-mortem feedback: containment missed its target, so detection for that agent tightens
 * (k 2.0 → 1.5, burst counts down a notch), never below a floor that would alarm on normal traffic.
 */
export function tightenThresholds(t: Thresholds, _reason: string): Thresholds {
  return {
    ...t,
    k_sigma: Math.max(1.0, Number((t.k_sigma - 0.5).toFixed(2))),
    burst_min_count: Math.max(5, t.burst_min_count - 2),
    burst_long_min_count: Math.max(15, t.burst_long_min_count - 5),
  };
}
