/**
 * The seed guide's naive rule, kept for the benchmark: mean + 2σ of balance deltas over 30 s polls,
 * judging only after 5 balance samples and 3 spending intervals.
 */
export interface NaiveState {
  last: number | null;
  deltas: number[];
  samples: number;
}

export function naiveStep(
  prior: NaiveState | undefined,
  sample: { at: number; balance: number },
  k = 2,
): { alert: boolean; state: NaiveState } {
  const s: NaiveState = prior
    ? { last: prior.last, deltas: [...prior.deltas], samples: prior.samples }
    : { last: null, deltas: [], samples: 0 };
  s.samples++;
  if (s.last === null) {
    s.last = sample.balance;
    return { alert: false, state: s };
  }
  const spend = s.last - sample.balance;
  s.last = sample.balance;
  const history = s.deltas;
  const spendingIntervals = history.filter((d) => d > 0).length;
  let alert = false;
  if (s.samples >= 5 && spendingIntervals >= 3) {
    const mean = history.reduce((a, b) => a + b, 0) / history.length;
    const sd = Math.sqrt(history.reduce((a, b) => a + (b - mean) ** 2, 0) / history.length);
    alert = spend > 0 && spend > mean + k * sd;
  }
  history.push(spend);
  if (history.length > 120) history.shift();
  return { alert, state: s };
}
