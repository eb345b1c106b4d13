/**
 * What a scenario agent is made of: the host it runs in, its record, and the few actions every program
 * shares. Every action goes through `Engine.dispatch` with the agent's own key, so freezes, caps and
 * balances bite exactly as on the real gateway.
 */
import type { ToolName } from '../greenhelix/routes.js';
import { type Caller, type Engine, GatewayError } from './engine.js';
import type { ScenarioName } from './scenarios.js';
import type { Scheduler } from './scheduler.js';
import type { World } from './world.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

/**
 * The ground truth a detector is judged on: which incident (a runbook name) it must report, on which
 * agents, and scenario-specific facts (a theft window, the times a budget crossed 85 % and 97 %).
 */
export interface IncidentTruth {
  incident:
    | 'runaway_spending'
    | 'escrow_exploitation'
    | 'identity_compromise'
    | 'service_degradation'
    | 'cascade_failure';
  agents: string[];
  details: Record<string, unknown>;
}

export interface ScenarioInfo {
  id: string;
  scenario: ScenarioName;
  agent_id: string;
  params: Record<string, unknown>;
  started_at: number;
  /** When the incident starts (sandbox ms); null for normal traffic, and until a delayed onset happens. */
  onset_at: number | null;
  /** What a detector must report; null for normal traffic. */
  truth: IncidentTruth | null;
  stopped: boolean;
  attempts: number;
  failures: Record<string, number>;
}

export interface ScenarioHost {
  world: World;
  engine: Engine;
  scheduler: Scheduler;
  random: () => number;
  callerFor(agentId: string): Caller;
  fleet: readonly string[];
  treasury: string | null;
  counterparties: readonly string[];
}

export type Program = (host: ScenarioHost, info: ScenarioInfo) => void;

let calls = 0;

/** One call as the agent; failures are counted (a loop keeps retrying, as a real one does). */
export function act(
  host: ScenarioHost,
  info: ScenarioInfo,
  tool: ToolName,
  params: Record<string, unknown>,
  agentId = info.agent_id,
): unknown {
  info.attempts++;
  try {
    return host.engine.dispatch(host.callerFor(agentId), tool, params, {
      via: 'internal',
      // Unique per call (usage rows are deduplicated by it); a counter, as random UUIDs cost a quarter of a
      // long corpus run's CPU.
      requestId: `scn-${++calls}`,
    }).body;
  } catch (e) {
    const code = e instanceof GatewayError ? e.code : 'internal_error';
    info.failures[code] = (info.failures[code] ?? 0) + 1;
    return undefined;
  }
}

/** Refill from the shared treasury when low (a sandbox-internal transfer; blocked by a freeze on either side). */
export function topUp(host: ScenarioHost, agentId: string, need: number): boolean {
  const w = host.world;
  const wallet = w.wallets.get(agentId);
  if (!wallet || wallet.balance >= need) return true;
  if (!host.treasury) return false;
  const treasury = w.wallets.get(host.treasury);
  if (!treasury || treasury.frozen || wallet.frozen) return false;
  const amount = Math.min(treasury.balance, Math.max(100_000, need - wallet.balance));
  if (amount <= 0 || wallet.balance + amount < need) return false;
  w.debit(host.treasury, amount, 'withdrawal', `transfer to ${agentId}`);
  w.credit(agentId, amount, 'deposit', `transfer from ${host.treasury}`);
  return true;
}

export const money = (v: unknown, d: number) => (typeof v === 'number' && v > 0 ? Math.round(v * 100) : d);
export const rate = (v: unknown, d: number) => (typeof v === 'number' && v > 0 ? v : d);
export const pick = <T>(r: () => number, xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
export const amountOf = (cents: number) => (cents / 100).toFixed(2);

/** A loop creating escrows of a set amount to one payee, never releasing them. */
export function loop(
  host: ScenarioHost,
  info: ScenarioInfo,
  agentId: string,
  perMin: number,
  cents: number,
  payee: string,
): void {
  const every = MIN / perMin;
  const tick = (now: number) => {
    topUp(host, agentId, cents + 1_000);
    act(
      host,
      info,
      'create_escrow',
      { payer: agentId, payee, amount: amountOf(cents), description: 'retry: upstream timeout' },
      agentId,
    );
    host.scheduler.at(now + every, info.id, tick);
  };
  host.scheduler.at(host.world.clock.now() + every, info.id, tick);
}
