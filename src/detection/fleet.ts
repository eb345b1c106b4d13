/**
 * cascade (P0), across the fleet: `cascade_min_agents` or more agents alerting within
 * `cascade_window_ms`, or a shared wallet exhausted.
 *
 * "Alerting" counts anomalies of priority P0..P<cascade_max_priority> (default P0 and P1), never
 * detection_failure or cascade itself: in a fleet of 40, two P2 warnings within five minutes are chance,
 * and a cascade's answer (contain every affected agent, prepare a fleet shutdown) is too heavy for them.
 * Set cascade_max_priority to 2 to count warnings as the SPEC's table reads literally.
 *
 * A shared wallet below `shared_wallet_exhausted_cents` is a cascade by itself. With an agent alerting
 * it is critical (that agent is the likely drain); with none it is a P0 warning, which pages a person
 * but contains nobody, because an empty treasury alone names no agent to contain. An unreadable shared
 * wallet is a detection_failure: the exhaustion rule is blind.
 *
 * The likely root cause is the affected agent with the largest spend anomaly in this pass (spend or
 * escrow principal locked), then the earliest to alert.
 */
import { anomaly, dollars, PRIORITY, priorityLevel } from './anomaly.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';
import { type Anomaly, type Priority, SEVERITIES, type Severity, SIGNALS, type Signal } from './types.js';

export interface FleetObservation {
  at: number;
  /** Shared wallets by id, with their balance in cents, or why it could not be read. */
  sharedWallets: { agent_id: string; balance?: number | undefined; failure?: string | undefined }[];
  /** Alerts already raised (earlier passes); those older than `cascade_window_ms` are ignored. */
  recentAlerts: {
    agent_id: string;
    at: number;
    signal: string;
    priority?: string | undefined;
    severity?: string | undefined;
  }[];
}

export function detectFleet(
  results: readonly { agent_id: string; anomalies: readonly Anomaly[] }[],
  fleet: FleetObservation,
  t: Thresholds = DEFAULT_THRESHOLDS,
): Anomaly[] {
  const out: Anomaly[] = [];
  for (const w of fleet.sharedWallets)
    if (w.failure !== undefined || !(typeof w.balance === 'number' && Number.isFinite(w.balance)))
      out.push(
        anomaly(
          w.agent_id,
          fleet.at,
          'detection_failure',
          'warning',
          `cannot read shared wallet ${w.agent_id}`,
          {
            check: 'shared_wallet',
            code: w.failure === undefined ? 'invalid_observation' : 'unreadable',
            message: String(w.failure ?? 'balance: expected cents').slice(0, 300),
            blind_to: ['cascade'],
          },
        ),
      );

  const alerting = new Map<string, { weight: number; first: number }>();
  const add = (agent: string, weight: number, at: number) => {
    const prev = alerting.get(agent);
    alerting.set(agent, {
      weight: Math.max(prev?.weight ?? 0, weight),
      first: Math.min(prev?.first ?? at, at),
    });
  };
  const counts = (signal: string, priority: Priority) =>
    signal !== 'detection_failure' &&
    signal !== 'cascade' &&
    priorityLevel(priority) <= t.cascade_max_priority;
  for (const r of results)
    for (const a of r.anomalies) if (counts(a.signal, a.priority)) add(r.agent_id, spendWeight(a), a.at);
  for (const a of fleet.recentAlerts)
    if (a.at >= fleet.at - t.cascade_window_ms && counts(a.signal, priorityOf(a))) add(a.agent_id, 0, a.at);

  const exhausted = fleet.sharedWallets.filter(
    (w) => typeof w.balance === 'number' && w.balance < t.shared_wallet_exhausted_cents,
  );
  const affected = [...alerting.keys()].sort();
  const root =
    [...alerting.entries()].sort(
      ([a, x], [b, y]) => y.weight - x.weight || x.first - y.first || a.localeCompare(b),
    )[0]?.[0] ?? null;
  const wallets = exhausted.map((w) => ({ agent_id: w.agent_id, balance_cents: w.balance }));
  const common = {
    affected_agents: affected,
    root_cause_candidate: root,
    window_ms: t.cascade_window_ms,
    ...(wallets.length
      ? { exhausted_wallets: wallets, exhausted_below_cents: t.shared_wallet_exhausted_cents }
      : {}),
  };
  const walletText = exhausted.map((w) => `${w.agent_id} (${dollars(w.balance ?? 0)})`).join(', ');

  if (affected.length >= t.cascade_min_agents)
    out.push(
      anomaly(
        root ?? affected[0]!,
        fleet.at,
        'cascade',
        'critical',
        `${affected.length} agents alerting within ${t.cascade_window_ms / 60_000} min${walletText ? `; shared wallet ${walletText} exhausted` : ''}`,
        { rule: 'correlated_alerts', ...common },
      ),
    );
  else if (exhausted.length && root)
    out.push(
      anomaly(
        root,
        fleet.at,
        'cascade',
        'critical',
        `shared wallet ${walletText} exhausted while ${root} alerts`,
        {
          rule: 'shared_wallet_exhausted',
          ...common,
        },
      ),
    );
  else if (exhausted.length)
    out.push(
      anomaly(
        exhausted[0]!.agent_id,
        fleet.at,
        'cascade',
        'warning',
        `shared wallet ${walletText} exhausted; no agent alerting`,
        { rule: 'shared_wallet_exhausted', ...common },
      ),
    );
  return out;
}

/** How much money an anomaly says is moving: its spend in the window or its locked principal. */
function spendWeight(a: Anomaly): number {
  const d = a.details as { spend_cents?: unknown; amount_locked_cents?: unknown };
  const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  return Math.max(n(d.spend_cents), n(d.amount_locked_cents));
}

/** An earlier alert's priority: as recorded, else from its signal and severity (default warning). */
function priorityOf(a: FleetObservation['recentAlerts'][number]): Priority {
  if (a.priority === 'P0' || a.priority === 'P1' || a.priority === 'P2' || a.priority === 'P3')
    return a.priority;
  const signal = SIGNALS.includes(a.signal as Signal) ? (a.signal as Signal) : undefined;
  const severity = SEVERITIES.includes(a.severity as Severity) ? (a.severity as Severity) : 'warning';
  return signal ? PRIORITY[signal][severity] : 'P2';
}
