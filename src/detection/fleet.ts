/**
 * cascade (P0), across the fleet: `cascade_min_agents` or more agents alerting within
 * `cascade_window_ms` whose alarms are related, or a shared wallet exhausted.
 *
 * "Alerting" counts anomalies of priority P0..P<cascade_max_priority> (default P0 and P1), never
 * detection_failure or cascade itself. "Related" means one failure spreading, not two coincidences in a
 * fleet of hundreds: the same root signal, a payee both name (a loop's target, a suspect payee, a new
 * payee a stolen key paid), or a shared wallet that is exhausted while both alert. Two unrelated alarms
 * within five minutes are answered each on its own; a cascade's answer (contain every affected agent,
 * prepare a fleet shutdown) is too heavy for chance.
 *
 * A shared wallet below `shared_wallet_exhausted_cents` is a cascade by itself. With an agent alerting
 * it is critical (that agent is the likely drain); with none it is a P0 warning, which pages a person
 * but contains nobody, because an empty treasury alone names no agent to contain. An unreadable shared
 * wallet is a detection_failure: the exhaustion rule is blind.
 *
 * The likely root cause is the affected agent with the largest spend anomaly in this pass (spend or
 * escrow principal locked), then the earliest to alert.
 */
import { anomaly, credits, PRIORITY, priorityLevel } from './anomaly.js';
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

  const alerting = new Map<
    string,
    { weight: number; first: number; signals: Set<string>; payees: Set<string> }
  >();
  const add = (agent: string, weight: number, at: number, signal: string, payees: readonly string[]) => {
    const prev = alerting.get(agent) ?? { weight: 0, first: at, signals: new Set(), payees: new Set() };
    prev.weight = Math.max(prev.weight, weight);
    prev.first = Math.min(prev.first, at);
    prev.signals.add(signal);
    for (const p of payees) prev.payees.add(p);
    alerting.set(agent, prev);
  };
  const counts = (signal: string, priority: Priority) =>
    signal !== 'detection_failure' &&
    signal !== 'cascade' &&
    priorityLevel(priority) <= t.cascade_max_priority;
  for (const r of results)
    for (const a of r.anomalies)
      if (counts(a.signal, a.priority)) add(r.agent_id, spendWeight(a), a.at, a.signal, payeesNamed(a));
  for (const a of fleet.recentAlerts)
    if (a.at >= fleet.at - t.cascade_window_ms && counts(a.signal, priorityOf(a)))
      add(a.agent_id, 0, a.at, a.signal, []);

  const exhausted = fleet.sharedWallets.filter(
    (w) => typeof w.balance === 'number' && w.balance < t.shared_wallet_exhausted_cents,
  );
  // Related alarms form groups (same signal, a payee in common, or all of them while a shared wallet is
  // exhausted); the largest group is the cascade's affected set.
  const related = groupsOf([...alerting.entries()], exhausted.length > 0);
  const group = related[0] ?? [];
  const affected = [...group].sort();
  const inGroup = new Set(group);
  const root =
    [...alerting.entries()]
      .filter(([a]) => inGroup.has(a) || !group.length)
      .sort(([a, x], [b, y]) => y.weight - x.weight || x.first - y.first || a.localeCompare(b))[0]?.[0] ??
    null;
  const wallets = exhausted.map((w) => ({ agent_id: w.agent_id, balance_cents: w.balance }));
  const common = {
    affected_agents: affected,
    root_cause_candidate: root,
    window_ms: t.cascade_window_ms,
    ...(wallets.length
      ? { exhausted_wallets: wallets, exhausted_below_cents: t.shared_wallet_exhausted_cents }
      : {}),
    related_by: relation(
      group.map((a) => alerting.get(a)!),
      exhausted.length > 0,
    ),
    unrelated_alerting: [...alerting.keys()].filter((a) => !inGroup.has(a)).sort(),
  };
  const walletText = exhausted.map((w) => `${w.agent_id} (${credits(w.balance ?? 0)})`).join(', ');

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

/** Payees an anomaly names: a burst's target, a suspect payee, the new payees of stranger spending. */
function payeesNamed(a: Anomaly): string[] {
  const d = a.details as Record<string, unknown>;
  const out: string[] = [];
  for (const k of ['top_payee', 'suspect_payee']) if (typeof d[k] === 'string') out.push(d[k] as string);
  for (const k of ['new_payees', 'repeat_payees'])
    if (Array.isArray(d[k])) for (const p of d[k] as unknown[]) if (typeof p === 'string') out.push(p);
  return out;
}

type Alerting = { signals: Set<string>; payees: Set<string> };

/** Connected groups of related alerting agents, largest first. */
function groupsOf(entries: [string, Alerting][], walletExhausted: boolean): string[][] {
  if (walletExhausted) return entries.length ? [entries.map(([a]) => a)] : [];
  const parent = new Map(entries.map(([a]) => [a, a]));
  const find = (a: string): string => {
    let r = a;
    while (parent.get(r) !== r) r = parent.get(r)!;
    return r;
  };
  for (let i = 0; i < entries.length; i++)
    for (let j = i + 1; j < entries.length; j++) {
      const [a, x] = entries[i]!;
      const [b, y] = entries[j]!;
      const shared =
        [...x.signals].some((s) => y.signals.has(s)) || [...x.payees].some((p) => y.payees.has(p));
      if (shared) parent.set(find(a), find(b));
    }
  const groups = new Map<string, string[]>();
  for (const [a] of entries) groups.set(find(a), [...(groups.get(find(a)) ?? []), a]);
  return [...groups.values()].sort((g, h) => h.length - g.length);
}

/** What ties a group together, for the evidence. */
function relation(group: Alerting[], walletExhausted: boolean): string[] {
  if (group.length < 2) return walletExhausted ? ['shared_wallet_exhausted'] : [];
  const out: string[] = [];
  if (walletExhausted) out.push('shared_wallet_exhausted');
  const common = <T>(sets: Set<T>[]) => [...(sets[0] ?? [])].filter((v) => sets.every((s) => s.has(v)));
  for (const s of common(group.map((g) => g.signals))) out.push(`signal:${s}`);
  for (const p of common(group.map((g) => g.payees))) out.push(`payee:${p}`);
  return out.length ? out : ['chain'];
}
