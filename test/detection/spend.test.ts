import { describe, expect, it } from 'vitest';
import {
  type AgentDetectionState,
  type AgentObservation,
  type Anomaly,
  DEFAULT_THRESHOLDS,
  detectAgent,
  freshState,
  MAX_FEE_SAMPLES,
  restoreState,
} from '../../src/detection/index.js';
import { escrow, HOUR, MIN, normalTraffic, observation, SEC, type SimEscrow, T0, view } from './fixtures.js';

/** Past the cold start: these tests judge the baseline, not the first hours of a new agent. */
const WARM = { ...DEFAULT_THRESHOLDS, cold_start_ms: 0 };
/** And a single window judged alone (no sustain): what one window's spike is worth. */
const ALONE = { ...WARM, spend_sustain_intervals: 0 };
const cost = (as: Anomaly[]) => as.find((a) => a.signal === 'cost_anomaly');

/** Settled orders to different payees: spend, but neither a burst (not held) nor exploitation. */
const spike = (total: number, n: number, end = T0, payee?: string) =>
  Array.from({ length: n }, (_, i) =>
    escrow({
      payee: payee ?? `p${i}`,
      amount: Math.round(total / n),
      created_at: end - i * 20 * SEC,
      fate: { status: 'settled', at: end - i * 20 * SEC + 5 * SEC },
    }),
  );

const history = (seed = 3) => normalTraffic('a1', T0 - 8 * HOUR, T0 - 5 * MIN, 3, seed);

describe('cost_anomaly', () => {
  it('does not judge a brand-new agent: no history, no baseline', () => {
    const r = detectAgent(observation({ escrows: view(spike(300_000, 6), 'a1', T0) }), undefined);
    expect(r.anomalies).toEqual([]);
    expect(r.state.intervals.spend).toEqual([]);
  });

  it('judges on the first poll from the history in the escrow list: warning, then critical above 2×', () => {
    const world = history();
    const quiet = detectAgent(observation({ escrows: view(world, 'a1', T0) }), undefined);
    expect(quiet.anomalies).toEqual([]);
    expect(quiet.state.intervals.spend.length).toBeGreaterThanOrEqual(90);

    const warn = cost(
      detectAgent(observation({ escrows: view([...world, ...spike(30_000, 4)], 'a1', T0) }), undefined, WARM)
        .anomalies,
    );
    expect(warn).toMatchObject({ severity: 'warning', priority: 'P2' });
    const d = warn!.details as Record<string, number>;
    expect(d.spend_cents).toBeGreaterThan(d.threshold_cents!);
    expect(d.spend_cents).toBeLessThanOrEqual(d.critical_above_cents!);
    expect(d.baseline_intervals).toBeGreaterThanOrEqual(5);
    expect(d.k_sigma).toBe(2);

    const crit = cost(
      detectAgent(
        observation({ escrows: view([...world, ...spike(90_000, 6, T0, 'one-payee')], 'a1', T0) }),
        undefined,
        ALONE,
      ).anomalies,
    );
    expect(crit).toMatchObject({ severity: 'critical', priority: 'P0' });
    // With the default sustain, one window's spike is a warning that says it would escalate if it went on…
    const once = cost(
      detectAgent(
        observation({ escrows: view([...world, ...spike(90_000, 6, T0, 'one-payee')], 'a1', T0) }),
        undefined,
        WARM,
      ).anomalies,
    );
    expect(once).toMatchObject({ severity: 'warning', details: { escalates_if_sustained: true } });
    // …and the same spending watched going on, window after window, becomes critical once the two closed
    // intervals before the window were over the bar too; the spike being confirmed never raised the bar.
    const drain = [0, 5, 10, 15].flatMap((m) => spike(90_000, 6, T0 + m * MIN, 'one-payee'));
    let state = quiet.state;
    const seen: Anomaly[] = [];
    for (let at = T0 + 30 * SEC; at <= T0 + 16 * MIN; at += 30 * SEC) {
      const r = detectAgent(observation({ at, escrows: view([...world, ...drain], 'a1', at) }), state, WARM);
      state = r.state;
      const c = cost(r.anomalies);
      if (c) seen.push(c);
    }
    const first = seen.find((a) => a.severity === 'critical');
    expect(first).toMatchObject({ details: { escalates_if_sustained: false } });
    expect(first!.at).toBeGreaterThanOrEqual(T0 + 10 * MIN);
    expect(seen.filter((a) => a.at < T0 + 10 * MIN).every((a) => a.severity === 'warning')).toBe(true);

    // Sizes the agent never paid are critical at once: one escrow six times the largest it ever made (the
    // six orders of $150 above were each under twice its largest: ordinary sizes, and they waited).
    const largest = Math.max(...world.map((e) => e.amount));
    expect(15_000).toBeLessThan(2 * largest);
    const theft = [escrow({ payee: 'drop-1', amount: 6 * largest, created_at: T0 + 10 * SEC })];
    const stolen = cost(
      detectAgent(
        observation({ at: T0 + 30 * SEC, escrows: view([...world, ...theft], 'a1', T0 + 30 * SEC) }),
        quiet.state,
        WARM,
      ).anomalies,
    );
    expect(stolen).toMatchObject({ severity: 'critical', details: { outlier_escrows: 1 } });
    expect(stolen!.details.largest_known_escrow_cents).toBe(largest);
    // The same money spread over six payees (a payout run, a restocking batch) stays a warning.
    const spread = cost(
      detectAgent(observation({ escrows: view([...world, ...spike(90_000, 6)], 'a1', T0) }), undefined, ALONE)
        .anomalies,
    );
    expect(spread).toMatchObject({ severity: 'warning', details: { concentration: expect.any(Number) } });
    expect(spread!.details.spend_cents).toBeGreaterThan(spread!.details.critical_above_cents as number);
    expect(crit!.details.spend_cents).toBeGreaterThan(crit!.details.critical_above_cents as number);
  });

  it('a lower k flags a smaller excess (k is read from the thresholds)', () => {
    const world = [...history(), ...spike(17_000, 3)];
    const obs = observation({ escrows: view(world, 'a1', T0) });
    expect(cost(detectAgent(obs, undefined).anomalies)).toBeUndefined();
    const tight = cost(detectAgent(obs, undefined, { ...DEFAULT_THRESHOLDS, k_sigma: 1.5 }).anomalies);
    expect(tight?.details.k_sigma).toBe(1.5);
  });

  it('never learns the interval it judges; a spike in its history does not raise the bar', () => {
    const world = [
      ...normalTraffic('a1', T0 - 8 * HOUR, T0 + 2 * HOUR, 3, 9),
      // Eight orders of $60, each within the agent's range ($5–$80): many, not strange.
      ...spike(48_000, 8, T0 + 20 * MIN, 'one-payee'),
    ];
    let state: AgentDetectionState | undefined;
    const seen: Anomaly[] = [];
    const states = new Map<number, AgentDetectionState>();
    for (let at = T0; at < T0 + 2 * HOUR; at += 30 * SEC) {
      const r = detectAgent(observation({ at, escrows: view(world, 'a1', at) }), state, WARM);
      seen.push(...r.anomalies);
      state = r.state;
      states.set(at, state);
    }
    const alarms = seen.filter((a) => a.signal === 'cost_anomaly');
    // One spike of ordinary sizes is a warning that would escalate if it went on; it does not go on.
    expect(alarms.some((a) => a.details.escalates_if_sustained === true)).toBe(true);
    expect(alarms.every((a) => a.severity === 'warning')).toBe(true);
    // From the spike's first escrow (T0 + 17:40) until it leaves the 5-minute window, and not after.
    expect(alarms.every((a) => a.at >= T0 + 17 * MIN && a.at < T0 + 25 * MIN)).toBe(true);
    // The same probe is judged against the same bar before the spike and long after it.
    const bar = (at: number) => {
      const probe = [...world, ...spike(1_000_000, 5, at + 10 * SEC)];
      const r = detectAgent(
        observation({ at: at + 10 * SEC, escrows: view(probe, 'a1', at + 10 * SEC) }),
        states.get(at),
        WARM,
      );
      return cost(r.anomalies)?.details.threshold_cents as number;
    };
    const before = bar(T0 + 15 * MIN);
    const after = bar(T0 + 2 * HOUR - 30 * SEC);
    expect(before).toBeGreaterThan(0);
    expect(after / before).toBeLessThan(1.1);
  });

  it('a budget read between two usage reads does not break the usage reference (slow-tier usage)', () => {
    const usage = (total: number) => ({ total_calls: 0, total_cost: total });
    const budget = { daily_spend: 999, daily_cap: null, daily_pct: 0, monthly_spend: 0, monthly_cap: null };
    let s = detectAgent(observation({ at: T0, escrows: [], usage: usage(10) }), undefined).state;
    s = detectAgent(observation({ at: T0 + 30 * SEC, escrows: [], budget }), s).state;
    s = detectAgent(observation({ at: T0 + 60 * SEC, escrows: [], usage: usage(12), budget }), s).state;
    expect(s.fees.samples).toEqual([{ from: T0, to: T0 + 60 * SEC, cents: 200 }]);
  });

  it('counts gateway fees from cumulative usage cost; a falling daily spend is not negative spend', () => {
    let state: AgentDetectionState | undefined;
    let total = 10;
    const at0 = T0 - 2 * HOUR;
    const seen: Anomaly[] = [];
    for (let at = at0; at <= T0; at += 30 * SEC) {
      total += at > T0 - 16 * MIN ? 60 : 0.05;
      const r = detectAgent(
        observation({ at, escrows: [], usage: { total_calls: 0, total_cost: total } }),
        state,
        WARM,
      );
      seen.push(...r.anomalies);
      state = r.state;
    }
    const hit = cost(seen.filter((a) => a.at === T0));
    expect(hit).toMatchObject({ severity: 'critical', details: { principal_cents: 0 } });
    expect(hit!.details.fee_cents).toBeGreaterThan(50_000);
    expect(seen.filter((a) => a.at < T0 - 16 * MIN)).toEqual([]);
    // Its first minutes were warnings waiting to see whether it went on.
    expect(cost(seen.filter((a) => a.at === T0 - 10 * MIN))).toMatchObject({
      severity: 'warning',
      details: { escalates_if_sustained: true },
    });

    // Rolling daily spend drops as yesterday's fees age out: that is no spend at all, never a refund.
    const budget = (daily_spend: number) => ({
      daily_spend,
      daily_cap: null,
      daily_pct: 0,
      monthly_spend: daily_spend,
      monthly_cap: null,
    });
    let s = detectAgent(observation({ at: T0, escrows: [], budget: budget(5_000) }), undefined).state;
    s = detectAgent(observation({ at: T0 + 30 * SEC, escrows: [], budget: budget(1_000) }), s).state;
    expect(s.fees.samples).toEqual([]);
    s = detectAgent(observation({ at: T0 + 60 * SEC, escrows: [], budget: budget(1_300) }), s).state;
    expect(s.fees.samples).toEqual([{ from: T0 + 30 * SEC, to: T0 + 60 * SEC, cents: 300 }]);
  });

  it('spend that is mostly an exploitation pattern stays a warning beside the exploitation (runbook 2)', () => {
    const farmed = Array.from({ length: 11 }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        amount: 9_000 + i * 100,
        created_at: T0 - i * 25 * SEC,
        fate: { status: 'settled', at: T0 - i * 25 * SEC + 10 * SEC },
      }),
    );
    const r = detectAgent(
      observation({ escrows: view([...history(), ...farmed], 'a1', T0) }),
      undefined,
      ALONE,
    );
    expect(r.anomalies.find((a) => a.signal === 'escrow_exploitation')).toBeDefined();
    expect(cost(r.anomalies)).toMatchObject({
      severity: 'warning',
      details: { explained_by: 'escrow_exploitation', top_payee: 'merchant-shady' },
    });
  });
});

describe('detector state', () => {
  const run = (
    world: SimEscrow[],
    polls: number,
    through: (s: AgentDetectionState) => AgentDetectionState,
  ) => {
    let state: AgentDetectionState | undefined;
    const out: Anomaly[][] = [];
    for (let i = 0; i < polls; i++) {
      const at = T0 + i * 30 * SEC;
      const obs: AgentObservation = observation({
        at,
        escrows: view(world, 'a1', at),
        usage: { total_calls: i, total_cost: i * 0.37 },
      });
      const r = detectAgent(obs, state, WARM);
      out.push(r.anomalies);
      state = through(r.state);
    }
    return { out, state: state! };
  };

  it('is plain JSON: a round trip through storage changes no decision', () => {
    const world = [...history(), ...spike(60_000, 6, T0 + 40 * MIN)];
    const direct = run(world, 200, (s) => s);
    const stored = run(world, 200, (s) => JSON.parse(JSON.stringify(s)));
    expect(stored.out).toEqual(direct.out);
    expect(stored.out.flat().some((a) => a.signal === 'cost_anomaly')).toBe(true);
  });

  it('stays small however long it runs', () => {
    const world = normalTraffic('a1', T0 - HOUR, T0 + 3 * 24 * HOUR, 20, 4);
    const { state } = run(world, 3 * 24 * 120, (s) => s);
    expect(state.fees.samples.length).toBeLessThanOrEqual(MAX_FEE_SAMPLES);
    // Bounded: the series hold a day of intervals, the payees at most MAX_KNOWN_PAYEES.
    expect(JSON.stringify(state).length).toBeLessThan(12_000);
  });

  it('never mutates the state it is given', () => {
    const s = detectAgent(observation({ escrows: view(history(), 'a1', T0) }), undefined).state;
    const frozen = deepFreeze(JSON.parse(JSON.stringify(s)));
    expect(() =>
      detectAgent(observation({ at: T0 + HOUR, escrows: view(history(), 'a1', T0 + HOUR) }), frozen),
    ).not.toThrow();
  });

  it('damaged or foreign state starts fresh, part by part; version 1 keeps its reputation baseline', () => {
    for (const junk of [null, 42, 'x', [], { v: 2, intervals: { n: -1 } }, { v: 9 }]) {
      const r = detectAgent(observation(), junk as unknown as AgentDetectionState);
      expect(r.state.intervals.spend).toEqual([]);
    }
    const partly = restoreState({
      ...freshState(),
      reputation: { baseline: 0.8, at: T0, n: 3 },
      fees: 'bad',
    });
    expect(partly.reputation).toEqual({ baseline: 0.8, at: T0, n: 3 });
    expect(partly.fees).toEqual({ ref: null, samples: [] });
    const v1 = {
      v: 1,
      spend: { n: 9, mean: 1, var: 1 },
      reputation: { n: 4, baseline: 0.9, at: T0 },
      last_at: T0,
    };
    expect(restoreState(v1)).toMatchObject({ v: 2, reputation: { baseline: 0.9 }, intervals: { spend: [] } });
  });
});

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
