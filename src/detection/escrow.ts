/**
 * Escrow signals, read from one poll's escrow list: creation times, payees, amounts and statuses.
 *
 * escrow_burst (the retry loop: many escrows, each under every cap) needs no history. Two cold-start
 * rules, each counting the agent's held escrows as payer created in the last `escrow_burst_window_ms`:
 *   - rate:   ≥ `escrow_burst_min_count` (8) to any payees;
 *   - repeat: ≥ `escrow_burst_repeat_count` (5) to one payee of one amount, the retry's signature.
 * At 30 escrows a minute the repeat rule fires on the 5th escrow (8 s in); normal traffic (a few orders
 * an hour, varied amounts, released within minutes) never reaches either. Once the agent has a baseline,
 * each count must also be `escrow_burst_factor` × its own expected count in the window, so a busy agent
 * is judged against its own rate, not a quiet one's. A long window catches a loop first seen late.
 * Only held escrows count: a loop's escrows stay held, and containment's cancellations end the burst.
 */
import { anomaly, dollars, idList } from './anomaly.js';
import { creationRatePerMs } from './baseline.js';
import type { Thresholds } from './thresholds.js';
import type { AgentDetectionState, Anomaly, EscrowObservation } from './types.js';

const MIN = 60_000;

type Rule = 'rate' | 'repeat' | 'long_window';

export function escrowBurst(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  // Each window is judged against the agent's rate from before that window, never from inside it.
  const rateBefore = (windowMs: number) => creationRatePerMs(s, t, at - windowMs);
  const need = (floor: number, windowMs: number) => {
    const ratePerMs = rateBefore(windowMs);
    return Math.max(floor, ratePerMs === null ? 0 : Math.ceil(t.escrow_burst_factor * ratePerMs * windowMs));
  };
  const held = paid.filter((e) => e.status === 'held');
  const short = held.filter((e) => e.created_at > at - t.escrow_burst_window_ms);
  const long = held.filter((e) => e.created_at > at - t.escrow_burst_long_window_ms);
  const repeat = largestGroup(short, (e) => `${e.payee}\u0000${e.amount}`);

  let hit: { rule: Rule; set: EscrowObservation[]; windowMs: number; threshold: number } | undefined;
  const rateNeed = need(t.escrow_burst_min_count, t.escrow_burst_window_ms);
  const repeatNeed = need(t.escrow_burst_repeat_count, t.escrow_burst_window_ms);
  const longNeed = need(t.escrow_burst_long_min_count, t.escrow_burst_long_window_ms);
  if (short.length >= rateNeed)
    hit = { rule: 'rate', set: short, windowMs: t.escrow_burst_window_ms, threshold: rateNeed };
  else if (repeat.length >= repeatNeed)
    hit = { rule: 'repeat', set: repeat, windowMs: t.escrow_burst_window_ms, threshold: repeatNeed };
  else if (long.length >= longNeed)
    hit = { rule: 'long_window', set: long, windowMs: t.escrow_burst_long_window_ms, threshold: longNeed };
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
    `${id} created ${set.length} held escrows in ${windowMs / MIN} min (${perMin.toFixed(1)}/min, ${dollars(locked)} locked)`,
    {
      rule: hit.rule,
      count: set.length,
      threshold_count: hit.threshold,
      window_ms: windowMs,
      rate_per_min: round2(perMin),
      baseline_per_hour: baselinePerHour(rateBefore(windowMs)),
      amount_locked_cents: locked,
      top_payee: byPayee[0]?.payee ?? null,
      top_payee_count: byPayee.length,
      ...(hit.rule === 'repeat' ? { repeat_amount_cents: set[0]?.amount } : {}),
      ...idList(newestFirst(set).map((e) => e.id)),
    },
  );
}

/**
 * escrow_exploitation (P1), two rules over the agent's escrows as payer created within each window:
 *   - same_payee: more than `exploitation_same_payee_count` escrows to one payee within
 *     `exploitation_window_ms` whose money actually went to that payee or is held for it (settled or
 *     held). A refund moved nothing to the payee, so refunded and expired escrows never count: otherwise
 *     a loop's escrows refunded by our containment would name their payee an exploiter.
 *   - cancel_rate: the payer cancelled more than `cancel_rate` of its decided escrows (settled or
 *     refunded) within `cancel_window_ms`, with at least `cancel_min_count` decided. Held escrows are not
 *     decided yet and do not dilute it. Judged by creation time and status only: the gateway's
 *     get_escrow rows carry no updated_at, and none is needed.
 * The caller passes only the agent's own escrows: refunds made by our containment are left out
 * (observation `cancelled_by_us`). `loopPayee` is the payee of a burst already reported: the loop
 * explains it.
 */
export function escrowExploitation(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  t: Thresholds,
  loopPayee: string | null,
): Anomaly | undefined {
  const moved = paid.filter(
    (e) =>
      e.created_at > at - t.exploitation_window_ms &&
      (e.status === 'settled' || e.status === 'held') &&
      e.payee !== loopPayee,
  );
  const farmed = largestGroup(moved, (e) => e.payee);
  if (farmed.length > t.exploitation_same_payee_count) {
    const payee = farmed[0]!.payee;
    return anomaly(
      id,
      at,
      'escrow_exploitation',
      'critical',
      `${id} sent or committed ${farmed.length} escrows to ${payee} within ${t.exploitation_window_ms / MIN} min`,
      {
        rule: 'same_payee',
        suspect_payee: payee,
        count: farmed.length,
        threshold_count: t.exploitation_same_payee_count,
        window_ms: t.exploitation_window_ms,
        amount_cents: farmed.reduce((n, e) => n + e.amount, 0),
        settled_cents: farmed.filter((e) => e.status === 'settled').reduce((n, e) => n + e.amount, 0),
        statuses: countBy(farmed, (e) => String(e.status)),
        ...idList(newestFirst(farmed).map((e) => e.id)),
      },
    );
  }
  return cancellationRate(id, at, paid, t);
}

function cancellationRate(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  t: Thresholds,
): Anomaly | undefined {
  const decided = paid.filter(
    (e) => e.created_at > at - t.cancel_window_ms && (e.status === 'settled' || e.status === 'refunded'),
  );
  const cancelled = decided.filter((e) => e.status === 'refunded');
  const rate = decided.length ? cancelled.length / decided.length : 0;
  if (decided.length < t.cancel_min_count || rate <= t.cancel_rate) return undefined;
  const suspect = largestGroup(cancelled, (e) => e.payee)[0]?.payee ?? null;
  return anomaly(
    id,
    at,
    'escrow_exploitation',
    'critical',
    `${id} cancelled ${cancelled.length} of ${decided.length} decided escrows within ${t.cancel_window_ms / MIN} min`,
    {
      rule: 'cancel_rate',
      suspect_payee: suspect,
      cancel_rate: round2(rate),
      threshold_rate: t.cancel_rate,
      cancelled: cancelled.length,
      decided: decided.length,
      window_ms: t.cancel_window_ms,
      ...idList(newestFirst(cancelled).map((e) => e.id)),
    },
  );
}

function baselinePerHour(ratePerMs: number | null): number | null {
  return ratePerMs === null ? null : round2(ratePerMs * 60 * MIN);
}

/** The members of the largest group (ties: the group whose newest escrow is newest). */
function largestGroup<T extends EscrowObservation>(items: readonly T[], key: (e: T) => string): T[] {
  const groups = new Map<string, T[]>();
  for (const e of items) {
    const k = key(e);
    const g = groups.get(k);
    if (g) g.push(e);
    else groups.set(k, [e]);
  }
  let best: T[] = [];
  for (const g of groups.values()) {
    if (g.length > best.length || (g.length === best.length && newest(g) > newest(best))) best = g;
  }
  return best;
}

const newest = (g: readonly EscrowObservation[]) =>
  g.reduce((m, e) => Math.max(m, e.created_at), Number.NEGATIVE_INFINITY);

const newestFirst = (g: readonly EscrowObservation[]) => [...g].sort((a, b) => b.created_at - a.created_at);

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
