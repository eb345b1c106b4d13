/**
 * The watcher's per-agent cadence: which reads a poll makes, how big the escrow page is, and when the
 * agent is polled or probed next. Pure, on explicit times.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS, type EscrowObservation } from '../../src/detection/index.js';
import {
  escrowCoverMs,
  MAX_ESCROW_PAGE,
  MIN_ESCROW_PAGE,
  PollCadence,
  pageComplete,
  SLOW_CHECKS,
} from '../../src/runbooks/cadence.js';

const S = 1_000;
const MIN = 60 * S;
const T0 = Date.UTC(2026, 10, 24, 2, 47, 13);
const t = DEFAULT_THRESHOLDS;
const opts = {
  intervalMs: 30 * S,
  minIntervalMs: 5 * S,
  probeIntervalMs: 10 * S,
  slowReadIntervalMs: 5 * MIN,
  identityIntervalMs: 2 * MIN,
};

let seq = 0;
/** An escrow as payer (or `payee` side when payer is given), created at `at`. */
function escrow(agent: string, at: number, over: Partial<EscrowObservation> = {}): EscrowObservation {
  return {
    id: `e${++seq}`,
    payer: agent,
    payee: 'vendor-01',
    amount: 1_500,
    status: 'settled',
    created_at: at,
    ...over,
  };
}

/** Newest first, as list_escrows returns them. */
const page = (...es: EscrowObservation[]) => [...es].sort((a, b) => b.created_at - a.created_at);

/** Plans and records one poll the way runDetectionPass does, then schedules the next. */
function poll(c: PollCadence, agent: string, at: number, escrows: EscrowObservation[], base = 30 * S) {
  const plan = c.plan(agent, at, t, base);
  const sighting = c.observed(agent, at, { escrows, coverMs: plan.coverMs, slowRead: plan.slow });
  const next = c.scheduled(agent, at, base);
  return { plan, sighting, next };
}

describe('read tiers', () => {
  it('reads every slow check within its cadence, identity at most every 2 min, never all of them every poll', () => {
    const c = new PollCadence(opts);
    const reads = new Map<string, number[]>(SLOW_CHECKS.map((k) => [k, []]));
    for (let at = T0; at < T0 + 30 * MIN; at += 30 * S) {
      const { plan } = poll(c, 'agent-01', at, []);
      for (const k of plan.slow) reads.get(k)!.push(at);
    }
    const maxGap = (xs: number[]) => Math.max(...xs.slice(1).map((x, i) => x - xs[i]!));
    expect(maxGap(reads.get('identity')!)).toBeLessThanOrEqual(2 * MIN);
    // Polls that do not divide 2 min still never leave identity unread longer.
    const odd = new PollCadence({ ...opts, intervalMs: 45 * S });
    const idReads: number[] = [];
    for (let at = T0; at < T0 + 30 * MIN; at += 45 * S) {
      const plan = odd.plan('agent-01', at, t, 45 * S);
      odd.observed('agent-01', at, { escrows: [], coverMs: plan.coverMs, slowRead: plan.slow });
      if (plan.slow.has('identity')) idReads.push(at);
    }
    expect(maxGap(idReads)).toBeLessThanOrEqual(2 * MIN);
    for (const k of ['balance', 'usage', 'reputation', 'metrics'] as const) {
      expect(reads.get(k)!.length).toBeGreaterThanOrEqual(5);
      expect(maxGap(reads.get(k)!)).toBeLessThanOrEqual(5 * MIN);
      // Slow: about one read per 5 min, not one per 30 s poll.
      expect(reads.get(k)!.length).toBeLessThanOrEqual(7);
    }
  });

  it('staggers a fleet: the first poll of 1,000 agents reads each slow check for a fraction of them', () => {
    const c = new PollCadence(opts);
    const agents = Array.from({ length: 1000 }, (_, i) => `agent-${String(i).padStart(3, '0')}`);
    const count = new Map<string, number>();
    for (const a of agents)
      for (const k of c.plan(a, T0, t, 30 * S).slow) count.set(k, (count.get(k) ?? 0) + 1);
    // 30 s of a 5 min cadence ≈ 10 %, of a 2 min one ≈ 25 %.
    for (const k of ['balance', 'usage', 'reputation', 'metrics']) {
      expect(count.get(k)).toBeGreaterThan(50);
      expect(count.get(k)).toBeLessThan(200);
    }
    expect(count.get('identity')).toBeGreaterThan(150);
    expect(count.get('identity')).toBeLessThan(350);
  });

  it('a slow check that failed stays due at the next poll', () => {
    const c = new PollCadence(opts);
    let at = T0;
    let plan = c.plan('a', at, t, 30 * S);
    while (!plan.slow.has('identity')) {
      c.observed('a', at, { escrows: [], coverMs: plan.coverMs, slowRead: plan.slow });
      at += 30 * S;
      plan = c.plan('a', at, t, 30 * S);
    }
    c.observed('a', at, { coverMs: plan.coverMs, slowRead: [...plan.slow].filter((k) => k !== 'identity') });
    expect(c.plan('a', at + 30 * S, t, 30 * S).slow.has('identity')).toBe(true);
  });

  it('a full plan reads everything at the full page', () => {
    const c = new PollCadence(opts);
    poll(c, 'a', T0, []);
    const plan = c.plan('a', T0 + 30 * S, t, 30 * S, true);
    expect([...plan.slow].sort()).toEqual([...SLOW_CHECKS].sort());
    expect(plan.escrowLimit).toBe(MAX_ESCROW_PAGE);
  });
});

describe('escrow page size', () => {
  it('first sight reads the full page; a quiet agent then gets a small one; new escrows as payer bring the full page back', () => {
    const c = new PollCadence(opts);
    const a = 'agent-01';
    const old = [escrow(a, T0 - 3 * 60 * MIN), escrow(a, T0 - 2 * 60 * MIN), escrow(a, T0 - 20 * MIN)];
    expect(poll(c, a, T0, page(...old)).plan.escrowLimit).toBe(MAX_ESCROW_PAGE);
    const quiet = poll(c, a, T0 + 30 * S, page(...old));
    expect(quiet.plan.escrowLimit).toBe(MIN_ESCROW_PAGE);
    expect(quiet.sighting).toMatchObject({ newAsPayer: 0, rising: false });
    const loop = [1, 2, 3].map((k) => escrow(a, T0 + 40 * S + k * S, { status: 'held' }));
    const rising = poll(c, a, T0 + 60 * S, page(...old, ...loop));
    expect(rising.plan.escrowLimit).toBe(MIN_ESCROW_PAGE);
    expect(rising.sighting).toMatchObject({ newAsPayer: 3, heldGrowth: 3, rising: true });
    expect(c.plan(a, T0 + 65 * S, t, 30 * S).escrowLimit).toBe(MAX_ESCROW_PAGE);
  });

  it('a quiet page holds what the last one had in the window plus headroom', () => {
    const c = new PollCadence(opts);
    const a = 'busy';
    // 40 escrows in the last hour, mostly as payee (they are in the page, not in the agent's own rate).
    const recent = Array.from({ length: 40 }, (_, k) => escrow('other', T0 - k * 90 * S, { payee: a }));
    poll(c, a, T0, page(...recent));
    const limit = c.plan(a, T0 + 30 * S, t, 30 * S).escrowLimit;
    expect(limit).toBeGreaterThanOrEqual(40);
    expect(limit).toBeLessThan(MAX_ESCROW_PAGE);
  });

  it('a page is complete when it reaches back over the cover window or holds the whole history', () => {
    const cover = escrowCoverMs(t);
    expect(cover).toBeGreaterThanOrEqual(t.cancel_window_ms);
    const at = T0;
    const recentOnly = [escrow('a', at - MIN), escrow('a', at - 2 * MIN)];
    expect(pageComplete(recentOnly, 2, at, cover)).toBe(false);
    expect(pageComplete(recentOnly, 10, at, cover)).toBe(true);
    expect(pageComplete([...recentOnly, escrow('a', at - cover - 1)], 3, at, cover)).toBe(true);
    // After a gap the baseline catches up over it: the page must reach further back.
    expect(escrowCoverMs(t, 3 * 60 * MIN)).toBeGreaterThan(3 * 60 * MIN);
  });
});

describe('schedule', () => {
  it('rising escrows poll at the floor, and a quiet agent relaxes back to the interval', () => {
    const c = new PollCadence(opts);
    const a = 'agent-01';
    let at = T0;
    const es = [escrow(a, T0 - 3 * 60 * MIN)];
    expect(poll(c, a, at, page(...es)).next - at).toBe(30 * S);
    at += 30 * S;
    es.push(escrow(a, at - S, { status: 'held' }), escrow(a, at - 2 * S, { status: 'held' }));
    expect(poll(c, a, at, page(...es)).next - at).toBe(5 * S);
    const gaps: number[] = [];
    for (let k = 0; k < 5; k++) {
      const { next } = poll(c, a, at, page(...es));
      gaps.push(next - at);
      at = next;
    }
    expect(gaps).toEqual([10 * S, 20 * S, 30 * S, 30 * S, 30 * S]);
  });

  it('an agent in recovery keeps its tighter base interval, and the floor never exceeds it', () => {
    const c = new PollCadence(opts);
    expect(poll(c, 'r', T0, [], 10 * S).next - T0).toBe(10 * S);
    expect(poll(c, 'r', T0 + 10 * S, [], 3 * S).next - (T0 + 10 * S)).toBe(3 * S);
  });

  it("an agent's usual rate is not rising: a steady busy agent stays at the interval", () => {
    const c = new PollCadence(opts);
    const a = 'busy';
    // 6 escrows a minute as payer for the past hour.
    const es = Array.from({ length: 360 }, (_, k) => escrow(a, T0 - k * 10 * S));
    let at = T0;
    poll(c, a, at, page(...es).slice(0, MAX_ESCROW_PAGE));
    for (let k = 0; k < 10; k++) {
      at += 30 * S;
      for (let j = 2; j >= 0; j--) es.push(escrow(a, at - j * 10 * S));
      const r = poll(c, a, at, page(...es).slice(0, MAX_ESCROW_PAGE));
      expect(r.sighting).toMatchObject({ newAsPayer: 3, rising: false });
      expect(r.next - at).toBe(30 * S);
    }
    // The same agent at ten times its rate is rising.
    at += 30 * S;
    for (let j = 0; j < 30; j++) es.push(escrow(a, at - j * S));
    expect(poll(c, a, at, page(...es).slice(0, MAX_ESCROW_PAGE)).sighting?.rising).toBe(true);
  });

  it('probes between polls; a probe that sees a new escrow as payer makes the agent due at once', () => {
    const c = new PollCadence(opts);
    const a = 'agent-01';
    const es = [escrow(a, T0 - 3 * 60 * MIN)];
    poll(c, a, T0, page(...es));
    expect(c.probeDue([a], T0 + 9 * S)).toEqual([]);
    expect(c.probeDue([a], T0 + 10 * S)).toEqual([a]);
    expect(c.probed(a, T0 + 10 * S, page(...es)).rising).toBe(false);
    expect(c.due([a], T0 + 10 * S)).toEqual([]);
    // The probe at 20 s is the last before the 30 s poll; none at 30 s (the poll reads escrows anyway).
    expect(c.probeDue([a], T0 + 20 * S)).toEqual([a]);
    es.push(escrow(a, T0 + 19 * S, { status: 'held' }));
    expect(c.probed(a, T0 + 20 * S, page(...es)).rising).toBe(true);
    expect(c.due([a], T0 + 20 * S)).toEqual([a]);
    // A payee-side escrow is not the agent's spending.
    const b = 'agent-02';
    poll(c, b, T0, []);
    expect(c.probed(b, T0 + 10 * S, [escrow('someone', T0 + 5 * S, { payee: b })]).rising).toBe(false);
  });

  it('an agent that never had an escrow is probed too, and its first escrow as payer is rising', () => {
    const c = new PollCadence(opts);
    poll(c, 'new', T0, []);
    expect(c.probeDue(['new'], T0 + 10 * S)).toEqual(['new']);
    expect(c.probed('new', T0 + 10 * S, [escrow('new', T0 + 9 * S, { status: 'held' })]).rising).toBe(true);
  });

  it('the loop timer wakes for the earliest poll or probe', () => {
    const c = new PollCadence(opts);
    expect(c.nextWakeAt()).toBeNull();
    poll(c, 'a', T0, [escrow('a', T0 - MIN)]);
    expect(c.nextWakeAt()).toBe(T0 + 10 * S);
    // Never polled: due at once.
    c.plan('b', T0 + S, t, 30 * S);
    expect(c.nextWakeAt()).toBe(0);
  });

  it('payments are read every 2 min while the agent makes none, at every poll once it has made one in the hour', () => {
    const c = new PollCadence(opts);
    const reads: number[] = [];
    for (let at = T0; at < T0 + 10 * MIN; at += 30 * S) {
      const plan = c.plan('a1', at, t, 30 * S);
      if (plan.slow.has('payments')) reads.push(at);
      c.observed('a1', at, {
        escrows: [],
        ...(plan.slow.has('payments') ? { payments: [] } : {}),
        coverMs: plan.coverMs,
        slowRead: plan.slow,
      });
    }
    expect(reads.length).toBeGreaterThanOrEqual(4);
    expect(reads.length).toBeLessThanOrEqual(6);
    // An intent it made as payer a minute ago: from now on, every poll.
    const at = T0 + 10 * MIN;
    c.observed('a1', at, {
      escrows: [],
      payments: [escrow('a1', at - MIN, { id: 'int-1', path: 'intent', status: 'held' })],
      coverMs: escrowCoverMs(t),
      slowRead: ['payments'],
    });
    for (let k = 1; k <= 4; k++)
      expect(c.plan('a1', at + k * 30 * S, t, 30 * S).slow.has('payments')).toBe(true);
  });

  it('fee spend rising beyond what the new escrows cost reads payments at the next poll, at the floor', () => {
    const c = new PollCadence(opts);
    const observe = (at: number, escrows: EscrowObservation[], dailySpend: number) => {
      const plan = c.plan('a1', at, t, 30 * S);
      const sighting = c.observed('a1', at, {
        escrows,
        ...(plan.slow.has('payments') ? { payments: [] } : {}),
        dailySpend,
        coverMs: plan.coverMs,
        slowRead: plan.slow,
      });
      return { plan, sighting, next: c.scheduled('a1', at, 30 * S) };
    };
    // Start with a payments read, so the next one by cadence is 2 min away.
    const first = escrow('a1', T0 - MIN);
    c.plan('a1', T0, t, 30 * S);
    c.observed('a1', T0, {
      escrows: page(first),
      payments: [],
      dailySpend: 100,
      coverMs: escrowCoverMs(t),
      slowRead: SLOW_CHECKS,
    });
    c.scheduled('a1', T0, 30 * S);
    // One new $15 escrow (fee 22.5 cents) and spend up 27 cents: explained, give or take the gateway's
    // unrounded sums and a flat-priced call.
    const e2 = escrow('a1', T0 + 10 * S);
    const quiet = observe(T0 + 30 * S, page(e2, first), 127);
    expect(quiet.plan.slow.has('payments')).toBe(false);
    const e3 = escrow('a1', T0 + 40 * S);
    // Spend up 5 CREDITS with one escrow's fee to explain 23 cents: fee-bearing calls elsewhere.
    const hidden = observe(T0 + 60 * S, page(e3, e2, first), 127 + 23 + 500);
    expect(hidden.plan.slow.has('payments')).toBe(false);
    expect(hidden.sighting?.rising).toBe(true);
    expect(hidden.next).toBe(T0 + 60 * S + opts.minIntervalMs);
    expect(c.plan('a1', hidden.next, t, 30 * S).slow.has('payments')).toBe(true);
  });

  it('refuses an identity cadence over 2 min', () => {
    expect(() => new PollCadence({ ...opts, identityIntervalMs: 3 * MIN })).toThrow(RangeError);
  });
});
