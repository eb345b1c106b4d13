import { describe, expect, it } from 'vitest';
import {
  type AgentDetectionState,
  type AgentObservation,
  type Anomaly,
  detectAgent,
} from '../../src/detection/index.js';
import { HOUR, observation, retryLoop, T0, view } from './fixtures.js';

const DAY = 24 * HOUR;
const budget = (spend: number, cap: number | null, pct = 0): AgentObservation['budget'] => ({
  daily_spend: spend,
  daily_cap: cap,
  daily_pct: pct,
  monthly_spend: spend,
  monthly_cap: null,
});
const only = (obs: Partial<AgentObservation>, state?: AgentDetectionState, pinned: string | null = null) =>
  detectAgent(observation(obs), state, undefined, pinned);

describe('budget', () => {
  it('warning at 80 % (P2), exhaustion at 95 % (critical, P1), nothing below', () => {
    expect(only({ budget: budget(7_990, 10_000) }).anomalies).toEqual([]);
    expect(only({ budget: budget(8_000, 10_000) }).anomalies[0]).toMatchObject({
      signal: 'budget_warning',
      severity: 'warning',
      priority: 'P2',
      details: { daily_pct: 80, daily_cap_cents: 10_000 },
    });
    expect(only({ budget: budget(9_500, 10_000) }).anomalies[0]).toMatchObject({
      signal: 'budget_exhaustion',
      severity: 'critical',
      priority: 'P1',
    });
  });

  it('computes utilisation itself: the gateway zeroes daily_pct whenever it sees no cap', () => {
    expect(only({ budget: budget(9_600, 10_000, 0) }).anomalies[0]?.signal).toBe('budget_exhaustion');
  });

  it('a cap of 0 (containment\'s freeze, or "no cap"), a negative cap or none never counts', () => {
    for (const cap of [0, -100, null]) expect(only({ budget: budget(9_600, cap) }).anomalies).toEqual([]);
  });
});

describe('reputation_drift', () => {
  const rep = (composite_score: number, found = true) => ({ composite_score, payment_reliability: 0, found });
  const step = (state: AgentDetectionState | undefined, at: number, o: Partial<AgentObservation>) =>
    only({ at, ...o }, state);

  it('warns at a 15 % fall from baseline (P2), is critical at 30 % (P1)', () => {
    const base = step(undefined, T0, { reputation: rep(0.9) }).state;
    expect(step(base, T0 + HOUR, { reputation: rep(0.78) }).anomalies).toEqual([]);
    const warn = step(base, T0 + HOUR, { reputation: rep(0.76) });
    expect(warn.anomalies[0]).toMatchObject({
      signal: 'reputation_drift',
      severity: 'warning',
      priority: 'P2',
      details: { source: 'composite_score', baseline: 0.9, current: 0.76 },
    });
    const crit = step(warn.state, T0 + 2 * HOUR, { reputation: rep(0.62) });
    expect(crit.anomalies[0]).toMatchObject({ severity: 'critical', priority: 'P1' });
    // Drifting does not drag the baseline down with it.
    expect(crit.state.reputation?.baseline).toBe(0.9);
  });

  it("the real gateway's all-zero scores and found: false never alarm nor form a baseline", () => {
    let s: AgentDetectionState | undefined;
    for (let i = 0; i < 50; i++) {
      const r = step(s, T0 + i * HOUR, { reputation: rep(0) });
      expect(r.anomalies).toEqual([]);
      s = r.state;
    }
    expect(s?.reputation).toBeNull();
    expect(step(s, T0, { reputation: rep(0.5, false) }).state.reputation).toBeNull();
    // A zero after a real baseline is "not computed", not a 100 % fall.
    const base = step(undefined, T0, { reputation: rep(0.9) }).state;
    expect(step(base, T0 + HOUR, { reputation: rep(0) }).anomalies).toEqual([]);
  });

  it('follows a healthy agent moving < 5 % a day, so slow wander never adds up to an alarm', () => {
    let s: AgentDetectionState | undefined;
    let score = 0.9;
    for (let h = 0; h <= 10 * 24; h++) {
      const r = step(s, T0 + h * HOUR, { reputation: rep(score) });
      expect(r.anomalies).toEqual([]);
      s = r.state;
      score *= 1 - 0.04 / 24;
    }
    expect(score).toBeLessThan(0.9 * 0.7);
  });

  it('a quality metric where higher is better drifts like reputation; others are ignored', () => {
    const base = step(undefined, T0, { metrics: { success_rate: 0.97, latency_ms: 120 } }).state;
    const r = step(base, T0 + HOUR, { metrics: { success_rate: 0.6, latency_ms: 900 } });
    expect(r.anomalies).toHaveLength(1);
    expect(r.anomalies[0]).toMatchObject({
      signal: 'reputation_drift',
      severity: 'critical',
      details: { source: 'metric:success_rate' },
    });
    expect(Object.keys(r.state.metrics)).toEqual(['success_rate']);
  });
});

describe('identity_compromise', () => {
  const key = 'AB'.repeat(32);

  it('pins the key on first sight (as lower-case hex) and stays quiet while it matches', () => {
    const first = only({ identity: { public_key: key } });
    expect(first).toMatchObject({ anomalies: [], pinKey: key.toLowerCase() });
    expect(only({ identity: { public_key: key } }, undefined, key.toLowerCase())).toEqual({
      anomalies: [],
      state: expect.anything(),
      failing: false,
    });
  });

  it('a changed key, a missing record or a failed verification is P0, with the evidence', () => {
    const changed = only({ identity: { public_key: 'cd'.repeat(32) } }, undefined, key);
    expect(changed.anomalies[0]).toMatchObject({
      signal: 'identity_compromise',
      severity: 'critical',
      priority: 'P0',
      details: { reason: 'key_changed', pinned_key: key.toLowerCase(), registered_key: 'cd'.repeat(32) },
    });
    expect(changed.pinKey).toBeUndefined();
    expect(only({ identity: { public_key: null } }, undefined, key).anomalies[0]?.details.reason).toBe(
      'identity_missing',
    );
    // Never pinned and no record (a key made directly in the gateway's database): nothing to compare.
    expect(only({ identity: { public_key: null } })).toMatchObject({ anomalies: [] });
    const unverified = only({ identity: { public_key: key, verified: false } });
    expect(unverified.anomalies[0]?.details.reason).toBe('verification_failed');
    expect(unverified.pinKey).toBeUndefined();
  });
});

describe('blind checks', () => {
  it('a failed check is a detection_failure naming what it cannot judge, never an all clear', () => {
    const r = only({
      escrows: view(retryLoop('a1', T0, 30), 'a1', T0),
      failures: [{ check: 'escrows', code: 'network_error', message: 'ECONNREFUSED 127.0.0.1' }],
    });
    expect(r.anomalies).toEqual([
      expect.objectContaining({
        signal: 'detection_failure',
        severity: 'warning',
        details: expect.objectContaining({
          check: 'escrows',
          code: 'network_error',
          blind_to: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
        }),
      }),
    ]);
  });

  it('each failure is reported; the checks that worked are still judged', () => {
    const r = only({
      budget: budget(9_900, 10_000),
      failures: [
        { check: 'reputation', code: 'timeout', message: '' },
        { check: 'identity', code: 'service_error', message: '' },
      ],
    });
    const signals = r.anomalies.map((a: Anomaly) => `${a.signal}:${a.details.check ?? ''}`);
    expect(signals.sort()).toEqual([
      'budget_exhaustion:',
      'detection_failure:identity',
      'detection_failure:reputation',
    ]);
  });

  it('malformed data names the field: bad escrow entries are skipped, a bad budget blinds its check', () => {
    const loop = view(retryLoop('a1', T0, 6), 'a1', T0);
    const r = only({
      escrows: [...loop, { ...loop[0]!, id: 'x', amount: Number.NaN }],
      budget: { ...budget(1, 10)!, daily_spend: Number.NaN },
    });
    const failures = r.anomalies.filter((a) => a.signal === 'detection_failure');
    expect(failures.map((a) => [a.details.check, a.details.code])).toEqual([
      ['escrows', 'invalid_entries'],
      ['budget', 'invalid_observation'],
    ]);
    expect(String(failures[0]?.details.message)).toContain('escrows[6].amount');
    expect(r.anomalies.map((a) => a.signal)).toContain('escrow_burst');
  });

  it('refuses an observation without a usable agent id or time, naming the field', () => {
    expect(() => only({ at: Number.NaN })).toThrow(/obs\.at/);
    expect(() => only({ agent_id: '' })).toThrow(/obs\.agent_id/);
  });

  it('uses the injected time, not the wall clock', () => {
    const later = T0 + 400 * DAY;
    const r = only({ at: later, escrows: view(retryLoop('a1', later, 5), 'a1', later) });
    expect(r.anomalies[0]).toMatchObject({ signal: 'escrow_burst', at: later });
  });
});
