/**
 * One detection pass: observe each agent through the monitor key (reads only, concurrently), run the pure
 * detectors over what one poll tells, persist their state, and correlate across agents.
 *
 * Every failed read becomes a `failures` entry and so a `detection_failure` anomaly: a blind check is
 * never an all-clear.
 */
import {
  type AgentObservation,
  type Anomaly,
  DEFAULT_THRESHOLDS,
  detectAgent,
  detectFleet,
  type EscrowObservation,
  escalate,
  HIGHER_IS_BETTER,
  type Thresholds,
} from '../detection/index.js';
import { toEpochMs } from '../util/time.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';
import { mapBounded } from './limit.js';

export interface DetectionPass {
  checked_at: string;
  at: number;
  agents_checked: number;
  anomalies: (Omit<Anomaly, 'at'> & { tier: string })[];
  raw: Anomaly[];
  blind_checks: number;
  duration_ms: number;
}

/** Recent escrows read per agent: enough for the burst and exploitation windows at 30/min. */
const ESCROW_PAGE = 200;

type CallOpts = { signal?: AbortSignal | undefined; timeoutMs?: number };

/** Thresholds for one agent: defaults < config < the agent's persisted post-mortem tightening. */
export function thresholdsFor(deps: OpsDeps, agentId: string): Thresholds {
  const override = deps.store.getThresholdOverride(agentId) as Partial<Thresholds> | undefined;
  return { ...DEFAULT_THRESHOLDS, ...(deps.config.thresholds as Partial<Thresholds>), ...(override ?? {}) };
}

/** Reads everything one poll can tell about an agent. Never throws: failures are recorded. */
export async function observeAgent(
  deps: OpsDeps,
  agentId: string,
  opts: CallOpts,
): Promise<AgentObservation> {
  const m = deps.monitor;
  const failures: AgentObservation['failures'] = [];
  const attempt = async <T>(check: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (e) {
      const info = errorInfo(e);
      failures.push({ check, code: info.code, message: info.message });
      return undefined;
    }
  };
  const [balance, budget, escrows, usage, reputation, identity, deltas] = await Promise.all([
    attempt('balance', () => m.getBalance({ agent_id: agentId }, opts)),
    attempt('budget', () => m.getBudgetStatus({ agent_id: agentId }, opts)),
    attempt('escrows', () => m.listEscrows({ agent_id: agentId, limit: ESCROW_PAGE }, opts)),
    attempt('usage', () => m.getUsageSummary({ agent_id: agentId }, opts)),
    // No reputation row (keys made directly in the gateway's database) is an answer, not a blind check.
    attempt('reputation', () => m.getAgentReputationRecord({ agent_id: agentId }, opts)),
    attempt('identity', async () => {
      try {
        return await m.getAgentIdentity({ agent_id: agentId }, opts);
      } catch (e) {
        // A missing identity record is an observation (identity_compromise), not a blind check.
        if (errorInfo(e).code === 'not_found' || errorInfo(e).code === 'agent_not_found')
          return { public_key: null };
        throw e;
      }
    }),
    // Quality metrics the agent ingests: on the real gateway reputation is computed once (usually all
    // zero) or, for keys made directly, absent, so a degrading agent shows only here.
    attempt('metrics', () => m.getMetricDeltas({ agent_id: agentId }, opts)),
  ]);
  const obs: AgentObservation = { agent_id: agentId, at: deps.clock.now(), failures };
  if (balance) obs.balance = balance.balance;
  if (budget) {
    obs.budget = {
      daily_spend: budget.daily_spend,
      daily_cap: budget.daily_cap,
      daily_pct: budget.daily_pct,
      monthly_spend: budget.monthly_spend,
      monthly_cap: budget.monthly_cap,
    };
  }
  if (escrows) {
    obs.escrows = escrows.escrows.map(
      (e): EscrowObservation => ({
        id: e.id,
        payer: e.payer,
        payee: e.payee,
        amount: e.amount,
        status: e.status as EscrowObservation['status'],
        created_at: toEpochMs(e.created_at) ?? obs.at,
        updated_at: toEpochMs(e.updated_at),
      }),
    );
    // Refunds our own containment made must never read as the agent's cancellations.
    obs.cancelled_by_us = [...deps.store.escrowIdsCancelledByUs(agentId)];
  }
  if (usage) obs.usage = { total_calls: usage.total_calls, total_cost: usage.total_cost };
  if (reputation) obs.reputation = reputation;
  else if (reputation === null) obs.reputation = { composite_score: 0, found: false, no_record: true };
  if (identity) obs.identity = { public_key: identity.public_key ?? null };
  if (deltas) {
    obs.metrics = Object.fromEntries(
      Object.entries(deltas.deltas)
        .filter(([name]) => HIGHER_IS_BETTER.has(name))
        .map(([name, d]) => [name, d.current]),
    );
  }
  return obs;
}

/** Runs one pass over the given agents (default: the fleet) and records detector state. */
export async function runDetectionPass(
  deps: OpsDeps,
  params: { agent_ids?: string[] | undefined; signal?: AbortSignal | undefined },
): Promise<DetectionPass> {
  const started = deps.clock.now();
  const agents = params.agent_ids ?? (await deps.fleet());
  const opts = { signal: params.signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const perAgent = await mapBounded(
    agents,
    Math.max(1, Math.floor(deps.config.greenhelix.concurrency / 7)),
    async (agentId) => {
      const obs = await observeAgent(deps, agentId, opts);
      const state = deps.store.getDetectionState(agentId) as Parameters<typeof detectAgent>[1];
      const pin = deps.store.getPin(agentId)?.public_key ?? null;
      const result = detectAgent(obs, state, thresholdsFor(deps, agentId), pin);
      deps.store.putDetectionState(agentId, result.state);
      if (result.pinKey) deps.store.pinKey(agentId, result.pinKey, 'detection');
      return { agent_id: agentId, anomalies: result.anomalies, blind: obs.failures.length };
    },
  );
  const at = deps.clock.now();
  const sharedWallets = await Promise.all(
    deps.config.sharedWallets.map(async (walletId) => {
      try {
        const b = await deps.monitor.getBalance({ agent_id: walletId }, opts);
        return { agent_id: walletId, balance: b.balance };
      } catch (e) {
        return { agent_id: walletId, failure: errorInfo(e).message };
      }
    }),
  );
  const recentAlerts = deps.store
    .listAlerts({ since: at - DEFAULT_THRESHOLDS.cascade_window_ms })
    .map((a) => ({ agent_id: a.agent_id, at: a.at, signal: a.signal, priority: a.priority }));
  const fleetAnomalies = detectFleet(
    perAgent,
    { at, sharedWallets, recentAlerts },
    { ...DEFAULT_THRESHOLDS, ...(deps.config.thresholds as Partial<Thresholds>) },
  );
  const raw = [...perAgent.flatMap((r) => r.anomalies), ...fleetAnomalies];
  const rules = deps.config.escalation;
  return {
    checked_at: new Date(at).toISOString(),
    at,
    agents_checked: agents.length,
    anomalies: raw.map(({ at: _at, ...a }) => ({ ...a, tier: escalate(a, rules) })),
    raw,
    blind_checks:
      perAgent.reduce((n, r) => n + r.blind, 0) + sharedWallets.filter((w) => 'failure' in w).length,
    duration_ms: deps.clock.now() - started,
  };
}
