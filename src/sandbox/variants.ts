/**
 * Incident variants: harder cases of the five incidents, for tuning and benchmarking detection against
 * the traffic corpus. Each records its onset (`info.onset_at`) and what a detector must report
 * (`info.truth`); docs/TRAFFIC.md lists their parameters and signatures.
 */
import {
  act,
  amountOf,
  HOUR,
  MIN,
  money,
  type Program,
  pick,
  rate,
  type ScenarioHost,
  type ScenarioInfo,
  topUp,
} from './program.js';
import { ensureSuppliers, logUniform, runProfile, suppliers } from './traffic.js';

export const VARIANTS = [
  'slow_loop',
  'jittered_loop',
  'multi_payee_loop',
  'busy_loop',
  'exploitation_above',
  'exploitation_below',
  'stolen_key',
  'key_swap_before_sight',
  'swap_and_restore',
  'budget_creep',
  'cascade_2',
  'cascade_3',
] as const;
export type VariantName = (typeof VARIANTS)[number];

const str = (v: unknown, d: string) => (typeof v === 'string' && v ? v : d);

/** Creates one escrow as `agentId`, topped up from the treasury first; the new escrow's id or undefined. */
function create(
  host: ScenarioHost,
  info: ScenarioInfo,
  agentId: string,
  payee: string,
  cents: number,
  description: string,
): string | undefined {
  topUp(host, agentId, cents + 1_000);
  const out = act(
    host,
    info,
    'create_escrow',
    { payer: agentId, payee, amount: amountOf(cents), description },
    agentId,
  ) as { id?: string } | undefined;
  return out?.id;
}

/** A retry loop from `from`: every `gap()` ms an escrow of `amount()` cents to `payee()`, never released. */
function retryLoop(
  host: ScenarioHost,
  info: ScenarioInfo,
  agentId: string,
  from: number,
  gap: () => number,
  amount: () => number,
  payee: () => string,
): void {
  const tick = (now: number) => {
    create(host, info, agentId, payee(), amount(), 'retry: upstream timeout');
    host.scheduler.at(now + gap(), info.id, tick);
  };
  host.scheduler.at(from, info.id, tick);
}

/** A fresh 32-byte public key, as hex, from the sandbox PRNG. */
function foreignKey(r: () => number): string {
  return Buffer.from(Array.from({ length: 32 }, () => Math.floor(r() * 256))).toString('hex');
}

/** A payee the agent has never paid: a new wallet (a thief's drop account). */
function dropAccount(host: ScenarioHost): string {
  const id = `drop-${Math.floor(host.random() * 0xffffff)
    .toString(16)
    .padStart(6, '0')}`;
  if (!host.world.agents.has(id)) {
    host.world.addAgent(id, { balance: 0 });
    host.world.issueKey(id, 'pro');
  }
  return id;
}

/**
 * Theft with the agent's own key: every 2–8 min (`rate_per_hour`, default 12) an odd amount, 2–5× the
 * largest the agent has paid before (at least $300), to a drop account never seen before, released to
 * itself by the drop 1–3 min later. Runs until `until` (ms, default forever).
 */
function theft(host: ScenarioHost, info: ScenarioInfo, from: number, until = Number.POSITIVE_INFINITY): void {
  const r = host.random;
  const a = info.agent_id;
  const perHour = rate(info.params.rate_per_hour, 12);
  let usualMax = 30_000;
  for (const e of host.world.escrowOrder) if (e.payer === a && e.amount > usualMax) usualMax = e.amount;
  const tick = (now: number) => {
    if (now >= until) return;
    const drop = dropAccount(host);
    const cents = Math.round(usualMax * (2 + r() * 3)) + 1 + Math.floor(r() * 98);
    const id = create(host, info, a, drop, cents, 'invoice');
    if (id)
      host.scheduler.at(now + (1 + r() * 2) * MIN, info.id, () =>
        act(host, info, 'release_escrow', { escrow_id: id }, drop),
      );
    host.scheduler.at(now + (0.5 + r()) * (HOUR / perHour), info.id, tick);
  };
  host.scheduler.at(from, info.id, tick);
}

/**
 * Escrows to one payee at an even pace of `perWindow` (min, max) per rolling 5 min, which holds in
 * every 5-min window, not just on average; the payee releases some to itself within 30 s and the
 * payer cancels `cancelRatio` of them after 60 s. Stops after `durationMs`.
 */
function exploit(
  host: ScenarioHost,
  info: ScenarioInfo,
  gapRange: [number, number],
  cancelRatio: number,
  durationMs: number,
): void {
  const r = host.random;
  const a = info.agent_id;
  const payee = str(info.params.payee, 'merchant-shady');
  const t0 = info.started_at;
  // A shuffled deck of 20 fates, so the cancelled share holds in every 20 escrows.
  let deck: boolean[] = [];
  const tick = (now: number) => {
    if (now - t0 > durationMs) return;
    if (!deck.length) {
      deck = Array.from({ length: 20 }, (_, i) => i < Math.round(cancelRatio * 20));
      for (let i = deck.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [deck[i], deck[j]] = [deck[j] as boolean, deck[i] as boolean];
      }
    }
    const cancel = deck.pop();
    const id = create(host, info, a, payee, logUniform(r, 20, 120), 'service deposit');
    if (id) {
      if (cancel)
        host.scheduler.at(now + MIN, info.id, () => act(host, info, 'cancel_escrow', { escrow_id: id }));
      else
        host.scheduler.at(now + 30_000, info.id, () =>
          act(host, info, 'release_escrow', { escrow_id: id }, payee),
        );
    }
    host.scheduler.at(now + gapRange[0] + r() * (gapRange[1] - gapRange[0]), info.id, tick);
  };
  info.onset_at = t0 + 10_000;
  host.scheduler.at(info.onset_at, info.id, tick);
}

/** Loops on this agent and the next `n - 1` fleet agents, each starting 1–4 min after the one before. */
function cascade(host: ScenarioHost, info: ScenarioInfo, n: number): void {
  const r = host.random;
  const i = host.fleet.indexOf(info.agent_id);
  const agents = [info.agent_id];
  for (let k = 1; agents.length < n && k < host.fleet.length; k++)
    agents.push(host.fleet[(i + k) % host.fleet.length] as string);
  const perMin = rate(info.params.rate_per_min, 20);
  const cents = money(info.params.amount, 4_000);
  const payee = str(info.params.payee, 'vendor-flaky');
  let at = info.started_at + MIN;
  const starts: number[] = [];
  for (const a of agents) {
    starts.push(at);
    retryLoop(
      host,
      info,
      a,
      at,
      () => MIN / perMin,
      () => cents,
      () => payee,
    );
    at += Math.round((1 + r() * 3) * MIN);
  }
  info.onset_at = starts[0] as number;
  info.truth = { incident: 'cascade_failure', agents, details: { loop_starts: starts } };
}

export const VARIANT_PROGRAMS: Record<VariantName, Program> = {
  /** 3/min (`rate_per_min`) of one amount (`amount`, default 42) to one payee. */
  slow_loop(host, info) {
    const a = info.agent_id;
    const cents = money(info.params.amount, 4_200);
    const payee = str(info.params.payee, 'vendor-flaky');
    const every = MIN / rate(info.params.rate_per_min, 3);
    info.onset_at = info.started_at + every;
    info.truth = { incident: 'runaway_spending', agents: [a], details: { payee, amount_cents: cents } };
    retryLoop(
      host,
      info,
      a,
      info.onset_at,
      () => every,
      () => cents,
      () => payee,
    );
  },

  /** ~6/min (`rate_per_min`), intervals ±50 %, amounts ±10 % around `amount` (default 80), one payee. */
  jittered_loop(host, info) {
    const r = host.random;
    const a = info.agent_id;
    const base = money(info.params.amount, 8_000);
    const payee = str(info.params.payee, 'vendor-flaky');
    const every = MIN / rate(info.params.rate_per_min, 6);
    info.onset_at = info.started_at + every;
    info.truth = { incident: 'runaway_spending', agents: [a], details: { payee } };
    retryLoop(
      host,
      info,
      a,
      info.onset_at,
      () => every * (0.5 + r()),
      () => Math.round(base * (0.9 + r() * 0.2)),
      () => payee,
    );
  },

  /** 12/min (`rate_per_min`) of one amount, rotating over `payees` (3–5, default 4) suppliers in turn. */
  multi_payee_loop(host, info) {
    ensureSuppliers(host);
    const r = host.random;
    const a = info.agent_id;
    const n = Math.min(5, Math.max(3, Math.round(rate(info.params.payees, 4))));
    const start = Math.floor(r() * suppliers.length);
    const payees = Array.from(
      { length: n },
      (_, k) => suppliers[(start + 11 * k) % suppliers.length] as string,
    );
    const cents = money(info.params.amount, 6_000);
    const every = MIN / rate(info.params.rate_per_min, 12);
    let k = 0;
    info.onset_at = info.started_at + every;
    info.truth = { incident: 'runaway_spending', agents: [a], details: { payees } };
    retryLoop(
      host,
      info,
      a,
      info.onset_at,
      () => every,
      () => cents,
      () => payees[k++ % n] as string,
    );
  },

  /**
   * The `busy` profile from the start (unless `with_busy` is false, for an agent already running it),
   * and a loop of 10/min (`rate_per_min`) × `amount` (default 150) to one payee after `loop_after_ms`
   * (default 30 min).
   */
  busy_loop(host, info) {
    const a = info.agent_id;
    if (info.params.with_busy !== false) runProfile(host, info, 'busy', info.started_at);
    const after = typeof info.params.loop_after_ms === 'number' ? info.params.loop_after_ms : 30 * MIN;
    const cents = money(info.params.amount, 15_000);
    const payee = str(info.params.payee, 'vendor-flaky');
    const every = MIN / rate(info.params.rate_per_min, 10);
    info.onset_at = info.started_at + after;
    info.truth = { incident: 'runaway_spending', agents: [a], details: { payee, amount_cents: cents } };
    retryLoop(
      host,
      info,
      a,
      info.onset_at,
      () => every,
      () => cents,
      () => payee,
    );
  },

  /** 11–12 escrows per rolling 5 min to one payee, which releases 70 % to itself; runs until stopped. */
  exploitation_above(host, info) {
    info.truth = { incident: 'escrow_exploitation', agents: [info.agent_id], details: {} };
    exploit(host, info, [25_500, 27_000], 0.3, Number.POSITIVE_INFINITY);
  },

  /**
   * 8–9 escrows per rolling 5 min to one payee for `duration_ms` (default 1 h); 60 % (`cancel_ratio`,
   * 0.55–0.65) cancelled by the payer, the rest released by the payee to itself.
   */
  exploitation_below(host, info) {
    const ratio = Math.min(0.65, Math.max(0.55, rate(info.params.cancel_ratio, 0.6)));
    const duration = typeof info.params.duration_ms === 'number' ? info.params.duration_ms : HOUR;
    info.truth = {
      incident: 'escrow_exploitation',
      agents: [info.agent_id],
      details: { cancel_ratio: ratio },
    };
    exploit(host, info, [34_000, 37_000], ratio, duration);
  },

  /** Same identity and key; a thief spends to new payees from `start_after_ms` (default 1 min). */
  stolen_key(host, info) {
    const after = typeof info.params.start_after_ms === 'number' ? info.params.start_after_ms : MIN;
    info.onset_at = info.started_at + after;
    info.truth = { incident: 'identity_compromise', agents: [info.agent_id], details: {} };
    theft(host, info, info.onset_at);
  },

  /** The registered public key replaced at once (before any monitor has read it), then theft. */
  key_swap_before_sight(host, info) {
    const a = info.agent_id;
    const original = host.world.agents.get(a)?.publicKey ?? null;
    const swapped = foreignKey(host.random);
    act(host, info, 'register_agent', { agent_id: a, public_key: swapped });
    info.onset_at = info.started_at;
    info.truth = {
      incident: 'identity_compromise',
      agents: [a],
      details: { original_key: original, swapped_key: swapped },
    };
    theft(host, info, info.started_at + MIN);
  },

  /**
   * At +1 min the public key is swapped, theft runs for `window_ms` (default 5 min), then the original
   * key is restored; the identity's created_at never changes, so only the spending is left.
   */
  swap_and_restore(host, info) {
    const a = info.agent_id;
    const original = host.world.agents.get(a)?.publicKey ?? null;
    const swapped = foreignKey(host.random);
    const window = typeof info.params.window_ms === 'number' ? info.params.window_ms : 5 * MIN;
    const from = info.started_at + MIN;
    info.onset_at = from;
    info.truth = {
      incident: 'identity_compromise',
      agents: [a],
      details: { original_key: original, swapped_key: swapped, window: [from, from + window] },
    };
    host.scheduler.at(from, info.id, () =>
      act(host, info, 'register_agent', { agent_id: a, public_key: swapped }),
    );
    theft(host, info, from + 5_000, from + window);
    if (original)
      host.scheduler.at(from + window, info.id, () =>
        act(host, info, 'register_agent', { agent_id: a, public_key: original }),
      );
  },

  /**
   * The agent's daily spend (fees in the rolling 24 h) climbs to 85 % of its daily cap by `hours_to_85`
   * (default 4 h) and to 97 % by `hours_to_97` (default 6 h), then holds there. Orders of $100–$600 to
   * its suppliers, released 5–30 min later. `daily_cap` (CREDITS) sets the cap first when given.
   */
  budget_creep(host, info) {
    ensureSuppliers(host);
    const r = host.random;
    const a = info.agent_id;
    const w = host.world;
    if (typeof info.params.daily_cap === 'number')
      act(host, info, 'set_budget_cap', {
        agent_id: a,
        daily_cap: info.params.daily_cap,
        monthly_cap: (w.wallets.get(a)?.monthlyCap ?? 2_000_000) / 100,
      });
    const t0 = info.started_at;
    const to85 = rate(info.params.hours_to_85, 4) * HOUR;
    const to97 = Math.max(to85 + MIN, rate(info.params.hours_to_97, 6) * HOUR);
    const details: Record<string, unknown> = { pct85_at: null, pct97_at: null };
    info.onset_at = t0;
    info.truth = { incident: 'runaway_spending', agents: [a], details };
    const target = (t: number) => {
      const x = t - t0;
      return x <= to85 ? (0.85 * x) / to85 : Math.min(0.97, 0.85 + (0.12 * (x - to85)) / (to97 - to85));
    };
    const tick = (now: number) => {
      const cap = w.wallets.get(a)?.dailyCap ?? null;
      if (cap === null || cap <= 0) return;
      for (let n = 0; n < 50 && w.spend(a, 24 * HOUR) < target(now) * cap; n++) {
        const fee = cap * target(now) - w.spend(a, 24 * HOUR);
        // Fee is 1.5 % of the amount, at most $10: size the order to the fee still to spend.
        const cents = Math.max(1_000, Math.min(60_000, Math.round(fee / 0.015), logUniform(r, 100, 600)));
        const payee = pick(r, suppliers);
        const id = create(host, info, a, payee, cents, 'order');
        if (!id) break;
        host.scheduler.at(now + (5 + r() * 25) * MIN, info.id, () =>
          act(host, info, 'release_escrow', { escrow_id: id }, payee),
        );
      }
      const pct = w.spend(a, 24 * HOUR) / cap;
      if (pct >= 0.85) details.pct85_at ??= now;
      if (pct >= 0.97 - 0.005) details.pct97_at ??= now;
      host.scheduler.at(now + 2 * MIN, info.id, tick);
    };
    host.scheduler.at(t0, info.id, tick);
  },

  /** Loops (20/min × $40 to vendor-flaky) on this agent and the next fleet agent, 1–4 min apart. */
  cascade_2(host, info) {
    cascade(host, info, 2);
  },

  /** As cascade_2 with three agents. */
  cascade_3(host, info) {
    cascade(host, info, 3);
  },
};
