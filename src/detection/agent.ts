/**
 * detectAgent: every per-agent signal over one poll's observation, plus the state to persist.
 */
import { anomaly, priorityLevel } from './anomaly.js';
import {
  learnCancels,
  learnIntervals,
  learnPayees,
  noteHistory,
  pruneFees,
  recordFees,
  settlePeaks,
} from './baseline.js';
import { budgetSignals } from './budget.js';
import { escrowBurst, escrowExploitation } from './escrow.js';
import { identityCheck, strangerSpending } from './identity.js';
import { reputationDrift } from './reputation.js';
import { costAnomaly } from './spend.js';
import { restoreState } from './state.js';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.js';
import type {
  AgentDetectionState,
  AgentObservation,
  Anomaly,
  EscrowObservation,
  MoneyPath,
  Signal,
} from './types.js';

/** What each failed check leaves unjudged, so a blind check is never read as all clear. */
export const BLIND_TO: Readonly<Record<string, readonly Signal[]>> = {
  escrows: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
  // Blind to the same signals on the intent and subscription paths; the escrow list is still judged.
  payments: ['escrow_burst', 'escrow_exploitation', 'cost_anomaly'],
  budget: ['budget_warning', 'budget_exhaustion'],
  reputation: ['reputation_drift'],
  metrics: ['reputation_drift'],
  identity: ['identity_compromise'],
  // Fees fall back from usage to the budget's daily spend; the balance feeds no per-agent signal.
  usage: [],
  balance: [],
};

export interface AgentDetection {
  anomalies: Anomaly[];
  state: AgentDetectionState;
  /** Set on first sighting of the agent's public key: the caller pins it. */
  pinKey?: string;
  /**
   * The agent's own calls are failing: its last reported error rate (fresh) is at or above
   * `breaker_error_rate`. The caller counts it as a failure on the agent's circuit breaker.
   */
  failing: boolean;
}

/**
 * One agent, one observation. `prior` is whatever the caller persisted last time (untrusted JSON is
 * fine: damaged parts start fresh); `pinnedKey` is the public key pinned at first sighting, or null.
 * Throws a TypeError only when `obs.agent_id` or `obs.at` is unusable; malformed data inside the
 * observation becomes a `detection_failure` naming the field.
 */
export function detectAgent(
  obs: AgentObservation,
  prior: AgentDetectionState | undefined,
  t: Thresholds = DEFAULT_THRESHOLDS,
  pinnedKey: string | null = null,
): AgentDetection {
  if (typeof obs?.agent_id !== 'string' || obs.agent_id === '')
    throw new TypeError(`obs.agent_id: expected a non-empty string, got ${JSON.stringify(obs?.agent_id)}`);
  if (typeof obs.at !== 'number' || !Number.isFinite(obs.at))
    throw new TypeError(`obs.at: expected epoch milliseconds, got ${JSON.stringify(obs.at)}`);
  const { agent_id: id, at } = obs;
  const state = restoreState(prior);
  const out: Anomaly[] = [];
  const failures = [...(Array.isArray(obs.failures) ? obs.failures : []), ...malformed(obs)];
  for (const f of failures) out.push(blindCheck(id, at, f));
  const blind = new Set(failures.filter((f) => f.code !== 'invalid_entries').map((f) => f.check));
  const readable = (k: keyof AgentObservation) => obs[k] !== undefined && obs[k] !== null && !blind.has(k);

  recordFees(state, at, {
    usage: readable('usage') ? obs.usage : undefined,
    budget: readable('budget') ? obs.budget : undefined,
  });
  if (readable('escrows')) {
    // Intents and subscriptions are money moving on other paths: judged by the same rules against the
    // same per-agent baselines, so a loop is a loop whichever route the agent's code calls.
    const payments = readable('payments') ? validEscrows(obs.payments ?? []) : [];
    out.push(...escrowSignals(obs, [...validEscrows(obs.escrows ?? []), ...payments], state, t));
  }
  pruneFees(state, at, t);
  if (readable('budget')) push(out, budgetSignals(id, at, obs.budget!, t));
  push(
    out,
    reputationDrift(
      id,
      at,
      {
        reputation: readable('reputation') ? obs.reputation : undefined,
        metrics: readable('metrics') ? obs.metrics : undefined,
      },
      state,
      t,
    ),
  );
  let pinKey: string | undefined;
  if (readable('identity')) {
    const r = identityCheck(id, at, obs.identity!, pinnedKey);
    push(out, r.anomaly);
    pinKey = r.pinKey;
  }
  if (readable('metrics') && typeof obs.error_rate === 'number' && Number.isFinite(obs.error_rate))
    state.agent_errors = { rate: Math.min(1, Math.max(0, obs.error_rate)), at };
  const errors = state.agent_errors;
  const failing =
    !!errors && at - errors.at <= t.breaker_error_stale_ms && errors.rate >= t.breaker_error_rate;
  state.last_at = at;
  out.sort((a, b) => priorityLevel(a.priority) - priorityLevel(b.priority));
  return pinKey ? { anomalies: out, state, pinKey, failing } : { anomalies: out, state, failing };
}

function escrowSignals(
  obs: AgentObservation,
  escrows: EscrowObservation[],
  state: AgentDetectionState,
  t: Thresholds,
): Anomaly[] {
  const { agent_id: id, at } = obs;
  // Escrows our containment cancelled (or is cancelling) are our doing, not the agent's: their refunds
  // are no cancellations, their principal came back (no spend), they name no payee. Only one the payee
  // released before our cancel landed is still the agent's and the payee's. Without this, a contained
  // agent's own refunded loop re-triggers escrow_exploitation and cost_anomaly while it recovers.
  const ours = new Set(Array.isArray(obs.cancelled_by_us) ? obs.cancelled_by_us : []);
  const paid = escrows.filter((e) => e.payer === id && !(ours.has(e.id) && e.status !== 'settled'));
  noteHistory(state, at, escrows);
  learnIntervals(state, at, paid, escrows, t);
  learnCancels(state, at, paid, escrows, t);
  const burst = escrowBurst(id, at, paid, state, t);
  // A retry loop to one payee also has "more than 10 escrows to the same payee"; the burst explains
  // it, and its runbook cancels everything, so that payee is not also called an exploiter.
  const loopPayee = typeof burst?.details.top_payee === 'string' ? burst.details.top_payee : null;
  const exploit = escrowExploitation(id, at, paid, state, t, loopPayee);
  let cost = costAnomaly(id, at, paid, state, t);
  // Spend that is mostly the exploitation pattern is that pattern's to answer (runbook 2 freezes the
  // payer and cancels only the suspect payee's escrows); the cost anomaly stays as a warning beside it.
  if (
    cost?.severity === 'critical' &&
    exploit &&
    cost.details.top_payee === exploit.details.suspect_payee &&
    Number(cost.details.top_payee_share) >= 0.5
  )
    cost = anomaly(id, at, 'cost_anomaly', 'warning', cost.summary, {
      ...cost.details,
      explained_by: 'escrow_exploitation',
    });
  // A loop explains strange spending too: the burst's runbook already contains it.
  const stranger = burst ? undefined : strangerSpending(id, at, paid, state, t);
  learnPayees(state, at - t.new_payee_window_ms, paid);
  // A spend spike being confirmed (escalates_if_sustained) is kept out of the peaks like a critical one:
  // otherwise a drain's first windows would become its own bar before it had gone on long enough.
  const costFlag = cost?.severity === 'critical' || cost?.details.escalates_if_sustained === true;
  settlePeaks(state, t, at, Boolean(burst || exploit || stranger || costFlag));
  return [burst, exploit, cost, stranger]
    .filter((a): a is Anomaly => a !== undefined)
    .map((a) => withPaths(a, paid));
}

/**
 * Names the money paths behind an anomaly's evidence (`paths`: count of its listed ids per path), so the
 * person and the runbook know whether escrows, intents or subscriptions moved the money. Escrow-only
 * evidence is left as it was.
 */
function withPaths(a: Anomaly, paid: readonly EscrowObservation[]): Anomaly {
  const ids = a.details.escrow_ids;
  if (!Array.isArray(ids)) return a;
  const pathOf = new Map(paid.map((e) => [e.id, e.path ?? 'escrow']));
  const paths: Partial<Record<MoneyPath, number>> = {};
  for (const id of ids) {
    const p = pathOf.get(String(id)) ?? 'escrow';
    paths[p] = (paths[p] ?? 0) + 1;
  }
  if (Object.keys(paths).length === 1 && paths.escrow) return a;
  const named = Object.entries(paths).map(([p, n]) => `${n} ${p}${n === 1 ? '' : 's'}`);
  return { ...a, summary: `${a.summary} [by path: ${named.join(', ')}]`, details: { ...a.details, paths } };
}

function blindCheck(id: string, at: number, f: AgentObservation['failures'][number]): Anomaly {
  const check = String(f?.check ?? 'unknown');
  const code = String(f?.code ?? 'unknown');
  const affected = [...(BLIND_TO[check] ?? [])];
  // Skipped entries leave the check judged on the rest: partly blind, which is still not all clear.
  const partial = code === 'invalid_entries';
  return anomaly(id, at, 'detection_failure', 'warning', `cannot check ${check} for ${id}: ${code}`, {
    check,
    code,
    message: String(f?.message ?? '').slice(0, 300),
    blind_to: partial ? [] : affected,
    ...(partial ? { partly_blind_to: affected } : {}),
  });
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function escrowProblem(e: EscrowObservation, i: number, list = 'escrows'): string | undefined {
  if (e === null || typeof e !== 'object') return `${list}[${i}]: expected an object`;
  for (const f of ['id', 'payer', 'payee', 'status'] as const)
    if (typeof e[f] !== 'string') return `${list}[${i}].${f}: expected a string`;
  if (!finite(e.amount) || e.amount < 0) return `${list}[${i}].amount: expected cents ≥ 0`;
  if (!finite(e.created_at)) return `${list}[${i}].created_at: expected epoch ms`;
  return undefined;
}

const validEscrows = (list: EscrowObservation[]) => list.filter((e, i) => !escrowProblem(e, i));

/**
 * Malformed observation data as failures. A few bad escrow entries are skipped and reported (the rest
 * is still judged, which can only under-count); an unusable budget or escrow list blinds its check.
 */
function malformed(obs: AgentObservation): AgentObservation['failures'] {
  const out: AgentObservation['failures'] = [];
  for (const check of ['escrows', 'payments'] as const) {
    const list = obs[check];
    if (list !== undefined && !Array.isArray(list))
      out.push({ check, code: 'invalid_observation', message: `${check}: expected an array` });
    else if (list) {
      const problems = list.map((e, i) => escrowProblem(e, i, check)).filter((p): p is string => !!p);
      if (problems.length)
        out.push({
          check,
          code: 'invalid_entries',
          message: `${problems.length} ${check} entries skipped: ${problems.slice(0, 3).join('; ')}`,
        });
    }
  }
  const b = obs.budget;
  if (
    b !== undefined &&
    (b === null ||
      !finite(b.daily_spend) ||
      !(b.daily_cap === null || finite(b.daily_cap)) ||
      !(b.monthly_cap === null || b.monthly_cap === undefined || finite(b.monthly_cap)))
  )
    out.push({
      check: 'budget',
      code: 'invalid_observation',
      message: 'budget: expected daily_spend in cents and daily_cap in cents or null',
    });
  if (obs.reputation !== undefined && !finite(obs.reputation?.composite_score))
    out.push({
      check: 'reputation',
      code: 'invalid_observation',
      message: 'reputation.composite_score: expected a number',
    });
  const key = obs.identity?.public_key;
  if (obs.identity !== undefined && !(key === null || typeof key === 'string'))
    out.push({
      check: 'identity',
      code: 'invalid_observation',
      message: 'identity.public_key: expected a string or null',
    });
  return out;
}

function push(out: Anomaly[], a: Anomaly | undefined): void {
  if (a) out.push(a);
}
