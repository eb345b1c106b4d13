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
import type { Thresholds } from './thresholds.js';
import {
  type AgentDetectionState,
  type EscrowObservation,
  type FeeSample,
  MAX_FEE_SAMPLES,
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
  for (const e of paid) {
    if (e.created_at <= start || e.created_at > learnEnd) continue;
    const k = Math.ceil((e.created_at - start) / w) - 1;
    principal[k]! += e.amount;
    counts[k]!++;
    amounts[k]!.push(e.amount);
  }
  const spend = principal.map((p, k) =>
    Math.round(p + feesWithin(s.fees.samples, start + k * w, start + (k + 1) * w)),
  );
  const iv = s.intervals;
  iv.spend = [...iv.spend, ...spend].slice(-t.baseline_intervals);
  iv.count = [...iv.count, ...counts].slice(-t.baseline_intervals);
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
