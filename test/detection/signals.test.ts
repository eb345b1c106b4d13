import { describe, expect, it } from 'vitest';
import {
  type AgentObservation,
  CircuitBreaker,
  DEFAULT_THRESHOLDS,
  detectAgent,
  detectFleet,
  type EscrowObservation,
  escalate,
  naiveStep,
  tightenThresholds,
} from '../../src/detection/index.js';

const T0 = Date.UTC(2026, 10, 24, 2, 47);
const MIN = 60_000;
let n = 0;
const escrow = (over: Partial<EscrowObservation>): EscrowObservation => ({
  id: `e${n++}`,
  payer: 'a1',
  payee: 'v1',
  amount: 15_000,
  status: 'held',
  created_at: T0,
  ...over,
});
const obs = (over: Partial<AgentObservation> = {}): AgentObservation => ({
  agent_id: 'a1',
  at: T0,
  failures: [],
  ...over,
});

describe('escrow_burst', () => {
  it('sees a 30/min loop of $150 escrows on the first observation, with no history', () => {
    const loop = Array.from({ length: 10 }, (_, i) => escrow({ created_at: T0 - i * 2_000 }));
    const r = detectAgent(obs({ escrows: loop }), undefined);
    const burst = r.anomalies.find((a) => a.signal === 'escrow_burst');
    expect(burst).toMatchObject({ severity: 'critical', priority: 'P0' });
    expect(burst?.details).toMatchObject({ count: 10, amount_locked_cents: 150_000, top_payee: 'v1' });
    // The same loop is not also called exploitation of its payee.
    expect(r.anomalies.some((a) => a.signal === 'escrow_exploitation')).toBe(false);
  });

  it('does not fire on a few escrows an hour, nor on released or cancelled ones', () => {
    const normal = [
      escrow({ created_at: T0 - 10 * MIN }),
      escrow({ created_at: T0 - 40 * MIN, payee: 'v2' }),
    ];
    expect(detectAgent(obs({ escrows: normal }), undefined).anomalies).toEqual([]);
    const settled = Array.from({ length: 12 }, (_, i) =>
      escrow({ created_at: T0 - i * 5_000, status: 'settled', payee: `v${i}` }),
    );
    expect(
      detectAgent(obs({ escrows: settled }), undefined).anomalies.filter((a) => a.signal === 'escrow_burst'),
    ).toEqual([]);
  });

  it('sees a loop late, after a blind spell, through the long window', () => {
    const old = Array.from({ length: 40 }, (_, i) => escrow({ created_at: T0 - 10 * MIN - i * 20_000 }));
    expect(detectAgent(obs({ escrows: old }), undefined).anomalies.map((a) => a.signal)).toContain(
      'escrow_burst',
    );
  });
});

describe('escrow_exploitation', () => {
  it('more than 10 escrows to one payee within 5 minutes names the payee', () => {
    const farmed = Array.from({ length: 11 }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        status: i % 2 ? 'settled' : 'refunded',
        amount: 3_000 + i,
        created_at: T0 - i * 20_000,
      }),
    );
    const a = detectAgent(obs({ escrows: farmed }), undefined).anomalies.find(
      (x) => x.signal === 'escrow_exploitation',
    );
    expect(a).toMatchObject({
      priority: 'P1',
      details: { suspect_payee: 'merchant-shady', rule: 'same_payee', count: 11 },
    });
  });

  it('a cancellation rate above 50 % within an hour (with a minimum count)', () => {
    const cancels = Array.from({ length: 8 }, (_, i) =>
      escrow({ payee: `m${i % 3}`, status: i < 5 ? 'refunded' : 'settled', created_at: T0 - i * 6 * MIN }),
    );
    expect(
      detectAgent(obs({ escrows: cancels }), undefined).anomalies.find(
        (x) => x.signal === 'escrow_exploitation',
      )?.details.rule,
    ).toBe('cancel_rate');
    expect(detectAgent(obs({ escrows: cancels.slice(0, 2) }), undefined).anomalies).toEqual([]);
  });
});

describe('cost_anomaly', () => {
  it('judges only with a baseline, against a robust spread; critical above twice the threshold', () => {
    let state: ReturnType<typeof detectAgent>['state'] | undefined;
    for (let i = 0; i < 6; i++)
      state = detectAgent(
        obs({
          at: T0 + i * 30_000,
          escrows: [escrow({ amount: 2_000, created_at: T0 + i * 30_000 - 60_000, status: 'settled' })],
        }),
        state,
      ).state;
    const spike = Array.from({ length: 4 }, (_, i) =>
      escrow({ amount: 20_000, status: 'settled', payee: `p${i}`, created_at: T0 + 200_000 - i * 1_000 }),
    );
    const r = detectAgent(obs({ at: T0 + 210_000, escrows: spike }), state);
    expect(r.anomalies.find((a) => a.signal === 'cost_anomaly')).toMatchObject({
      severity: 'critical',
      priority: 'P0',
    });
    expect(
      detectAgent(obs({ escrows: spike }), undefined).anomalies.some((a) => a.signal === 'cost_anomaly'),
    ).toBe(false);
  });
});

describe('budget, reputation, identity, blindness', () => {
  it('budget warning at 80 %, exhaustion at 95 %; a cap of 0 (containment) never counts', () => {
    const b = (spend: number, cap: number | null) => ({
      daily_spend: spend,
      daily_cap: cap,
      daily_pct: 0,
      monthly_spend: spend,
      monthly_cap: null,
    });
    expect(detectAgent(obs({ budget: b(8_000, 10_000) }), undefined).anomalies[0]?.signal).toBe(
      'budget_warning',
    );
    expect(detectAgent(obs({ budget: b(9_600, 10_000) }), undefined).anomalies[0]).toMatchObject({
      signal: 'budget_exhaustion',
      severity: 'critical',
    });
    expect(detectAgent(obs({ budget: b(9_600, 0) }), undefined).anomalies).toEqual([]);
  });

  it('reputation drift from a baseline; all-zero (uncomputed) reputation never alarms', () => {
    const rep = (s: number) => ({ composite_score: s, found: true });
    let st = detectAgent(obs({ reputation: rep(0.9) }), undefined).state;
    const warn = detectAgent(obs({ at: T0 + 3_600_000, reputation: rep(0.75) }), st);
    expect(warn.anomalies[0]).toMatchObject({
      signal: 'reputation_drift',
      severity: 'warning',
      priority: 'P2',
    });
    const crit = detectAgent(obs({ at: T0 + 7_200_000, reputation: rep(0.6) }), warn.state);
    expect(crit.anomalies[0]).toMatchObject({ severity: 'critical' });
    st = detectAgent(obs({ reputation: rep(0) }), undefined).state;
    expect(detectAgent(obs({ reputation: rep(0) }), st).anomalies).toEqual([]);
    expect(
      detectAgent(obs({ reputation: { composite_score: 0.5, found: false } }), undefined).anomalies,
    ).toEqual([]);
  });

  it('pins a key on first sight and flags a change or a missing identity as P0', () => {
    expect(
      detectAgent(obs({ identity: { public_key: 'aa' } }), undefined, DEFAULT_THRESHOLDS, null).pinKey,
    ).toBe('aa');
    expect(
      detectAgent(obs({ identity: { public_key: 'bb' } }), undefined, DEFAULT_THRESHOLDS, 'aa').anomalies[0],
    ).toMatchObject({ signal: 'identity_compromise', priority: 'P0' });
    expect(
      detectAgent(obs({ identity: { public_key: null } }), undefined, DEFAULT_THRESHOLDS, 'aa').anomalies[0]
        ?.signal,
    ).toBe('identity_compromise');
  });

  it('a failed check is a detection_failure naming what it cannot see, never an all clear', () => {
    const r = detectAgent(
      obs({ failures: [{ check: 'escrows', code: 'network_error', message: 'ECONNREFUSED' }] }),
      undefined,
    );
    expect(r.anomalies).toEqual([
      expect.objectContaining({
        signal: 'detection_failure',
        details: expect.objectContaining({
          blind_to: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
        }),
      }),
    ]);
  });
});

describe('cascade', () => {
  const burst = (agent: string, cents: number) => ({
    agent_id: agent,
    anomalies: [
      {
        agent_id: agent,
        signal: 'escrow_burst' as const,
        severity: 'critical' as const,
        priority: 'P0' as const,
        at: T0,
        summary: '',
        details: { amount_locked_cents: cents },
      },
    ],
  });
  it('two agents with P0/P1 anomalies within the window; the largest is the root-cause candidate', () => {
    const c = detectFleet([burst('a1', 100), burst('a2', 5_000)], {
      at: T0,
      sharedWallets: [],
      recentAlerts: [],
    });
    expect(c[0]).toMatchObject({
      signal: 'cascade',
      priority: 'P0',
      details: { rule: 'correlated_alerts', affected_agents: ['a1', 'a2'], root_cause_candidate: 'a2' },
    });
  });
  it('a shared wallet exhausted with any agent alerting; P2 warnings alone are not a cascade', () => {
    expect(
      detectFleet([burst('a1', 1)], {
        at: T0,
        sharedWallets: [{ agent_id: 'treasury', balance: 100 }],
        recentAlerts: [],
      })[0]?.details.rule,
    ).toBe('shared_wallet_exhausted');
    expect(
      detectFleet([], {
        at: T0,
        sharedWallets: [],
        recentAlerts: [
          { agent_id: 'a1', at: T0, signal: 'cost_anomaly', priority: 'P2' },
          { agent_id: 'a2', at: T0, signal: 'budget_warning', priority: 'P2' },
        ],
      }),
    ).toEqual([]);
  });
});

describe('escalation, breaker, naive rule, feedback', () => {
  it('SPEC defaults, overrides per pair, unknown pairs alert a person', () => {
    expect(escalate({ signal: 'cost_anomaly', severity: 'critical' })).toBe('auto_contain');
    expect(escalate({ signal: 'cost_anomaly', severity: 'warning' })).toBe('alert_human');
    expect(escalate({ signal: 'cascade', severity: 'critical' })).toBe('fleet_shutdown');
    expect(
      escalate(
        { signal: 'reputation_drift', severity: 'critical' },
        { 'reputation_drift:critical': 'alert_human' },
      ),
    ).toBe('alert_human');
    expect(
      escalate({ signal: 'budget_warning', severity: 'warning' }, { 'budget_warning:warning': 'nonsense' }),
    ).toBe('alert_human');
  });

  it('circuit breaker: open after 5 failures, half-open after 300 s, closed by a success', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < 4; i++) b.recordFailure(T0);
    expect(b.state(T0)).toBe('closed');
    b.recordFailure(T0);
    expect(b.state(T0 + 299_000)).toBe('open');
    expect(b.canAttempt(T0 + 299_000)).toBe(false);
    expect(b.state(T0 + 300_000)).toBe('half_open');
    b.recordFailure(T0 + 300_000);
    expect(b.state(T0 + 300_001)).toBe('open');
    b.recordSuccess(T0 + 600_000);
    expect(b.state(T0 + 600_000)).toBe('closed');
  });

  it('the naive rule needs 5 samples and 3 spending intervals before it can judge', () => {
    let s: ReturnType<typeof naiveStep>['state'] | undefined;
    const fires: boolean[] = [];
    for (const [i, bal] of [100_000, 99_000, 98_500, 97_000, 96_800, 50_000].entries()) {
      const r = naiveStep(s, { at: T0 + i * 30_000, balance: bal });
      s = r.state;
      fires.push(r.alert);
    }
    expect(fires).toEqual([false, false, false, false, false, true]);
    expect(naiveStep(undefined, { at: T0, balance: 0 }).alert).toBe(false);
  });

  it('post-mortem feedback lowers k from 2.0 to 1.5 and keeps a floor', () => {
    const once = tightenThresholds(DEFAULT_THRESHOLDS, 'missed SLA');
    expect(once.k_sigma).toBe(1.5);
    let t = once;
    for (let i = 0; i < 5; i++) t = tightenThresholds(t, 'again');
    expect(t.k_sigma).toBe(1.0);
    expect(t.burst_min_count).toBe(5);
  });
});
