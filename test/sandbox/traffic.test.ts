/**
 * The traffic corpus: each profile produces what docs/TRAFFIC.md says, measured from the sandbox's own
 * escrow records on an advanced clock; each incident variant records its onset and leaves its signature;
 * a seed repeats exactly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  assignFleet,
  type EscrowRecord,
  MIX,
  MIX_PATHS,
  PROFILES,
  type Sandbox,
  startSandbox,
} from '../../src/sandbox/index.js';
import { localHour } from '../../src/sandbox/traffic.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Monday 2025-01-06 00:00 UTC. */
const MONDAY = Date.UTC(2025, 0, 6);

let sb: Sandbox | undefined;
afterEach(async () => {
  await sb?.close();
  sb = undefined;
});

async function quiet(agents = 6, seed = 11): Promise<Sandbox> {
  sb = await startSandbox({ agents, seed, timeScale: 0, startAt: MONDAY, traffic: 'none' });
  return sb;
}

async function advance(s: Sandbox, ms: number, step = 5 * MIN): Promise<void> {
  for (let t = 0; t < ms; t += step) await s.advance(Math.min(step, ms - t));
}

/** Most escrows to `payee` created within any window of `windowMs`. */
function maxInWindow(rows: EscrowRecord[], windowMs: number): number {
  const ts = rows.map((e) => e.created_at).sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < ts.length; i++) {
    while ((ts[i] as number) - (ts[j] as number) >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** Groups creation-ordered rows into clusters split by gaps longer than `gapMs`. */
function clusters(rows: EscrowRecord[], gapMs: number): EscrowRecord[][] {
  const out: EscrowRecord[][] = [];
  for (const e of rows) {
    const last = out.at(-1);
    if (last && e.created_at - (last.at(-1) as EscrowRecord).created_at <= gapMs) last.push(e);
    else out.push([e]);
  }
  return out;
}

const refundedShare = (rows: EscrowRecord[]) => {
  const decided = rows.filter((e) => e.status === 'settled' || e.status === 'refunded');
  return decided.filter((e) => e.status === 'refunded').length / decided.length;
};

describe('normal profiles', () => {
  it('busy: 15–25 escrows/min over an hour to many payees, released within 3 min', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    s.startScenario('normal_traffic', a, { profile: 'busy' });
    await advance(s, HOUR, MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length / 60).toBeGreaterThanOrEqual(15);
    expect(rows.length / 60).toBeLessThanOrEqual(25);
    expect(new Set(rows.map((e) => e.payee)).size).toBeGreaterThanOrEqual(40);
    const old = rows.filter((e) => e.created_at < s.clock.now() - 3 * MIN);
    expect(old.filter((e) => e.status === 'held')).toHaveLength(0);
    expect(s.groundTruth(a).held_escrows).toBeLessThan(80);
    expect(s.scenarios()[0]?.failures).toEqual({});
  });

  it('batch_buyer: a few batches a day of 6–20 orders within 4 min, mostly released', async () => {
    const s = await quiet();
    const a = s.fleet[1] as string;
    s.startScenario('normal_traffic', a, { profile: 'batch_buyer', tz_offset_h: -5, batches_per_day: 3 });
    await advance(s, 2 * DAY, 10 * MIN);
    const batchRows = s.escrowRecords(a).filter((e) => e.description === 'restock order');
    const batches = clusters(batchRows, 10 * MIN);
    expect(batches.length).toBeGreaterThanOrEqual(5);
    expect(batches.length).toBeLessThanOrEqual(6);
    for (const b of batches) {
      expect(b.length).toBeGreaterThanOrEqual(6);
      expect(b.length).toBeLessThanOrEqual(20);
      expect((b.at(-1) as EscrowRecord).created_at - (b[0] as EscrowRecord).created_at).toBeLessThanOrEqual(
        4 * MIN,
      );
      expect(new Set(b.map((e) => e.payee)).size).toBeGreaterThanOrEqual(2);
      // Local working hours (UTC-5): 08–20.
      const h = localHour((b[0] as EscrowRecord).created_at, -5);
      expect(h).toBeGreaterThanOrEqual(8);
      expect(h).toBeLessThan(20);
    }
    const decided = batchRows.filter((e) => e.created_at < s.clock.now() - 3 * HOUR);
    expect(decided.filter((e) => e.status === 'settled').length / decided.length).toBeGreaterThan(0.9);
    // Mostly quiet outside the batches.
    expect(s.escrowRecords(a).length - batchRows.length).toBeLessThan(20);
  });

  it('canceller: 30–40 % of decided orders refunded, each cancel within 10 min', async () => {
    const s = await quiet();
    const a = s.fleet[2] as string;
    s.startScenario('normal_traffic', a, { profile: 'canceller', cancel_ratio: 0.35 });
    await advance(s, 2 * DAY, 10 * MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length).toBeGreaterThan(100);
    const share = refundedShare(rows);
    expect(share).toBeGreaterThanOrEqual(0.3);
    expect(share).toBeLessThanOrEqual(0.4);
    for (const e of rows.filter((x) => x.status === 'refunded'))
      expect(e.updated_at - e.created_at).toBeLessThanOrEqual(10 * MIN);
  });

  it('payout: 60 escrows in 10 min to 60 distinct payees, at payout_at_ms or on the weekday set', async () => {
    const s = await quiet();
    const [a, b] = s.fleet as [string, string];
    s.startScenario('normal_traffic', a, { profile: 'payout', payout_at_ms: 2 * HOUR });
    // Wednesday 16:00 local at UTC+2 is 14:00 UTC, two days after the Monday start.
    s.startScenario('normal_traffic', b, {
      profile: 'payout',
      payout_weekday: 3,
      payout_hour: 16,
      tz_offset_h: 2,
    });
    await advance(s, 3 * DAY, 10 * MIN);
    for (const [agent, at] of [
      [a, MONDAY + 2 * HOUR],
      [b, MONDAY + 2 * DAY + 14 * HOUR],
    ] as const) {
      const payouts = s.escrowRecords(agent).filter((e) => e.description === 'weekly payout');
      expect(payouts).toHaveLength(60);
      expect(new Set(payouts.map((e) => e.payee)).size).toBe(60);
      expect((payouts[0] as EscrowRecord).created_at).toBeGreaterThanOrEqual(at);
      expect((payouts.at(-1) as EscrowRecord).created_at).toBeLessThan(at + 10 * MIN);
      expect(payouts.every((e) => e.status === 'settled')).toBe(true);
      // Light traffic otherwise.
      expect(s.escrowRecords(agent).length - 60).toBeLessThan(3 * 24 * 1.5);
    }
  });

  it('diurnal: night hours carry ≤ 10 % of the day hours’ rate, in the agent’s own time zone', async () => {
    const s = await quiet(8);
    const zones = [0, 9, -5, 5.5];
    zones.forEach((tz, i) => {
      s.startScenario('normal_traffic', s.fleet[i] as string, {
        profile: 'diurnal',
        tz_offset_h: tz,
        orders_per_day: 20,
      });
    });
    await advance(s, 5 * DAY, 15 * MIN);
    let night = 0;
    let day = 0;
    let utcNightAtNine = 0;
    zones.forEach((tz, i) => {
      const rows = s.escrowRecords(s.fleet[i] as string);
      // A daily mean of ~20 orders.
      expect(rows.length / 5).toBeGreaterThan(12);
      expect(rows.length / 5).toBeLessThan(28);
      for (const e of rows) {
        const h = localHour(e.created_at, tz);
        if (h < 6) night++;
        if (h >= 9 && h < 18) day++;
        if (tz === 9 && localHour(e.created_at, 0) >= 16 && localHour(e.created_at, 0) < 21) utcNightAtNine++;
      }
    });
    // Per hour: 6 night hours against 9 day hours.
    expect(night / 6).toBeLessThanOrEqual(0.1 * (day / 9));
    expect(day).toBeGreaterThan(200);
    // 16–21 UTC is 01–06 at UTC+9: near nothing.
    expect(utcNightAtNine).toBeLessThanOrEqual(3);
  });

  it('new_agent: no escrows before it joins, a fresh identity at the join, then its profile', async () => {
    const s = await quiet();
    const a = s.fleet[3] as string;
    const join = 6 * HOUR;
    s.startScenario('normal_traffic', a, { profile: 'new_agent', join_at_ms: join, becomes: 'busy' });
    await advance(s, join, 30 * MIN);
    expect(s.escrowRecords(a)).toHaveLength(0);
    await advance(s, 10 * MIN, MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length).toBeGreaterThan(100);
    expect(rows.every((e) => e.created_at >= MONDAY + join)).toBe(true);
    const admin = await fetch(`${s.url}/v1/identity/agents/${a}`, {
      headers: { authorization: `Bearer ${s.keys.monitor}` },
    });
    if (admin.ok) {
      const body = (await admin.json()) as { created_at?: string | number };
      expect(Date.parse(String(body.created_at))).toBe(MONDAY + join);
    }
  });

  it('multi_path: pays on every path a day: escrows, intents (captured, later, voided), splits, subscriptions, a withdrawal', async () => {
    const s = await quiet();
    const a = s.fleet[1] as string;
    s.startScenario('normal_traffic', a, { profile: 'multi_path', orders_per_day: 40 });
    await advance(s, 2 * DAY, 10 * MIN);
    const intents = s.intentRecords(a);
    const by = (st: string) => intents.filter((i) => i.status === st).length;
    expect(s.escrowRecords(a).length).toBeGreaterThan(10);
    expect(by('settled')).toBeGreaterThan(10);
    expect(by('voided')).toBeGreaterThan(0);
    const subs = s.subscriptionRecords(a);
    expect(subs.filter((x) => x.status === 'active').length).toBeGreaterThanOrEqual(2);
    expect(subs.some((x) => x.status === 'cancelled')).toBe(true);
    const tx = s.transactionRecords(a);
    expect(tx.filter((t) => t.description.startsWith('split:')).length).toBeGreaterThan(0);
    expect(tx.filter((t) => t.description === 'profit to owner')).toHaveLength(2);
    expect(tx.filter((t) => t.description.startsWith('subscription:')).length).toBeGreaterThan(0);
  });

  it('rejects an unknown profile', async () => {
    const s = await quiet();
    expect(() => s.startScenario('normal_traffic', s.fleet[0] as string, { profile: 'sleepy' })).toThrow(
      /profile/,
    );
  });
});

describe('mixed fleet', () => {
  it('assignFleet is pure and gives 40 agents every profile in the documented shares, with varied zones', () => {
    const fleet = Array.from({ length: 40 }, (_, i) => `agent-${i}`);
    const one = assignFleet(fleet, 3);
    expect(assignFleet(fleet, 3)).toEqual(one);
    expect(assignFleet(fleet, 4)).not.toEqual(one);
    const count = (p: string) => one.filter((x) => x.params.profile === p).length;
    for (const p of PROFILES.filter((x) => MIX[x] > 0)) expect(count(p)).toBeGreaterThanOrEqual(1);
    // The corpus stays escrow-only; a fleet on every path is asked for by name.
    expect(count('multi_path')).toBe(0);
    const paths = assignFleet(fleet, 3, MIX_PATHS);
    expect(paths.filter((x) => x.params.profile === 'multi_path')).toHaveLength(20);
    expect(count('diurnal')).toBe(16);
    expect(count('busy')).toBe(2);
    expect(new Set(one.map((x) => x.params.tz_offset_h)).size).toBeGreaterThanOrEqual(5);
    for (const x of one.filter((y) => y.params.profile === 'payout'))
      expect(x.params.payout_at_ms as number).toBeLessThanOrEqual(60 * HOUR);
  });

  it('startSandbox({traffic: "mixed"}) runs the assignment; the same seed gives the same records', async () => {
    const run = async () => {
      const s = await startSandbox({ agents: 12, seed: 5, timeScale: 0, startAt: MONDAY, traffic: 'mixed' });
      await advance(s, 12 * HOUR, 10 * MIN);
      const rows = s.escrowRecords().map(({ id: _id, ...rest }) => rest);
      const plan = s.trafficPlan;
      await s.close();
      return { rows, plan };
    };
    const first = await run();
    const second = await run();
    expect(first.plan.map((p) => p.params.profile).sort()).toEqual(
      assignFleet(
        Array.from({ length: 12 }, (_, i) => `agent-${String(i).padStart(2, '0')}`),
        5,
      )
        .map((p) => p.params.profile)
        .sort(),
    );
    expect(first.rows.length).toBeGreaterThan(1_000);
    expect(second.rows).toEqual(first.rows);
  });
});

describe('incident variants', () => {
  const start = (s: Sandbox, name: string, agent: string, params: Record<string, unknown> = {}) => {
    const id = s.startScenario(name, agent, params);
    return () => s.scenarios().find((x) => x.id === id)!;
  };

  it('slow_loop: 3/min of one amount to one payee from the onset, never released', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'slow_loop', a);
    expect(info().onset_at).toBe(MONDAY + 20_000);
    await advance(s, 20 * MIN, MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length).toBe(60);
    expect(new Set(rows.map((e) => `${e.payee}/${e.amount}`)).size).toBe(1);
    expect(rows.every((e) => e.status === 'held')).toBe(true);
    expect(maxInWindow(rows, 5 * MIN)).toBe(15);
    expect(info().truth).toMatchObject({ incident: 'runaway_spending', agents: [a] });
  });

  it('jittered_loop: one payee, amounts within ±10 %, intervals spread', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'jittered_loop', a, { amount: 80 });
    await advance(s, 30 * MIN, MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length).toBeGreaterThan(120);
    expect(new Set(rows.map((e) => e.payee)).size).toBe(1);
    expect(new Set(rows.map((e) => e.amount)).size).toBeGreaterThan(50);
    for (const e of rows) expect(Math.abs(e.amount - 8_000)).toBeLessThanOrEqual(800);
    const gaps = rows.slice(1).map((e, i) => e.created_at - (rows[i] as EscrowRecord).created_at);
    expect(Math.max(...gaps) / Math.min(...gaps)).toBeGreaterThan(2);
    expect(rows[0]?.created_at).toBe(info().onset_at);
  });

  it('multi_payee_loop: one amount rotating over 3–5 payees', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    start(s, 'multi_payee_loop', a, { payees: 4 });
    await advance(s, 10 * MIN, MIN);
    const rows = s.escrowRecords(a);
    expect(rows.length).toBe(120);
    expect(new Set(rows.map((e) => e.amount)).size).toBe(1);
    const payees = rows.slice(0, 4).map((e) => e.payee);
    expect(new Set(payees).size).toBe(4);
    rows.forEach((e, i) => {
      expect(e.payee).toBe(payees[i % 4]);
    });
  });

  it('busy_loop: busy traffic, and a loop on the same agent from the onset', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'busy_loop', a, { loop_after_ms: 30 * MIN });
    const onset = info().onset_at as number;
    expect(onset).toBe(MONDAY + 30 * MIN);
    await advance(s, HOUR, MIN);
    const rows = s.escrowRecords(a);
    const loop = rows.filter((e) => e.payee === 'vendor-flaky');
    // 10/min from the 30th minute through the 60th, both ends included.
    expect(loop.length).toBe(301);
    expect(loop.every((e) => e.created_at >= onset && e.status === 'held')).toBe(true);
    expect(rows.length - loop.length).toBeGreaterThan(15 * 60);
  });

  it('exploitation_above: 11–12 escrows to the payee in every 5 min, most released to itself', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'exploitation_above', a);
    await advance(s, 30 * MIN, MIN);
    const rows = s.escrowRecords(a).filter((e) => e.payee === 'merchant-shady');
    expect(maxInWindow(rows, 5 * MIN)).toBeGreaterThanOrEqual(11);
    expect(maxInWindow(rows, 5 * MIN)).toBeLessThanOrEqual(12);
    expect(refundedShare(rows)).toBeLessThan(0.4);
    expect(rows[0]?.created_at).toBe(info().onset_at);
  });

  it('exploitation_below: never more than 9 per 5 min, ≥ 40 over the hour, 55–65 % cancelled, then stops', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'exploitation_below', a);
    await advance(s, 2 * HOUR, MIN);
    const rows = s.escrowRecords(a).filter((e) => e.payee === 'merchant-shady');
    expect(maxInWindow(rows, 5 * MIN)).toBeLessThanOrEqual(9);
    expect(maxInWindow(rows, 5 * MIN)).toBeGreaterThanOrEqual(8);
    expect(maxInWindow(rows, HOUR)).toBeGreaterThanOrEqual(40);
    const share = refundedShare(rows);
    expect(share).toBeGreaterThanOrEqual(0.55);
    expect(share).toBeLessThanOrEqual(0.65);
    expect(rows.every((e) => e.created_at <= (info().onset_at as number) + HOUR)).toBe(true);
  });

  it('stolen_key: same key, new payees never paid before, amounts above the agent’s usual', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    s.startScenario('normal_traffic', a, { profile: 'diurnal', orders_per_day: 20 });
    await advance(s, DAY, 30 * MIN);
    const before = s.escrowRecords(a);
    const key = s.groundTruth(a).public_key;
    const info = start(s, 'stolen_key', a);
    await advance(s, HOUR, MIN);
    const theft = s
      .escrowRecords(a)
      .filter((e) => e.created_at >= (info().onset_at as number) && e.payee.startsWith('drop-'));
    expect(theft.length).toBeGreaterThanOrEqual(6);
    const seen = new Set(before.map((e) => e.payee));
    expect(theft.every((e) => !seen.has(e.payee))).toBe(true);
    const usualMax = Math.max(...before.map((e) => e.amount));
    expect(theft.every((e) => e.amount > usualMax)).toBe(true);
    expect(s.groundTruth(a).public_key).toBe(key);
  });

  it('key_swap_before_sight: the key is already different when the scenario returns', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const key = s.groundTruth(a).public_key;
    const info = start(s, 'key_swap_before_sight', a);
    expect(info().onset_at).toBe(MONDAY);
    expect(s.groundTruth(a).public_key).not.toBe(key);
    await advance(s, 30 * MIN, MIN);
    expect(s.escrowRecords(a).filter((e) => e.payee.startsWith('drop-')).length).toBeGreaterThan(2);
  });

  it('swap_and_restore: the key differs only during the window, theft only then, created_at unchanged', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const key = s.groundTruth(a).public_key;
    const identity = async () =>
      (await (
        await fetch(`${s.url}/v1/identity/agents/${a}`, {
          headers: { authorization: `Bearer ${s.keys.monitor}` },
        })
      ).json()) as { created_at?: number };
    const created = (await identity()).created_at;
    const info = start(s, 'swap_and_restore', a, { window_ms: 5 * MIN });
    const [from, to] = info().truth!.details.window as [number, number];
    await s.advance(from - s.clock.now() + 1_000);
    expect(s.groundTruth(a).public_key).not.toBe(key);
    await s.advance(to - s.clock.now() + 1_000);
    expect(s.groundTruth(a).public_key).toBe(key);
    await advance(s, 30 * MIN, MIN);
    const theft = s.escrowRecords(a).filter((e) => e.payee.startsWith('drop-'));
    expect(theft.length).toBeGreaterThanOrEqual(1);
    expect(theft.every((e) => e.created_at >= from && e.created_at < to)).toBe(true);
    expect((await identity()).created_at).toBe(created);
  });

  it('budget_creep: daily spend passes 85 % then 97 % of the cap over hours, never the cap', async () => {
    const s = await quiet();
    const a = s.fleet[0] as string;
    const info = start(s, 'budget_creep', a, { daily_cap: 100 });
    await advance(s, 8 * HOUR, 10 * MIN);
    const d = info().truth?.details as { pct85_at: number; pct97_at: number };
    expect(d.pct85_at).toBeGreaterThan(MONDAY + 3 * HOUR);
    expect(d.pct85_at).toBeLessThanOrEqual(MONDAY + 4 * HOUR + 5 * MIN);
    expect(d.pct97_at).toBeGreaterThan(d.pct85_at + HOUR);
    expect(d.pct97_at).toBeLessThanOrEqual(MONDAY + 6 * HOUR + 5 * MIN);
    const budget = (await (
      await fetch(`${s.url}/v1/billing/wallets/${a}/budget`, {
        headers: { authorization: `Bearer ${s.keys.monitor}` },
      })
    ).json()) as { daily_spend?: number | string; daily_pct?: number };
    if (budget.daily_pct !== undefined) {
      expect(budget.daily_pct).toBeGreaterThanOrEqual(97);
      expect(budget.daily_pct).toBeLessThan(100);
    }
    expect(info().failures).toEqual({});
  });

  it.each([
    ['cascade_2', 2],
    ['cascade_3', 3],
  ] as const)('%s: %i agents start loops within a few minutes of each other', async (name, n) => {
    const s = await quiet();
    const info = start(s, name, s.fleet[1] as string);
    const truth = info().truth!;
    expect(truth.incident).toBe('cascade_failure');
    expect(truth.agents).toHaveLength(n);
    const starts = truth.details.loop_starts as number[];
    expect(starts[0]).toBe(info().onset_at);
    expect((starts.at(-1) as number) - (starts[0] as number)).toBeLessThanOrEqual((n - 1) * 4 * MIN);
    await advance(s, 20 * MIN, MIN);
    truth.agents.forEach((agent, i) => {
      const rows = s.escrowRecords(agent);
      expect(rows.length).toBeGreaterThan(100);
      expect(rows.every((e) => e.created_at >= (starts[i] as number))).toBe(true);
    });
    expect(sbTreasuryDraws(s, truth.agents)).toBe(true);
  });

  it('the control API starts a variant with its params and lists its onset', async () => {
    const s = await quiet();
    const res = await fetch(`${s.url}/_sandbox/scenarios`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.controlToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scenario: 'slow_loop', agent_id: s.fleet[0], rate_per_min: 6 }),
    });
    expect(res.status).toBe(201);
    const list = (await (
      await fetch(`${s.url}/_sandbox/scenarios`, { headers: { authorization: `Bearer ${s.controlToken}` } })
    ).json()) as { scenarios: { scenario: string; onset_at: number; params: Record<string, unknown> }[] };
    expect(list.scenarios[0]).toMatchObject({
      scenario: 'slow_loop',
      onset_at: MONDAY + 10_000,
      params: { rate_per_min: 6 },
    });
  });
});

/** Every cascading agent drew from the shared treasury. */
function sbTreasuryDraws(s: Sandbox, agents: readonly string[]): boolean {
  return agents.every((a) => Number(s.groundTruth(a).shared_wallet_draws) > 0);
}

describe('sandbox --traffic', () => {
  it('refuses an unknown traffic mode, and --traffic with --no-traffic, with exit 2', async () => {
    const { runSandboxCommand } = await import('../../src/sandbox/cli.js');
    const err: string[] = [];
    const io = { stdout: () => undefined, stderr: (x: string) => err.push(x) };
    expect(await runSandboxCommand(['--traffic', 'sleepy'], io)).toBe(2);
    expect(err[0]).toMatch(/--traffic: expected one of mixed, mixed_paths, steady, none/);
    expect(await runSandboxCommand(['--traffic', 'mixed', '--no-traffic'], io)).toBe(2);
  });
});
