/**
 * Escrow signals, read from one poll's escrow list: creation times, payees, amounts and statuses.
 *
 * escrow_burst (the retry loop: many escrows, each under every cap). Three rules over the agent's held
 * escrows as payer, each judged against a floor (the thresholds, for an agent with no history) and, once
 * the agent has history, `escrow_burst_factor` × its own peak for that window (baseline.ts ownPeaks):
 *   - repeat: ≥ `escrow_burst_repeat_count` (5) of about one amount (±12 %) to one payee, or rotating over
 *     a few payees, within `escrow_burst_window_ms` (2 min). The retry's signature: at 30/min it fires on
 *     the 5th escrow (8 s in). Legitimate batches, payouts and busy agents vary payees or amounts.
 *   - rate: ≥ `escrow_burst_min_count` (25) to any payees within `escrow_burst_rate_window_ms` (5 min):
 *     above the largest legitimate purchase batch (20 in 2–4 min), which no quiet agent's bar allows.
 *   - long_window: ≥ `escrow_burst_long_min_count` (45) within `escrow_burst_long_window_ms` (30 min):
 *     a slow loop, or one first seen late, after a blind spell.
 * A fan-out (at least 90 % of the set's payees paid once: a payout run) has its own floor,
 * `escrow_burst_fanout_count` (100). With no history at all (or none with an escrow in it), the rate and long-window rules count only escrows still held
 * `escrow_burst_cold_age_ms` (3 min) after creation: a busy agent seen for the first time releases its
 * orders within minutes, a loop's stay held. A busy agent or a payout run raises its own bar through its peaks; intervals of a poll that alarmed
 * are never learned as peaks, and a window is judged only against intervals ending before it starts, so
 * a loop cannot vouch for itself. Only held escrows count: a loop's escrows stay held, and containment's
 * cancellations end the burst.
 */
import { anomaly, credits, idList } from './anomaly.js';
import { isCold, ownPeaks } from './baseline.js';
import { densest, groupBy, largestGroup, largestRepeat, newestFirst } from './groups.js';
import type { Thresholds } from './thresholds.js';
import { type AgentDetectionState, type Anomaly, type EscrowObservation, INSTANT_PATHS } from './types.js';

const MIN = 60_000;

type Rule = 'rate' | 'repeat' | 'long_window';

export function escrowBurst(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  // Windows are judged wherever they end after the previous poll (a catch-up after a blind spell judges the
  // whole unseen stretch), against peaks from intervals that end a long window before that poll: intervals
  // learned in a catch-up were never judged live, and a loop must not become its own bar.
  // The first poll judges the last long window of the list it was given.
  const last = Math.min(at, s.last_at ?? at - t.escrow_burst_long_window_ms);
  const peaks = ownPeaks(s, t, at, last - t.escrow_burst_long_window_ms);
  const bar = (floor: number, own: number | undefined) =>
    Math.max(floor, own === undefined ? 0 : Math.floor(t.escrow_burst_factor * own) + 1);
  // Held, or gone at once on a path that has nothing to hold (a split, a withdrawal, a captured intent):
  // a loop's money either waits to be cancelled or has left, and both are the loop's.
  const held = paid.filter(
    (e) =>
      e.status === 'held' ||
      (e.status === 'settled' &&
        (e.path === 'intent' || (e.path !== undefined && INSTANT_PATHS.has(e.path)))),
  );
  const since = (ms: number) => held.filter((e) => e.created_at > last - ms);
  const endsAfter = s.last_at ?? Number.NEGATIVE_INFINITY;

  const repeat = largestRepeat(since(t.escrow_burst_window_ms));
  const repeatSet = densest(repeat.set, t.escrow_burst_window_ms, endsAfter);
  // Cold (no history to set a bar): the any-payee rules count only escrows still held after
  // `escrow_burst_cold_age_ms`. A busy agent's orders are released within minutes; a loop's stay held.
  // The repeat rule, the retry's own signature, needs no such patience.
  // An agent whose known history holds no escrow at all (a new agent that has just started) is as cold
  // as one with no history: its quiet intervals say nothing about how fast it works.
  const cold = !peaks || peaks.intervals === 0 || peaks.count === 0;
  const aged = (xs: EscrowObservation[]) =>
    cold ? xs.filter((e) => e.created_at <= at - t.escrow_burst_cold_age_ms) : xs;
  const rate = densest(aged(since(t.escrow_burst_rate_window_ms)), t.escrow_burst_rate_window_ms, endsAfter);
  const long = densest(aged(since(t.escrow_burst_long_window_ms)), t.escrow_burst_long_window_ms, endsAfter);
  // A fan-out pays each payee once (a payout run to staff or suppliers): no retry looks like that, so its
  // floor is `escrow_burst_fanout_count`, above a payout run, not the batch-sized one.
  const fanout = (xs: EscrowObservation[]) =>
    xs.length > 0 && new Set(xs.map((e) => e.payee)).size >= 0.9 * xs.length;
  const floor = (xs: EscrowObservation[], f: number) =>
    fanout(xs) ? Math.max(f, t.escrow_burst_fanout_count) : f;
  // Peaks are per interval (5 min) or six of them: the 2-minute repeat window is held to a whole
  // interval's peak, which only makes its bar higher. The first rule met is reported.
  const rules: { rule: Rule; set: EscrowObservation[]; windowMs: number; threshold: number; own?: number }[] =
    [
      {
        rule: 'repeat',
        set: repeatSet,
        windowMs: t.escrow_burst_window_ms,
        threshold: bar(t.escrow_burst_repeat_count, peaks?.repeat),
        own: peaks?.repeat,
      },
      {
        rule: 'rate',
        set: rate,
        windowMs: t.escrow_burst_rate_window_ms,
        threshold: bar(floor(rate, t.escrow_burst_min_count), peaks?.count),
        own: peaks?.count,
      },
      {
        rule: 'long_window',
        set: long,
        windowMs: t.escrow_burst_long_window_ms,
        threshold: bar(floor(long, t.escrow_burst_long_min_count), peaks?.count6),
        own: peaks?.count6,
      },
    ];
  const hit = rules.find((r) => r.set.length >= r.threshold);
  if (!hit) return undefined;

  const { set, windowMs } = hit;
  const byPayee = largestGroup(set, (e) => e.payee);
  const locked = set.reduce((n, e) => n + e.amount, 0);
  const perMin = observedRatePerMin(set, windowMs);
  return anomaly(
    id,
    at,
    'escrow_burst',
    'critical',
    `${id} created ${set.length} held escrows in ${windowMs / MIN} min (${perMin.toFixed(1)}/min, ${credits(locked)} locked)`,
    {
      rule: hit.rule,
      count: set.length,
      threshold_count: hit.threshold,
      window_ms: windowMs,
      rate_per_min: round2(perMin),
      own_peak: hit.own ?? null,
      history_intervals: peaks?.intervals ?? 0,
      amount_locked_cents: locked,
      top_payee: byPayee[0]?.payee ?? null,
      top_payee_count: byPayee.length,
      ...(hit.rule === 'repeat'
        ? {
            repeat_kind: repeat.kind,
            repeat_amount_cents: set[0]?.amount,
            repeat_payees: [...new Set(set.map((e) => e.payee))].slice(0, 5),
          }
        : {}),
      ...idList(newestFirst(set).map((e) => e.id)),
    },
  );
}

/**
 * escrow_exploitation (P1), over sliding windows of the agent's escrows as payer in the list (every
 * window that ends after the previous poll, not only the one ending now):
 *   - same_payee: more than `exploitation_same_payee_count` escrows to one payee within
 *     `exploitation_window_ms` (5 min), or more than `exploitation_long_count` within
 *     `exploitation_long_window_ms` (60 min, the sustained form just under the 5-minute bar), counting
 *     escrows whose money went to that payee or is held for it (settled or held): a refund moved nothing
 *     to the payee, so a loop refunded by our containment never names its payee an exploiter. With
 *     history, the count must also exceed `escrow_burst_factor` × the agent's own peak to one payee.
 *     A 5-minute hit is critical (P1) only when the money has moved: at least half of the set settled
 *     to the payee. Escrows still held are refundable and are the burst rule's to judge; a buyer's
 *     restocking batch of 11–20 orders to one supplier is all held for its first minutes (released on
 *     delivery), while a farming payee releases to itself at once. Cold (less than `cold_start_ms` of
 *     history known, so no peak to judge by), even moved money between the bar and
 *     `escrow_burst_factor` × the bar is only a warning: a new agent's first batch has nothing of its
 *     own to be judged against. Either way a 5-minute count above `escrow_burst_factor` × the bar is
 *     critical, and so is the 60-minute form at its floor: a batch ends in minutes, farming goes on.
 *     A warning is P2: a person looks, nothing is frozen.
 *   - cancel_rate: the payer cancelled more than `cancel_rate` of its decided escrows (settled or
 *     refunded) within `cancel_window_ms`, at least `cancel_min_count` decided, and the count is
 *     improbable for this agent: the binomial tail given its own learned rate (a 15 % prior, worth 20
 *     escrows, until it has history) is below `cancel_significance`. An agent that cancels 35 % of its
 *     orders as a matter of course is judged against that.
 * The caller passes only the agent's own escrows: refunds made by our containment are left out
 * (observation `cancelled_by_us`). `loopPayee` is the payee of a burst already reported: the loop
 * explains it.
 */
export function escrowExploitation(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
  loopPayee: string | null,
): Anomaly | undefined {
  const since = s.last_at ?? Number.NEGATIVE_INFINITY;
  const moved = paid.filter(
    (e) =>
      e.created_at > at - t.exploitation_long_window_ms &&
      (e.status === 'settled' || e.status === 'held') &&
      e.payee !== loopPayee,
  );
  const own = ownPeaks(s, t, at, Math.min(at, s.last_at ?? at) - 2 * t.exploitation_long_window_ms);
  const bar = (floor: number, peak: number | undefined) =>
    Math.max(floor, peak === undefined ? 0 : Math.floor(t.escrow_burst_factor * peak));
  const shortNeed = bar(t.exploitation_same_payee_count, own?.payee);
  const longNeed = bar(t.exploitation_long_count, own?.payee12);
  const cold = isCold(s, t, at);
  const farBeyond = Math.floor(t.escrow_burst_factor * shortNeed);
  const mostlySettled = (set: readonly EscrowObservation[]) =>
    set.filter((e) => e.status === 'settled').length * 2 >= set.length;
  type Hit = { set: EscrowObservation[]; windowMs: number; threshold: number; critical: boolean };
  let found: Hit | undefined;
  const better = (h: Hit, than: Hit | undefined) =>
    !than ||
    (h.critical && !than.critical) ||
    (h.critical === than.critical && h.set.length > than.set.length);
  for (const group of groupBy(moved, (e) => e.payee).values()) {
    if (group.length <= shortNeed && group.length <= longNeed) continue;
    const short = densest(group, t.exploitation_window_ms, since);
    const long = densest(group, t.exploitation_long_window_ms, since);
    const hits: Hit[] = [];
    if (short.length > shortNeed)
      hits.push({
        set: short,
        windowMs: t.exploitation_window_ms,
        threshold: shortNeed,
        critical: (!cold && mostlySettled(short)) || short.length > farBeyond,
      });
    if (long.length > longNeed)
      hits.push({ set: long, windowMs: t.exploitation_long_window_ms, threshold: longNeed, critical: true });
    for (const h of hits) if (better(h, found)) found = h;
  }
  if (!found) return cancellationRate(id, at, paid, s, t);
  const farmed = found.set;
  const payee = farmed[0]!.payee;
  const warningOnly = !found.critical;
  // A cold-start warning must not hide a cancellation rate that is critical on its own.
  const cancels = warningOnly ? cancellationRate(id, at, paid, s, t) : undefined;
  if (cancels) return cancels;
  return anomaly(
    id,
    at,
    'escrow_exploitation',
    warningOnly ? 'warning' : 'critical',
    `${id} sent or committed ${farmed.length} escrows to ${payee} within ${found.windowMs / MIN} min`,
    {
      rule: 'same_payee',
      suspect_payee: payee,
      count: farmed.length,
      threshold_count: found.threshold,
      window_ms: found.windowMs,
      own_peak_to_one_payee: own
        ? found.windowMs === t.exploitation_window_ms
          ? own.payee
          : own.payee12
        : null,
      cold_start: cold,
      ...(warningOnly ? { critical_above_count: farBeyond } : {}),
      amount_cents: farmed.reduce((n, e) => n + e.amount, 0),
      settled_cents: farmed.filter((e) => e.status === 'settled').reduce((n, e) => n + e.amount, 0),
      statuses: countBy(farmed, (e) => String(e.status)),
      ...idList(newestFirst(farmed).map((e) => e.id)),
    },
  );
}

/** The prior of the cancellation rate and its weight in escrows, before the agent's own history. */
const CANCEL_PRIOR = { rate: 0.15, weight: 20 };

function cancellationRate(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const decided = paid.filter(
    (e) => e.created_at > at - t.cancel_window_ms && (e.status === 'settled' || e.status === 'refunded'),
  );
  const cancelled = decided.filter((e) => e.status === 'refunded');
  const rate = decided.length ? cancelled.length / decided.length : 0;
  if (decided.length < t.cancel_min_count || rate <= t.cancel_rate) return undefined;
  const c = s.cancels;
  const ownRate =
    ((c?.cancelled ?? 0) + CANCEL_PRIOR.rate * CANCEL_PRIOR.weight) /
    ((c?.decided ?? 0) + CANCEL_PRIOR.weight);
  const p = binomialTail(decided.length, cancelled.length, Math.min(0.95, ownRate));
  if (p >= t.cancel_significance) return undefined;
  const suspect = largestGroup(cancelled, (e) => e.payee)[0]?.payee ?? null;
  return anomaly(
    id,
    at,
    'escrow_exploitation',
    'critical',
    `${id} cancelled ${cancelled.length} of ${decided.length} decided escrows within ${t.cancel_window_ms / MIN} min (its usual rate: ${Math.round(ownRate * 100)} %)`,
    {
      rule: 'cancel_rate',
      suspect_payee: suspect,
      cancel_rate: round2(rate),
      threshold_rate: t.cancel_rate,
      own_rate: round2(ownRate),
      p_value: Number(p.toPrecision(2)),
      cancelled: cancelled.length,
      decided: decided.length,
      window_ms: t.cancel_window_ms,
      ...idList(newestFirst(cancelled).map((e) => e.id)),
    },
  );
}

/** P(X ≥ k) for X ~ Binomial(n, p), summed in log space (n is at most a few thousand). */
export function binomialTail(n: number, k: number, p: number): number {
  if (k <= 0) return 1;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  // log C(n, i) built up incrementally from i = 0.
  let logC = 0;
  let total = 0;
  for (let i = 0; i <= n; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    if (i >= k) total += Math.exp(logC + i * lp + (n - i) * lq);
  }
  return Math.min(1, total);
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

/** The rate the escrows themselves show (first to last), or count per window when they share a time. */
function observedRatePerMin(set: readonly EscrowObservation[], windowMs: number): number {
  const times = set.map((e) => e.created_at);
  const span = Math.max(...times) - Math.min(...times);
  return span > 0 ? ((set.length - 1) / span) * MIN : (set.length / windowMs) * MIN;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
