/**
 * Containment against the real gateway's rules (SPEC "Containment", CONTRACT.md §8).
 *
 * The naive order (freeze, then cancel escrows) fails on the real gateway: a cancel refunds the payer,
 * and a refund into a frozen wallet is refused with `wallet_frozen`. Budget caps bind only fee-bearing
 * REST calls by the agent itself, never batch calls, so a cap of 0 alone does not stop spending. The
 * design, in round trips (RTT):
 *
 *  0. Before any gateway call, the incident row exists (atomic claim: one incident per agent) and every
 *     action is written ahead to the store, so a crash at any point can be finished or undone.
 *  1. RTT 1, concurrently: freeze the wallet (stops escrow creation by REST and batch alike), read the
 *     budget caps, list held escrows, and (exploitation) freeze the suspect payee so it cannot release
 *     held escrows to itself. The freeze needs no prior value: freezing loses nothing recovery needs.
 *  2. As soon as the caps are durably recorded as pre-incident state: caps to 0 (blocks fee-bearing REST
 *     calls, including during the refund window below).
 *  3. Refund window, bounded: unfreeze, cancel every held escrow concurrently, refreeze (always, even
 *     if cancels failed), list again; repeat while new held escrows appeared, at most `maxRefundRounds`.
 *     The window's length is measured and reported; caps are already 0 while it is open.
 *  4. Identity check runs beside step 3 (reads only): registered key vs the pinned key, reputation and
 *     claims. A mismatch widens the incident to "compromised" and publishes a security event.
 *  5. Summary event. Event publishing never blocks containment (fire and forget, result recorded).
 *
 * Batch is not used here: /v1/batch has no admin promotion, so the containment key's cancel of another
 * agent's escrow would fail its ownership check there (CONTRACT.md §1); concurrency does the work instead.
 *
 * Idempotent: a second call for a contained agent returns the existing incident and does nothing.
 * Two callers at once in one process wait on a per-agent mutex; across processes the store's atomic
 * claim yields one incident. A restarted server resumes incidents left in `containing`.
 */
import { formatCents, sumCents } from '../greenhelix/money.js';
import type { Incident } from '../incidents/index.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo, type Recorded, recordAction } from './deps.js';
import { KeyedMutex, mapBounded } from './limit.js';

export interface ContainRequest {
  agent_id: string;
  reason: string;
  /** Only escrows to this payee are cancelled, and the payee's wallet is frozen too (exploitation). */
  suspect_payee?: string | undefined;
  signal?: string | undefined;
  severity?: string | undefined;
  priority?: string | undefined;
  runbook?: string | undefined;
  /** When the anomaly was detected (ms); defaults to now. The 60 s SLA runs from here. */
  detected_at?: number | undefined;
  /** Part of a larger incident (cascade, fleet shutdown): the steps are recorded under it. */
  parent_incident_id?: string | undefined;
  check_identity?: boolean | undefined;
  /** Runaway runbook: if the freeze fails, stop (and page) instead of opening refund windows. */
  stop_if_freeze_fails?: boolean | undefined;
}

export interface ContainOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number, message: string) => void) | undefined;
  /**
   * Runs after the incident exists and before any state-changing call (identity runbook: preserve the
   * identity record and claim chains before anything else can change them).
   */
  before?: ((incidentId: string) => Promise<StepReport[]>) | undefined;
}

export interface ContainResult {
  incident_id: string;
  agent_id: string;
  /** True when the agent was already contained and nothing was done. */
  existing: boolean;
  status: string;
  steps: StepReport[];
  escrows_cancelled: number;
  escrows_failed: number;
  escrows_skipped: number;
  amount_unlocked_cents: number;
  amount_unlocked: string;
  time_to_freeze_ms: number | null;
  refund_window_ms: number | null;
  elapsed_ms: number;
  met_sla: boolean;
  identity_compromised: boolean;
}

interface HeldEscrow {
  id: string;
  payee: string;
  amount: number;
}

const mutex = new KeyedMutex();

/**
 * Statuses in which the agent is already contained. A `recovering` agent is not: containing it again
 * (the cause came back) re-freezes it under the same incident, and recovery starts over at stage 1.
 */
const CONTAINED = new Set(['contained', 'containment_partial']);

export async function containAgent(
  deps: OpsDeps,
  req: ContainRequest,
  opts: ContainOptions = {},
): Promise<ContainResult> {
  return mutex.run(req.agent_id, () => containLocked(deps, req, opts));
}

/**
 * Finishes a containment a crashed process left in `containing` (its refund window may be open). Runs
 * under the same per-agent lock as `containAgent`, so a caller arriving meanwhile waits and then sees
 * the finished incident instead of running a second containment beside it.
 */
export async function resumeContainment(
  deps: OpsDeps,
  incidentId: string,
): Promise<ContainResult | undefined> {
  const first = deps.store.getIncident(incidentId);
  if (!first) return undefined;
  return mutex.run(first.primary_agent_id, async () => {
    const incident = deps.store.getIncident(incidentId);
    if (!incident) return undefined;
    if (incident.status !== 'containing') return existingResult(deps, incident);
    return runContainment(deps, incident, {
      agent_id: incident.primary_agent_id,
      reason: incident.reason,
      suspect_payee: incident.suspect_payee ?? undefined,
    });
  });
}

async function containLocked(
  deps: OpsDeps,
  req: ContainRequest,
  opts: ContainOptions,
): Promise<ContainResult> {
  const { store, clock } = deps;
  const detectedAt = req.detected_at ?? clock.now();
  const { incident, created } = store.claimContainment(req.agent_id, {
    agent_ids: [req.agent_id],
    primary_agent_id: req.agent_id,
    reason: req.reason,
    signal: req.signal,
    severity: req.severity,
    priority: req.priority,
    runbook: req.runbook,
    kind: req.suspect_payee ? 'escrow_exploitation' : 'containment',
    detected_at: detectedAt,
    parent_incident_id: req.parent_incident_id,
  });
  if (!created && CONTAINED.has(incident.status)) return existingResult(deps, incident);
  return runContainment(deps, incident, req, opts);
}

function existingResult(deps: OpsDeps, incident: Incident): ContainResult {
  const steps = deps.store.listActions(incident.id).map(
    (a): StepReport => ({
      action: a.action,
      target: a.target ?? undefined,
      success: Boolean(a.success),
      error: a.success
        ? undefined
        : { code: a.error_code ?? 'unknown', message: a.error_message ?? '', retryable: false },
      started_at: a.started_at,
      duration_ms: a.duration_ms ?? 0,
    }),
  );
  return {
    incident_id: incident.id,
    agent_id: incident.primary_agent_id,
    existing: true,
    status: incident.status,
    steps,
    escrows_cancelled: incident.escrows_cancelled ?? 0,
    escrows_failed: incident.escrows_failed ?? 0,
    escrows_skipped: 0,
    amount_unlocked_cents: incident.amount_unlocked_cents ?? 0,
    amount_unlocked: formatCents(incident.amount_unlocked_cents ?? 0),
    time_to_freeze_ms: incident.time_to_freeze_ms ?? null,
    refund_window_ms: null,
    elapsed_ms: incident.containment_elapsed_ms ?? 0,
    met_sla: Boolean(incident.met_sla),
    identity_compromised: incident.widened_to === 'compromised',
  };
}

/** Runs (or resumes) the containment of one incident's primary agent. */
export async function runContainment(
  deps: OpsDeps,
  incident: Incident,
  req: ContainRequest,
  opts: ContainOptions = {},
): Promise<ContainResult> {
  const { store, clock, config, logger } = deps;
  const actor = deps.actor;
  if (!actor) throw new Error('containment requires the containment key client');
  const agentId = req.agent_id;
  const startedAt = clock.now();
  const detectedAt = incident.detected_at ?? startedAt;
  // The cause came back while recovering: a new round, and recovery will start over at stage 1.
  if (incident.status === 'recovering') store.startContainmentRound(incident.id);
  if (incident.status !== 'containing') {
    store.transition(incident.id, 'containing', { containment_started_at: startedAt });
  }
  const log = logger.child({ incident_id: incident.id, agent_id: agentId });
  const steps: StepReport[] = [];

  /** Runs one gateway action, written ahead to the store and finished with its outcome. */
  async function act<T>(
    action: string,
    target: string | undefined,
    params: Record<string, unknown> | undefined,
    fn: () => Promise<T>,
    summarize?: (value: T) => Record<string, unknown>,
  ): Promise<Recorded<T>> {
    const r = await recordAction(
      deps,
      { incident_id: incident.id, agent_id: agentId, phase: 'contain', action, target, params },
      fn,
      summarize,
    );
    if (!r.ok) log.warn({ action, target, code: r.report.error?.code }, 'containment step failed');
    return r;
  }

  const callOpts = { signal: opts.signal, timeoutMs: config.greenhelix.timeoutMs };
  // Freezes are never abandoned: a caller's cancellation must not leave a wallet unfrozen.
  const freezeOpts = { timeoutMs: config.greenhelix.timeoutMs };
  if (opts.before) steps.push(...(await opts.before(incident.id)));
  publishQuietly(deps, incident.id, 'incident_opened', {
    agent_id: agentId,
    reason: req.reason,
    signal: req.signal,
  });

  // RTT 1: freeze, read caps, list held escrows, freeze the suspect payee — all at once.
  const freezeP = act('freeze_wallet', agentId, undefined, () =>
    actor.freezeWallet({ agent_id: agentId }, freezeOpts),
  );
  const payeeFreezeP = req.suspect_payee
    ? act('freeze_suspect_payee', req.suspect_payee, undefined, () =>
        actor.freezeWallet({ agent_id: req.suspect_payee as string }, freezeOpts),
      )
    : undefined;
  const capsP = act(
    'record_pre_incident_caps',
    agentId,
    undefined,
    () => deps.monitor.getBudgetStatus({ agent_id: agentId }, callOpts),
    (b) => ({ daily_cap: b.daily_cap, monthly_cap: b.monthly_cap }),
  );
  const heldP = listHeld(deps, agentId, req.suspect_payee, callOpts);

  const freeze = await freezeP;
  let frozenAt: number | null = null;
  if (freeze.ok) {
    frozenAt = clock.now();
    store.setFrozenBelief(agentId, true, incident.id);
    store.transition(incident.id, 'containing', {
      frozen_at: frozenAt,
      time_to_freeze_ms: frozenAt - startedAt,
    });
  }
  steps.push(freeze.report);
  opts.onProgress?.(1, 4, freeze.ok ? 'wallet frozen' : 'wallet freeze FAILED');

  // Caps to 0, only once the pre-incident caps are on record (write-once: a resumed run keeps the first).
  if (!freeze.ok && req.stop_if_freeze_fails) {
    await Promise.allSettled([capsP, heldP, payeeFreezeP]);
    return finish(
      deps,
      incident.id,
      agentId,
      startedAt,
      detectedAt,
      steps,
      null,
      'containment_failed',
      emptyUnlock(),
      false,
    );
  }
  const caps = await capsP;
  if (caps.ok) {
    const pre = store.recordPreIncidentState(incident.id, agentId, {
      daily_cap: caps.value.daily_cap,
      monthly_cap: caps.value.monthly_cap,
      alert_threshold: null,
      frozen_before: null,
    });
    caps.report.detail = { daily_cap: pre.daily_cap, monthly_cap: pre.monthly_cap };
  }
  steps.push(caps.report);
  // Even without the old caps on record, stopping fee-bearing spend matters more; recovery then asks a
  // person for the caps to restore (its third gate fails with that reason).
  const zero = await act('set_budget_caps_to_zero', agentId, { daily_cap: 0, monthly_cap: 0 }, () =>
    actor.setBudgetCap({ agent_id: agentId, daily_cap: 0, monthly_cap: 0 }, callOpts),
  );
  steps.push(zero.report);
  if (payeeFreezeP) {
    const payeeFreeze = await payeeFreezeP;
    if (payeeFreeze.ok) store.setFrozenBelief(req.suspect_payee as string, true, incident.id);
    steps.push(payeeFreeze.report);
  }
  opts.onProgress?.(2, 4, 'spending stopped; unlocking held escrows');

  // Identity runs beside the refund window: reads only, through the monitor key.
  const identityP =
    req.check_identity === false ? undefined : checkIdentity(deps, incident.id, agentId, callOpts);

  const unlock = await unlockEscrows(
    deps,
    incident.id,
    agentId,
    req.suspect_payee,
    await heldP,
    act,
    callOpts,
    opts,
  );
  steps.push(...unlock.steps);
  opts.onProgress?.(3, 4, `escrows: ${unlock.cancelled} cancelled, ${unlock.failed} failed`);

  let compromised = false;
  if (identityP) {
    const identity = await identityP;
    compromised = identity.compromised;
    steps.push(identity.report);
    if (compromised) {
      store.transition(incident.id, 'containing', { widened_to: 'compromised' });
      publishQuietly(deps, incident.id, 'security_incident', {
        agent_id: agentId,
        reason: identity.report.detail?.reason ?? 'identity check failed',
      });
    }
  }

  const status = !freeze.ok
    ? 'containment_failed'
    : unlock.failed > 0 || !zero.ok
      ? 'containment_partial'
      : 'contained';
  opts.onProgress?.(4, 4, `containment ${status}`);
  return finish(
    deps,
    incident.id,
    agentId,
    startedAt,
    detectedAt,
    steps,
    frozenAt,
    status,
    unlock,
    compromised,
  );
}

function emptyUnlock(): UnlockOutcome {
  return { steps: [], cancelled: 0, failed: 0, skipped: 0, amountCents: 0, windowMs: null };
}

function finish(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  startedAt: number,
  detectedAt: number,
  steps: StepReport[],
  frozenAt: number | null,
  status: string,
  unlock: UnlockOutcome,
  compromised: boolean,
): ContainResult {
  const { clock, store, config, logger } = deps;
  const finishedAt = clock.now();
  const elapsed = finishedAt - startedAt;
  const metSla = frozenAt !== null && finishedAt - detectedAt <= config.containment.slaMs;
  store.transition(incidentId, status, {
    contained_at: finishedAt,
    containment_elapsed_ms: elapsed,
    met_sla: metSla,
    escrows_cancelled: unlock.cancelled,
    escrows_failed: unlock.failed,
    amount_unlocked_cents: unlock.amountCents,
  });
  publishQuietly(deps, incidentId, 'incident_contained', {
    agent_id: agentId,
    status,
    elapsed_ms: elapsed,
    escrows_cancelled: unlock.cancelled,
    escrows_failed: unlock.failed,
    amount_unlocked: formatCents(unlock.amountCents),
  });
  logger.info(
    {
      incident_id: incidentId,
      agent_id: agentId,
      status,
      elapsed_ms: elapsed,
      escrows_cancelled: unlock.cancelled,
    },
    'containment finished',
  );
  return {
    incident_id: incidentId,
    agent_id: agentId,
    existing: false,
    status,
    steps,
    escrows_cancelled: unlock.cancelled,
    escrows_failed: unlock.failed,
    escrows_skipped: unlock.skipped,
    amount_unlocked_cents: unlock.amountCents,
    amount_unlocked: formatCents(unlock.amountCents),
    time_to_freeze_ms: frozenAt === null ? null : frozenAt - startedAt,
    refund_window_ms: unlock.windowMs,
    elapsed_ms: elapsed,
    met_sla: metSla,
    identity_compromised: compromised,
  };
}

type Act = <T>(
  action: string,
  target: string | undefined,
  params: Record<string, unknown> | undefined,
  fn: () => Promise<T>,
  summarize?: (value: T) => Record<string, unknown>,
) => Promise<Recorded<T>>;

interface CallOpts {
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

async function listHeld(
  deps: OpsDeps,
  agentId: string,
  onlyPayee: string | undefined,
  callOpts: CallOpts,
): Promise<{ ok: true; held: HeldEscrow[] } | { ok: false; error: unknown }> {
  try {
    const escrows = await deps.monitor.listAllEscrows({ agent_id: agentId, status: 'held' }, callOpts);
    const held = escrows
      .filter((e) => e.status === 'held' && e.payer === agentId && (!onlyPayee || e.payee === onlyPayee))
      .map((e) => ({ id: e.id, payee: e.payee, amount: e.amount }));
    return { ok: true, held };
  } catch (error) {
    return { ok: false, error };
  }
}

interface UnlockOutcome {
  steps: StepReport[];
  cancelled: number;
  failed: number;
  skipped: number;
  amountCents: number;
  windowMs: number | null;
}

/**
 * The refund window: unfreeze, cancel all held escrows concurrently, refreeze; repeat while new ones
 * appeared. The refreeze is in a `finally`: the wallet never stays unfrozen because a cancel threw.
 */
async function unlockEscrows(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  onlyPayee: string | undefined,
  firstList: Awaited<ReturnType<typeof listHeld>>,
  act: Act,
  callOpts: CallOpts,
  opts: ContainOptions,
): Promise<UnlockOutcome> {
  const { config, clock, store } = deps;
  const actor = deps.actor!;
  const out: UnlockOutcome = {
    steps: [],
    cancelled: 0,
    failed: 0,
    skipped: 0,
    amountCents: 0,
    windowMs: null,
  };
  const t0 = clock.now();
  if (!firstList.ok) {
    const info = errorInfo(firstList.error);
    out.steps.push({
      action: 'list_held_escrows',
      target: agentId,
      success: false,
      error: info,
      started_at: t0,
      duration_ms: 0,
    });
    return out;
  }
  let held = firstList.held;
  const failedIds = new Set<string>();
  for (let round = 1; round <= config.containment.maxRefundRounds; round++) {
    const todo = held.filter((e) => !failedIds.has(e.id));
    if (todo.length === 0) {
      if (round === 1) {
        out.steps.push({
          action: 'cancel_held_escrows',
          target: agentId,
          success: true,
          skipped: true,
          detail: { held: 0, reason: 'no held escrows as payer' },
          started_at: clock.now(),
          duration_ms: 0,
        });
      }
      break;
    }
    const unfreeze = await act('open_refund_window', agentId, { round }, () =>
      actor.unfreezeWallet({ agent_id: agentId }, callOpts),
    );
    out.steps.push(unfreeze.report);
    const windowOpened = clock.now();
    let cancels: { escrow: HeldEscrow; ok: boolean; code?: string; message?: string }[] = [];
    try {
      if (unfreeze.ok) store.setFrozenBelief(agentId, false, incidentId);
      const batch = await act(
        'cancel_held_escrows',
        agentId,
        {
          round,
          escrow_ids: todo.map((e) => e.id),
          amount: formatCents(sumCents(todo.map((e) => e.amount))),
        },
        async () => {
          cancels = await mapBounded(
            todo,
            config.containment.concurrency,
            async (escrow) => {
              try {
                await actor.cancelEscrow({ escrow_id: escrow.id }, callOpts);
                return { escrow, ok: true };
              } catch (e) {
                const info = errorInfo(e);
                return { escrow, ok: false, code: info.code, message: info.message };
              }
            },
            (done) =>
              opts.onProgress?.(2 + done / todo.length, 4, `cancelled ${done}/${todo.length} escrows`),
          );
          return cancels;
        },
        (results) => summarizeCancels(results),
      );
      out.steps.push(batch.report);
    } finally {
      const refreeze = await act('close_refund_window', agentId, { round }, () =>
        actor.freezeWallet({ agent_id: agentId }, { timeoutMs: callOpts.timeoutMs }),
      );
      out.steps.push(refreeze.report);
      if (refreeze.ok) store.setFrozenBelief(agentId, true, incidentId);
      out.windowMs = (out.windowMs ?? 0) + (clock.now() - windowOpened);
    }
    for (const c of cancels) {
      if (c.ok) {
        out.cancelled++;
        out.amountCents += c.escrow.amount;
      } else if (c.code === 'invalid_state' || c.code === 'escrow_not_found') {
        // Settled, refunded or expired in the meantime: nothing left to unlock.
        out.skipped++;
      } else {
        failedIds.add(c.escrow.id);
      }
    }
    const again = await listHeld(deps, agentId, onlyPayee, callOpts);
    if (!again.ok) {
      out.steps.push({
        action: 'verify_no_held_escrows',
        target: agentId,
        success: false,
        error: errorInfo(again.error),
        started_at: clock.now(),
        duration_ms: 0,
      });
      break;
    }
    held = again.held;
  }
  out.failed = held.length;
  return out;
}

function summarizeCancels(
  results: { escrow: HeldEscrow; ok: boolean; code?: string }[],
): Record<string, unknown> {
  const failures: Record<string, number> = {};
  let unlocked = 0;
  let ok = 0;
  for (const r of results) {
    if (r.ok) {
      ok++;
      unlocked += r.escrow.amount;
    } else {
      failures[r.code ?? 'unknown'] = (failures[r.code ?? 'unknown'] ?? 0) + 1;
    }
  }
  return { attempted: results.length, cancelled: ok, amount_unlocked: formatCents(unlocked), failures };
}

async function checkIdentity(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  callOpts: CallOpts,
): Promise<{ compromised: boolean; report: StepReport }> {
  const { store, clock, monitor } = deps;
  const t = clock.now();
  const id = store.beginAction({
    incident_id: incidentId,
    agent_id: agentId,
    phase: 'contain',
    action: 'check_identity',
    target: agentId,
  });
  const [identity, reputation, claims] = await Promise.allSettled([
    monitor.getAgentIdentity({ agent_id: agentId }, callOpts),
    monitor.getAgentReputation({ agent_id: agentId }, callOpts),
    monitor.getVerifiedClaims({ agent_id: agentId }, callOpts),
  ]);
  const pin = store.getPin(agentId);
  let reason: string | undefined;
  let registeredKey: string | null = null;
  if (identity.status === 'rejected') {
    const info = errorInfo(identity.reason);
    reason =
      info.code === 'not_found' || info.code === 'agent_not_found' ? 'identity record missing' : undefined;
    if (!reason) {
      store.finishAction(id, { success: false, error_code: info.code, error_message: info.message });
      return {
        compromised: false,
        report: {
          action: 'check_identity',
          target: agentId,
          success: false,
          error: info,
          started_at: t,
          duration_ms: clock.now() - t,
        },
      };
    }
  } else {
    registeredKey = identity.value.public_key ?? null;
    if (!pin && registeredKey) store.pinKey(agentId, registeredKey, 'containment');
    else if (pin && registeredKey !== pin.public_key)
      reason = 'registered public key differs from the pinned key';
  }
  const detail: Record<string, unknown> = {
    pinned_key: pin?.public_key ?? registeredKey,
    registered_key: registeredKey,
    reputation:
      reputation.status === 'fulfilled' ? reputation.value : { error: errorInfo(reputation.reason).code },
    verified_claims:
      claims.status === 'fulfilled' ? claims.value.claims.length : { error: errorInfo(claims.reason).code },
    compromised: Boolean(reason),
    reason,
  };
  store.finishAction(id, { success: true, result: detail });
  return {
    compromised: Boolean(reason),
    report: {
      action: 'check_identity',
      target: agentId,
      success: true,
      detail,
      started_at: t,
      duration_ms: clock.now() - t,
    },
  };
}

/** Publishes an incident event without ever blocking or failing the caller; the outcome is recorded. */
export function publishQuietly(
  deps: OpsDeps,
  incidentId: string,
  eventType: string,
  payload: Record<string, unknown>,
): void {
  const actor = deps.actor;
  if (!actor) return;
  const id = deps.store.beginAction({
    incident_id: incidentId,
    agent_id: String(payload.agent_id ?? ''),
    phase: 'learn',
    action: `publish_${eventType}`,
  });
  actor
    .publishEvent(
      {
        event_type: eventType,
        source: 'agent-incident-mcp',
        payload: { incident_id: incidentId, ...payload },
      },
      { timeoutMs: 5_000 },
    )
    .then(
      (r) => deps.store.finishAction(id, { success: true, result: { event_id: r.event_id } }),
      (e) => {
        const info = errorInfo(e);
        deps.store.finishAction(id, { success: false, error_code: info.code, error_message: info.message });
      },
    )
    .catch(() => undefined);
}
