/**
 * The five runbooks as code (their data is in catalog.ts). Each runs on the same engine as the tools
 * (containAgent, the store, the alert sink); nothing here talks HTTP directly.
 */
import { centsToNumber, money, moneyText, sumCents } from '../greenhelix/money.js';
import { ToolError } from '../util/errors.js';
import { toEpochMs } from '../util/time.js';
import type { Alert } from './alerts.js';
import { RUNBOOKS, type RunbookName } from './catalog.js';
import { type ContainResult, containAgent, publishQuietly } from './contain.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo, recordAction } from './deps.js';
import { mapBounded } from './limit.js';
import { type PlannedCall, planContainment, planned } from './plan.js';

export {
  isRunbookName,
  listRunbookNames,
  RUNBOOKS,
  type RunbookInfo,
  type RunbookName,
  renderRunbookMarkdown,
  runbookForSignal,
} from './catalog.js';

export interface RunbookRequest {
  runbook: RunbookName;
  agent_ids: string[];
  params: { payee?: string | undefined; open_dispute?: boolean | undefined; reason?: string | undefined };
  dry_run: boolean;
  /** When the triggering anomaly was detected (watcher, or the caller's anomaly); the SLA runs from here. */
  detected_at?: number | undefined;
  /** The triggering anomaly's signal and priority, recorded in the incident (default: the runbook's own). */
  signal?: string | undefined;
  priority?: string | undefined;
}

export interface RunbookStep extends StepReport {
  agent_id?: string | undefined;
}

export interface RunbookResult {
  runbook: RunbookName;
  dry_run: boolean;
  incident_id: string | null;
  status: string;
  root_cause_agent: string | null;
  steps: RunbookStep[];
  planned_calls: PlannedCall[];
  page: string | null;
  follow_up: string[];
  contained: ContainResult[];
}

export interface RunbookOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number, message: string) => void) | undefined;
  alert?: ((alert: Alert) => Promise<void>) | undefined;
}

export async function runRunbook(
  deps: OpsDeps,
  req: RunbookRequest,
  opts: RunbookOptions = {},
): Promise<RunbookResult> {
  if (req.runbook === 'escrow_exploitation' && !req.params.payee) {
    throw new ToolError(
      'payee_required',
      'escrow_exploitation needs params.payee: the suspect payee.',
      false,
      'Take it from the escrow_exploitation anomaly details (suspect_payee).',
    );
  }
  if (req.dry_run) return planRunbook(deps, req, opts.signal);
  switch (req.runbook) {
    case 'runaway_spending':
      return runContainmentRunbook(deps, req, opts, { stop_if_freeze_fails: true });
    case 'identity_compromise':
      return runContainmentRunbook(deps, req, opts, { preserve: true });
    case 'escrow_exploitation':
      return runExploitation(deps, req, opts);
    case 'service_degradation':
      return runDegradation(deps, req, opts);
    case 'cascade_failure':
      return runCascade(deps, req, opts);
  }
}

function base(req: RunbookRequest): RunbookResult {
  return {
    runbook: req.runbook,
    dry_run: req.dry_run,
    incident_id: null,
    status: 'planned',
    root_cause_agent: null,
    steps: [],
    planned_calls: [],
    page: null,
    follow_up: RUNBOOKS[req.runbook].follow_up,
    contained: [],
  };
}

async function planRunbook(deps: OpsDeps, req: RunbookRequest, signal?: AbortSignal): Promise<RunbookResult> {
  const out = base(req);
  for (const agentId of req.agent_ids) {
    if (req.runbook === 'service_degradation') {
      out.planned_calls.push(
        planned('reduce_budget', 'get_budget_status', 'monitor', { agent_id: agentId }),
        planned('reduce_budget', 'set_budget_cap', 'containment', {
          agent_id: agentId,
          daily_cap: '50 % of current',
          monthly_cap: 'unchanged',
        }),
        planned('read', 'get_agent_reputation', 'monitor', { agent_id: agentId }),
        planned('read', 'get_usage_summary', 'monitor', { agent_id: agentId }),
        planned('publish', 'publish_event', 'containment', {
          event_type: 'service_degradation',
          source: 'agent-incident-mcp',
        }),
      );
      continue;
    }
    if (req.runbook === 'identity_compromise') {
      out.planned_calls.push(
        planned('preserve', 'get_agent_identity', 'monitor', { agent_id: agentId }),
        planned('preserve', 'get_claim_chains', 'monitor', { agent_id: agentId }),
        planned('preserve', 'get_verified_claims', 'monitor', { agent_id: agentId }),
      );
    }
    const plan = await planContainment(deps, { agent_id: agentId, suspect_payee: req.params.payee }, signal);
    out.planned_calls.push(...plan.planned_calls);
    if (req.runbook === 'escrow_exploitation' && req.params.payee) {
      if (req.params.open_dispute) {
        out.planned_calls.push(
          planned(
            'dispute',
            'open_dispute',
            'containment',
            { opener: agentId, payee: req.params.payee },
            plan.held_escrows,
          ),
        );
      }
      out.planned_calls.push(
        planned('read_payee', 'get_agent_reputation', 'monitor', { agent_id: req.params.payee }),
        planned('flag_payee', 'publish_event', 'containment', {
          event_type: 'counterparty_flagged',
          source: 'agent-incident-mcp',
        }),
      );
    }
  }
  if (req.runbook === 'cascade_failure') {
    out.planned_calls.push(
      planned('publish', 'publish_event', 'containment', {
        event_type: 'cascade_detected',
        source: 'agent-incident-mcp',
      }),
    );
  }
  return out;
}

function stepsOf(r: ContainResult): RunbookStep[] {
  return r.steps.map((s) => ({ ...s, agent_id: r.agent_id }));
}

async function page(opts: RunbookOptions, alert: Alert): Promise<string> {
  await opts.alert?.(alert);
  return alert.title;
}

async function runContainmentRunbook(
  deps: OpsDeps,
  req: RunbookRequest,
  opts: RunbookOptions,
  how: { stop_if_freeze_fails?: boolean; preserve?: boolean },
): Promise<RunbookResult> {
  const out = base(req);
  const info = RUNBOOKS[req.runbook];
  const reason = req.params.reason ?? `${req.runbook} runbook`;
  const results = await mapBounded(req.agent_ids, 8, (agentId) =>
    containAgent(
      deps,
      {
        agent_id: agentId,
        reason,
        signal: req.signal,
        priority: req.priority ?? info.priority,
        runbook: req.runbook,
        detected_at: req.detected_at,
        stop_if_freeze_fails: how.stop_if_freeze_fails,
      },
      {
        signal: opts.signal,
        onProgress: opts.onProgress,
        before: how.preserve ? (id) => preserveIdentity(deps, id, agentId, opts.signal) : undefined,
      },
    ),
  );
  for (const r of results) {
    out.steps.push(...stepsOf(r));
    out.contained.push(r);
    if (how.preserve && !r.existing)
      publishQuietly(deps, r.incident_id, 'security_incident', {
        agent_id: r.agent_id,
        runbook: req.runbook,
      });
  }
  out.incident_id = results[0]?.incident_id ?? null;
  const failedFreeze = results.filter((r) => r.status === 'containment_failed');
  out.status = failedFreeze.length
    ? 'manual_intervention_required'
    : results.every((r) => r.status === 'contained')
      ? 'contained'
      : 'partial';
  const agents = results.map((r) => r.agent_id).join(', ');
  if (failedFreeze.length && how.stop_if_freeze_fails) {
    out.page = await page(opts, {
      level: 'page',
      priority: 'P0',
      severity: 'critical',
      agent_id: failedFreeze[0]!.agent_id,
      signal: req.signal ?? req.runbook,
      title: `MANUAL INTERVENTION REQUIRED: freeze failed for ${failedFreeze.map((r) => r.agent_id).join(', ')}; runbook stopped`,
      actions: ['freeze_wallet (failed)'],
      incident_id: failedFreeze[0]!.incident_id,
      tier: 'auto_contain',
    });
    return out;
  }
  const cancelled = results.reduce((n, r) => n + r.escrows_cancelled, 0);
  const amount = moneyText(sumCents(results.map((r) => r.amount_unlocked_cents)));
  out.page = await page(opts, {
    level: 'page',
    priority: info.priority,
    severity: 'critical',
    agent_id: results[0]?.agent_id ?? req.agent_ids[0]!,
    signal: req.signal ?? req.runbook,
    title: `${info.title}: contained ${agents}; ${cancelled} escrows cancelled, ${amount} recovered`,
    actions: ['freeze_wallet', 'set_budget_caps_to_zero', 'cancel_held_escrows', 'check_identity'],
    incident_id: out.incident_id ?? undefined,
    tier: 'auto_contain',
    details: { escrows_cancelled: cancelled, amount_recovered: amount, status: out.status },
  });
  return out;
}

/** Identity runbook: keep the evidence before anything can change it. */
async function preserveIdentity(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  signal?: AbortSignal,
): Promise<StepReport[]> {
  const t = deps.clock.now();
  const opts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const id = deps.store.beginAction({
    incident_id: incidentId,
    agent_id: agentId,
    phase: 'contain',
    action: 'preserve_identity_evidence',
    target: agentId,
  });
  const [identity, chains, claims] = await Promise.allSettled([
    deps.monitor.getAgentIdentity({ agent_id: agentId }, opts),
    deps.monitor.getClaimChains({ agent_id: agentId }, opts),
    deps.monitor.getVerifiedClaims({ agent_id: agentId }, opts),
  ]);
  const evidence = {
    identity: identity.status === 'fulfilled' ? identity.value : { error: errorInfo(identity.reason) },
    claim_chains: chains.status === 'fulfilled' ? chains.value.chains : { error: errorInfo(chains.reason) },
    verified_claims:
      claims.status === 'fulfilled' ? claims.value.claims : { error: errorInfo(claims.reason) },
  };
  const ok = identity.status === 'fulfilled';
  deps.store.finishAction(
    id,
    ok
      ? { success: true, result: evidence }
      : {
          success: false,
          error_code: 'identity_unreadable',
          error_message: 'identity record could not be read',
          result: evidence,
        },
  );
  return [
    {
      action: 'preserve_identity_evidence',
      target: agentId,
      success: ok,
      detail: {
        public_key: identity.status === 'fulfilled' ? identity.value.public_key : null,
        claim_chains: chains.status === 'fulfilled' ? chains.value.chains.length : null,
        verified_claims: claims.status === 'fulfilled' ? claims.value.claims.length : null,
      },
      started_at: t,
      duration_ms: deps.clock.now() - t,
    },
  ];
}

async function runExploitation(
  deps: OpsDeps,
  req: RunbookRequest,
  opts: RunbookOptions,
): Promise<RunbookResult> {
  const out = base(req);
  const payee = req.params.payee as string;
  const callOpts = { signal: opts.signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  for (const agentId of req.agent_ids) {
    const disputeSteps: StepReport[] = [];
    const r = await containAgent(
      deps,
      {
        agent_id: agentId,
        reason: req.params.reason ?? `escrow exploitation by ${payee}`,
        suspect_payee: payee,
        signal: req.signal ?? 'escrow_exploitation',
        priority: req.priority ?? 'P1',
        runbook: req.runbook,
        detected_at: req.detected_at,
      },
      {
        signal: opts.signal,
        onProgress: opts.onProgress,
        // Disputes need a held escrow, so they are opened before the escrows are cancelled.
        before: req.params.open_dispute
          ? async (incidentId) => openDisputes(deps, incidentId, agentId, payee, callOpts, disputeSteps)
          : undefined,
      },
    );
    out.contained.push(r);
    out.steps.push(...stepsOf(r));
    out.incident_id ??= r.incident_id;
    if (r.existing) continue;
    const t = deps.clock.now();
    const rep = await deps.monitor.getAgentReputationRecord({ agent_id: payee }, callOpts).then(
      (v) => ({ ok: true as const, v }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    const repStep: RunbookStep = rep.ok
      ? {
          action: 'read_payee_reputation',
          target: payee,
          agent_id: agentId,
          success: true,
          detail: rep.v
            ? { composite_score: rep.v.composite_score, found: rep.v.found }
            : { composite_score: null, found: false, reputation_record: 'none' },
          started_at: t,
          duration_ms: deps.clock.now() - t,
        }
      : {
          action: 'read_payee_reputation',
          target: payee,
          agent_id: agentId,
          success: false,
          error: errorInfo(rep.e),
          started_at: t,
          duration_ms: deps.clock.now() - t,
        };
    out.steps.push(repStep);
    const recId = deps.store.beginAction({
      incident_id: r.incident_id,
      agent_id: agentId,
      phase: 'contain',
      action: 'read_payee_reputation',
      target: payee,
    });
    deps.store.finishAction(
      recId,
      rep.ok
        ? { success: true, result: repStep.detail }
        : { success: false, error_code: repStep.error?.code, error_message: repStep.error?.message },
    );
    // The gateway has no flag field and its metric names are a fixed list of performance numbers, so
    // writing a fake metric would corrupt them: the flag is an event other supervisors can read.
    publishQuietly(deps, r.incident_id, 'counterparty_flagged', {
      agent_id: payee,
      payer: agentId,
      reason: 'escrow_exploitation',
    });
    out.steps.push({
      action: 'flag_payee',
      target: payee,
      agent_id: agentId,
      success: true,
      detail: { event_type: 'counterparty_flagged' },
      started_at: deps.clock.now(),
      duration_ms: 0,
    });
  }
  out.status = out.contained.every((r) => r.status === 'contained' || r.existing) ? 'contained' : 'partial';
  out.page = await page(opts, {
    level: 'page',
    priority: 'P1',
    severity: 'warning',
    agent_id: req.agent_ids[0]!,
    signal: 'escrow_exploitation',
    title: `Escrow exploitation: ${req.agent_ids.join(', ')} frozen, payee ${payee} frozen and flagged; ${out.contained.reduce((n, r) => n + r.escrows_cancelled, 0)} escrows to it cancelled`,
    actions: [
      'freeze_wallet',
      'freeze_suspect_payee',
      'cancel_payee_escrows',
      'read_payee_reputation',
      'flag_payee',
    ],
    incident_id: out.incident_id ?? undefined,
    tier: 'auto_contain',
  });
  return out;
}

async function openDisputes(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  payee: string,
  callOpts: { signal?: AbortSignal | undefined; timeoutMs: number },
  sink: StepReport[],
): Promise<StepReport[]> {
  const actor = deps.actor!;
  const t = deps.clock.now();
  const id = deps.store.beginAction({
    incident_id: incidentId,
    agent_id: agentId,
    phase: 'contain',
    action: 'open_disputes',
    target: payee,
  });
  try {
    const held = (await deps.monitor.listAllEscrows({ agent_id: agentId, status: 'held' }, callOpts)).filter(
      (e) => e.payer === agentId && e.payee === payee,
    );
    const results = await mapBounded(held, deps.config.containment.concurrency, (e) =>
      actor
        .openDispute(
          {
            escrow_id: e.id,
            opener: agentId,
            reason: `escrow exploitation by ${payee} (incident ${incidentId})`,
          },
          callOpts,
        )
        .then(
          () => true,
          () => false,
        ),
    );
    const opened = results.filter(Boolean).length;
    deps.store.finishAction(id, {
      success: opened === held.length,
      result: { opened, attempted: held.length },
    });
    const step: StepReport = {
      action: 'open_disputes',
      target: payee,
      success: opened === held.length,
      detail: { opened, attempted: held.length },
      started_at: t,
      duration_ms: deps.clock.now() - t,
    };
    sink.push(step);
    return [step];
  } catch (e) {
    const info = errorInfo(e);
    deps.store.finishAction(id, { success: false, error_code: info.code, error_message: info.message });
    return [
      {
        action: 'open_disputes',
        target: payee,
        success: false,
        error: info,
        started_at: t,
        duration_ms: deps.clock.now() - t,
      },
    ];
  }
}

/** Degradation: no freeze; halve the daily budget, record why, alert in chat. */
async function runDegradation(
  deps: OpsDeps,
  req: RunbookRequest,
  opts: RunbookOptions,
): Promise<RunbookResult> {
  const out = base(req);
  const actor = deps.actor!;
  const callOpts = { signal: opts.signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  for (const agentId of req.agent_ids) {
    const { incident, created } = deps.store.claimContainment(agentId, {
      agent_ids: [agentId],
      primary_agent_id: agentId,
      reason: req.params.reason ?? 'service degradation',
      signal: req.signal ?? 'reputation_drift',
      priority: req.priority ?? 'P2',
      runbook: req.runbook,
      kind: 'service_degradation',
      detected_at: req.detected_at ?? deps.clock.now(),
    });
    out.incident_id ??= incident.id;
    if (!created) {
      out.steps.push({
        action: 'reduce_budget',
        target: agentId,
        agent_id: agentId,
        success: true,
        skipped: true,
        detail: { reason: `already handled by incident ${incident.id} (${incident.status})` },
        started_at: deps.clock.now(),
        duration_ms: 0,
      });
      continue;
    }
    deps.store.transition(incident.id, 'containing', { containment_started_at: deps.clock.now() });
    const act = async (
      action: string,
      target: string,
      fn: () => Promise<Record<string, unknown> | undefined>,
    ) => {
      const r = await recordAction(
        deps,
        { incident_id: incident.id, agent_id: agentId, phase: 'contain', action, target },
        fn,
        (d) => d,
      );
      out.steps.push({ ...r.report, agent_id: agentId });
      return r.ok;
    };

    let halved = false;
    await act('reduce_budget_by_half', agentId, async () => {
      const b = await deps.monitor.getBudgetStatus({ agent_id: agentId }, callOpts);
      const pre = deps.store.recordPreIncidentState(incident.id, agentId, {
        daily_cap: b.daily_cap,
        monthly_cap: b.monthly_cap,
        alert_threshold: null,
        frozen_before: null,
      });
      const daily = pre.daily_cap ?? null;
      if (daily === null || daily <= 0) return { skipped: 'no daily cap to halve', daily_cap: null };
      const next = Math.floor(daily / 2);
      // PUT replaces both caps: send the monthly cap back unchanged or it would be cleared.
      await actor.setBudgetCap(
        {
          agent_id: agentId,
          daily_cap: centsToNumber(next),
          monthly_cap: pre.monthly_cap === null ? null : centsToNumber(pre.monthly_cap),
        },
        callOpts,
      );
      halved = true;
      return { daily_cap_before: money(daily), daily_cap: money(next) };
    });
    await act('read_reputation_and_usage', agentId, async () => {
      const [rep, usage] = await Promise.all([
        deps.monitor.getAgentReputationRecord({ agent_id: agentId }, callOpts),
        deps.monitor.getUsageSummary({ agent_id: agentId }, callOpts),
      ]);
      return {
        // An agent whose key was made directly has no reputation row: say so rather than fail the step.
        ...(rep ? {} : { reputation_record: 'none' }),
        composite_score: rep ? rep.composite_score : null,
        total_calls: usage.total_calls,
        total_cost: usage.total_cost,
      };
    });
    publishQuietly(deps, incident.id, 'service_degradation', { agent_id: agentId, budget_halved: halved });
    const now = deps.clock.now();
    deps.store.transition(incident.id, halved ? 'contained' : 'containment_partial', {
      contained_at: now,
      containment_elapsed_ms: now - (incident.detected_at ?? now),
      met_sla: true,
    });
    out.page = await page(opts, {
      level: 'chat',
      priority: 'P2',
      severity: 'warning',
      agent_id: agentId,
      signal: req.signal ?? 'reputation_drift',
      title: `Service degradation on ${agentId}: daily budget ${halved ? 'halved' : 'NOT changed'}; no freeze`,
      actions: halved ? ['reduce_budget_by_half'] : [],
      incident_id: incident.id,
      tier: 'alert_human',
    });
  }
  out.status = out.steps.every((s) => s.success) ? 'mitigated' : 'partial';
  return out;
}

/** Cascade: contain every affected agent at once, name the root cause, keep forensics on it. */
async function runCascade(deps: OpsDeps, req: RunbookRequest, opts: RunbookOptions): Promise<RunbookResult> {
  const out = base(req);
  const t0 = deps.clock.now();
  const root = await rootCauseAgent(deps, req.agent_ids, opts.signal);
  const parent = deps.store.createIncident({
    agent_ids: req.agent_ids,
    primary_agent_id: root ?? req.agent_ids[0]!,
    reason: req.params.reason ?? `cascade across ${req.agent_ids.length} agents`,
    signal: req.signal ?? 'cascade',
    priority: req.priority ?? 'P0',
    runbook: req.runbook,
    kind: 'cascade',
    detected_at: req.detected_at ?? t0,
  });
  out.incident_id = parent.id;
  out.root_cause_agent = root;
  const results = await Promise.all(
    req.agent_ids.map((agentId) =>
      containAgent(
        deps,
        {
          agent_id: agentId,
          reason: `cascade ${parent.id}${agentId === root ? ' (root cause)' : ''}`,
          signal: req.signal ?? 'cascade',
          priority: req.priority ?? 'P0',
          runbook: req.runbook,
          detected_at: req.detected_at ?? t0,
          parent_incident_id: parent.id,
        },
        { signal: opts.signal },
      ),
    ),
  );
  for (const r of results) {
    out.contained.push(r);
    out.steps.push(...stepsOf(r));
  }
  if (root) {
    const forensics = await preserveIdentity(deps, parent.id, root, opts.signal);
    out.steps.push(...forensics.map((s) => ({ ...s, agent_id: root })));
  }
  const now = deps.clock.now();
  const allContained = results.every((r) => r.status === 'contained' || r.existing);
  deps.store.transition(parent.id, 'containing', { containment_started_at: t0, root_cause_agent: root });
  deps.store.transition(parent.id, allContained ? 'contained' : 'containment_partial', {
    contained_at: now,
    containment_elapsed_ms: now - t0,
    met_sla: now - (req.detected_at ?? t0) <= deps.config.containment.slaMs,
    escrows_cancelled: results.reduce((n, r) => n + r.escrows_cancelled, 0),
    escrows_failed: results.reduce((n, r) => n + r.escrows_failed, 0),
    amount_unlocked_cents: sumCents(results.map((r) => r.amount_unlocked_cents)),
  });
  publishQuietly(deps, parent.id, 'cascade_detected', {
    agent_id: root ?? req.agent_ids[0],
    agents: req.agent_ids,
    root_cause_agent: root,
  });
  out.status = allContained ? 'contained' : 'partial';
  out.page = await page(opts, {
    level: 'page',
    priority: 'P0',
    severity: 'critical',
    agent_id: root ?? req.agent_ids[0]!,
    signal: 'cascade',
    title: `Cascade across ${req.agent_ids.length} agents contained; root cause ${root ?? 'unknown'}`,
    actions: ['contain_all_affected', 'forensics_root_cause', 'publish_cascade_event'],
    incident_id: parent.id,
    tier: 'auto_contain',
    details: { agents: req.agent_ids, root_cause_agent: root },
  });
  return out;
}

/**
 * The agent with the largest spend anomaly: the most escrow principal still held as payer from the last
 * hour (what a retry loop leaves behind), read through the monitor key.
 */
export async function rootCauseAgent(
  deps: OpsDeps,
  agentIds: string[],
  signal?: AbortSignal,
): Promise<string | null> {
  const since = deps.clock.now() - 60 * 60_000;
  const spend = await mapBounded(agentIds, 16, async (agentId) => {
    try {
      // Every page of held escrows: a loop that ran long holds more than one page's worth.
      const held = await deps.monitor.listAllEscrows(
        { agent_id: agentId, status: 'held' },
        { signal, timeoutMs: deps.config.greenhelix.timeoutMs },
      );
      return sumCents(
        held
          .filter(
            (e) => e.payer === agentId && e.status === 'held' && (toEpochMs(e.created_at) ?? 0) >= since,
          )
          .map((e) => e.amount),
      );
    } catch {
      return -1;
    }
  });
  let best: string | null = null;
  let bestSpend = 0;
  spend.forEach((s, i) => {
    if (s > bestSpend) {
      bestSpend = s;
      best = agentIds[i] ?? null;
    }
  });
  return best;
}
