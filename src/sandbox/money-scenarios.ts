/**
 * Incidents on the money paths beyond escrows, each acting through `Engine.dispatch` with the agent's own
 * key (so a freeze, a cap or an empty wallet stops it exactly as on the real gateway):
 *
 * - `intent_loop`: a retry loop creating payment intents to one payee, capturing a share of them at once
 *   and leaving the rest pending (capturable the moment the wallet is unfrozen).
 * - `split_loop`: a retry loop of split payments; each moves the money at once, nothing stays to void.
 * - `subscription_storm`: new recurring subscriptions, one after another; the gateway's scheduler charges
 *   each every interval.
 * - `stolen_key_drain`: whoever holds the key takes the money out: converts CREDITS to another currency
 *   and withdraws it, in steps.
 *
 * Each records its onset and what a detector must report (`info.truth`, with `details.path` naming the
 * money path); docs/TRAFFIC.md lists their parameters.
 */
import {
  act,
  amountOf,
  MIN,
  money,
  type Program,
  rate,
  type ScenarioHost,
  type ScenarioInfo,
  topUp,
} from './program.js';

export const MONEY_SCENARIOS = [
  'intent_loop',
  'split_loop',
  'subscription_storm',
  'stolen_key_drain',
] as const;
export type MoneyScenarioName = (typeof MONEY_SCENARIOS)[number];

const str = (v: unknown, d: string) => (typeof v === 'string' && v ? v : d);
const ratio = (v: unknown, d: number) => (typeof v === 'number' && v >= 0 && v <= 1 ? v : d);

/** Every `MIN / perMin` ms from now, `tick` runs as the scenario (until stopped or a freeze stops it). */
function every(host: ScenarioHost, info: ScenarioInfo, perMin: number, tick: (now: number) => void): void {
  const gap = MIN / perMin;
  const run = (now: number) => {
    tick(now);
    host.scheduler.at(now + gap, info.id, run);
  };
  info.onset_at = host.world.clock.now() + gap;
  host.scheduler.at(info.onset_at, info.id, run);
}

export const MONEY_PROGRAMS: Record<MoneyScenarioName, Program> = {
  intent_loop(host, info) {
    const a = info.agent_id;
    const payee = str(info.params.payee, 'vendor-flaky');
    const cents = money(info.params.amount, 5_000);
    const captureRatio = ratio(info.params.capture_ratio, 0.5);
    info.truth = { incident: 'runaway_spending', agents: [a], details: { path: 'intents', payee } };
    every(host, info, rate(info.params.rate_per_min, 30), () => {
      topUp(host, a, cents + 1_000);
      const created = act(host, info, 'create_intent', {
        payer: a,
        payee,
        amount: amountOf(cents),
        description: 'retry: upstream timeout',
      }) as { id?: string } | undefined;
      if (created?.id && host.random() < captureRatio)
        act(host, info, 'capture_intent', { intent_id: created.id });
    });
  },

  split_loop(host, info) {
    const a = info.agent_id;
    const payees = Array.isArray(info.params.payees)
      ? (info.params.payees as unknown[]).map(String)
      : ['vendor-flaky', host.counterparties[0] ?? 'vendor-01'];
    const cents = money(info.params.amount, 10_000);
    const share = 100 / payees.length;
    info.truth = { incident: 'runaway_spending', agents: [a], details: { path: 'splits', payees } };
    every(host, info, rate(info.params.rate_per_min, 20), () => {
      topUp(host, a, cents + 1_000);
      act(host, info, 'create_split_intent', {
        payer: a,
        amount: amountOf(cents),
        splits: payees.map((payee) => ({ payee, percentage: share })),
        description: 'retry: revenue share',
      });
    });
  },

  subscription_storm(host, info) {
    const a = info.agent_id;
    const payee = str(info.params.payee, 'vendor-flaky');
    const cents = money(info.params.amount, 500);
    const interval = str(info.params.interval, 'hourly');
    info.truth = { incident: 'runaway_spending', agents: [a], details: { path: 'subscriptions', payee } };
    every(host, info, rate(info.params.rate_per_min, 10), () => {
      topUp(host, a, cents * 10);
      act(host, info, 'create_subscription', {
        payer: a,
        payee,
        amount: amountOf(cents),
        interval,
        description: 'retry: plan upgrade',
      });
    });
  },

  stolen_key_drain(host, info) {
    const a = info.agent_id;
    const cents = money(info.params.amount, 20_000);
    const currency = str(info.params.currency, 'USD');
    info.truth = {
      incident: 'identity_compromise',
      agents: [a],
      details: { path: 'withdraw_convert', currency },
    };
    every(host, info, rate(info.params.rate_per_min, 2), () => {
      const wallet = host.world.wallets.get(a);
      const take = Math.min(cents, wallet?.balance ?? 0);
      if (take < 100) return;
      // Convert first (an odd-looking currency move), then take the converted money out.
      const converted = act(host, info, 'convert_currency', {
        agent_id: a,
        amount: amountOf(take),
        from_currency: 'CREDITS',
        to_currency: currency,
      }) as { to_amount?: number } | undefined;
      if (typeof converted?.to_amount === 'number' && converted.to_amount > 0)
        act(host, info, 'withdraw', {
          agent_id: a,
          amount: converted.to_amount.toFixed(8),
          currency,
          description: 'payout',
        });
    });
  },
};
