/**
 * Recovery (SPEC "Recovery"): three gates in order, then the budget back in stages.
 *
 *   stage 1: 50 % of the pre-incident caps at once, wallet unfrozen, 30 s monitoring
 *   stage 2: 75 % after 6 h with no anomaly, 60 s monitoring
 *   stage 3: 100 % after 24 h with no anomaly; incident resolved; standard 5 min monitoring after 48 h
 *
 * Spending is never re-enabled while the cause may be live: the root cause must be stated fixed, the
 * identity must match the pinned key, and later stages need a clean detection pass right now.
 * Every stage and every gate verdict is persisted before the next gateway call.
 */
import { normalizeKey } from '../detection/index.js';
import { centsToNumber, formatCents, moneyText, parseCents } from '../greenhelix/money.js';
import type { Incident } from '../incidents/index.js';
import { ToolError } from '../util/errors.js';
import { type ClawbackEntry, type ClawbackPlan, planClawback, runClawback, toSend } from './clawback.js';
import { publishQuietly } from './contain.js';
import {
  type CancelledSubscription,
  cancelledSubscriptions,
  listActiveSubscriptions,
  listPendingIntents,
  type PathsContext,
  stopMoneyPaths,
} from './contain-paths.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo, recordAction } from './deps.js';
import { runDetectionPass } from './detect.js';
import type { Act, CallOpts } from './unlock.js';

const HOUR = 3_600_000;

export const RECOVERY_STAGES = [
  { stage: 1, percent: 50, waitMs: 0, monitoringS: 30 },
  { stage: 2, percent: 75, waitMs: 6 * HOUR, monitoringS: 60 },
  { stage: 3, percent: 100, waitMs: 24 * HOUR, monitoringS: 60 },
] as const;

/** After this long at 100 %, monitoring returns to the standard interval. */
export const STANDARD_MONITORING_AFTER_MS = 48 * HOUR;
export const STANDARD_MONITORING_S = 300;

/** Recovery stages of the current containment round: a re-containment starts recovery over. */
function stagesSinceContainment(deps: OpsDeps, incident: Incident) {
  return deps.store.listRecoveryStages(incident.id);
}

const RECOVERABLE = new Set(['contained', 'containment_partial', 'recovering']);

export interface RecoverRequest {
  incident_id: string;
  root_cause_fixed: boolean;
  confirmed_by?: string | undefined;
  note?: string | undefined;
  stage?: number | undefined;
  dry_run: boolean;
  /** Daily cap to restore when the agent had none before the incident (decimal string). */
  restore_daily_cap?: string | undefined;
  /**
   * Settled intents a person confirmed to claw back (clawback.ts): each must be in the incident's
   * claw-back list; each is refunded at most once, and only while the agent's wallet is unfrozen.
   */
  clawback_intent_ids?: string[] | undefined;
}

export interface GateVerdict {
  gate: string;
  passed: boolean;
  reason: string;
}

export interface RecoverResult {
  incident_id: string;
  agent_id: string;
  dry_run: boolean;
  applied: boolean;
  stage: number;
  percent: number;
  gates: GateVerdict[];
  daily_cap: string | null;
  monthly_cap: string | null;
  unfrozen: boolean;
  status: string;
  next_stage: number | null;
  next_stage_not_before: string | null;
  monitoring_interval_s: number;
  steps: StepReport[];
  /**
   * Subscriptions containment cancelled. The gateway never reactivates a cancelled subscription, so
   * offering one back means creating it anew (with the agent's own key, once the cause is fixed).
   */
  cancelled_subscriptions: CancelledSubscription[];
  /** Per confirmed intent, what the claw-back did; absent when none was asked for. */
  clawback?: ClawbackEntry[] | undefined;
}

/**
 * Applies the next recovery stage and, when `clawback_intent_ids` are given, claws them back. Ids not in
 * the incident's claw-back list refuse the whole call before anything moves; so does a claw-back asked for
 * while our record says the wallet is frozen, unless this call applies stage 1 (it unfreezes first). The
 * claw-back itself runs once the root-cause and identity gates passed in this call and the wallet is
 * unfrozen, whatever the stage's own outcome (a later stage's wait does not hold it back). A resolved
 * incident accepts a claw-back alone.
 */
export async function recoverAgent(
  deps: OpsDeps,
  req: RecoverRequest,
  signal?: AbortSignal,
): Promise<RecoverResult> {
  const incident = deps.store.getIncident(req.incident_id);
  const ids = req.clawback_intent_ids ?? [];
  if (!incident || ids.length === 0) return recoverStage(deps, req, undefined, signal);
  const agentId = incident.primary_agent_id;
  const callOpts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const plan = await planClawback(deps, incident, ids, callOpts);
  const current = deps.store.listRecoveryStages(incident.id).reduce((n, s) => Math.max(n, s.stage), 0);
  const unfreezesNow = current === 0 && (req.stage ?? 1) === 1 && incident.status !== 'resolved';
  if (toSend(plan).length > 0 && deps.store.getFrozenBelief(agentId) !== false && !unfreezesNow)
    throw new ToolError(
      'wallet_frozen',
      `${agentId}'s wallet is frozen by our record; a refund into a frozen payer debits the payee and credits nobody. Nothing was refunded and no stage applied.`,
      false,
      'Apply stage 1 first (it unfreezes), or pass clawback_intent_ids with the stage 1 call.',
    );
  const r = await recoverStage(deps, req, plan, signal);
  const passed = (gate: string) => r.gates.some((g) => g.gate === gate && g.passed);
  const unfrozen = deps.store.getFrozenBelief(agentId) === false || (req.dry_run && r.unfrozen);
  const blocked = !(passed('root_cause_fixed') && passed('identity_verified'))
    ? 'not run: the root-cause and identity gates did not both pass in this call'
    : !unfrozen
      ? `not run: ${agentId}'s wallet is still frozen (stage 1 not applied); nothing moved`
      : undefined;
  const act = recoveryAct(deps, incident.id, agentId);
  const ctx: PathsContext = {
    deps,
    incidentId: incident.id,
    agentId,
    onlyPayee: undefined,
    act,
    callOpts,
    deadline: Date.now() + deps.config.containment.unlockDeadlineMs,
  };
  const claw = await runClawback(ctx, plan, {
    dryRun: req.dry_run,
    blocked,
    confirmedBy: req.confirmed_by,
  });
  return { ...r, steps: [...r.steps, ...claw.steps], clawback: claw.entries };
}

async function recoverStage(
  deps: OpsDeps,
  req: RecoverRequest,
  clawback: ClawbackPlan | undefined,
  signal?: AbortSignal,
): Promise<RecoverResult> {
  const { store, clock } = deps;
  const incident = store.getIncident(req.incident_id);
  if (!incident)
    throw new ToolError(
      'incident_not_found',
      `No incident ${req.incident_id}.`,
      false,
      'Call list_incidents to find the id.',
    );
  if (!RECOVERABLE.has(incident.status) && !(clawback && incident.status === 'resolved')) {
    throw new ToolError(
      'invalid_state',
      `Incident ${incident.id} is ${incident.status}; recovery applies to contained incidents.`,
      false,
      incident.status === 'containment_failed' ? 'Contain the agent first (contain_agent).' : undefined,
    );
  }
  const stages = stagesSinceContainment(deps, incident);
  const current = stages.reduce((n, s) => Math.max(n, s.stage), 0);
  // A resolved incident takes only a claw-back: its last stage, already applied.
  const target = req.stage ?? (incident.status === 'resolved' ? current : current + 1);
  const spec = RECOVERY_STAGES.find((s) => s.stage === target);
  if (!spec)
    throw new ToolError(
      'invalid_stage',
      `Stage ${target} does not exist; stages are 1, 2 and 3 (current: ${current}).`,
    );
  const gates: GateVerdict[] = [];
  const record = (g: GateVerdict) => {
    gates.push(g);
    if (!req.dry_run)
      store.recordGate(incident.id, {
        gate: g.gate,
        passed: g.passed,
        reason: g.reason,
        at: clock.now(),
        by: req.confirmed_by ?? null,
      });
  };
  /** The root-cause and identity gates; false when one failed. */
  const causeAndIdentity = async () => {
    record(rootCauseGate(req));
    if (!gates[gates.length - 1]!.passed) return false;
    record(await identityGate(deps, incident, signal));
    return gates[gates.length - 1]!.passed;
  };

  if (target <= current) {
    gates.push({ gate: 'stage', passed: true, reason: `stage ${target} already applied` });
    // A claw-back asks the same two gates as a stage: the cause is fixed and the identity is intact.
    if (clawback) await causeAndIdentity();
    return describeStage(deps, incident, current, gates, [], false, req.dry_run);
  }
  if (target > current + 1) {
    return describeStage(
      deps,
      incident,
      current,
      [
        {
          gate: 'stage_order',
          passed: false,
          reason: `stage ${current + 1} comes first; stages cannot be skipped`,
        },
      ],
      [],
      false,
      req.dry_run,
    );
  }

  if (!(await causeAndIdentity()))
    return describeStage(deps, incident, current, gates, [], false, req.dry_run);

  const budget = await budgetGate(deps, incident, spec, stages, req, signal);
  record(budget.verdict);
  if (!budget.verdict.passed || !budget.caps)
    return describeStage(deps, incident, current, gates, [], false, req.dry_run);

  const caps = budget.caps;
  if (req.dry_run) {
    const r = await describeStage(deps, incident, current, gates, [], false, true);
    return {
      ...r,
      stage: target,
      percent: spec.percent,
      daily_cap: formatCents(caps.daily),
      monthly_cap: formatCents(caps.monthly),
      unfrozen: target === 1,
    };
  }
  return applyStage(deps, incident, spec, caps, gates, signal);
}

function rootCauseGate(req: RecoverRequest): GateVerdict {
  return req.root_cause_fixed
    ? {
        gate: 'root_cause_fixed',
        passed: true,
        reason: `confirmed${req.confirmed_by ? ` by ${req.confirmed_by}` : ''}${req.note ? `: ${req.note.slice(0, 200)}` : ''}`,
      }
    : {
        gate: 'root_cause_fixed',
        passed: false,
        reason:
          'root cause not confirmed fixed; recovery would re-enable spending while the cause may be live',
      };
}

/**
 * The identity gate: the registered key must match the pinned one, and the reputation must not have
 * fallen 30 % since containment. An agent whose key was made directly has no reputation row (the
 * gateway's 404 "Agent reputation not found"): that is no evidence either way, so the gate stands on the
 * identity evidence that exists and says plainly that there is no reputation record. A read that fails
 * (5xx, timeout) fails the gate: nothing was verified.
 */
async function identityGate(deps: OpsDeps, incident: Incident, signal?: AbortSignal): Promise<GateVerdict> {
  const agentId = incident.primary_agent_id;
  const opts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  try {
    const [identity, reputation] = await Promise.all([
      deps.monitor.getAgentIdentity({ agent_id: agentId }, opts).catch((e: unknown) => {
        // No identity record is an answer (keys made directly have none), judged against the pin below.
        const code = errorInfo(e).code;
        if (code === 'not_found' || code === 'agent_not_found') return { public_key: null };
        throw e;
      }),
      deps.monitor.getAgentReputationRecord({ agent_id: agentId }, opts),
    ]);
    const pin = deps.store.getPin(agentId);
    const registered = identity.public_key ? normalizeKey(identity.public_key) : null;
    if (pin && registered !== normalizeKey(pin.public_key)) {
      return {
        gate: 'identity_verified',
        passed: false,
        reason:
          'registered public key differs from the pinned key; rotate keys, re-register the identity, then re-pin deliberately',
      };
    }
    const keyNote = pin
      ? 'registered key matches the pinned key'
      : registered
        ? 'no pin on record; key pinned now'
        : `no identity record and no pin for ${agentId} (its key was made directly): no key to compare`;
    if (reputation === null)
      return {
        gate: 'identity_verified',
        passed: true,
        reason: `${keyNote}; no reputation record exists on the gateway for ${agentId} (its key was made directly), so reputation was not used`,
      };
    const before = reputationAtContainment(deps, incident.id);
    const now = reputation.composite_score;
    if (before && before > 0 && now > 0 && (before - now) / before >= 0.3) {
      return {
        gate: 'identity_verified',
        passed: false,
        reason: `reputation fell ${Math.round(((before - now) / before) * 100)} % since containment (${before} → ${now})`,
      };
    }
    const repNote =
      now === 0 ? 'reputation not computed by the gateway (all zero); not used' : `reputation ${now}`;
    return { gate: 'identity_verified', passed: true, reason: `${keyNote}; ${repNote}` };
  } catch (e) {
    const info = errorInfo(e);
    return {
      gate: 'identity_verified',
      passed: false,
      reason: `could not verify identity (${info.code}: ${info.message}); try again`,
    };
  }
}

function reputationAtContainment(deps: OpsDeps, incidentId: string): number | undefined {
  const check = deps.store.listActions(incidentId).find((a) => a.action === 'check_identity' && a.success);
  const rep = (check?.result as { reputation?: { composite_score?: number } } | undefined)?.reputation;
  return typeof rep?.composite_score === 'number' ? rep.composite_score : undefined;
}

async function budgetGate(
  deps: OpsDeps,
  incident: Incident,
  spec: (typeof RECOVERY_STAGES)[number],
  stages: { stage: number; at: number }[],
  req: RecoverRequest,
  signal?: AbortSignal,
): Promise<{ verdict: GateVerdict; caps?: { daily: number; monthly: number } }> {
  const agentId = incident.primary_agent_id;
  const pre = deps.store.getPreIncidentState(incident.id, agentId);
  let preDaily = pre?.daily_cap ?? null;
  if (preDaily === null && req.restore_daily_cap) {
    try {
      preDaily = parseCents(req.restore_daily_cap);
    } catch {
      return {
        verdict: {
          gate: 'budget_restorable',
          passed: false,
          reason: `restore_daily_cap "${req.restore_daily_cap}" is not a decimal amount with at most 2 decimals`,
        },
      };
    }
  }
  if (preDaily === null || preDaily <= 0) {
    return {
      verdict: {
        gate: 'budget_restorable',
        passed: false,
        reason: pre
          ? 'the agent had no daily cap before the incident; "no cap" is not a safe level — pass restore_daily_cap'
          : 'no pre-incident caps on record (the read failed during containment) — pass restore_daily_cap',
      },
    };
  }
  const preMonthly = pre?.monthly_cap && pre.monthly_cap > 0 ? pre.monthly_cap : preDaily * 30;
  if (spec.waitMs > 0) {
    const first = stages.find((s) => s.stage === 1);
    const since = first ? deps.clock.now() - first.at : 0;
    if (!first || since < spec.waitMs) {
      const notBefore = new Date((first?.at ?? deps.clock.now()) + spec.waitMs).toISOString();
      return {
        verdict: {
          gate: 'budget_restorable',
          passed: false,
          reason: `stage ${spec.stage} needs ${spec.waitMs / HOUR} h since stage 1 with no anomaly; not before ${notBefore}`,
        },
      };
    }
    const pass = await runDetectionPass(deps, { agent_ids: [agentId], signal });
    const live = pass.raw.filter((a) => a.signal !== 'detection_failure' && a.severity !== 'info');
    if (pass.blind_checks > 0)
      return {
        verdict: {
          gate: 'budget_restorable',
          passed: false,
          reason: `detection is blind for ${agentId} (${pass.blind_checks} checks failed); cannot confirm no anomaly`,
        },
      };
    if (live.length > 0)
      return {
        verdict: {
          gate: 'budget_restorable',
          passed: false,
          reason: `anomalies now: ${live.map((a) => `${a.signal} (${a.severity})`).join(', ')}`,
        },
      };
  }
  const daily = Math.floor((preDaily * spec.percent) / 100);
  const monthly = Math.floor((preMonthly * spec.percent) / 100);
  return {
    verdict: {
      gate: 'budget_restorable',
      passed: true,
      reason: `restore ${spec.percent} % of ${moneyText(preDaily)} daily / ${moneyText(preMonthly)} monthly`,
    },
    caps: { daily, monthly },
  };
}

async function applyStage(
  deps: OpsDeps,
  incident: Incident,
  spec: (typeof RECOVERY_STAGES)[number],
  caps: { daily: number; monthly: number },
  gates: GateVerdict[],
  signal?: AbortSignal,
): Promise<RecoverResult> {
  const { store, clock } = deps;
  const actor = deps.actor;
  if (!actor)
    throw new ToolError(
      'containment_key_missing',
      'Recovery acts through the containment key, which is not configured.',
    );
  const agentId = incident.primary_agent_id;
  const opts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const steps: StepReport[] = [];
  const act = async (action: string, params: Record<string, unknown>, fn: () => Promise<unknown>) => {
    const r = await recordAction(
      deps,
      { incident_id: incident.id, agent_id: agentId, phase: 'recover', action, target: agentId, params },
      fn,
      () => params,
    );
    steps.push(r.report);
    return r.ok;
  };

  // Stage 1 unfreezes. Whatever the agent armed while frozen (intents created, subscriptions opened: a
  // freeze blocks neither) would move money the moment it is unfrozen, so it is stopped first, through
  // the same ledger as containment; if anything is left or unreadable, the wallet stays frozen.
  if (spec.stage === 1) {
    const armed = await disarmMoneyPaths(deps, incident, opts);
    steps.push(...armed.steps);
    if (armed.left !== 0) {
      steps.push({
        action: 'check_money_paths_before_unfreeze',
        target: agentId,
        success: false,
        error: {
          code: 'money_paths_armed',
          message:
            armed.left === null
              ? 'pending intents or active subscriptions could not be read; the wallet stays frozen'
              : `${armed.left} pending intents or active subscriptions are left; the wallet stays frozen`,
          retryable: true,
        },
        started_at: clock.now(),
        duration_ms: 0,
      });
      return describeStage(deps, incident, spec.stage - 1, gates, steps, false, false);
    }
  }
  const capsOk = await act(
    'restore_budget_caps',
    {
      stage: spec.stage,
      percent: spec.percent,
      daily_cap: formatCents(caps.daily),
      monthly_cap: formatCents(caps.monthly),
    },
    () =>
      actor.setBudgetCap(
        { agent_id: agentId, daily_cap: centsToNumber(caps.daily), monthly_cap: centsToNumber(caps.monthly) },
        opts,
      ),
  );
  let unfrozen = false;
  if (capsOk && spec.stage === 1) {
    unfrozen = await act('unfreeze_wallet', {}, () => actor.unfreezeWallet({ agent_id: agentId }, opts));
    if (unfrozen) store.setFrozenBelief(agentId, false, incident.id);
  }
  const ok = capsOk && (spec.stage !== 1 || unfrozen);
  if (ok) {
    const at = clock.now();
    store.recordRecoveryStage(incident.id, agentId, {
      stage: spec.stage,
      percent: spec.percent,
      daily_cap: caps.daily,
      monthly_cap: caps.monthly,
      gates,
      at,
    });
    if (spec.stage === 3) {
      store.transition(incident.id, 'resolved', { resolved_at: at });
      publishQuietly(deps, incident.id, 'incident_resolved', { agent_id: agentId, stages: 3 });
    } else {
      store.transition(incident.id, 'recovering', spec.stage === 1 ? { recovery_started_at: at } : {});
      publishQuietly(deps, incident.id, 'incident_recovery_stage', {
        agent_id: agentId,
        stage: spec.stage,
        percent: spec.percent,
      });
    }
  }
  const r = await describeStage(
    deps,
    store.getIncident(incident.id) ?? incident,
    ok ? spec.stage : spec.stage - 1,
    gates,
    steps,
    ok,
    false,
  );
  return { ...r, unfrozen };
}

/** Voids pending intents and cancels active subscriptions the agent has now; how many are left (null: unknown). */
async function disarmMoneyPaths(
  deps: OpsDeps,
  incident: Incident,
  callOpts: CallOpts,
): Promise<{ steps: StepReport[]; left: number | null }> {
  const agentId = incident.primary_agent_id;
  const act = recoveryAct(deps, incident.id, agentId);
  const onlyPayee = incident.suspect_payee ?? undefined;
  const [intents, subscriptions] = await Promise.all([
    listPendingIntents(deps, agentId, onlyPayee, callOpts),
    listActiveSubscriptions(deps, agentId, onlyPayee, callOpts),
  ]);
  const out = await stopMoneyPaths(
    {
      deps,
      incidentId: incident.id,
      agentId,
      onlyPayee,
      act,
      callOpts,
      deadline: Date.now() + deps.config.containment.unlockDeadlineMs,
    },
    { intents, subscriptions },
    deps.config.containment.maxRefundRounds,
  );
  const p = out.intents.pending_left;
  const a = out.subscriptions.active_left;
  return { steps: out.steps, left: p === null || a === null ? null : p + a };
}

async function describeStage(
  deps: OpsDeps,
  incident: Incident,
  stage: number,
  gates: GateVerdict[],
  steps: StepReport[],
  applied: boolean,
  dryRun: boolean,
): Promise<RecoverResult> {
  const stages = stagesSinceContainment(deps, incident);
  const last = stages.find((s) => s.stage === stage);
  const first = stages.find((s) => s.stage === 1);
  const next = RECOVERY_STAGES.find((s) => s.stage === stage + 1);
  const notBefore = next
    ? next.waitMs === 0
      ? deps.clock.now()
      : (first?.at ?? deps.clock.now()) + next.waitMs
    : null;
  const spec = RECOVERY_STAGES.find((s) => s.stage === stage);
  return {
    incident_id: incident.id,
    agent_id: incident.primary_agent_id,
    dry_run: dryRun,
    applied,
    stage,
    percent: spec?.percent ?? 0,
    gates,
    daily_cap: last ? formatCents(last.daily_cap) : null,
    monthly_cap: last ? formatCents(last.monthly_cap) : null,
    unfrozen: stage >= 1,
    status: incident.status,
    next_stage: next?.stage ?? null,
    next_stage_not_before: notBefore === null ? null : new Date(notBefore).toISOString(),
    monitoring_interval_s:
      recoveryMonitoringS(stages, deps.clock.now()) ?? (stages.length ? STANDARD_MONITORING_S : 30),
    steps,
    cancelled_subscriptions: cancelledSubscriptions(deps, incident.id),
  };
}

/**
 * Seconds between polls for an agent in recovery (SPEC): 30 s at 50 %, 60 s at 75 % and 100 %, and the
 * standard interval (null) once 48 h have passed since the first stage, or before any stage.
 */
export function recoveryMonitoringS(
  stages: readonly { stage: number; at: number }[],
  now: number,
): number | null {
  const first = stages.find((s) => s.stage === 1);
  const last = stages[stages.length - 1];
  if (!first || !last || now - first.at >= STANDARD_MONITORING_AFTER_MS) return null;
  return RECOVERY_STAGES.find((s) => s.stage === last.stage)?.monitoringS ?? null;
}

/** The poll interval the watcher gives an agent now: tighter while contained or recovering. */
export function monitoringIntervalMs(deps: OpsDeps, agentId: string, defaultMs: number): number {
  const incident =
    deps.store.findActiveIncident(agentId) ??
    deps.store.listIncidents({ agent_id: agentId, limit: 1, offset: 0 })[0];
  if (!incident) return defaultMs;
  const stages = stagesSinceContainment(deps, incident);
  // Contained, not yet recovering: watch closely (it should be quiet; a new anomaly means the cause is live).
  if (stages.length === 0) return incident.status === 'resolved' ? defaultMs : Math.min(defaultMs, 30_000);
  const s = recoveryMonitoringS(stages, deps.clock.now());
  return s === null ? defaultMs : Math.min(defaultMs, s * 1000);
}

/** Gateway writes of recovery, each recorded as an action of the incident (phase `recover`). */
function recoveryAct(deps: OpsDeps, incidentId: string, agentId: string): Act {
  return (action, target, params, fn, summarize) =>
    recordAction(
      deps,
      { incident_id: incidentId, agent_id: agentId, phase: 'recover', action, target, params },
      fn,
      summarize,
    );
}
