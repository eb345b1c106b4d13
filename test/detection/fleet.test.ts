import { describe, expect, it } from 'vitest';
import {
  type Anomaly,
  DEFAULT_THRESHOLDS,
  detectFleet,
  type FleetObservation,
} from '../../src/detection/index.js';
import { MIN, T0 } from './fixtures.js';

const a = (agent: string, over: Partial<Anomaly> = {}): Anomaly => ({
  agent_id: agent,
  signal: 'escrow_burst',
  severity: 'critical',
  priority: 'P0',
  at: T0,
  summary: '',
  details: {},
  ...over,
});
const result = (agent: string, ...anomalies: Anomaly[]) => ({ agent_id: agent, anomalies });
const fleet = (over: Partial<FleetObservation> = {}): FleetObservation => ({
  at: T0,
  sharedWallets: [],
  recentAlerts: [],
  ...over,
});

describe('cascade', () => {
  it('two agents alerting in one pass with a payee in common: P0, every affected agent, the largest spend as root cause', () => {
    const out = detectFleet(
      [
        result('a1', a('a1', { details: { amount_locked_cents: 4_680_000, top_payee: 'vendor-x' } })),
        result(
          'a2',
          a('a2', { signal: 'cost_anomaly', details: { spend_cents: 80_000, top_payee: 'vendor-x' } }),
        ),
        result('a3'),
      ],
      fleet(),
    );
    expect(out).toEqual([
      expect.objectContaining({
        agent_id: 'a1',
        signal: 'cascade',
        severity: 'critical',
        priority: 'P0',
        details: expect.objectContaining({
          rule: 'correlated_alerts',
          affected_agents: ['a1', 'a2'],
          root_cause_candidate: 'a1',
          related_by: ['payee:vendor-x'],
        }),
      }),
    ]);
  });

  it('two unrelated alarms within the window are no cascade: different signals, no payee in common', () => {
    const apart = [
      result('a1', a('a1', { details: { top_payee: 'vendor-x' } })),
      result(
        'a2',
        a('a2', { signal: 'escrow_exploitation', priority: 'P1', details: { suspect_payee: 'shop-9' } }),
      ),
    ];
    expect(detectFleet(apart, fleet())).toEqual([]);
    // The same signal is one failure spreading (a shared bug, a shared dependency).
    const same = [result('a1', a('a1')), result('a2', a('a2'))];
    expect(detectFleet(same, fleet())[0]?.details).toMatchObject({
      affected_agents: ['a1', 'a2'],
      related_by: ['signal:escrow_burst'],
    });
    // With a third alarm unrelated to both, only the related pair is affected.
    const three = [...same, result('a3', a('a3', { signal: 'identity_compromise' }))];
    expect(detectFleet(three, fleet())[0]?.details).toMatchObject({
      affected_agents: ['a1', 'a2'],
      unrelated_alerting: ['a3'],
    });
  });

  it('counts alerts from earlier passes within 5 minutes, not older ones', () => {
    const recent = (at: number) =>
      detectFleet(
        [result('a1', a('a1'))],
        fleet({ recentAlerts: [{ agent_id: 'a2', at, signal: 'escrow_burst', priority: 'P0' }] }),
      );
    expect(recent(T0 - 4 * MIN)[0]?.details.affected_agents).toEqual(['a1', 'a2']);
    expect(recent(T0 - 6 * MIN)).toEqual([]);
  });

  it('one agent alone, warnings, blind checks and earlier cascades are not a cascade', () => {
    expect(detectFleet([result('a1', a('a1'))], fleet())).toEqual([]);
    const noise = detectFleet(
      [
        result('a1', a('a1', { signal: 'budget_warning', severity: 'warning', priority: 'P2' })),
        result('a2', a('a2', { signal: 'detection_failure', severity: 'warning', priority: 'P2' })),
      ],
      fleet({ recentAlerts: [{ agent_id: 'a3', at: T0, signal: 'cascade', priority: 'P0' }] }),
    );
    expect(noise).toEqual([]);
  });

  it("warnings count when cascade_max_priority says so; an alert without a priority gets its signal's", () => {
    const t = { ...DEFAULT_THRESHOLDS, cascade_max_priority: 2 };
    const warnings = [
      result('a1', a('a1', { signal: 'budget_warning', severity: 'warning', priority: 'P2' })),
      result('a2', a('a2', { signal: 'budget_warning', severity: 'warning', priority: 'P2' })),
    ];
    expect(detectFleet(warnings, fleet(), t)).toHaveLength(1);
    expect(detectFleet(warnings, fleet())).toHaveLength(0);
    const derived = fleet({ recentAlerts: [{ agent_id: 'a2', at: T0, signal: 'escrow_burst' }] });
    expect(detectFleet([result('a1', a('a1'))], derived)).toHaveLength(1);
  });

  it('a shared wallet exhausted: critical with the draining agent, a P0 page without any', () => {
    const drained = fleet({ sharedWallets: [{ agent_id: 'treasury', balance: 12_000 }] });
    expect(detectFleet([result('a1', a('a1'))], drained)[0]).toMatchObject({
      agent_id: 'a1',
      severity: 'critical',
      details: {
        rule: 'shared_wallet_exhausted',
        exhausted_wallets: [{ agent_id: 'treasury', balance_cents: 12_000 }],
      },
    });
    expect(detectFleet([], drained)[0]).toMatchObject({
      agent_id: 'treasury',
      signal: 'cascade',
      severity: 'warning',
      priority: 'P0',
      details: { affected_agents: [], root_cause_candidate: null },
    });
    expect(detectFleet([], fleet({ sharedWallets: [{ agent_id: 'treasury', balance: 5_000_000 }] }))).toEqual(
      [],
    );
  });

  it('an unreadable shared wallet is a detection_failure, not a healthy wallet', () => {
    const out = detectFleet([], fleet({ sharedWallets: [{ agent_id: 'treasury', failure: 'timeout' }] }));
    expect(out).toEqual([
      expect.objectContaining({
        agent_id: 'treasury',
        signal: 'detection_failure',
        details: expect.objectContaining({ check: 'shared_wallet', blind_to: ['cascade'] }),
      }),
    ]);
  });
});
