/**
 * Intents and subscriptions are judged by the escrow rules on the states they map to, against the same
 * per-agent baselines, and the evidence names the path.
 */
import { describe, expect, it } from 'vitest';
import {
  type Anomaly,
  detectAgent,
  type EscrowObservation,
  fromIntent,
  fromSubscription,
  fromTransaction,
  type Signal,
} from '../../src/detection/index.js';
import { HOUR, MIN, normalTraffic, observation, SEC, T0, view } from './fixtures.js';

const find = (as: Anomaly[], s: Signal) => as.find((a) => a.signal === s);

/** A retry loop through intents: `n` of $150 to one payee, 2 s apart, the given statuses in turn. */
const intentLoop = (n: number, statuses: string[] = ['pending']) =>
  Array.from({ length: n }, (_, i) =>
    fromIntent({
      id: `int-${i}`,
      payer: 'a1',
      payee: 'vendor-flaky',
      amount: 15_000,
      status: statuses[i % statuses.length] as string,
      created_at: T0 - i * 2 * SEC,
    }),
  );

describe('payments: intents and subscriptions', () => {
  it('maps gateway states onto what they mean for the money', () => {
    const row = { id: 'x', payer: 'a1', payee: 'b', amount: 100, created_at: T0 };
    expect(
      ['pending', 'captured', 'settled', 'voided', 'odd'].map(
        (s) => fromIntent({ ...row, status: s }).status,
      ),
    ).toEqual(['held', 'settled', 'settled', 'refunded', 'odd']);
    expect(
      ['active', 'suspended', 'cancelled', 'constructor'].map(
        (s) => fromSubscription({ ...row, status: s }).status,
      ),
    ).toEqual(['held', 'held', 'refunded', 'constructor']);
    expect(fromIntent({ ...row, status: 'pending' }).path).toBe('intent');
  });

  it('a retry loop of pending intents is an escrow_burst naming the intent path, with no escrow at all', () => {
    expect(
      find(
        detectAgent(observation({ escrows: [], payments: intentLoop(4) }), undefined).anomalies,
        'escrow_burst',
      ),
    ).toBeUndefined();
    const burst = find(
      detectAgent(observation({ escrows: [], payments: intentLoop(5) }), undefined).anomalies,
      'escrow_burst',
    );
    expect(burst).toMatchObject({
      priority: 'P0',
      details: { rule: 'repeat', count: 5, top_payee: 'vendor-flaky', paths: { intent: 5 } },
    });
  });

  it('a subscription storm (new subscriptions to one payee every few seconds) is a burst on the subscription path', () => {
    const storm = Array.from({ length: 6 }, (_, i) =>
      fromSubscription({
        id: `sub-${i}`,
        payer: 'a1',
        payee: 'vendor-flaky',
        amount: 500,
        status: 'active',
        created_at: T0 - i * 6 * SEC,
      }),
    );
    const burst = find(
      detectAgent(observation({ escrows: [], payments: storm }), undefined).anomalies,
      'escrow_burst',
    );
    expect(burst?.details).toMatchObject({ paths: { subscription: 6 } });
  });

  it('intents the agent voided count as its cancellations; those our containment voided never do', () => {
    const decided = Array.from({ length: 10 }, (_, i) =>
      fromIntent({
        id: `int-${i}`,
        payer: 'a1',
        payee: `m${i % 3}`,
        amount: 3_000,
        status: i < 7 ? 'voided' : 'settled',
        created_at: T0 - (i + 1) * 5 * MIN,
      }),
    );
    const obs = observation({ escrows: [], payments: decided });
    expect(find(detectAgent(obs, undefined).anomalies, 'escrow_exploitation')?.details).toMatchObject({
      rule: 'cancel_rate',
      paths: { intent: 7 },
    });
    const ours = decided.filter((e) => e.status === 'refunded').map((e) => e.id);
    expect(detectAgent({ ...obs, cancelled_by_us: ours }, undefined).anomalies).toEqual([]);
  });

  it('an agent that pays by intents every day raises its own bar: its usual traffic on that path is no burst', () => {
    // 13 h of ordinary escrows, then the same traffic moved to intents: nothing new for this agent.
    const history: EscrowObservation[] = view(
      normalTraffic('a1', T0 - 13 * HOUR, T0, 3, 29),
      'a1',
      T0,
      5_000,
    ).map((e) =>
      fromIntent({
        ...e,
        status: e.status === 'held' ? 'pending' : e.status === 'refunded' ? 'voided' : 'settled',
      }),
    );
    const r = detectAgent(observation({ escrows: [], payments: history }), undefined);
    expect(r.anomalies).toEqual([]);
    // Its intents are its baseline: the intervals learned count them as they would its escrows.
    expect(r.state.intervals.count.reduce((n, c) => n + c, 0)).toBeGreaterThan(20);
    expect(r.state.payees?.length).toBeGreaterThan(0);
  });

  it('a failed payments read is a blind check, and the escrow list is still judged', () => {
    const r = detectAgent(
      observation({
        escrows: [],
        failures: [{ check: 'payments', code: 'timeout', message: 'list_intents timed out' }],
      }),
      undefined,
    );
    expect(find(r.anomalies, 'detection_failure')?.details).toMatchObject({
      check: 'payments',
      blind_to: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
    });
  });

  it('a malformed payment entry is skipped and named; the rest is judged', () => {
    const bad = [...intentLoop(5), { id: 7 } as unknown as EscrowObservation];
    const r = detectAgent(observation({ escrows: [], payments: bad }), undefined);
    expect(find(r.anomalies, 'detection_failure')?.details.message).toMatch(
      /1 payments entries skipped: payments\[5\]\.id/,
    );
    expect(find(r.anomalies, 'escrow_burst')).toBeDefined();
  });

  it("reads the wallet's own outflows that no list shows: splits, withdrawals, conversions out of CREDITS", () => {
    const tx = (description: string, amount = -10_000, currency = 'CREDITS', tx_type = 'withdrawal') =>
      fromTransaction('a1', { id: '7', amount, description, currency, tx_type, created_at: T0 });
    expect(tx('split:revenue share')).toMatchObject({
      path: 'split',
      payee: '(split)',
      amount: 10_000,
      status: 'settled',
    });
    expect(tx('payout')).toMatchObject({ path: 'withdrawal', payee: '(withdraw)', id: 'tx:7' });
    expect(tx('convert:CREDITS->USD')).toMatchObject({ path: 'withdrawal', payee: '(convert to USD)' });
    // Seen on their own paths, not spending, or the second leg of a conversion already counted.
    for (const d of [
      'escrow_hold:a1->b',
      'payment:abc',
      'partial_capture:abc',
      'subscription:abc',
      'refund:s1',
    ])
      expect(tx(d)).toBeUndefined();
    expect(tx('payout', -150, 'USD')).toBeUndefined();
    expect(tx('convert:CREDITS->USD', 150, 'USD', 'deposit')).toBeUndefined();
    expect(tx('gateway:create_escrow', -15, 'CREDITS', 'charge')).toBeUndefined();
  });

  it('a split loop (money gone at once, nothing held) is a burst on the split path', () => {
    const splits = (n: number) =>
      Array.from({ length: n }, (_, i) =>
        fromTransaction('a1', {
          id: String(i),
          amount: -10_000,
          description: 'split:retry: revenue share',
          currency: 'CREDITS',
          tx_type: 'withdrawal',
          created_at: T0 - i * 3 * SEC,
        }),
      ).filter((e): e is EscrowObservation => e !== undefined);
    expect(
      find(
        detectAgent(observation({ escrows: [], payments: splits(4) }), undefined).anomalies,
        'escrow_burst',
      ),
    ).toBeUndefined();
    expect(
      find(
        detectAgent(observation({ escrows: [], payments: splits(5) }), undefined).anomalies,
        'escrow_burst',
      )?.details,
    ).toMatchObject({
      rule: 'repeat',
      paths: { split: 5 },
    });
  });
});
