/**
 * The seed guide's naive rule, kept only as the benchmark's yardstick: poll the balance every 30 s and
 * alert when the latest drop exceeds mean + k·σ of the earlier drops (k = 2), judging only once it has
 * 5 balance samples and 3 spending intervals. It sees neither escrows nor rates, so a loop locks money
 * for minutes before it can fire; detectAgent exists to do better.
 */
export interface NaiveState {
  last: number | null;
  /** Balance drops (cents) between consecutive samples, oldest first, at most `MAX_DELTAS`. */
  deltas: number[];
  samples: number;
}

const MAX_DELTAS = 120;

export function naiveStep(
  prior: NaiveState | undefined,
  sample: { at: number; balance: number },
  k = 2,
): { alert: boolean; state: NaiveState } {
  const s: NaiveState = prior
    ? { last: prior.last, deltas: [...prior.deltas], samples: prior.samples }
    : { last: null, deltas: [], samples: 0 };
  // A sample it cannot read is skipped, as a poll that failed would be.
  if (!Number.isFinite(sample.balance)) return { alert: false, state: s };
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
  if (history.length > MAX_DELTAS) history.shift();
  return { alert, state: s };
}
