/**
 * The per-agent spend baseline and the fee readings behind it.
 *
 * Spend per interval = escrow principal committed as payer (from the escrow list's creation times) +
 * gateway fees (from cumulative usage cost, or budget daily_spend, deltas between polls). The state
 * keeps the spend and escrow count of the last `baseline_intervals` closed, non-overlapping intervals of
 * `spend_window_ms`, never the trailing interval being judged, so a spike cannot vouch for itself.
 *
 * The baseline is robust: median and MAD (σ ≈ 1.4826·MAD), so a loop that ran while nobody looked,
 * or was contained late, is an outlier among the intervals rather than a new normal, as long as it
 * covers less than half of them. That matters because the escrow list carries creation times: the first
 * poll seeds the baseline from the agent's history, and a poll after a blind spell catches up on it,
 * incident included. An EWMA would learn such a catch-up whole.
 */
import { largestGroup, largestRepeat } from './groups.js';
import type { Thresholds } from './thresholds.js';
import {
  type AgentDetectionState,
  type EscrowObservation,
  type FeeSample,
  MAX_ALARM_SPANS,
  MAX_FEE_SAMPLES,
  MAX_KNOWN_PAYEES,
  type PeakName,
} from './types.js';

/** A fee delta over a longer gap than this is not attributed to any interval (it would be a fake spike). */
const MAX_FEE_GAP_MS = 24 * 60 * 60_000;

/** Cumulative fee reading: usage cost never falls back, so it is preferred over the rolling daily spend. */
function feeReading(obs: {
  usage?: { total_cost: number } | undefined;
  budget?: { daily_spend: number } | undefined;
}): { total_cents: number; source: 'usage' | 'budget' } | null {
  if (obs.usage && Number.isFinite(obs.usage.total_cost))
    return { total_cents: Math.round(obs.usage.total_cost * 100), source: 'usage' };
  if (obs.budget && Number.isFinite(obs.budget.daily_spend))
    return { total_cents: obs.budget.daily_spend, source: 'budget' };
  return null;
}

/**
 * Records the fee spent since the previous reading as a sample spread over the gap. A fall (the rolling
 * daily spend losing yesterday's fees) counts as nothing spent, never as negative spend.
 */
export function recordFees(s: AgentDetectionState, at: number, obs: Parameters<typeof feeReading>[0]): void {
  const reading = feeReading(obs);
  if (!reading) return;
  const ref = s.fees.ref;
  // Usage is read less often than the budget (the watcher's slow tier). Its next reading covers the fees
  // since the last one, so a budget reading in between must not take its place as the reference.
  if (reading.source === 'budget' && ref?.source === 'usage' && at - ref.at <= MAX_FEE_GAP_MS) return;
  if (ref && ref.source === reading.source && at > ref.at && at - ref.at <= MAX_FEE_GAP_MS) {
    const delta = reading.total_cents - ref.total_cents;
    if (delta > 0) s.fees.samples.push({ from: ref.at, to: at, cents: delta });
    if (s.fees.samples.length > MAX_FEE_SAMPLES)
      s.fees.samples.splice(0, s.fees.samples.length - MAX_FEE_SAMPLES);
  }
  s.fees.ref = { at, ...reading };
}

/** Fees falling in (from, to], each sample pro rata to its overlap. */
export function feesWithin(samples: readonly FeeSample[], from: number, to: number): number {
  let cents = 0;
  for (const f of samples) {
    const overlap = Math.min(to, f.to) - Math.max(from, f.from);
    if (overlap > 0) cents += (f.cents * overlap) / (f.to - f.from);
  }
  return cents;
}

export interface SpendThreshold {
  median: number;
  sigma: number;
  threshold: number;
}

/**
 * The current threshold, or null while the baseline has too few intervals to judge. σ has two floors:
 * `min_sigma_cents`, and `sigma_escrow_multiple` typical escrows, because escrow spend is lumpy: for a
 * quiet agent most intervals are zero (MAD 0), and one ordinary order must not read as k σ.
 */
export function spendThreshold(s: AgentDetectionState, t: Thresholds): SpendThreshold | null {
  const xs = s.intervals.spend;
  if (xs.length < t.min_baseline_samples) return null;
  const med = median(xs);
  const mad = median(xs.map((x) => Math.abs(x - med)));
  const sigma = Math.max(1.4826 * mad, t.min_sigma_cents, s.escrow_amount.mean * t.sigma_escrow_multiple);
  return { median: med, sigma, threshold: med + t.k_sigma * sigma };
}

/**
 * The agent's own escrow creation rate as payer, per ms (median escrows per interval), from the
 * intervals that end by `before`, once there are enough of them; null before. Counts every status: a
 * busy agent settles quickly, and its own rate is what keeps the burst rules from judging it as if it
 * were quiet.
 */
export function creationRatePerMs(
  s: AgentDetectionState,
  t: Thresholds,
  before = Number.POSITIVE_INFINITY,
): number | null {
  const xs = countsEndingBy(s, t, before);
  return xs.length < t.min_baseline_samples ? null : median(xs) / t.spend_window_ms;
}

/**
 * Escrow counts of the learned intervals that end by `before`. A rule judging a window must not learn
 * the agent's "own rate" from intervals inside that window: after a blind spell the catch-up learns the
 * loop being judged, and a loop covering half the baseline would raise its own bar.
 */
function countsEndingBy(s: AgentDetectionState, t: Thresholds, before: number): number[] {
  const iv = s.intervals;
  if (iv.learned_until === null || iv.learned_until <= before) return iv.count;
  const drop = Math.ceil((iv.learned_until - before) / t.spend_window_ms);
  return iv.count.slice(0, Math.max(0, iv.count.length - drop));
}

/**
 * Learns every closed interval that ends before the trailing window being judged. `paid` are the
 * agent's escrows as payer; `all` the whole list, whose oldest entry bounds what it can vouch for.
 */
export function learnIntervals(
  s: AgentDetectionState,
  at: number,
  paid: readonly EscrowObservation[],
  all: readonly EscrowObservation[],
  t: Thresholds,
): void {
  const w = t.spend_window_ms;
  const learnEnd = Math.floor((at - w) / w) * w;
  const oldest = all.reduce((m, e) => Math.min(m, e.created_at), Number.POSITIVE_INFINITY);
  // Intervals are (start, start + w]; this is the start of the one holding the oldest listed escrow.
  const oldestStart = Number.isFinite(oldest) ? Math.ceil(oldest / w) * w - w : null;
  // The first poll seeds from the list's history; an empty list has none to offer.
  let start = s.intervals.learned_until ?? oldestStart ?? learnEnd;
  // Before the oldest listed escrow the page says nothing: a flood may have pushed the rest off it.
  if (oldestStart !== null) start = Math.max(start, oldestStart);
  start = Math.max(start, learnEnd - t.baseline_intervals * w);
  if (learnEnd <= start) {
    s.intervals.learned_until = Math.max(s.intervals.learned_until ?? learnEnd, learnEnd);
    return;
  }
  const n = Math.round((learnEnd - start) / w);
  const principal = new Array<number>(n).fill(0);
  const counts = new Array<number>(n).fill(0);
  const amounts: number[][] = Array.from({ length: n }, () => []);
  const members: EscrowObservation[][] = Array.from({ length: n }, () => []);
  for (const e of paid) {
    if (e.created_at <= start || e.created_at > learnEnd) continue;
    const k = Math.ceil((e.created_at - start) / w) - 1;
    principal[k]! += e.amount;
    counts[k]!++;
    amounts[k]!.push(e.amount);
    members[k]!.push(e);
  }
  const spend = principal.map((p, k) =>
    Math.round(p + feesWithin(s.fees.samples, start + k * w, start + (k + 1) * w)),
  );
  const repeats = members.map((m) => largestRepeat(m).set.length);
  const payees = members.map((m) => largestGroup(m, (e) => e.payee).length);
  const largest = amounts.map((xs) => xs.reduce((m, x) => Math.max(m, x), 0));
  const iv = s.intervals;
  const keep = t.baseline_intervals;
  const len = iv.count.length;
  iv.repeat = [...alignedTo(iv.repeat, len), ...repeats].slice(-keep);
  iv.payee = [...alignedTo(iv.payee, len), ...payees].slice(-keep);
  iv.amount = [...alignedTo(iv.amount, len), ...largest].slice(-keep);
  const flags = Array.from({ length: n }, (_, k) => (inAlarm(s, start + k * w, w) ? 1 : 0));
  iv.flagged = [...alignedTo(iv.flagged, len), ...flags].slice(-keep);
  iv.spend = [...iv.spend, ...spend].slice(-keep);
  iv.count = [...iv.count, ...counts].slice(-keep);
  iv.learned_until = learnEnd;
  // Typical escrow size, from intervals the updated baseline calls normal: a loop's escrows are not typical.
  const th = spendThreshold(s, t);
  for (let k = 0; k < n; k++)
    if (!th || spend[k]! <= th.threshold) for (const amount of amounts[k]!) learnAmount(s, amount, t);
}

function learnAmount(s: AgentDetectionState, amount: number, t: Thresholds): void {
  const m = s.escrow_amount;
  m.n++;
  m.mean += (amount - m.mean) * Math.max(t.amount_ewma_alpha, 1 / m.n);
}

/** Drops fee samples that lie wholly in learned intervals and outside the trailing window. */
export function pruneFees(s: AgentDetectionState, at: number, t: Thresholds): void {
  const keepAfter = Math.min(s.intervals.learned_until ?? at, at - t.spend_window_ms);
  s.fees.samples = s.fees.samples.filter((f) => f.to > keepAfter);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The agent's own peaks, from learned intervals that end by `before` and no alarm flagged. */
export interface OwnPeaks {
  /** Escrows created in one interval (`spend_window_ms`), and in six consecutive ones. */
  count: number;
  count6: number;
  /** The largest retry-shaped group in one interval. */
  repeat: number;
  /** Most escrows to one payee in one interval, and in twelve consecutive ones (an upper bound). */
  payee: number;
  payee12: number;
  /** The most spent in one interval, cents. */
  spend: number;
  /** The largest single escrow, cents. */
  amount: number;
  /** Intervals behind these figures; 0 means no history at all. */
  intervals: number;
}

/**
 * Peaks over the learned intervals ending by `before` that no alarm flagged, and the remembered peaks
 * of the last `peak_memory_ms` (a weekly payout run outlives the 24 h of intervals). Null without history.
 */
export function ownPeaks(
  s: AgentDetectionState,
  t: Thresholds,
  at: number,
  before = Number.POSITIVE_INFINITY,
): OwnPeaks | null {
  const iv = s.intervals;
  let n = iv.count.length;
  if (iv.learned_until !== null && iv.learned_until > before)
    n = Math.max(0, n - Math.ceil((iv.learned_until - before) / t.spend_window_ms));
  const tail = (xs: number[] | undefined) => alignedTo(xs, iv.count.length).slice(0, n);
  const flagged = tail(iv.flagged);
  const ok = (xs: number[]) => xs.map((x, i) => (flagged[i] ? 0 : x));
  const count = ok(tail(iv.count));
  const repeat = ok(tail(iv.repeat));
  const payee = ok(tail(iv.payee));
  const spend = ok(tail(iv.spend));
  const amount = ok(tail(iv.amount));
  const remembered = (name: PeakName) => {
    const p = s.peaks?.[name];
    return p && at - p.at <= t.peak_memory_ms ? p.v : 0;
  };
  if (n === 0 && !s.peaks) return null;
  const count6 = Math.max(rolling(count, 6), remembered('count'));
  return {
    count: Math.max(maxOf(count), remembered('count')),
    count6,
    repeat: Math.max(maxOf(repeat), remembered('repeat')),
    payee: Math.max(maxOf(payee), remembered('payee')),
    payee12: Math.max(rolling(payee, 12), remembered('payee')),
    spend: Math.max(maxOf(spend), remembered('spend')),
    amount: Math.max(maxOf(amount), remembered('amount')),
    intervals: n,
  };
}

/** A per-interval series aligned with `count` (`len` long, newest last): zeros where older states lack it. */
function alignedTo(xs: readonly number[] | undefined, len: number): number[] {
  const have = (xs ?? []).slice(Math.max(0, (xs?.length ?? 0) - len));
  return [...new Array<number>(len - have.length).fill(0), ...have];
}

const maxOf = (xs: readonly number[]) => xs.reduce((m, x) => Math.max(m, x), 0);

/** The largest sum of `k` consecutive values (of all of them when there are fewer). */
function rolling(xs: readonly number[], k: number): number {
  let sum = 0;
  let best = 0;
  for (let i = 0; i < xs.length; i++) {
    sum += xs[i]!;
    if (i >= k) sum -= xs[i - k]!;
    best = Math.max(best, sum);
  }
  return best;
}

/**
 * After a poll that raised a critical escrow or spend alarm: the span it judged (the long burst window) is
 * remembered, and every interval overlapping it, learned now or later, is flagged, so the incident never
 * becomes the agent's own peak. Otherwise the unflagged peaks are remembered past the 24 h of intervals.
 */
export function settlePeaks(s: AgentDetectionState, t: Thresholds, at: number, alarmed: boolean): void {
  const iv = s.intervals;
  if (alarmed) {
    const from = at - t.escrow_burst_long_window_ms;
    const keepAfter = at - t.baseline_intervals * t.spend_window_ms;
    s.alarms = [...(s.alarms ?? []).filter(([, to]) => to > keepAfter), [from, at] as [number, number]].slice(
      -MAX_ALARM_SPANS,
    );
    if (iv.learned_until !== null) {
      const flagged = alignedTo(iv.flagged, iv.count.length);
      const w = t.spend_window_ms;
      for (let i = 0; i < flagged.length; i++) {
        const end = iv.learned_until - (flagged.length - 1 - i) * w;
        if (end > from) flagged[i] = 1;
      }
      iv.flagged = flagged;
    }
    return;
  }
  const p = ownPeaks(s, t, at);
  if (!p || p.intervals === 0) return;
  s.peaks ??= {};
  const peaks = s.peaks;
  for (const [name, v] of [
    ['count', p.count],
    ['repeat', p.repeat],
    ['payee', p.payee],
    ['spend', p.spend],
    ['amount', p.amount],
  ] as const) {
    const cur = peaks[name];
    if (!cur || at - cur.at > t.peak_memory_ms || v >= cur.v) peaks[name] = { v, at };
  }
}

/** Whether the interval (start, start + w] overlaps a remembered alarm span. */
function inAlarm(s: AgentDetectionState, start: number, w: number): boolean {
  return (s.alarms ?? []).some(([from, to]) => start < to && start + w > from);
}

/**
 * Remembers the payees this agent paid before `cutoff` (bounded; the trailing window is judged against
 * them, so it is not learned yet).
 */
export function learnPayees(
  s: AgentDetectionState,
  cutoff: number,
  paid: readonly EscrowObservation[],
): void {
  const known = new Set(s.payees ?? []);
  for (const e of [...paid].sort((a, b) => a.created_at - b.created_at)) {
    if (e.created_at > cutoff) break;
    known.delete(e.payee);
    known.add(e.payee);
  }
  s.payees = [...known].slice(-MAX_KNOWN_PAYEES);
}

/**
 * Whether less than `cold_start_ms` of the agent's history is known (or none): its first batch, payout
 * or supplier run has nothing of its own to be judged against yet.
 */
export function isCold(s: AgentDetectionState, t: Thresholds, at: number): boolean {
  return s.known_since === undefined || s.known_since === null || at - s.known_since < t.cold_start_ms;
}

/** How far back this agent's history is known: its first poll, or the oldest escrow any poll listed. */
export function noteHistory(s: AgentDetectionState, at: number, all: readonly EscrowObservation[]): void {
  const oldest = all.reduce((m, e) => Math.min(m, e.created_at), at);
  s.known_since = Math.min(s.known_since ?? at, oldest);
}

/**
 * Learns the agent's own cancellation rate from escrows old enough to be decided (created more than
 * `cancel_window_ms` ago), decayed so a day's behaviour dominates. Counts each closed interval once.
 */
export function learnCancels(
  s: AgentDetectionState,
  at: number,
  paid: readonly EscrowObservation[],
  all: readonly EscrowObservation[],
  t: Thresholds,
): void {
  s.cancels ??= { decided: 0, cancelled: 0, learned_until: null };
  const c = s.cancels;
  const w = t.spend_window_ms;
  const end = Math.floor((at - t.cancel_window_ms) / w) * w;
  const oldest = all.reduce((m, e) => Math.min(m, e.created_at), Number.POSITIVE_INFINITY);
  // The first poll learns from as much decided history as the list holds (at most a baseline's span).
  let from = c.learned_until ?? end - t.baseline_intervals * w;
  if (Number.isFinite(oldest)) from = Math.max(from, oldest);
  if (end <= from) {
    c.learned_until = Math.max(c.learned_until ?? end, end);
    return;
  }
  const decay = 0.998 ** Math.round((end - from) / w);
  let decided = 0;
  let cancelled = 0;
  for (const e of paid)
    if (e.created_at > from && e.created_at <= end && (e.status === 'settled' || e.status === 'refunded')) {
      decided++;
      if (e.status === 'refunded') cancelled++;
    }
  c.decided = c.decided * decay + decided;
  c.cancelled = c.cancelled * decay + cancelled;
  c.learned_until = end;
}
