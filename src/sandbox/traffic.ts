/**
 * Normal traffic as real fleets show it: the profiles `normal_traffic` runs with `params.profile`, and
 * `assignFleet`, which gives a fleet a mix of them. Everything draws from the sandbox's seeded PRNG and
 * runs on its clock. docs/TRAFFIC.md lists each profile's rates, amounts and fates.
 *
 * Profiles pay a pool of suppliers (`supplier-000`…); what the suppliers receive is swept back into the
 * shared treasury every 10 min (the fleet's revenue), so a multi-day corpus does not drain it.
 */
import {
  act,
  amountOf,
  DAY,
  HOUR,
  MIN,
  pick,
  type ScenarioHost,
  type ScenarioInfo,
  topUp,
} from './program.js';
import { prng } from './world.js';

export const PROFILES = [
  'steady',
  'diurnal',
  'batch_buyer',
  'busy',
  'payout',
  'new_agent',
  'canceller',
  'multi_path',
] as const;
export type Profile = (typeof PROFILES)[number];

export const SUPPLIER_COUNT = 80;
const SUPPLIER_FLOAT = 50_000;
export const suppliers = Array.from(
  { length: SUPPLIER_COUNT },
  (_, i) => `supplier-${String(i).padStart(3, '0')}`,
);

const swept = new WeakSet<ScenarioHost['world']>();

/** Creates the supplier wallets once per world and starts the sweep into the treasury. */
export function ensureSuppliers(host: ScenarioHost): void {
  const w = host.world;
  if (swept.has(w)) return;
  swept.add(w);
  for (const s of suppliers)
    if (!w.agents.has(s)) {
      w.addAgent(s, { balance: SUPPLIER_FLOAT });
      w.issueKey(s, 'pro');
    }
  const sweep = (now: number) => {
    const t = host.treasury ? w.wallets.get(host.treasury) : undefined;
    if (t && !t.frozen)
      for (const s of suppliers) {
        const wallet = w.wallets.get(s);
        if (!wallet || wallet.frozen || wallet.balance <= SUPPLIER_FLOAT) continue;
        const cents = wallet.balance - SUPPLIER_FLOAT;
        w.debit(s, cents, 'withdrawal', `revenue to ${t.agentId}`);
        w.credit(t.agentId, cents, 'deposit', `revenue from ${s}`);
      }
    host.scheduler.at(now + 10 * MIN, 'traffic-sweep', sweep);
  };
  host.scheduler.at(w.clock.now() + 10 * MIN, 'traffic-sweep', sweep);
}

/** Cents, log-uniform between two CREDITS amounts: many small orders, a few large. */
export function logUniform(r: () => number, lo: number, hi: number): number {
  return Math.round(Math.exp(Math.log(lo * 100) + r() * (Math.log(hi * 100) - Math.log(lo * 100))));
}

const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);

/** The agent's local hour (0–24) at sandbox time `t`. */
export function localHour(t: number, tzOffsetH: number): number {
  return ((((t + tzOffsetH * HOUR) % DAY) + DAY) % DAY) / HOUR;
}

/** Relative order rate by local hour: near zero at night, flat in working hours (09–18). */
const DAY_CURVE = [
  0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.15, 0.4, 0.75, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.7, 0.5, 0.35, 0.2, 0.1,
  0.05,
];
const CURVE_SUM = DAY_CURVE.reduce((a, b) => a + b, 0);
export const dayWeight = (t: number, tz: number) => DAY_CURVE[Math.floor(localHour(t, tz))] as number;

type Fate = { kind: 'release' | 'cancel' | 'hold'; afterMs: number };

/** One order: tops up from the treasury, creates the escrow, and schedules its release or cancel. */
function order(
  host: ScenarioHost,
  info: ScenarioInfo,
  now: number,
  payee: string,
  cents: number,
  description: string,
  fate: Fate,
): void {
  const a = info.agent_id;
  topUp(host, a, cents + 30_000);
  const created = act(host, info, 'create_escrow', {
    payer: a,
    payee,
    amount: amountOf(cents),
    description,
  }) as { id?: string } | undefined;
  if (!created?.id || fate.kind === 'hold') return;
  const id = created.id;
  if (fate.kind === 'release')
    host.scheduler.at(now + fate.afterMs, info.id, () =>
      act(host, info, 'release_escrow', { escrow_id: id }, payee),
    );
  else
    host.scheduler.at(now + fate.afterMs, info.id, () => act(host, info, 'cancel_escrow', { escrow_id: id }));
}

/** Healthy quality metrics and a reputation that wanders a little, every 20–60 min. */
function health(host: ScenarioHost, info: ScenarioInfo, from: number): void {
  const r = host.random;
  const a = info.agent_id;
  const tick = (now: number) => {
    host.engine.ingest(a, { success_rate: 0.95 + r() * 0.04, latency_ms: 120 + r() * 60 }, 'self_reported');
    const rep = host.world.agents.get(a)?.reputation;
    if (rep && rep.composite_score > 0)
      rep.composite_score = Math.min(0.99, Math.max(0.5, rep.composite_score * (1 + (r() - 0.5) * 0.004)));
    host.scheduler.at(now + (20 + r() * 40) * MIN, info.id, tick);
  };
  host.scheduler.at(from + r() * 20 * MIN, info.id, tick);
}

/** The agent's usual vendors: a few suppliers it buys from, and a peer now and then. */
function usualPayees(host: ScenarioHost, a: string, n: number): () => string {
  const r = host.random;
  const start = Math.floor(r() * SUPPLIER_COUNT);
  const mine = Array.from({ length: n }, (_, i) => suppliers[(start + i * 7) % SUPPLIER_COUNT] as string);
  const peers = host.fleet.filter((x) => x !== a);
  return () => (r() < 0.25 && peers.length ? pick(r, peers) : pick(r, mine));
}

/** An ordinary order's fate: mostly released within the hour, a few cancelled, a few left held. */
function ordinaryFate(r: () => number, cancelShare = 0.05): Fate {
  const x = r();
  if (x < cancelShare) return { kind: 'cancel', afterMs: (1 + r() * 14) * MIN };
  if (x < 0.98) return { kind: 'release', afterMs: (5 + r() * 55) * MIN };
  return { kind: 'hold', afterMs: 0 };
}

/**
 * Poisson arrivals whose rate follows `rateAt(t)` (per hour), up to `peakPerHour`, by thinning: candidates
 * at the peak rate, each kept with probability rateAt/peak.
 */
function arrivals(
  host: ScenarioHost,
  info: ScenarioInfo,
  from: number,
  peakPerHour: number,
  rateAt: (t: number) => number,
  fire: (now: number) => void,
): void {
  const r = host.random;
  const gap = () => -Math.log(1 - r()) * (HOUR / peakPerHour);
  const tick = (now: number) => {
    if (r() * peakPerHour < rateAt(now)) fire(now);
    host.scheduler.at(now + gap(), info.id, tick);
  };
  host.scheduler.at(from + gap(), info.id, tick);
}

/** `orders_per_day` (default `perDay`) arrivals on the day curve in the agent's time zone (`tz_offset_h`). */
function onDayCurve(
  host: ScenarioHost,
  info: ScenarioInfo,
  from: number,
  p: Record<string, unknown>,
  perDay: number,
  fire: (now: number) => void,
): void {
  const tz = num(p.tz_offset_h, 0);
  const peak = num(p.orders_per_day, perDay) / CURVE_SUM;
  arrivals(host, info, from, peak, (t) => peak * dayWeight(t, tz), fire);
}

/** Orders following the day curve in the agent's time zone; `orders_per_day` on average (3–20). */
function diurnal(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const perDay = 3 + Math.floor(r() * 18);
  const payee = usualPayees(host, info.agent_id, 4 + Math.floor(r() * 5));
  onDayCurve(host, info, from, p, perDay, (now) =>
    order(host, info, now, payee(), logUniform(r, 5, 250), 'order', ordinaryFate(r)),
  );
}

/**
 * Mostly quiet (0.2 orders/h), and `batches_per_day` (default 3) purchase batches in local working
 * hours 08–20: 6–20 orders within 2–4 min to 2–5 vendors, released 20–180 min later.
 */
function batchBuyer(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const tz = num(p.tz_offset_h, 0);
  const perDay = Math.max(1, Math.round(num(p.batches_per_day, 3)));
  const payee = usualPayees(host, info.agent_id, 6);
  arrivals(
    host,
    info,
    from,
    0.2,
    () => 0.2,
    (now) => order(host, info, now, payee(), logUniform(r, 5, 150), 'order', ordinaryFate(r)),
  );
  const batch = (now: number) => {
    const n = 6 + Math.floor(r() * 15);
    const span = (2 + r() * 2) * MIN;
    const vendors = Array.from({ length: 2 + Math.floor(r() * 4) }, () => pick(r, suppliers));
    const offsets = Array.from({ length: n }, (_, i) => (i === 0 ? 0 : r() * span)).sort((x, y) => x - y);
    for (const off of offsets)
      host.scheduler.at(now + off, info.id, (t) => {
        const fate: Fate =
          r() < 0.03
            ? { kind: 'cancel', afterMs: (2 + r() * 10) * MIN }
            : { kind: 'release', afterMs: (20 + r() * 160) * MIN };
        order(host, info, t, pick(r, vendors), logUniform(r, 10, 400), 'restock order', fate);
      });
  };
  // Each local day 08–20 is cut into one slot per batch; a batch starts in the first 70 % of its slot,
  // so two batches are always more than 30 min apart.
  const planDay = (localMidnight: number) => {
    const slot = (12 * HOUR) / perDay;
    for (let i = 0; i < perDay; i++) {
      const at = localMidnight + 8 * HOUR + i * slot + r() * 0.7 * slot;
      if (at >= from) host.scheduler.at(at, info.id, batch);
    }
    host.scheduler.at(localMidnight + DAY, info.id, planDay);
  };
  planDay(from - localHour(from, tz) * HOUR);
}

/**
 * ~20 escrows/min (`per_min`), the rate drifting ±20 % every 10 min, to the whole supplier pool (80
 * payees); released by the payee 1–3 min later (1 % cancelled). Its operator raises its caps first: 20/min
 * of $0.50–$25 costs ~$2,700/day in fees, over the fleet's default $1,000 daily cap.
 */
function busy(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const a = info.agent_id;
  const perMin = num(p.per_min, 20);
  act(host, info, 'set_budget_cap', { agent_id: a, daily_cap: 10_000, monthly_cap: 200_000 });
  let factor = 1;
  const drift = (now: number) => {
    factor = 0.8 + r() * 0.4;
    host.scheduler.at(now + 10 * MIN, info.id, drift);
  };
  drift(from);
  arrivals(
    host,
    info,
    from,
    perMin * 60 * 1.2,
    () => perMin * 60 * factor,
    (now) =>
      order(host, info, now, pick(r, suppliers), logUniform(r, 0.5, 25), 'api purchase', {
        kind: r() < 0.01 ? 'cancel' : 'release',
        afterMs: (1 + r() * 2) * MIN,
      }),
  );
}

/**
 * Light traffic (0.5 orders/h) and a payout batch: `payees` (60) escrows in 10 min, one to each of 60
 * distinct suppliers, $20–$300, released 5–120 min later. First at `payout_at_ms` after the start when
 * given, else the next `payout_weekday` (0 = Sunday; default 5) at `payout_hour` local (default 16);
 * then weekly.
 */
function payout(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const tz = num(p.tz_offset_h, 0);
  const n = Math.min(SUPPLIER_COUNT, Math.max(1, Math.round(num(p.payees, 60))));
  const payee = usualPayees(host, info.agent_id, 4);
  arrivals(
    host,
    info,
    from,
    0.5,
    () => 0.5,
    (now) => order(host, info, now, payee(), logUniform(r, 5, 150), 'order', ordinaryFate(r)),
  );
  const run = (now: number) => {
    const start = Math.floor(r() * SUPPLIER_COUNT);
    for (let i = 0; i < n; i++) {
      const to = suppliers[(start + i) % SUPPLIER_COUNT] as string;
      host.scheduler.at(now + (i + r() * 0.9) * ((10 * MIN) / n), info.id, (t) =>
        order(host, info, t, to, logUniform(r, 20, 300), 'weekly payout', {
          kind: 'release',
          afterMs: (5 + r() * 115) * MIN,
        }),
      );
    }
    host.scheduler.at(now + 7 * DAY, info.id, run);
  };
  let first: number;
  if (typeof p.payout_at_ms === 'number') first = from + Math.max(0, p.payout_at_ms);
  else {
    const localNow = from + tz * HOUR;
    const weekday = (Math.floor(localNow / DAY) + 4) % 7; // 1970-01-01 was a Thursday
    const days = (num(p.payout_weekday, 5) - weekday + 7) % 7;
    first = from - localHour(from, tz) * HOUR + days * DAY + num(p.payout_hour, 16) * HOUR;
    if (first < from) first += 7 * DAY;
  }
  host.scheduler.at(first, info.id, run);
}

/**
 * Like `steady`, but `cancel_ratio` (default 0.35) of orders are cancelled 1–10 min after creation,
 * dealt from a shuffled deck of 20 so every 20 orders hold exactly that share.
 */
function canceller(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const perHour = num(p.orders_per_hour, 3);
  const cancels = Math.round(Math.min(1, Math.max(0, num(p.cancel_ratio, 0.35))) * 20);
  const payee = usualPayees(host, info.agent_id, 6);
  let deck: boolean[] = [];
  arrivals(
    host,
    info,
    from,
    perHour,
    () => perHour,
    (now) => {
      if (!deck.length) {
        deck = Array.from({ length: 20 }, (_, i) => i < cancels);
        for (let i = deck.length - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [deck[i], deck[j]] = [deck[j] as boolean, deck[i] as boolean];
        }
      }
      const fate: Fate = deck.pop()
        ? { kind: 'cancel', afterMs: (1 + r() * 9) * MIN }
        : { kind: 'release', afterMs: (5 + r() * 55) * MIN };
      order(host, info, now, payee(), logUniform(r, 5, 250), 'order', fate);
    },
  );
}

/**
 * No history until `join_at_ms` after the start (default 6 h): then its identity and key are new
 * (created_at = the join) and it behaves as profile `becomes` (default diurnal) with the same params.
 */
function newAgent(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const joinAt = from + Math.max(0, num(p.join_at_ms, 6 * HOUR));
  const then = typeof p.becomes === 'string' && p.becomes !== 'new_agent' ? p.becomes : 'diurnal';
  host.scheduler.at(joinAt, info.id, (now) => {
    const agent = host.world.agents.get(info.agent_id);
    if (agent) agent.createdAt = now;
    for (const k of host.world.keys.values()) if (k.agentId === info.agent_id) k.createdAt = now;
    runProfile(host, info, then, now);
  });
}

/**
 * An agent that pays on every path the gateway has (`orders_per_day` on the day curve, 6–20): 40 % of its
 * orders as escrows (ordinary fates), 35 % as intents captured at once, 15 % as intents captured 5–60 min
 * later, 5 % as intents voided after 1–20 min, 5 % as a split between 2–3 of its usual payees. It keeps
 * 2–5 daily or weekly subscriptions ($5–$50) from the start, opens one more and cancels its oldest every
 * 24–48 h, and withdraws its profit ($50–$400) once a local day, between 17:00 and 19:00.
 */
function multiPath(host: ScenarioHost, info: ScenarioInfo, from: number, p: Record<string, unknown>): void {
  const r = host.random;
  const a = info.agent_id;
  const tz = num(p.tz_offset_h, 0);
  const perDay = 6 + Math.floor(r() * 15);
  const payee = usualPayees(host, a, 4 + Math.floor(r() * 4));
  const later = (now: number, ms: number, tool: 'capture_intent' | 'refund_intent', id: string) =>
    host.scheduler.at(now + ms, info.id, () => act(host, info, tool, { intent_id: id }));
  onDayCurve(host, info, from, p, perDay, (now) => {
    const cents = logUniform(r, 5, 250);
    const x = r();
    if (x < 0.4) return order(host, info, now, payee(), cents, 'order', ordinaryFate(r));
    topUp(host, a, cents + 30_000);
    if (x < 0.95) {
      const created = act(host, info, 'create_intent', {
        payer: a,
        payee: payee(),
        amount: amountOf(cents),
        description: 'order',
      }) as { id?: string } | undefined;
      if (!created?.id) return;
      if (x < 0.75) act(host, info, 'capture_intent', { intent_id: created.id });
      else if (x < 0.9) later(now, (5 + r() * 55) * MIN, 'capture_intent', created.id);
      else later(now, (1 + r() * 19) * MIN, 'refund_intent', created.id);
      return;
    }
    const to = [...new Set([payee(), payee(), payee()])].slice(0, 2 + Math.floor(r() * 2));
    act(host, info, 'create_split_intent', {
      payer: a,
      amount: amountOf(cents),
      description: 'revenue share',
      splits: to.map((x, i) => ({
        payee: x,
        percentage:
          i === to.length - 1
            ? 100 - Math.floor(100 / to.length) * (to.length - 1)
            : Math.floor(100 / to.length),
      })),
    });
  });
  const subscribe = () => {
    const cents = logUniform(r, 5, 50);
    topUp(host, a, cents * 10);
    return (
      act(host, info, 'create_subscription', {
        payer: a,
        payee: payee(),
        amount: amountOf(cents),
        interval: r() < 0.5 ? 'daily' : 'weekly',
        description: 'plan',
      }) as { id?: string } | undefined
    )?.id;
  };
  const subs: string[] = [];
  host.scheduler.at(from + r() * 10 * MIN, info.id, () => {
    for (let i = 2 + Math.floor(r() * 4); i > 0; i--) {
      const id = subscribe();
      if (id) subs.push(id);
    }
  });
  const churn = (now: number) => {
    const id = subscribe();
    if (id) subs.push(id);
    const oldest = subs.shift();
    if (oldest) act(host, info, 'cancel_subscription', { subscription_id: oldest });
    host.scheduler.at(now + (24 + r() * 24) * HOUR, info.id, churn);
  };
  host.scheduler.at(from + (24 + r() * 24) * HOUR, info.id, churn);
  const payoutDay = (localMidnight: number) => {
    const at = localMidnight + (17 + r() * 2) * HOUR;
    if (at >= from)
      host.scheduler.at(at, info.id, () => {
        const cents = logUniform(r, 50, 400);
        topUp(host, a, cents + 30_000);
        act(host, info, 'withdraw', { agent_id: a, amount: amountOf(cents), description: 'profit to owner' });
      });
    host.scheduler.at(localMidnight + DAY, info.id, payoutDay);
  };
  payoutDay(from - localHour(from, tz) * HOUR);
}

const RUNNERS: Record<Exclude<Profile, 'steady'>, typeof diurnal> = {
  diurnal,
  batch_buyer: batchBuyer,
  busy,
  payout,
  new_agent: newAgent,
  canceller,
  multi_path: multiPath,
};

/** Starts `profile` for the agent at `from`; false for an unknown or `steady` profile (the caller's). */
export function runProfile(host: ScenarioHost, info: ScenarioInfo, profile: string, from: number): boolean {
  const run = RUNNERS[profile as keyof typeof RUNNERS];
  if (!run) return false;
  ensureSuppliers(host);
  run(host, info, from, info.params);
  if (profile !== 'new_agent') health(host, info, from);
  return true;
}

/** One agent's part in a mixed fleet: the profile and params to start `normal_traffic` with. */
export interface FleetAssignment {
  agent_id: string;
  params: Record<string, unknown> & { profile: Profile; tz_offset_h: number };
}

/**
 * Shares of each profile in a mixed fleet. Largest-remainder rounding, and a fleet of 7 or more gets at
 * least one of each.
 */
export const MIX: Readonly<Record<Profile, number>> = {
  diurnal: 0.4,
  batch_buyer: 0.15,
  canceller: 0.12,
  payout: 0.1,
  new_agent: 0.1,
  busy: 0.05,
  steady: 0.08,
  // Only in MIX_PATHS: the corpus the escrow-only results were measured on stays as it was.
  multi_path: 0,
};

/** A fleet that pays on every path: half of it multi_path, the rest in MIX's proportions. */
export const MIX_PATHS: Readonly<Record<Profile, number>> = Object.fromEntries(
  PROFILES.map((p) => [p, p === 'multi_path' ? 0.5 : MIX[p] / 2]),
) as Record<Profile, number>;

/** Time zones of the fleet's operators, UTC offsets in hours. */
const ZONES = [-8, -7, -5, -3, 0, 1, 2, 3, 5.5, 8, 9, 10];

/**
 * A mixed fleet: each agent gets a profile (in the MIX shares, shuffled by `seed`), a time zone and the
 * profile's params. Pure: the same fleet and seed always give the same assignment. A payout agent's
 * batch falls 2–60 h after the start, so a 3-day corpus holds one; a new agent joins 2–48 h in.
 */
export function assignFleet(
  fleet: readonly string[],
  seed: number,
  mix: Readonly<Record<Profile, number>> = MIX,
): FleetAssignment[] {
  const r = prng(seed ^ 0x5eed);
  const n = fleet.length;
  const mixed = PROFILES.filter((p) => mix[p] > 0);
  const exact = mixed.map((p) => ({ p, x: mix[p] * n }));
  const counts = new Map(exact.map(({ p, x }) => [p, Math.floor(x)]));
  if (n >= mixed.length) for (const p of mixed) counts.set(p, Math.max(1, counts.get(p) ?? 0));
  let total = [...counts.values()].reduce((a, b) => a + b, 0);
  const byRemainder = [...exact].sort((a, b) => b.x - Math.floor(b.x) - (a.x - Math.floor(a.x)));
  for (let i = 0; total < n; i++, total++) {
    const p = (byRemainder[i % byRemainder.length] as { p: Profile }).p;
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  while (total > n) {
    const most = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] as [Profile, number];
    counts.set(most[0], most[1] - 1);
    total--;
  }
  const profiles = mixed.flatMap((p) => Array.from({ length: counts.get(p) ?? 0 }, () => p));
  for (let i = profiles.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [profiles[i], profiles[j]] = [profiles[j] as Profile, profiles[i] as Profile];
  }
  return fleet.map((agent_id, i) => {
    const profile = profiles[i] as Profile;
    const params: FleetAssignment['params'] = { profile, tz_offset_h: pick(r, ZONES) };
    if (profile === 'diurnal') params.orders_per_day = 3 + Math.floor(r() * 18);
    if (profile === 'multi_path') params.orders_per_day = 6 + Math.floor(r() * 15);
    if (profile === 'batch_buyer') params.batches_per_day = 2 + Math.floor(r() * 3);
    if (profile === 'canceller') params.cancel_ratio = 0.3 + r() * 0.1;
    if (profile === 'payout') params.payout_at_ms = Math.round((2 + r() * 58) * HOUR);
    if (profile === 'new_agent') {
      params.join_at_ms = Math.round((2 + r() * 46) * HOUR);
      params.becomes = pick(r, ['diurnal', 'diurnal', 'batch_buyer', 'canceller', 'busy'] as const);
      if (params.becomes === 'diurnal') params.orders_per_day = 3 + Math.floor(r() * 18);
    }
    return { agent_id, params };
  });
}
