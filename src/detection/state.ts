/**
 * Restoring persisted detector state. It comes back from storage as untyped JSON, possibly from an
 * older version or damaged: each part that does not check out starts fresh instead of crashing the
 * pass or poisoning a baseline. Version 1 (an EWMA over overlapping windows) keeps only its
 * reputation baseline, the one that takes days to form; the spend baseline re-seeds from the escrow
 * list on the next poll.
 */
import { HIGHER_IS_BETTER } from './reputation.js';
import { MAX_BASELINE_INTERVALS } from './thresholds.js';
import {
  type AgentDetectionState,
  type FeeSample,
  MAX_ALARM_SPANS,
  MAX_FEE_SAMPLES,
  MAX_KNOWN_PAYEES,
  type ScoreBaseline,
} from './types.js';

export function freshState(): AgentDetectionState {
  return {
    v: 2,
    last_at: null,
    intervals: { spend: [], count: [], learned_until: null },
    escrow_amount: { n: 0, mean: 0 },
    fees: { ref: null, samples: [] },
    reputation: null,
    metrics: {},
  };
}

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const nonNeg = (x: unknown): x is number => num(x) && x >= 0;
const obj = (x: unknown): Record<string, unknown> | undefined =>
  x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : undefined;

export function restoreState(prior: unknown): AgentDetectionState {
  const s = freshState();
  const p = obj(prior);
  if (!p) return s;
  if (p.v === 1) {
    const r = obj(p.reputation);
    if (r && num(r.baseline) && r.baseline > 0)
      s.reputation = { baseline: r.baseline, at: num(r.at) ? r.at : 0, n: nonNeg(r.n) ? r.n : 1 };
    return s;
  }
  if (p.v !== 2) return s;
  if (num(p.last_at)) s.last_at = p.last_at;
  const iv = obj(p.intervals);
  const series = (x: unknown) =>
    Array.isArray(x) && x.every(nonNeg) ? (x as number[]).slice(-MAX_BASELINE_INTERVALS) : undefined;
  const spend = series(iv?.spend);
  const count = series(iv?.count);
  if (
    iv &&
    spend &&
    count &&
    spend.length === count.length &&
    (iv.learned_until === null || num(iv.learned_until))
  ) {
    s.intervals = { spend, count, learned_until: iv.learned_until as number | null };
    // The per-interval peaks series came later: absent or damaged ones refill as intervals are learned.
    for (const k of ['repeat', 'payee', 'amount', 'flagged'] as const) {
      const xs = series(iv[k]);
      if (xs && xs.length <= count.length) s.intervals[k] = xs;
    }
  }
  const ea = obj(p.escrow_amount);
  if (ea && nonNeg(ea.n) && nonNeg(ea.mean)) s.escrow_amount = { n: ea.n, mean: ea.mean };
  s.fees = restoreFees(obj(p.fees));
  const peaks = obj(p.peaks);
  if (peaks) {
    const restored: NonNullable<AgentDetectionState['peaks']> = {};
    for (const k of ['count', 'repeat', 'payee', 'spend', 'amount'] as const) {
      const v = obj(peaks[k]);
      if (v && nonNeg(v.v) && num(v.at)) restored[k] = { v: v.v, at: v.at };
    }
    s.peaks = restored;
  }
  if (Array.isArray(p.payees))
    s.payees = p.payees.filter((x): x is string => typeof x === 'string').slice(-MAX_KNOWN_PAYEES);
  if (num(p.known_since)) s.known_since = p.known_since;
  const errs = obj(p.agent_errors);
  if (errs && nonNeg(errs.rate) && errs.rate <= 1 && num(errs.at))
    s.agent_errors = { rate: errs.rate, at: errs.at };
  if (Array.isArray(p.alarms))
    s.alarms = p.alarms
      .filter((x): x is [number, number] => Array.isArray(x) && x.length === 2 && num(x[0]) && num(x[1]))
      .slice(-MAX_ALARM_SPANS);
  const c = obj(p.cancels);
  if (c && nonNeg(c.decided) && nonNeg(c.cancelled) && c.cancelled <= c.decided)
    s.cancels = {
      decided: c.decided,
      cancelled: c.cancelled,
      learned_until: num(c.learned_until) ? c.learned_until : null,
    };
  s.reputation = restoreScore(p.reputation) ?? null;
  const metrics = obj(p.metrics) ?? {};
  for (const name of Object.keys(metrics)) {
    const b = HIGHER_IS_BETTER.has(name) ? restoreScore(metrics[name]) : undefined;
    if (b) s.metrics[name] = b;
  }
  return s;
}

function restoreFees(f: Record<string, unknown> | undefined): AgentDetectionState['fees'] {
  const out: AgentDetectionState['fees'] = { ref: null, samples: [] };
  if (!f) return out;
  const ref = obj(f.ref);
  if (ref && num(ref.at) && num(ref.total_cents) && (ref.source === 'usage' || ref.source === 'budget'))
    out.ref = { at: ref.at, total_cents: ref.total_cents, source: ref.source };
  if (Array.isArray(f.samples))
    out.samples = f.samples
      .map(obj)
      .filter(
        (x): x is Record<string, unknown> & FeeSample =>
          !!x && num(x.from) && num(x.to) && x.to > x.from && nonNeg(x.cents),
      )
      .slice(-MAX_FEE_SAMPLES)
      .map((x) => ({ from: x.from, to: x.to, cents: x.cents }));
  return out;
}

function restoreScore(x: unknown): ScoreBaseline | undefined {
  const b = obj(x);
  if (!b || !num(b.baseline) || !(b.baseline > 0) || !num(b.at)) return undefined;
  return { baseline: b.baseline, at: b.at, n: nonNeg(b.n) ? b.n : 1 };
}
