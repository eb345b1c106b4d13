import { describe, expect, it } from 'vitest';
import {
  type AgentDetectionState,
  type Anomaly,
  DEFAULT_THRESHOLDS,
  detectAgent,
  type Signal,
} from '../../src/detection/index.js';
import {
  escrow,
  HOUR,
  MIN,
  normalTraffic,
  observation,
  retryLoop,
  rng,
  SEC,
  type SimEscrow,
  T0,
  view,
} from './fixtures.js';

const signals = (as: Anomaly[]) => as.map((a) => a.signal);
const find = (as: Anomaly[], s: Signal) => as.find((a) => a.signal === s);
const firstLook = (world: SimEscrow[], at = T0) =>
  detectAgent(observation({ at, escrows: view(world, 'a1', at) }), undefined).anomalies;

/** Polls every 30 s over [from, to), carrying state like the caller does (through JSON). */
function watch(world: SimEscrow[], from: number, to: number, start?: AgentDetectionState, limit = 200) {
  let state = start;
  const seen: Anomaly[] = [];
  for (let at = from; at < to; at += 30 * SEC) {
    // The first look pages back through the history (as the poller does for an agent it has no state for).
    const first = state === undefined;
    const r = detectAgent(observation({ at, escrows: view(world, 'a1', at, first ? 5_000 : limit) }), state);
    seen.push(...r.anomalies);
    state = JSON.parse(JSON.stringify(r.state)) as AgentDetectionState;
  }
  return { seen, state: state! };
}

describe('escrow_burst on the first observation, with no history', () => {
  it('sees a 30/min loop of $150 escrows at its 5th escrow (8 s in), not at its 4th', () => {
    expect(signals(firstLook(retryLoop('a1', T0, 4)))).toEqual([]);
    const burst = find(firstLook(retryLoop('a1', T0, 5)), 'escrow_burst');
    expect(burst).toMatchObject({ severity: 'critical', priority: 'P0' });
    expect(burst?.details).toMatchObject({
      rule: 'repeat',
      count: 5,
      threshold_count: 5,
      amount_locked_cents: 75_000,
      repeat_amount_cents: 15_000,
      top_payee: 'vendor-flaky',
      rate_per_min: 30,
      own_peak: null,
      repeat_kind: 'payee',
    });
    expect(burst?.details.escrow_ids).toHaveLength(5);
  });

  it('a purchase batch of 20 varied orders in 3 minutes is no burst; 25 within 5 minutes still held 3 min on is (rate)', () => {
    // Cold, the any-payee rules count only escrows still held 3 minutes after creation.
    const varied = (n: number, every: number, end = T0 - 3 * MIN) =>
      Array.from({ length: n }, (_, i) =>
        escrow({ payee: `p${i % 9}`, amount: 1_000 + i * 700, created_at: end - i * every }),
      );
    expect(signals(firstLook(varied(20, 9 * SEC)))).toEqual([]);
    expect(signals(firstLook(varied(24, 12 * SEC)))).toEqual([]);
    expect(find(firstLook(varied(25, 12 * SEC)), 'escrow_burst')?.details).toMatchObject({
      rule: 'rate',
      count: 25,
    });
    // The same 25 just created: a busy agent seen for the first time releases them within minutes.
    expect(signals(firstLook(varied(25, 7 * SEC, T0)))).toEqual([]);
    // A payout run, 60 payees paid once each in 10 minutes and still held: a fan-out, no burst.
    const payout = Array.from({ length: 60 }, (_, i) =>
      escrow({ payee: `staff-${i}`, amount: 2_000 + i * 417, created_at: T0 - 3 * MIN - i * 10 * SEC }),
    );
    expect(signals(firstLook(payout))).toEqual([]);
  });

  it('a loop rotating one amount over a few payees, or jittering its amount ±10 %, is a repeat', () => {
    const rotation = Array.from({ length: 6 }, (_, i) =>
      escrow({ payee: `v${i % 3}`, amount: 9_900, created_at: T0 - i * 10 * SEC }),
    );
    expect(find(firstLook(rotation), 'escrow_burst')?.details).toMatchObject({
      rule: 'repeat',
      repeat_kind: 'rotation',
    });
    const jittered = Array.from({ length: 5 }, (_, i) =>
      escrow({
        payee: 'v',
        amount: [14_000, 15_500, 14_600, 15_200, 14_300][i]!,
        created_at: T0 - i * 9 * SEC,
      }),
    );
    expect(find(firstLook(jittered), 'escrow_burst')?.details).toMatchObject({ rule: 'repeat', count: 5 });
    // Five similar amounts over four of a busy agent's payees are chance, not a rotation (payees must repeat).
    const chance = Array.from({ length: 5 }, (_, i) =>
      escrow({ payee: `v${i % 4}`, amount: 990 + i * 10, created_at: T0 - i * 10 * SEC }),
    );
    expect(signals(firstLook(chance))).toEqual([]);
    // A payout of one amount to many distinct payees is no loop.
    const payout = Array.from({ length: 20 }, (_, i) =>
      escrow({ payee: `staff-${i}`, amount: 5_000, created_at: T0 - i * 6 * SEC }),
    );
    expect(signals(firstLook(payout))).toEqual([]);
  });

  it('a slow loop of varied payees and amounts is seen through the 30-minute window (45 held)', () => {
    const slow = (n: number) =>
      Array.from({ length: n }, (_, i) =>
        escrow({ payee: `p${i % 12}`, amount: 1_000 + i * 613, created_at: T0 - 3 * MIN - i * 38 * SEC }),
      );
    expect(signals(firstLook(slow(44)))).toEqual([]);
    expect(find(firstLook(slow(45)), 'escrow_burst')?.details).toMatchObject({
      rule: 'long_window',
      count: 45,
    });
  });

  it('counts only held escrows: released or cancelled ones are not a lock-up', () => {
    const done = retryLoop('a1', T0, 12).map((e, i) => ({
      ...e,
      fate: { status: i % 2 ? ('settled' as const) : ('refunded' as const), at: e.created_at + SEC },
    }));
    expect(signals(firstLook(done))).not.toContain('escrow_burst');
  });

  it('sees a loop first observed late, after a blind spell', () => {
    const late = retryLoop('a1', T0 - 10 * MIN, 40, { perMin: 3 });
    expect(find(firstLook(late), 'escrow_burst')?.details).toMatchObject({ rule: 'repeat' });
  });

  it('a loop that filled the blind spell is still a burst: the catch-up never learns the window it judges', () => {
    // Seen once with nothing held, then not again for 40 min while a 30/min loop ran for its first 12.
    // The catch-up learns about eight 5-minute intervals, three of them the loop's: wherever T0 falls on the
    // interval grid, the loop must not become the agent's "own rate" and lift the bar above itself.
    for (let phase = 0; phase < 5 * MIN; phase += 30 * SEC) {
      const start = T0 + phase;
      const seeded = detectAgent(observation({ at: start, escrows: [] }), undefined).state;
      const loop = retryLoop('a1', start + 12 * MIN, 360);
      const at = start + 40 * MIN;
      const r = detectAgent(observation({ at, escrows: view(loop, 'a1', at, 500) }), seeded);
      // The loop's intervals learned in the catch-up were never judged live: they set no bar.
      expect(find(r.anomalies, 'escrow_burst')?.details, `phase ${phase / SEC} s`).toMatchObject({
        rule: 'repeat',
        own_peak: null,
      });
    }
  });

  it('ignores escrows where the agent is the payee', () => {
    const incoming = retryLoop('someone-else', T0, 20, { payee: 'a1' });
    expect(firstLook(incoming)).toEqual([]);
  });
});

describe('normal traffic', () => {
  it('a day of orders at 3 an hour, polled every 30 s, raises nothing', () => {
    const world = normalTraffic('a1', T0 - 6 * HOUR, T0 + 24 * HOUR, 3, 11);
    const { seen, state } = watch(world, T0, T0 + 24 * HOUR);
    expect(seen).toEqual([]);
    // Not vacuous: the day had traffic and every detector had a formed baseline to judge with.
    expect(world.filter((e) => e.created_at >= T0).length).toBeGreaterThan(50);
    expect(state.intervals.spend.length).toBe(288);
  });

  it('a busy agent is judged against its own peaks; the same cluster cold would be a burst', () => {
    const world = normalTraffic('a1', T0 - 6 * HOUR, T0, 600, 5);
    const { state, seen } = watch(world, T0 - 40 * MIN, T0, undefined, 600);
    expect(seen.filter((a) => a.signal === 'escrow_burst')).toEqual([]);
    // 30 held orders in 100 s: above any quiet agent's bar (25), well under this one's own peaks.
    const cluster = Array.from({ length: 30 }, (_, i) =>
      escrow({ payee: `shop-${i % 17}`, amount: 2_000 + i * 311, created_at: T0 + 10 * SEC + i * 3 * SEC }),
    );
    const at = T0 + 100 * SEC;
    const all = [...world, ...cluster];
    const warm = detectAgent(observation({ at, escrows: view(all, 'a1', at, 2_000) }), state);
    expect(find(warm.anomalies, 'escrow_burst')?.details).toBeUndefined();
    // Cold, the cluster is a burst once it is still held 3 minutes on.
    expect(find(firstLook(cluster, at + 4 * MIN), 'escrow_burst')?.details).toMatchObject({ rule: 'rate' });
    // A real loop still stands out against the busy baseline: its repeats are nothing like the agent's.
    const loop = retryLoop('a1', at, 30);
    const hit = detectAgent(observation({ at, escrows: view([...world, ...loop], 'a1', at, 2_000) }), state);
    expect(find(hit.anomalies, 'escrow_burst')?.details).toMatchObject({ rule: 'repeat' });
    expect(find(hit.anomalies, 'escrow_burst')?.details.history_intervals).toBeGreaterThan(50);
  });
  it('a new agent watched for hours with no escrow, then busy from its first minute, is no burst; a loop there still is', () => {
    const join = T0 + 6 * HOUR;
    // 20 orders a minute to any of 80 payees (repeats within minutes), each released 1–3 minutes later
    // (docs/TRAFFIC.md, profile busy).
    const r = rng(17);
    const busy = Array.from({ length: 20 * 40 }, (_, i) => {
      const created_at = join + i * 3 * SEC;
      return escrow({
        payee: `shop-${Math.floor(r() * 80)}`,
        amount: 50 + ((i * 7919) % 2_450),
        created_at,
        fate: { status: 'settled', at: created_at + (60 + ((i * 53) % 120)) * SEC },
      });
    });
    const quiet = watch([], T0, join);
    expect(quiet.seen).toEqual([]);
    // Its quiet hours are history, but none of it says how fast it works: judged as cold, held orders
    // count once they are still held 3 minutes on, and these are all released by then.
    const { seen } = watch(busy, join, join + 40 * MIN, quiet.state, 2_000);
    expect(seen.filter((a) => a.signal === 'escrow_burst')).toEqual([]);
    // A loop in its first minutes is the repeat rule's, which needs no history and no patience.
    const loop = retryLoop('a1', join + 2 * MIN, 30);
    const hit = watch([...busy.slice(0, 40), ...loop], join, join + 3 * MIN, quiet.state, 2_000);
    expect(find(hit.seen, 'escrow_burst')?.details).toMatchObject({ rule: 'repeat' });
  });
});

describe('escrow_exploitation', () => {
  /** Escrows to one payee that releases two of every three to itself; the rest are still held for it. */
  const farm = (n: number, fate: 'settled' | 'refunded' = 'settled', every = 20 * SEC) =>
    Array.from({ length: n }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        amount: 2_000 + i * 137,
        created_at: T0 - i * every,
        ...(i % 3 === 2 ? {} : { fate: { status: fate, at: T0 - i * every + 5 * SEC } }),
      }),
    );
  /** The observation without updated_at, as GET escrows/{id} rows come from the real gateway. */
  const withoutUpdatedAt = (world: SimEscrow[], at = T0) =>
    view(world, 'a1', at).map(({ updated_at: _u, ...e }) => e);

  it('more than 10 escrows to one payee within 5 minutes names the payee and the escrows (P1 once warm)', () => {
    // 13 h of ordinary history, then the farm: the agent is warm, so the seed's bar (>10) is a P1.
    const history = normalTraffic('a1', T0 - 13 * HOUR, T0 - 10 * MIN, 3, 29);
    const warm = (n: number) =>
      detectAgent(
        observation({ at: T0, escrows: view([...history, ...farm(n)], 'a1', T0, 5_000) }),
        undefined,
      ).anomalies;
    expect(signals(warm(10))).not.toContain('escrow_exploitation');
    const a = find(warm(11), 'escrow_exploitation');
    expect(a).toMatchObject({
      priority: 'P1',
      details: { rule: 'same_payee', suspect_payee: 'merchant-shady', cold_start: false },
    });
    expect(a?.details.count).toBe(11);
    expect(a?.details.escrow_ids).toHaveLength(11);
  });

  it('warm: a batch still held for one supplier is a P2 warning; once the payee has taken most of it, P1', () => {
    // A buyer's restocking batch: 14 orders to one supplier within 3 min, all held until delivery.
    const history = normalTraffic('a1', T0 - 13 * HOUR, T0 - 10 * MIN, 3, 29);
    const batch = (settled: number) =>
      Array.from({ length: 14 }, (_, i) =>
        escrow({
          payee: 'supplier-014',
          amount: 4_000 + i * 211,
          created_at: T0 - i * 13 * SEC,
          ...(i >= 14 - settled
            ? { fate: { status: 'settled' as const, at: T0 - i * 13 * SEC + 5 * SEC } }
            : {}),
        }),
      );
    const judge = (settled: number) =>
      find(
        detectAgent(
          observation({ at: T0, escrows: view([...history, ...batch(settled)], 'a1', T0, 5_000) }),
          undefined,
        ).anomalies,
        'escrow_exploitation',
      );
    expect(judge(0)).toMatchObject({
      severity: 'warning',
      priority: 'P2',
      details: {
        rule: 'same_payee',
        count: 14,
        cold_start: false,
        critical_above_count: 20,
        statuses: { held: 14 },
      },
    });
    expect(judge(6)?.priority).toBe('P2');
    expect(judge(7)).toMatchObject({ severity: 'critical', priority: 'P1', details: { cold_start: false } });
  });

  it('cold (no history): 11–20 to one payee is a P2 warning (a first restocking batch looks so); above twice the floor, P1', () => {
    expect(signals(firstLook(farm(10)))).not.toContain('escrow_exploitation');
    expect(find(firstLook(farm(11)), 'escrow_exploitation')).toMatchObject({
      severity: 'warning',
      priority: 'P2',
      details: { rule: 'same_payee', count: 11, cold_start: true, critical_above_count: 20 },
    });
    expect(find(firstLook(farm(20, 'settled', 10 * SEC)), 'escrow_exploitation')?.priority).toBe('P2');
    expect(find(firstLook(farm(21, 'settled', 10 * SEC)), 'escrow_exploitation')).toMatchObject({
      severity: 'critical',
      priority: 'P1',
      details: { suspect_payee: 'merchant-shady', count: 21 },
    });
    // Farming goes on where a batch ends: 31 within the hour (one every 90 s, never 11 in 5 min) is P1 cold.
    expect(find(firstLook(farm(31, 'settled', 90 * SEC)), 'escrow_exploitation')).toMatchObject({
      priority: 'P1',
      details: { count: 31, window_ms: 60 * MIN, cold_start: true },
    });
  });

  it('a cancellation rate above 50 % of decided escrows within an hour, with a minimum count', () => {
    const decided = (n: number, cancelled: number) =>
      Array.from({ length: n }, (_, i) =>
        escrow({
          payee: `m${i % 3}`,
          amount: 3_000,
          created_at: T0 - (i + 1) * 5 * MIN,
          fate: { status: i < cancelled ? 'refunded' : 'settled', at: T0 - (i + 1) * 5 * MIN + MIN },
        }),
      );
    // Cold (a 15 % prior): 7 of 10 is improbable, 6 of 10 is not yet; too few decided is no rate at all.
    const a = find(firstLook(decided(10, 7)), 'escrow_exploitation');
    expect(a?.details).toMatchObject({ rule: 'cancel_rate', cancelled: 7, decided: 10, suspect_payee: 'm0' });
    expect(signals(firstLook(decided(10, 6)))).toEqual([]);
    expect(signals(firstLook(decided(2, 2)))).toEqual([]);
    // Held escrows have not been decided yet: they do not dilute the rate.
    const pending = Array.from({ length: 10 }, (_, i) =>
      escrow({ payee: `q${i}`, created_at: T0 - 50 * MIN + i }),
    );
    expect(signals(firstLook([...decided(7, 6), ...pending]))).toContain('escrow_exploitation');
  });

  it('an agent that cancels 40 % of its orders as a matter of course is judged against its own rate', () => {
    // A day of orders, two in five cancelled, then an hour with 7 of 10 cancelled.
    const day = Array.from({ length: 200 }, (_, i) =>
      escrow({
        payee: `m${i % 7}`,
        amount: 2_000 + (i % 13) * 300,
        created_at: T0 - 2 * HOUR - i * 6 * MIN,
        fate: { status: i % 5 < 2 ? 'refunded' : 'settled', at: T0 - 2 * HOUR - i * 6 * MIN + MIN },
      }),
    );
    const hour = Array.from({ length: 10 }, (_, i) =>
      escrow({
        payee: `m${i % 3}`,
        amount: 3_000,
        created_at: T0 - (i + 1) * 5 * MIN,
        fate: { status: i < 7 ? 'refunded' : 'settled', at: T0 - (i + 1) * 5 * MIN + MIN },
      }),
    );
    const { state } = watch(day, T0 - 90 * MIN, T0 - 60 * MIN);
    expect(state.cancels?.decided).toBeGreaterThan(20);
    const r = detectAgent(observation({ escrows: view([...day, ...hour], 'a1', T0, 500) }), state);
    expect(find(r.anomalies, 'escrow_exploitation')).toBeUndefined();
    // The same hour from an agent that never cancels is exploitation.
    expect(signals(firstLook(hour))).toContain('escrow_exploitation');
  });

  it('same_payee counts only money that moved to or is held for the payee, never refunds', () => {
    expect(signals(firstLook(farm(11)))).toContain('escrow_exploitation');
    // The same escrows cancelled by the payer instead: nothing went to the payee, so it is not farming
    // (the payer's cancellation rate is the other rule's to judge).
    const refunded = find(firstLook(farm(11, 'refunded')), 'escrow_exploitation');
    expect(refunded?.details.rule).toBe('cancel_rate');
    const expired = farm(11).map((e) => ({ ...e, fate: { status: 'expired' as const, at: T0 - SEC } }));
    expect(signals(firstLook(expired))).toEqual([]);
  });

  it('refunds made by our own containment (cancelled_by_us) feed neither rule', () => {
    // A loop of 15 $150 escrows to vendor-flaky, all refunded by our containment a minute later.
    const loop = retryLoop('a1', T0 - 3 * MIN, 15).map((e) => ({
      ...e,
      fate: { status: 'refunded' as const, at: T0 - 2 * MIN },
    }));
    const obs = observation({ escrows: view(loop, 'a1', T0) });
    // Not ours: 15 cancellations of 15 decided is the agent's pattern.
    expect(find(detectAgent(obs, undefined).anomalies, 'escrow_exploitation')?.details.rule).toBe(
      'cancel_rate',
    );
    const ours = loop.map((e) => e.id);
    expect(detectAgent({ ...obs, cancelled_by_us: ours }, undefined).anomalies).toEqual([]);
  });

  it("an escrow we tried to cancel that the payee released first is still the payee's", () => {
    const world = farm(11);
    const ours = world.map((e) => e.id);
    const a = find(
      detectAgent(observation({ escrows: view(world, 'a1', T0), cancelled_by_us: ours }), undefined)
        .anomalies,
      'escrow_exploitation',
    );
    // Only the settled ones remain: 8 of 11, under the threshold; with 11 settled among them, it fires.
    expect(a).toBeUndefined();
    const more = Array.from({ length: 15 }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        amount: 2_500,
        created_at: T0 - (i + 1) * 15 * SEC,
        ...(i < 11 ? { fate: { status: 'settled' as const, at: T0 - (i + 1) * 15 * SEC + 5 * SEC } } : {}),
      }),
    );
    const hit = find(
      detectAgent(
        observation({ escrows: view(more, 'a1', T0), cancelled_by_us: more.map((e) => e.id) }),
        undefined,
      ).anomalies,
      'escrow_exploitation',
    );
    expect(hit?.details).toMatchObject({ rule: 'same_payee', count: 11, statuses: { settled: 11 } });
  });

  it("a loop refunded by our containment is no spend either: cost_anomaly judges the agent's own", () => {
    const history = normalTraffic('a1', T0 - 6 * HOUR, T0 - 10 * MIN, 3, 17);
    const { state } = watch(history, T0 - 40 * MIN, T0 - 10 * MIN);
    const loop = retryLoop('a1', T0 - 3 * MIN, 20).map((e) => ({
      ...e,
      fate: { status: 'refunded' as const, at: T0 - 2 * MIN },
    }));
    const obs = observation({ escrows: view([...history, ...loop], 'a1', T0) });
    const clone = () => JSON.parse(JSON.stringify(state)) as AgentDetectionState;
    expect(signals(detectAgent(obs, clone()).anomalies)).toContain('cost_anomaly');
    const ours = loop.map((e) => e.id);
    expect(detectAgent({ ...obs, cancelled_by_us: ours }, clone()).anomalies).toEqual([]);
  });

  it('neither rule depends on updated_at (the real get_escrow rows have none)', () => {
    const decided = Array.from({ length: 10 }, (_, i) =>
      escrow({
        payee: `m${i % 3}`,
        amount: 3_000,
        created_at: T0 - (i + 1) * 5 * MIN,
        fate: { status: i < 7 ? 'refunded' : 'settled', at: T0 - (i + 1) * 5 * MIN + MIN },
      }),
    );
    for (const world of [decided, farm(11)]) {
      const full = detectAgent(observation({ escrows: view(world, 'a1', T0) }), undefined).anomalies;
      const bare = detectAgent(observation({ escrows: withoutUpdatedAt(world) }), undefined).anomalies;
      expect(find(bare, 'escrow_exploitation')).toBeDefined();
      expect(bare).toEqual(full);
    }
  });

  it('a recovering agent is silent: its contained loop is ours, its new orders are ordinary', () => {
    const loop = retryLoop('a1', T0 - 40 * MIN, 20).map((e) => ({
      ...e,
      fate: { status: 'refunded' as const, at: T0 - 39 * MIN },
    }));
    // After stage 1: a few ordinary orders, released by their payees.
    const orders = Array.from({ length: 4 }, (_, i) =>
      escrow({
        payee: `shop-${i}`,
        amount: 1_500 + i * 250,
        created_at: T0 - (20 - i * 4) * MIN,
        fate: { status: 'settled', at: T0 - (18 - i * 4) * MIN },
      }),
    );
    const world = [...loop, ...orders];
    const ours = loop.map((e) => e.id);
    let state: AgentDetectionState | undefined;
    const seen: Anomaly[] = [];
    for (let at = T0 - 30 * MIN; at <= T0 + 30 * MIN; at += 30 * SEC) {
      const r = detectAgent(
        observation({ at, escrows: view(world, 'a1', at), cancelled_by_us: ours }),
        state,
      );
      seen.push(...r.anomalies);
      state = JSON.parse(JSON.stringify(r.state)) as AgentDetectionState;
    }
    expect(seen.filter((a) => a.signal === 'escrow_exploitation')).toEqual([]);
    // Without knowing the refunds were ours, the same polls would blame the agent: the test is not vacuous.
    const blamed = detectAgent(observation({ escrows: view(world, 'a1', T0) }), undefined).anomalies;
    expect(signals(blamed)).toContain('escrow_exploitation');
  });

  it('a retry loop to one payee is a burst, not also exploitation of that payee', () => {
    const r = firstLook(retryLoop('a1', T0, 30));
    expect(signals(r)).toContain('escrow_burst');
    expect(signals(r)).not.toContain('escrow_exploitation');
  });
});

describe('thresholds are configurable', () => {
  it('a stricter repeat count catches the loop one escrow earlier', () => {
    const t = { ...DEFAULT_THRESHOLDS, escrow_burst_repeat_count: 4 };
    const obs = observation({ escrows: view(retryLoop('a1', T0, 4), 'a1', T0) });
    expect(signals(detectAgent(obs, undefined, t).anomalies)).toContain('escrow_burst');
  });
});

describe('exploitation over sliding windows', () => {
  it('11 escrows to one payee within 4.5 min are seen though no poll instant has them all in its trailing 5 min', () => {
    // Polls every 30 s; the cluster runs from 1:00 to 5:30 and the payee releases each at once.
    const cluster = Array.from({ length: 11 }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        amount: 2_000 + i * 1_700,
        created_at: T0 + MIN + i * 27 * SEC,
        fate: { status: 'settled', at: T0 + MIN + i * 27 * SEC + 5 * SEC },
      }),
    );
    // A 20-minute blind spell after the first poll: the next poll sees the cluster only after it has begun
    // leaving the trailing window, yet one sliding window still holds all eleven.
    const first = detectAgent(observation({ at: T0, escrows: [] }), undefined);
    const at = T0 + 10 * MIN;
    const trailing = cluster.filter((e) => e.created_at > at - 5 * MIN).length;
    expect(trailing).toBeLessThan(11);
    const r = detectAgent(observation({ at, escrows: view(cluster, 'a1', at) }), first.state);
    expect(find(r.anomalies, 'escrow_exploitation')?.details).toMatchObject({
      rule: 'same_payee',
      suspect_payee: 'merchant-shady',
      count: 11,
    });
  });

  it('just under the 5-minute bar, sustained for an hour, is seen by the 60-minute window', () => {
    // 8 escrows to one payee every 5 minutes (never more than 10 in any 5), settled to the payee.
    const farm = Array.from({ length: 12 * 8 }, (_, i) =>
      escrow({
        payee: 'merchant-shady',
        amount: 2_500 + (i % 9) * 900,
        created_at: T0 - 60 * MIN + i * 37 * SEC,
        fate: { status: 'settled', at: T0 - 60 * MIN + i * 37 * SEC + 10 * SEC },
      }),
    );
    const short = (at: number) =>
      farm.filter((e) => e.created_at > at - 5 * MIN && e.created_at <= at).length;
    expect(Math.max(...farm.map((e) => short(e.created_at)))).toBeLessThanOrEqual(10);
    const r = detectAgent(observation({ escrows: view(farm, 'a1', T0) }), undefined);
    expect(find(r.anomalies, 'escrow_exploitation')?.details).toMatchObject({
      rule: 'same_payee',
      window_ms: 60 * MIN,
    });
    // 30 in the hour is the floor: 25 is not exploitation.
    const few = farm.filter((_, i) => i % 4 === 0);
    expect(
      find(
        detectAgent(observation({ escrows: view(few, 'a1', T0) }), undefined).anomalies,
        'escrow_exploitation',
      ),
    ).toBeUndefined();
  });
});

describe('stranger spending (a stolen key that never touches the identity record)', () => {
  const history = normalTraffic('a1', T0 - 14 * HOUR, T0 - 31 * MIN, 6, 23);
  const theft = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      escrow({ payee: `fresh-${i}`, amount: 48_000 + i * 1_111, created_at: T0 - 20 * MIN + i * 4 * MIN }),
    );

  it('three escrows well above the usual, to payees the agent never paid: identity_compromise (P0)', () => {
    const { state } = watch(history, T0 - 40 * MIN, T0 - 25 * MIN);
    const two = detectAgent(observation({ escrows: view([...history, ...theft(2)], 'a1', T0, 500) }), state);
    expect(find(two.anomalies, 'identity_compromise')).toBeUndefined();
    const three = detectAgent(
      observation({ escrows: view([...history, ...theft(3)], 'a1', T0, 500) }),
      state,
    );
    expect(find(three.anomalies, 'identity_compromise')).toMatchObject({
      priority: 'P0',
      details: { reason: 'stranger_spending', count: 3, new_payees: ['fresh-0', 'fresh-1', 'fresh-2'] },
    });
  });

  it('ordinary amounts to new payees, or a new agent with no history, are no theft', () => {
    const { state } = watch(history, T0 - 40 * MIN, T0 - 25 * MIN);
    const small = theft(4).map((e) => ({ ...e, amount: 3_000 }));
    const r = detectAgent(observation({ escrows: view([...history, ...small], 'a1', T0, 500) }), state);
    expect(find(r.anomalies, 'identity_compromise')).toBeUndefined();
    expect(find(firstLook(theft(4)), 'identity_compromise')).toBeUndefined();
  });
});
