import { describe, expect, it } from 'vitest';
import {
  type AgentDetectionState,
  CircuitBreaker,
  DEFAULT_ESCALATION,
  DEFAULT_THRESHOLDS,
  detectAgent,
  escalate,
  escalationProblems,
  naiveStep,
  parseThresholds,
  thresholdProblems,
  tightenThresholds,
} from '../../src/detection/index.js';
import { escrow, MIN, observation, SEC, T0, view } from './fixtures.js';

describe('escalation', () => {
  it("the SPEC's defaults: critical cost/budget/reputation contain, warnings alert, cascade shuts down", () => {
    expect(escalate({ signal: 'cost_anomaly', severity: 'critical' })).toBe('auto_contain');
    expect(escalate({ signal: 'budget_exhaustion', severity: 'critical' })).toBe('auto_contain');
    expect(escalate({ signal: 'reputation_drift', severity: 'critical' })).toBe('auto_contain');
    expect(escalate({ signal: 'cascade', severity: 'critical' })).toBe('fleet_shutdown');
    for (const signal of ['cost_anomaly', 'budget_warning', 'reputation_drift', 'detection_failure'] as const)
      expect(escalate({ signal, severity: 'warning' })).toBe('alert_human');
    expect(Object.values(DEFAULT_ESCALATION).filter((t) => t === 'fleet_shutdown')).toHaveLength(1);
  });

  it('overrides per pair win; an unknown pair or tier falls back to alerting a person', () => {
    const rules = { 'reputation_drift:critical': 'alert_human', 'budget_warning:warning': 'auto_contain' };
    expect(escalate({ signal: 'reputation_drift', severity: 'critical' }, rules)).toBe('alert_human');
    expect(escalate({ signal: 'budget_warning', severity: 'warning' }, rules)).toBe('auto_contain');
    expect(escalate({ signal: 'cost_anomaly', severity: 'critical' }, rules)).toBe('auto_contain');
    expect(escalate({ signal: 'cost_anomaly', severity: 'info' })).toBe('alert_human');
    expect(
      escalate({ signal: 'cost_anomaly', severity: 'critical' }, { 'cost_anomaly:critical': 'nuke' }),
    ).toBe('alert_human');
  });

  it('names what is wrong with a set of overrides', () => {
    expect(escalationProblems({ 'cascade:critical': 'alert_human' })).toEqual([]);
    const problems = escalationProblems({ 'cost:critical': 'alert_human', 'cascade:critical': 'panic' });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^escalation\.cost:critical: expected "<signal>:<severity>"/);
    expect(problems[1]).toMatch(/^escalation\.cascade:critical: got "panic", expected one of alert_human/);
  });
});

describe('circuit breaker', () => {
  it('closed → open after 5 failures → half-open after 300 s → closed by the test success', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < 4; i++) b.recordFailure(T0);
    expect(b.state(T0)).toBe('closed');
    b.recordFailure(T0);
    expect(b.state(T0 + 299 * SEC)).toBe('open');
    expect(b.tryAcquire(T0 + 299 * SEC)).toBe(false);
    expect(b.state(T0 + 300 * SEC)).toBe('half_open');
    b.recordSuccess(T0 + 301 * SEC);
    expect(b.state(T0 + 301 * SEC)).toBe('closed');
  });

  it('half-open lets exactly one test operation through; its failure opens it for another cooldown', () => {
    const b = new CircuitBreaker(5, 300 * SEC);
    for (let i = 0; i < 5; i++) b.recordFailure(T0);
    const t1 = T0 + 300 * SEC;
    expect(b.tryAcquire(t1)).toBe(true);
    expect(b.tryAcquire(t1 + SEC)).toBe(false);
    expect(b.canAttempt(t1 + SEC)).toBe(false);
    b.recordFailure(t1 + 2 * SEC);
    expect(b.state(t1 + 2 * SEC)).toBe('open');
    expect(b.state(t1 + 301 * SEC)).toBe('open');
    expect(b.state(t1 + 302 * SEC)).toBe('half_open');
    // A success arriving while open is a straggler from before: it does not close the breaker.
    b.recordSuccess(t1 + 3 * SEC);
    expect(b.state(t1 + 3 * SEC)).toBe('open');
  });

  it('a success resets the failure count: only consecutive failures open it', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < 4; i++) b.recordFailure(T0);
    b.recordSuccess(T0);
    for (let i = 0; i < 4; i++) b.recordFailure(T0);
    expect(b.state(T0)).toBe('closed');
  });

  it('round-trips through JSON; a damaged snapshot gives a closed breaker', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < 5; i++) b.recordFailure(T0);
    b.tryAcquire(T0 + 300 * SEC);
    const restored = CircuitBreaker.fromJSON(JSON.parse(JSON.stringify(b)));
    expect(restored.toJSON()).toEqual(b.toJSON());
    expect(restored.canAttempt(T0 + 301 * SEC)).toBe(false);
    expect(CircuitBreaker.fromJSON('garbage').state(T0)).toBe('closed');
    expect(() => new CircuitBreaker(0)).toThrow(/threshold/);
  });
});

describe('the naive rule (benchmark yardstick)', () => {
  const feed = (balances: number[]) => {
    let s: ReturnType<typeof naiveStep>['state'] | undefined;
    return balances.map((balance, i) => {
      const r = naiveStep(s, { at: T0 + i * 30 * SEC, balance });
      s = r.state;
      return r.alert;
    });
  };

  it('judges only from the 5th sample, with 3 spending intervals behind it', () => {
    expect(feed([100_000, 99_000, 98_500, 97_000, 96_800, 50_000])).toEqual([
      false,
      false,
      false,
      false,
      false,
      true,
    ]);
    // A drain at the 3rd sample goes unseen: too little history.
    expect(feed([100_000, 99_000, 10_000])).toEqual([false, false, false]);
    // Five samples but only two spending intervals: still cannot judge.
    expect(feed([100_000, 100_000, 99_000, 99_000, 98_000, 10_000])).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe('thresholds', () => {
  it('post-mortem tightening: k 2.0 → 1.5 → … → 1.0 floor, burst counts down a notch, never up', () => {
    const once = tightenThresholds(DEFAULT_THRESHOLDS, 'missed the 60 s target');
    expect(once).toMatchObject({ k_sigma: 1.5, escrow_burst_min_count: 22, escrow_burst_repeat_count: 4 });
    let t = once;
    for (let i = 0; i < 10; i++) t = tightenThresholds(t, 'again');
    expect(t).toMatchObject({ k_sigma: 1.0, escrow_burst_min_count: 15, escrow_burst_repeat_count: 3 });
    const configuredLow = tightenThresholds({ ...DEFAULT_THRESHOLDS, k_sigma: 0.8 }, 'x');
    expect(configuredLow.k_sigma).toBe(0.8);
    expect(DEFAULT_THRESHOLDS.k_sigma).toBe(2.0);
  });

  it('the tightened thresholds change what is detected', () => {
    // 23 held orders to varied payees and amounts within 4 minutes: above the tightened floor (22), under 25.
    const varied = Array.from({ length: 23 }, (_, i) =>
      escrow({ payee: `p${i % 7}`, amount: 1_000 + i * 900, created_at: T0 - 3 * MIN - i * 10 * SEC }),
    );
    const obs = observation({ escrows: view(varied, 'a1', T0) });
    expect(detectAgent(obs, undefined, DEFAULT_THRESHOLDS).anomalies).toEqual([]);
    const tight = tightenThresholds(DEFAULT_THRESHOLDS, 'missed');
    expect(detectAgent(obs, undefined, tight).anomalies.map((a) => a.signal)).toEqual(['escrow_burst']);
  });

  it('validates overrides by name, saying what each accepts', () => {
    expect(parseThresholds({ k_sigma: 2.5 }).k_sigma).toBe(2.5);
    expect(thresholdProblems({ k_sigma: 3, cancel_rate: 0.4 })).toEqual([]);
    expect(() => parseThresholds({ k_sigma: -1, escrow_burst_min_count: 2.5, nope: 1 })).toThrow(RangeError);
    const problems = thresholdProblems({
      k_sigma: -1,
      escrow_burst_min_count: 2.5,
      nope: 1,
      cancel_rate: 'x',
    });
    expect(problems).toEqual([
      'thresholds.k_sigma: got -1, expected a number > 0',
      'thresholds.escrow_burst_min_count: got 2.5, expected an integer ≥ 1',
      expect.stringMatching(/^thresholds\.nope: unknown name \(known: k_sigma, /),
      'thresholds.cancel_rate: got "x", expected a number ≥ 0 and ≤ 1',
    ]);
  });
});

describe("the agent's own failing calls (for its breaker)", () => {
  const look = (at: number, error_rate: number | undefined, prior?: AgentDetectionState) =>
    detectAgent(
      observation({ at, escrows: [], metrics: {}, ...(error_rate === undefined ? {} : { error_rate }) }),
      prior,
    );

  it('a reported error rate at or above 0.5 is failing; the last reading stands for 15 min, then lapses', () => {
    expect(look(T0, 0.49).failing).toBe(false);
    const bad = look(T0, 0.5);
    expect(bad.failing).toBe(true);
    // No metrics read on the next polls (a slow check): the reading stands while fresh.
    const s = JSON.parse(JSON.stringify(bad.state)) as AgentDetectionState;
    expect(look(T0 + 14 * MIN, undefined, s).failing).toBe(true);
    expect(look(T0 + 16 * MIN, undefined, s).failing).toBe(false);
    // A fresh reading below the bar clears it at once.
    expect(look(T0 + MIN, 0.1, s).failing).toBe(false);
  });

  it('no reading is not failing', () => {
    expect(look(T0, undefined).failing).toBe(false);
  });
});
