/**
 * Scenario agents: each is a little program on the sandbox clock that acts through `Engine.dispatch` with
 * the agent's own key, so it meets freezes, caps and balances exactly as a real worker agent would.
 *
 * Every scenario schedules its next action at a sandbox time; `Scheduler.runUntil(t)` fires them in time
 * order, which makes `advance()` deterministic for a given seed.
 */
import { randomUUID } from 'node:crypto';
import { GatewayError } from './engine.js';
import { MONEY_PROGRAMS, MONEY_SCENARIOS } from './money-scenarios.js';
import {
  act,
  amountOf,
  HOUR,
  loop,
  MIN,
  money,
  type Program,
  pick,
  rate,
  type ScenarioHost,
  type ScenarioInfo,
  topUp,
} from './program.js';
import { PROFILES, type Profile, runProfile } from './traffic.js';
import { VARIANT_PROGRAMS, VARIANTS } from './variants.js';

export type { IncidentTruth, ScenarioHost, ScenarioInfo } from './program.js';
export { Scheduler } from './scheduler.js';

export const SCENARIOS = [
  'normal_traffic',
  'runaway_spending',
  'escrow_exploitation',
  'identity_compromise',
  'service_degradation',
  'cascade_failure',
  ...VARIANTS,
  ...MONEY_SCENARIOS,
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export class ScenarioRunner {
  readonly running = new Map<string, ScenarioInfo>();

  constructor(private readonly host: ScenarioHost) {}

  start(scenario: string, agentId: string, params: Record<string, unknown> = {}): ScenarioInfo {
    if (!(SCENARIOS as readonly string[]).includes(scenario))
      throw new GatewayError(422, 'validation_error', `scenario must be one of ${SCENARIOS.join(', ')}`);
    const profile = params.profile;
    if (scenario === 'normal_traffic' && profile !== undefined && !PROFILES.includes(profile as Profile))
      throw new GatewayError(422, 'validation_error', `profile must be one of ${PROFILES.join(', ')}`);
    if (!this.host.world.agents.has(agentId))
      throw new GatewayError(404, 'agent_not_found', `Agent ${agentId} not found`);
    const info: ScenarioInfo = {
      id: `scn_${randomUUID().slice(0, 8)}`,
      scenario: scenario as ScenarioName,
      agent_id: agentId,
      params,
      started_at: this.host.world.clock.now(),
      onset_at: null,
      truth: null,
      stopped: false,
      attempts: 0,
      failures: {},
    };
    this.running.set(info.id, info);
    recordOriginalTruth(this.host, info);
    PROGRAMS[info.scenario](this.host, info);
    return info;
  }

  stop(id: string): boolean {
    const info = this.running.get(id);
    if (!info) return false;
    info.stopped = true;
    this.host.scheduler.cancelOwner(id);
    return true;
  }

  list(): ScenarioInfo[] {
    return [...this.running.values()];
  }
}

/** Onset and ground truth of the five original scenarios, as their programs below act. */
function recordOriginalTruth(host: ScenarioHost, info: ScenarioInfo): void {
  const p = info.params;
  const t0 = info.started_at;
  const a = info.agent_id;
  switch (info.scenario) {
    case 'runaway_spending':
      info.onset_at = t0 + MIN / rate(p.rate_per_min, 30);
      info.truth = { incident: 'runaway_spending', agents: [a], details: {} };
      break;
    case 'escrow_exploitation':
      info.onset_at = t0 + MIN / rate(p.rate_per_min, 4);
      info.truth = { incident: 'escrow_exploitation', agents: [a], details: {} };
      break;
    case 'identity_compromise':
      info.onset_at = t0 + 5_000;
      info.truth = { incident: 'identity_compromise', agents: [a], details: {} };
      break;
    case 'service_degradation':
      info.onset_at = t0 + 5 * MIN;
      info.truth = { incident: 'service_degradation', agents: [a], details: {} };
      break;
    case 'cascade_failure': {
      const downstream = host.fleet
        .filter((x) => x !== a)
        .slice(0, typeof p.downstream === 'number' ? p.downstream : 3);
      info.onset_at = t0 + MIN / rate(p.rate_per_min, 30);
      info.truth = { incident: 'cascade_failure', agents: [a, ...downstream], details: {} };
      break;
    }
    default:
      break;
  }
}

const PROGRAMS: Record<ScenarioName, Program> = {
  ...VARIANT_PROGRAMS,
  ...MONEY_PROGRAMS,
  normal_traffic(host, info) {
    // A profile (traffic.ts) other than `steady`; without one, the original steady traffic below.
    if (runProfile(host, info, String(info.params.profile ?? 'steady'), info.started_at)) return;
    const r = host.random;
    const perHour = rate(info.params.escrows_per_hour, 2);
    const next = () => -Math.log(1 - r()) * (HOUR / perHour);
    const a = info.agent_id;
    const tick = (now: number) => {
      const cents = 500 + Math.floor(r() * 7_500);
      topUp(host, a, cents + 30_000);
      // Half the orders go to other fleet agents, so the fleet's money mostly circulates.
      const peers = host.fleet.filter((x) => x !== a);
      const payee = r() < 0.5 && peers.length ? pick(r, peers) : pick(r, host.counterparties);
      const created = act(host, info, 'create_escrow', {
        payer: a,
        payee,
        amount: amountOf(cents),
        description: 'order',
      }) as { id?: string } | undefined;
      if (created?.id) {
        const id = created.id;
        const fate = r();
        if (fate < 0.9)
          host.scheduler.at(now + (2 + r() * 18) * MIN, info.id, () =>
            act(host, info, 'release_escrow', { escrow_id: id }, payee),
          );
        else if (fate < 0.97)
          host.scheduler.at(now + (1 + r() * 10) * MIN, info.id, () =>
            act(host, info, 'cancel_escrow', { escrow_id: id }),
          );
      }
      if (r() < 0.2)
        host.engine.ingest(
          a,
          { success_rate: 0.95 + r() * 0.04, latency_ms: 120 + r() * 60 },
          'self_reported',
        );
      const rep = host.world.agents.get(a)?.reputation;
      if (rep && rep.composite_score > 0)
        rep.composite_score = Math.min(0.99, Math.max(0.5, rep.composite_score * (1 + (r() - 0.5) * 0.004)));
      host.scheduler.at(now + next(), info.id, tick);
    };
    host.scheduler.at(host.world.clock.now() + next(), info.id, tick);
  },

  runaway_spending(host, info) {
    loop(
      host,
      info,
      info.agent_id,
      rate(info.params.rate_per_min, 30),
      money(info.params.amount, 15_000),
      String(info.params.payee ?? 'vendor-flaky'),
    );
  },

  escrow_exploitation(host, info) {
    const r = host.random;
    const payee = String(info.params.payee ?? 'merchant-shady');
    const every = MIN / rate(info.params.rate_per_min, 4);
    const cancelRatio = typeof info.params.cancel_ratio === 'number' ? info.params.cancel_ratio : 0.6;
    const a = info.agent_id;
    const tick = (now: number) => {
      const cents = 2_000 + Math.floor(r() * 10_000);
      topUp(host, a, cents + 1_000);
      const created = act(host, info, 'create_escrow', {
        payer: a,
        payee,
        amount: amountOf(cents),
        description: 'service deposit',
      }) as { id?: string } | undefined;
      if (created?.id) {
        const id = created.id;
        // The payee releases some to itself quickly; the payer cancels most of the rest.
        if (r() < cancelRatio)
          host.scheduler.at(now + 60_000, info.id, () => act(host, info, 'cancel_escrow', { escrow_id: id }));
        else
          host.scheduler.at(now + 30_000, info.id, () =>
            act(host, info, 'release_escrow', { escrow_id: id }, payee),
          );
      }
      host.scheduler.at(now + every, info.id, tick);
    };
    host.scheduler.at(host.world.clock.now() + every, info.id, tick);
  },

  identity_compromise(host, info) {
    const a = info.agent_id;
    host.scheduler.at(host.world.clock.now() + 5_000, info.id, () => {
      // Whoever holds the agent's API key can swap its registered public key.
      const stolen = Buffer.from(Array.from({ length: 32 }, () => Math.floor(host.random() * 256))).toString(
        'hex',
      );
      act(host, info, 'register_agent', { agent_id: a, public_key: stolen });
      loop(
        host,
        info,
        a,
        rate(info.params.rate_per_min, 2),
        money(info.params.amount, 9_000),
        String(info.params.payee ?? 'merchant-unknown'),
      );
    });
  },

  service_degradation(host, info) {
    const drop = rate(info.params.drop_per_hour, 0.2);
    const a = info.agent_id;
    const rep = host.world.agents.get(a)?.reputation;
    const start = rep?.composite_score ?? 0.9;
    const t0 = host.world.clock.now();
    const tick = (now: number) => {
      const hours = (now - t0) / HOUR;
      if (rep) {
        rep.composite_score = Math.max(0.05, start - drop * hours);
        rep.payment_reliability = Math.max(0.05, rep.payment_reliability - drop * 0.05);
      }
      host.engine.ingest(
        a,
        { success_rate: Math.max(0.2, 0.97 - drop * hours), error_rate: Math.min(0.8, 0.02 + drop * hours) },
        'self_reported',
      );
      host.scheduler.at(now + 5 * MIN, info.id, tick);
    };
    host.scheduler.at(t0 + 5 * MIN, info.id, tick);
  },

  cascade_failure(host, info) {
    const root = info.agent_id;
    loop(
      host,
      info,
      root,
      rate(info.params.rate_per_min, 30),
      money(info.params.amount, 15_000),
      String(info.params.payee ?? 'vendor-flaky'),
    );
    const downstream = host.fleet
      .filter((a) => a !== root)
      .slice(0, typeof info.params.downstream === 'number' ? info.params.downstream : 3);
    let started = false;
    const watch = (now: number) => {
      const treasury = host.treasury ? host.world.wallets.get(host.treasury) : undefined;
      if (!started && (!treasury || treasury.balance < 100_000)) {
        // The shared wallet is drained: downstream agents fail their escrows and start retry loops of their own.
        started = true;
        for (const d of downstream) loop(host, info, d, 20, 4_000, pick(host.random, host.counterparties));
      }
      if (!started) host.scheduler.at(now + 30_000, info.id, watch);
    };
    host.scheduler.at(host.world.clock.now() + 30_000, info.id, watch);
  },
};
