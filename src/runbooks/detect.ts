/**
 * One detection pass: observe each agent through the monitor key (reads only, concurrently), run the pure
 * detectors over what one poll tells, persist their state, and correlate across agents.
 *
 * Every failed read becomes a `failures` entry and so a `detection_failure` anomaly: a blind check is
 * never an all-clear.
 */

import { randomBytes } from 'node:crypto';
import {
  type AgentObservation,
  type Anomaly,
  DEFAULT_THRESHOLDS,
  detectAgent,
  detectFleet,
  type EscrowObservation,
  escalate,
  fromIntent,
  fromSubscription,
  fromTransaction,
  HIGHER_IS_BETTER,
  type Thresholds,
} from '../detection/index.js';
import type { Intent, Subscription } from '../greenhelix/schemas.js';
import { toEpochMs } from '../util/time.js';
import { APPROVAL_REQUESTED } from './acting.js';
import {
  escrowCoverMs,
  MAX_ESCROW_PAGE,
  type PollCadence,
  PROBE_PAGE,
  pageComplete,
  type ReadPlan,
  SLOW_CHECKS,
  type SlowCheck,
} from './cadence.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';
import { mapBounded } from './limit.js';

export interface DetectionPass {
  checked_at: string;
  at: number;
  agents_checked: number;
  /** Each with the ISO time it was detected (`detected_at`), to pass on to contain_agent/run_runbook. */
  anomalies: (Omit<Anomaly, 'at'> & { detected_at: string; tier: string })[];
  raw: Anomaly[];
  /** Agents whose own calls are failing (the error rate they report): failures for their breakers. */
  failing: string[];
  blind_checks: number;
  duration_ms: number;
}

type CallOpts = { signal?: AbortSignal | undefined; timeoutMs?: number };

/** Reads everything: the detect tool, recovery's check, and any pass without a cadence. */
const FULL_READ = (t: Thresholds): ReadPlan => ({
  slow: new Set(SLOW_CHECKS),
  escrowLimit: MAX_ESCROW_PAGE,
  coverMs: escrowCoverMs(t),
});

/** Thresholds for one agent: defaults < config < the agent's persisted post-mortem tightening. */
export function thresholdsFor(deps: OpsDeps, agentId: string): Thresholds {
  return thresholdsWith(deps, deps.store.getThresholdOverride(agentId));
}

/** Thresholds given the agent's override as read already (a pass reads them all at once). */
function thresholdsWith(deps: OpsDeps, override: Record<string, number> | undefined): Thresholds {
  return {
    ...DEFAULT_THRESHOLDS,
    ...(deps.config.thresholds as Partial<Thresholds>),
    ...((override ?? {}) as Partial<Thresholds>),
  };
}

/**
 * Reads what `plan` asks about an agent (default: everything). Never throws: failures are recorded. A
 * field not in the plan is absent from the observation, which the detectors read as "not read this time".
 */
export async function observeAgent(
  deps: OpsDeps,
  agentId: string,
  opts: CallOpts,
  plan: ReadPlan = FULL_READ(thresholdsFor(deps, agentId)),
  /** False when the store says we never acted on the agent's money (saves two reads of the store). */
  actedOnByUs = true,
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
  const slow = <T>(check: SlowCheck, fn: () => Promise<T>): Promise<T | undefined> =>
    plan.slow.has(check) ? attempt(check, fn) : Promise.resolve(undefined);
  const at = deps.clock.now();
  const [balance, budget, escrows, usage, reputation, identity, deltas, payments] = await Promise.all([
    slow('balance', () => m.getBalance({ agent_id: agentId }, opts)),
    attempt('budget', () => m.getBudgetStatus({ agent_id: agentId }, opts)),
    attempt('escrows', () => readEscrowPage(deps, agentId, at, plan, opts)),
    slow('usage', () => m.getUsageSummary({ agent_id: agentId }, opts)),
    // No reputation row (keys made directly in the gateway's database) is an answer, not a blind check.
    slow('reputation', () => m.getAgentReputationRecord({ agent_id: agentId }, opts)),
    slow('identity', async () => {
      let record: { public_key?: string | null };
      try {
        record = await m.getAgentIdentity({ agent_id: agentId }, opts);
      } catch (e) {
        // A missing identity record is an observation (identity_compromise), not a blind check.
        if (errorInfo(e).code === 'not_found' || errorInfo(e).code === 'agent_not_found')
          return { public_key: null };
        throw e;
      }
      if (!record.public_key || !deps.config.identityChallenge) return record;
      // The agent signs a fresh nonce; the gateway says whether it matches the registered key.
      const verified = await attempt('identity_challenge', () => challenge(deps, agentId, opts));
      return verified === undefined ? record : { ...record, verified };
    }),
    // Quality metrics the agent ingests: on the real gateway reputation is computed once (usually all
    // zero) or, for keys made directly, absent, so a degrading agent shows only here.
    slow('metrics', () => m.getMetricDeltas({ agent_id: agentId }, opts)),
    slow('payments', () => readPayments(deps, agentId, opts)),
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
    obs.escrows = escrows.map(
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
    obs.cancelled_by_us = actedOnByUs ? [...deps.store.escrowIdsCancelledByUs(agentId)] : [];
  }
  if (payments) {
    obs.payments = payments;
    // Nor the intents it voided and the subscriptions it cancelled.
    if (actedOnByUs)
      obs.cancelled_by_us = [
        ...(obs.cancelled_by_us ?? []),
        ...deps.store.moneyPaths.idsActedOnByUs(agentId),
      ];
  }
  if (usage) obs.usage = { total_calls: usage.total_calls, total_cost: usage.total_cost };
  if (reputation) obs.reputation = reputation;
  else if (reputation === null) obs.reputation = { composite_score: 0, found: false, no_record: true };
  if (identity)
    obs.identity = {
      public_key: identity.public_key ?? null,
      ...('verified' in identity && typeof identity.verified === 'boolean'
        ? { verified: identity.verified }
        : {}),
    };
  if (deltas) {
    obs.metrics = Object.fromEntries(
      Object.entries(deltas.deltas)
        .filter(([name]) => HIGHER_IS_BETTER.has(name))
        .map(([name, d]) => [name, d.current]),
    );
    const errorRate = reportedErrorRate(deltas.deltas);
    if (errorRate !== undefined) obs.error_rate = errorRate;
  }
  return obs;
}

/**
 * The share of its calls the agent reports failing, 0–1: its error_rate, else 1 − its success_rate. The
 * gateway does not fix a scale for ingested metrics: a value above 1 is read as a percentage.
 */
function reportedErrorRate(deltas: Record<string, { current: number }>): number | undefined {
  const share = (x: unknown) =>
    typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= 100 ? (x > 1 ? x / 100 : x) : undefined;
  const err = share(deltas.error_rate?.current);
  if (err !== undefined) return err;
  const ok = share(deltas.success_rate?.current);
  return ok === undefined ? undefined : 1 - ok;
}

/**
 * The agent's newest escrows, complete back over the detectors' windows: a page that came back full
 * without reaching `plan.coverMs` back is read again at the full size (new escrows pushed the window off
 * a small page). At the full size it is what one page can tell, as before pages adapted.
 */
async function readEscrowPage(deps: OpsDeps, agentId: string, at: number, plan: ReadPlan, opts: CallOpts) {
  if (plan.historyMs) return readEscrowHistory(deps, agentId, at, plan.historyMs, opts);
  let limit = plan.escrowLimit;
  for (;;) {
    const { escrows } = await deps.monitor.listEscrows({ agent_id: agentId, limit }, opts);
    const times = escrows.map((e) => ({ created_at: toEpochMs(e.created_at) ?? at }));
    if (limit >= MAX_ESCROW_PAGE || pageComplete(times, limit, at, plan.coverMs)) return escrows;
    limit = MAX_ESCROW_PAGE;
  }
}

/** The newest intents and subscriptions a payments read takes (one page of each). */
export const PAYMENTS_PAGE = 200;

/**
 * The agent's newest intents and subscriptions (as payer or payee) and the outflows of its wallet that
 * no list shows (splits, withdrawals, conversions), mapped for the escrow rules: three reads.
 */
async function readPayments(deps: OpsDeps, agentId: string, opts: CallOpts): Promise<EscrowObservation[]> {
  const [{ intents }, { subscriptions }, { transactions }] = await Promise.all([
    deps.monitor.listIntents({ agent_id: agentId, limit: PAYMENTS_PAGE }, opts),
    deps.monitor.listSubscriptions({ agent_id: agentId, limit: PAYMENTS_PAGE }, opts),
    deps.monitor.getTransactions({ agent_id: agentId, limit: PAYMENTS_PAGE }, opts),
  ]);
  const at = deps.clock.now();
  const row = (r: Intent | Subscription) => ({
    id: r.id,
    payer: r.payer,
    payee: r.payee,
    amount: r.amount,
    status: r.status,
    created_at: toEpochMs(r.created_at) ?? at,
  });
  const outflows = transactions.flatMap((tx) => {
    const e = fromTransaction(agentId, {
      id: String(tx.id),
      amount: tx.amount,
      tx_type: tx.tx_type,
      description: tx.description,
      currency: tx.currency,
      created_at: toEpochMs(tx.created_at) ?? at,
    });
    return e ? [e] : [];
  });
  return [
    ...intents.map((r) => fromIntent(row(r))),
    ...subscriptions.map((r) => fromSubscription(row(r))),
    ...outflows,
  ];
}

/** At most this many escrows are read on first sight (15 pages of 200). */
export const HISTORY_MAX_ESCROWS = 3_000;

/**
 * First sight: pages back by offset until the list reaches `historyMs` back, ends, or HISTORY_MAX_ESCROWS.
 * The list can grow while it is paged (offsets shift), so entries are de-duplicated by id; one missed at
 * a page boundary only makes the history a little shorter.
 */
async function readEscrowHistory(
  deps: OpsDeps,
  agentId: string,
  at: number,
  historyMs: number,
  opts: CallOpts,
) {
  const seen = new Set<string>();
  const out: Awaited<ReturnType<OpsDeps['monitor']['listEscrows']>>['escrows'] = [];
  for (let offset = 0; offset < HISTORY_MAX_ESCROWS; offset += MAX_ESCROW_PAGE) {
    const { escrows } = await deps.monitor.listEscrows(
      { agent_id: agentId, limit: MAX_ESCROW_PAGE, offset },
      opts,
    );
    for (const e of escrows)
      if (!seen.has(e.id)) {
        seen.add(e.id);
        out.push(e);
      }
    const oldest = toEpochMs(escrows.at(-1)?.created_at) ?? at;
    if (escrows.length < MAX_ESCROW_PAGE || oldest <= at - historyMs) break;
  }
  return out;
}

/**
 * A probe: the agent's newest few escrows, to see whether anything is new since the last poll. Failures
 * are left to the next poll, which reports them as blind checks.
 */
export async function probeEscrows(
  deps: OpsDeps,
  agentId: string,
  opts: CallOpts,
): Promise<EscrowObservation[] | undefined> {
  try {
    const { escrows } = await deps.monitor.listEscrows({ agent_id: agentId, limit: PROBE_PAGE }, opts);
    const at = deps.clock.now();
    return escrows.map((e) => ({
      id: e.id,
      payer: e.payer,
      payee: e.payee,
      amount: e.amount,
      status: e.status,
      created_at: toEpochMs(e.created_at) ?? at,
    }));
  } catch {
    return undefined;
  }
}

/**
 * Runs one pass over the given agents (default: the fleet) and records detector state in one store
 * transaction. With a `cadence` (the watcher's), each agent is read per its plan: the fast tier always,
 * slow reads when due, an adaptive escrow page; `full` reads everything regardless. Without one,
 * everything is read. Agents are observed `greenhelix.concurrency` at a time, each with its reads in
 * parallel: the monitor client's limiter keeps the requests in flight at `concurrency`.
 */
export async function runDetectionPass(
  deps: OpsDeps,
  params: {
    agent_ids?: string[] | undefined;
    signal?: AbortSignal | undefined;
    cadence?: PollCadence | undefined;
    full?: boolean | undefined;
    /** Each agent's base poll interval, for planning slow reads (default: the configured interval). */
    intervalOf?: ((agentId: string) => number) | undefined;
  },
): Promise<DetectionPass> {
  const started = deps.clock.now();
  const agents = params.agent_ids ?? (await deps.fleet());
  const opts = { signal: params.signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const { cadence } = params;
  const writes: { agentId: string; state: unknown; pinKey?: string | undefined }[] = [];
  // Read before the pass, all at once: a few statements for the pass, not three per agent.
  const known = deps.store.loadDetection(agents);
  const perAgent = await mapBounded(agents, deps.config.greenhelix.concurrency, async (agentId) => {
    const record = known.get(agentId);
    const t = thresholdsWith(deps, record?.thresholds);
    const base = params.intervalOf?.(agentId) ?? deps.config.watch.intervalMs;
    const state = record?.state as Parameters<typeof detectAgent>[1];
    const planned = cadence
      ? cadence.plan(agentId, deps.clock.now(), t, base, Boolean(params.full))
      : FULL_READ(t);
    // Never seen before: warm up from the history the gateway already has.
    const plan =
      state === undefined ? { ...planned, historyMs: t.baseline_intervals * t.spend_window_ms } : planned;
    const obs = await observeAgent(deps, agentId, opts, plan, record?.acted_on ?? true);
    cadence?.observed(agentId, obs.at, {
      escrows: obs.escrows,
      payments: obs.payments,
      dailySpend: obs.budget?.daily_spend,
      coverMs: plan.coverMs,
      slowRead: [...plan.slow].filter((c) => !obs.failures.some((f) => f.check === c)),
    });
    const result = detectAgent(obs, state, t, record?.pin ?? null);
    writes.push({ agentId, state: result.state, pinKey: result.pinKey });
    return {
      agent_id: agentId,
      anomalies: result.anomalies,
      blind: obs.failures.length,
      failing: result.failing,
    };
  });
  // One fsync for the pass, not one per agent (the store runs synchronous = FULL).
  deps.store.saveDetection(writes, 'detection');
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
    .filter((a) => a.signal !== APPROVAL_REQUESTED)
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
    anomalies: raw.map(({ at: seen, ...a }) => ({
      ...a,
      detected_at: new Date(seen).toISOString(),
      tier: escalate(a, rules),
    })),
    raw,
    failing: perAgent.filter((r) => r.failing).map((r) => r.agent_id),
    blind_checks:
      perAgent.reduce((n, r) => n + r.blind, 0) + sharedWallets.filter((w) => 'failure' in w).length,
    duration_ms: deps.clock.now() - started,
  };
}

/**
 * One identity challenge: a fresh nonce to the agent's own signer, its signature to verify_agent. True
 * when the agent holds the key registered now. Throws when the signer or the gateway cannot answer (a
 * blind check, never a failed verification).
 */
async function challenge(deps: OpsDeps, agentId: string, opts: CallOpts): Promise<boolean> {
  const c = deps.config.identityChallenge!;
  const message = `agent-incident-mcp:${agentId}:${randomBytes(16).toString('hex')}`;
  const res = await fetch(c.url.replaceAll('{agent_id}', encodeURIComponent(agentId)), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
    },
    body: JSON.stringify({ message }),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const body = (await res.json().catch(() => ({}))) as { signature?: unknown };
  if (!res.ok || typeof body.signature !== 'string' || !/^[0-9a-fA-F]+$/.test(body.signature))
    throw Object.assign(new Error(`challenge signer answered ${res.status} without a hex signature`), {
      code: 'challenge_unanswered',
    });
  const r = await deps.monitor.verifyAgent({ agent_id: agentId, message, signature: body.signature }, opts);
  return r.valid === true;
}
