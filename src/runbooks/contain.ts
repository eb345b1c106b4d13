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
 *  3. Refund windows, bounded (unlock.ts): unfreeze, cancel every held escrow once through the escrow
 *     ledger, refreeze (always, retried until it sticks), read back; repeat with backoff while anything is
 *     held or retryable, up to `maxRefundRounds` and the unlock deadline. The windows are measured and
 *     reported; caps are already 0 while they are open.
 *  2b. Before any refund window opens, with the wallet frozen (contain-paths.ts): void the agent's pending
 *     intents and cancel its active subscriptions, each written ahead to the money-path ledger, beside the
 *     read that confirms none is left (1 RTT at 128 in flight for 100 intents and 20 subscriptions); settled
 *     intents since the claw-back window are listed with their total, never refunded here. Critical path
 *     for 300 held escrows: freeze, list, void ∥ read, unfreeze, 3 waves of cancels, refreeze, read: 9 RTT.
 *  4. Identity check runs beside step 3 (reads only): registered key vs the pinned key, reputation and
 *     claims. A mismatch widens the incident to "compromised" and publishes a security event.
 *  5. Summary event. Event publishing never blocks containment (fire and forget, result recorded).
 *
 * Batch is not used here: /v1/batch has no admin promotion, so the containment key's cancel of another
 * agent's escrow would fail its ownership check there (CONTRACT.md §1); concurrency does the work instead.
 *
 * The status is derived from the verified end state, never from the first freeze alone: `contained` only
 * when the last wallet call was a successful freeze, the caps are 0 and a fresh read shows nothing held;
 * (and no pending intent or active subscription left); `containment_partial` when frozen with something still exposed; `containment_failed` when the wallet is
 * not known to be frozen. Anything but `contained` pages, naming what is still exposed.
 *
 * Idempotent: a second call for a contained agent returns the existing incident and does nothing; on a
 * partial or failed incident it resumes it. In one process callers wait on a per-agent mutex; across
 * processes a lease in the store lets one act (the other gets the existing incident). A restarted server,
 * or the watcher of any live process, resumes incidents left in `containing` once their holder is gone,
 * first reconciling the actions the dead run had begun.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatCents } from '../greenhelix/money.js';
import type { Incident } from '../incidents/index.js';
import {
  type CancelledSubscription,
  type Clawback,
  listActiveSubscriptions,
  listClawback,
  listPendingIntents,
  type PathsOutcome,
  pathTotals,
  stopMoneyPaths,
} from './contain-paths.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo, inFlightActions, type Recorded, recordAction, trackInFlight } from './deps.js';
import { containmentLease, ownerIsDead, takeContainmentLease } from './lease.js';
import { KeyedMutex } from './limit.js';
import {
  type Act,
  type CallOpts,
  listHeld,
  type UnlockOutcome,
  unlockEscrows,
  type WalletGate,
} from './unlock.js';

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

/** What is still exposed when containment ends; all false/0 for `contained`. */
export interface Exposure {
  wallet_frozen: boolean;
  caps_zero: boolean;
  /** Held escrows as payer still read (or not confirmed either way) at the end; null when unreadable. */
  held_escrows: number | null;
  held_amount: string | null;
  /** Pending intents as payer at the end (capturable once unfrozen); null when unreadable. */
  pending_intents: number | null;
  pending_intents_amount: string | null;
  /** Active subscriptions as payer at the end (charged when due once unfrozen); null when unreadable. */
  active_subscriptions: number | null;
}

/** What containment did on the intent and subscription paths (escrows are the top-level fields). */
export interface PathsReport {
  intents: {
    voided: number;
    amount_voided: string;
    refunded_instead: number;
    skipped: number;
    failed: number;
  };
  subscriptions: {
    cancelled: number;
    skipped: number;
    failed: number;
    /** Cancelled ones, with what recovery needs to offer them back (the gateway cannot reactivate them). */
    cancelled_list: CancelledSubscription[];
  };
  /** Settled intents since the claw-back window, not refunded (a separate, confirmed action). */
  clawback: { intents: number | null; total: string | null; since: number; intent_ids: string[] };
}

export interface ContainResult {
  incident_id: string;
  agent_id: string;
  /** True when nothing was done now: already contained, or another process is containing it. */
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
  exposure: Exposure;
  paths: PathsReport;
}

const mutex = new KeyedMutex();

export async function containAgent(
  deps: OpsDeps,
  req: ContainRequest,
  opts: ContainOptions = {},
): Promise<ContainResult> {
  return mutex.run(req.agent_id, () => containLocked(deps, req, opts));
}

/**
 * Finishes a containment a crashed process left in `containing` (its refund window may be open). Runs
 * under the same per-agent lock and lease as `containAgent`, so a caller arriving meanwhile waits (or,
 * in another process, gets the existing incident) instead of running a second containment beside it.
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
    const lease = takeContainmentLease(deps, incident.primary_agent_id);
    if (!lease) return existingResult(deps, incident);
    try {
      return await runContainment(deps, incident, {
        agent_id: incident.primary_agent_id,
        reason: incident.reason,
        suspect_payee: incident.suspect_payee ?? undefined,
      });
    } finally {
      lease.release();
    }
  });
}

/**
 * Incidents left mid-containment with nobody acting on them: `containing`, and no live process holds the
 * agent's lease (it expired, or its holder on this host is gone). Their wallet may be unfrozen in an open
 * refund window: a restarted server, the watcher and readiness find them here.
 */
export function abandonedContainments(deps: OpsDeps): Incident[] {
  const { store } = deps;
  return store
    .listIncidents({ status: 'containing', limit: 500 })
    .filter((i) => i.kind !== 'cascade' && i.kind !== 'fleet_shutdown')
    .filter((i) => {
      if (mutex.isHeld(i.primary_agent_id)) return false;
      const lease = store.leases.get(containmentLease(i.primary_agent_id));
      return !lease || lease.expires_at <= Date.now() || ownerIsDead(lease.owner, store);
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
    suspect_payee: req.suspect_payee,
    detected_at: detectedAt,
    parent_incident_id: req.parent_incident_id,
  });
  if (!created && incident.status === 'contained') return existingResult(deps, incident);
  const lease = takeContainmentLease(deps, req.agent_id);
  // Another live process is acting on this agent: its incident is the answer, never a second containment.
  if (!lease) return existingResult(deps, store.getIncident(incident.id) ?? incident);
  try {
    // Re-read under the lease: the holder we waited for may have finished it meanwhile.
    const current = store.getIncident(incident.id) ?? incident;
    if (!created && current.status === 'contained') return existingResult(deps, current);
    return await runContainment(deps, current, req, opts);
  } finally {
    lease.release();
  }
}

function existingResult(deps: OpsDeps, incident: Incident): ContainResult {
  const inFlight = inFlightActions();
  const steps = deps.store.listActions(incident.id).map((a): StepReport => {
    const pending = a.finished_at === null;
    return {
      action: a.action,
      target: a.target ?? undefined,
      success: Boolean(a.success),
      // Begun and not finished: in flight here (an event publish), or left by a process that stopped.
      pending: pending || undefined,
      error:
        a.success || pending
          ? undefined
          : { code: a.error_code ?? 'unknown', message: a.error_message ?? '', retryable: false },
      detail:
        pending && !inFlight.has(a.id)
          ? { note: 'begun by a process that stopped; reconciled on resume' }
          : undefined,
      started_at: a.started_at,
      duration_ms: a.duration_ms ?? 0,
    };
  });
  const totals = deps.store.escrows.totals(incident.id);
  const cancelledCents = Math.max(totals.cancelled_cents, incident.amount_unlocked_cents ?? 0);
  return {
    incident_id: incident.id,
    agent_id: incident.primary_agent_id,
    existing: true,
    status: incident.status,
    steps,
    escrows_cancelled: Math.max(totals.cancelled, incident.escrows_cancelled ?? 0),
    escrows_failed: incident.escrows_failed ?? totals.open,
    escrows_skipped: totals.gone,
    amount_unlocked_cents: cancelledCents,
    amount_unlocked: formatCents(cancelledCents),
    time_to_freeze_ms: incident.time_to_freeze_ms ?? null,
    refund_window_ms: null,
    elapsed_ms: incident.containment_elapsed_ms ?? 0,
    met_sla: Boolean(incident.met_sla),
    identity_compromised: incident.widened_to === 'compromised',
    exposure: {
      wallet_frozen: deps.store.getFrozenBelief(incident.primary_agent_id) === true,
      caps_zero: incident.status === 'contained',
      held_escrows: incident.status === 'contained' ? 0 : (incident.escrows_failed ?? null),
      held_amount: incident.status === 'contained' ? formatCents(0) : null,
      pending_intents: incident.status === 'contained' ? 0 : null,
      pending_intents_amount: incident.status === 'contained' ? formatCents(0) : null,
      active_subscriptions: incident.status === 'contained' ? 0 : null,
    },
    // The claw-back list is read at containment time; an existing incident reports none read now.
    paths: pathsReport(deps, incident.id, undefined, {
      intents: null,
      total_cents: null,
      since: incident.detected_at ?? 0,
    }),
  };
}

function pathsReport(
  deps: OpsDeps,
  incidentId: string,
  paths: PathsOutcome | undefined,
  clawback: Clawback,
): PathsReport {
  const t = paths ?? { ...pathTotals(deps, incidentId) };
  return {
    intents: {
      voided: t.intents.voided,
      amount_voided: formatCents(t.intents.voided_cents),
      refunded_instead: t.intents.refunded_instead,
      skipped: t.intents.skipped,
      failed: t.intents.failed,
    },
    subscriptions: {
      cancelled: t.subscriptions.cancelled,
      skipped: t.subscriptions.skipped,
      failed: t.subscriptions.failed,
      cancelled_list: t.subscriptions.cancelled_list,
    },
    clawback: {
      intents: clawback.intents === null ? null : clawback.intents.length,
      total: clawback.total_cents === null ? null : formatCents(clawback.total_cents),
      since: clawback.since,
      intent_ids: (clawback.intents ?? []).map((i) => i.id),
    },
  };
}

/** Runs (or resumes) the containment of one incident's primary agent. The caller holds the agent's lease. */
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
  // Network budgets run on real time: the store's clock may be a drill's scaled clock.
  const deadline = Date.now() + config.containment.unlockDeadlineMs;
  // The cause came back while recovering: a new round, and recovery will start over at stage 1.
  if (incident.status === 'recovering') store.startContainmentRound(incident.id);
  if (incident.status !== 'containing') {
    store.transition(incident.id, 'containing', { containment_started_at: startedAt });
  }
  const log = logger.child({ incident_id: incident.id, agent_id: agentId });
  const steps: StepReport[] = [];
  const interrupted = reconcileInterrupted(deps, incident.id);
  if (interrupted) steps.push(interrupted);

  /** Runs one gateway action, written ahead to the store and finished with its outcome. */
  const act: Act = async (action, target, params, fn, summarize) => {
    const r = await recordAction(
      deps,
      { incident_id: incident.id, agent_id: agentId, phase: 'contain', action, target, params },
      fn,
      summarize,
    );
    if (!r.ok) log.warn({ action, target, code: r.report.error?.code }, 'containment step failed');
    return r;
  };

  const callOpts: CallOpts = { signal: opts.signal, timeoutMs: config.greenhelix.timeoutMs };
  const wallet = walletGate(deps, incident.id, agentId, act, deadline);
  if (opts.before) steps.push(...(await opts.before(incident.id)));
  publishQuietly(deps, incident.id, 'incident_opened', {
    agent_id: agentId,
    reason: req.reason,
    signal: req.signal,
  });

  // RTT 1: freeze, read caps, list held escrows, freeze the suspect payee — all at once.
  const freezeP = wallet.freeze('freeze_wallet');
  const payeeFreezeP = req.suspect_payee
    ? untilDeadline(deadline, () =>
        act('freeze_suspect_payee', req.suspect_payee, undefined, () =>
          actor.freezeWallet(
            { agent_id: req.suspect_payee as string },
            { timeoutMs: config.greenhelix.timeoutMs },
          ),
        ),
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
  const clawbackP = listClawback(deps, agentId, detectedAt - config.containment.clawbackWindowMs, callOpts);

  steps.push(...(await freezeP));
  let frozenAt: number | null = null;
  if (wallet.frozen) {
    frozenAt = clock.now();
    store.transition(incident.id, 'containing', {
      frozen_at: frozenAt,
      time_to_freeze_ms: frozenAt - startedAt,
    });
  }
  opts.onProgress?.(1, 4, wallet.frozen ? 'wallet frozen' : 'wallet freeze FAILED');

  if (!wallet.frozen && req.stop_if_freeze_fails) {
    await Promise.allSettled([capsP, heldP, payeeFreezeP]);
    const empty: UnlockOutcome = {
      steps: [],
      cancelled: 0,
      cancelledCents: 0,
      gone: 0,
      heldLeft: null,
      heldLeftCents: null,
      windowMs: null,
      rounds: 0,
    };
    return finish(
      deps,
      incident,
      { startedAt, detectedAt, steps, frozenAt, wallet, capsZero: false },
      empty,
      false,
      { paths: undefined, clawback: await clawbackP },
    );
  }
  // Intents and subscriptions, beside the caps: read once the freeze holds (no capture can succeed after
  // it), stopped while the wallet is still frozen, finished before any refund window opens.
  const pathsP = Promise.all([
    listPendingIntents(deps, agentId, req.suspect_payee, callOpts),
    listActiveSubscriptions(deps, agentId, req.suspect_payee, callOpts),
  ]).then(([intents, subscriptions]) =>
    stopMoneyPaths(
      { deps, incidentId: incident.id, agentId, onlyPayee: req.suspect_payee, act, callOpts, deadline },
      { intents, subscriptions },
      config.containment.maxRefundRounds,
    ),
  );
  // Caps to 0, only once the pre-incident caps are on record (write-once: a resumed run keeps the first).
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
  const zero = await untilDeadline(deadline, () =>
    act('set_budget_caps_to_zero', agentId, { daily_cap: 0, monthly_cap: 0 }, () =>
      actor.setBudgetCap({ agent_id: agentId, daily_cap: 0, monthly_cap: 0 }, callOpts),
    ),
  );
  steps.push(...zero.reports);
  if (payeeFreezeP) {
    const payeeFreeze = await payeeFreezeP;
    if (payeeFreeze.last.ok) store.setFrozenBelief(req.suspect_payee as string, true, incident.id);
    steps.push(...payeeFreeze.reports);
  }
  const paths = await pathsP;
  steps.push(...paths.steps);
  opts.onProgress?.(2, 4, 'spending stopped; unlocking held escrows');

  // Identity runs beside the refund windows: reads only, through the monitor key.
  const identityP =
    req.check_identity === false ? undefined : checkIdentity(deps, incident.id, agentId, callOpts);

  const unlock = await unlockEscrows(
    {
      deps,
      incidentId: incident.id,
      agentId,
      onlyPayee: req.suspect_payee,
      act,
      wallet,
      callOpts,
      deadline,
      onProgress: opts.onProgress,
    },
    await heldP,
  );
  steps.push(...unlock.steps);
  // A refund window whose refreeze never stuck: one more try before the verdict.
  if (!wallet.frozen && frozenAt !== null) steps.push(...(await wallet.freeze('refreeze_wallet')));
  opts.onProgress?.(3, 4, `escrows: ${unlock.cancelled} cancelled, ${unlock.heldLeft ?? '?'} still held`);

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
  return finish(
    deps,
    incident,
    { startedAt, detectedAt, steps, frozenAt, wallet, capsZero: zero.last.ok },
    unlock,
    compromised,
    { paths, clawback: await clawbackP },
    opts,
  );
}

/**
 * Freeze and unfreeze of the agent's wallet, with what we know of its state. A freeze is retried (it is
 * idempotent) until it sticks or the deadline passes; a refreeze closing a refund window keeps trying at
 * least 10 s past the deadline, since an open wallet is the worst thing containment can leave behind.
 * An unfreeze with no answer is taken as done: assume the worst.
 */
function walletGate(
  deps: OpsDeps,
  incidentId: string,
  agentId: string,
  act: Act,
  deadline: number,
): WalletGate {
  const { store, config } = deps;
  const actor = deps.actor!;
  const timeoutMs = config.greenhelix.timeoutMs;
  const gate: WalletGate = {
    frozen: false,
    async freeze(action, params) {
      const until = action === 'freeze_wallet' ? deadline : Math.max(deadline, Date.now() + 10_000);
      // Freezes are never abandoned on the caller's cancellation: no signal here.
      const r = await untilDeadline(until, () =>
        act(action, agentId, params, () => actor.freezeWallet({ agent_id: agentId }, { timeoutMs })),
      );
      if (r.last.ok) {
        gate.frozen = true;
        store.setFrozenBelief(agentId, true, incidentId);
      }
      return r.reports;
    },
    async unfreeze(action, params) {
      const r = await act(action, agentId, params, () =>
        actor.unfreezeWallet({ agent_id: agentId }, { timeoutMs }),
      );
      const definiteRefusal =
        !r.ok &&
        (r.error as { status?: number }).status !== undefined &&
        (r.error as { status: number }).status >= 400 &&
        (r.error as { status: number }).status < 500;
      if (!definiteRefusal) {
        gate.frozen = false;
        store.setFrozenBelief(agentId, false, incidentId);
      }
      return r.report;
    },
  };
  return gate;
}

/**
 * Retries a recorded action while its failure is retryable (network, 429, 5xx) and the next backoff ends
 * before the deadline. Each attempt is its own recorded action.
 */
async function untilDeadline<T>(
  deadline: number,
  attempt: () => Promise<Recorded<T>>,
): Promise<{ last: Recorded<T>; reports: StepReport[] }> {
  const reports: StepReport[] = [];
  for (let n = 0; ; n++) {
    const r = await attempt();
    reports.push(r.report);
    if (r.ok || !errorInfo(r.error).retryable) return { last: r, reports };
    const wait = Math.min(2_000, 200 * 2 ** n);
    if (Date.now() + wait > deadline) return { last: r, reports };
    await sleep(wait);
  }
}

/**
 * Settles the actions a stopped process had begun and never finished (its crash left them open): their
 * outcome is unknown, and this run re-establishes the state they were after (freeze, caps 0) or reads it
 * back (escrow cancels, through the ledger). Each is finished as `interrupted`, so none stays open.
 */
function reconcileInterrupted(deps: OpsDeps, incidentId: string): StepReport | undefined {
  const { store, clock } = deps;
  const inFlight = inFlightActions();
  const stale = store.pendingActions(incidentId).filter((a) => !inFlight.has(a.id));
  if (stale.length === 0) return undefined;
  const how: Record<string, string> = {
    freeze_wallet: 're-applied by this run',
    close_refund_window: 're-applied by this run (freeze)',
    refreeze_wallet: 're-applied by this run (freeze)',
    open_refund_window: 'superseded: this run freezes first',
    set_budget_caps_to_zero: 're-applied by this run',
    cancel_held_escrows: 'each escrow re-read through the ledger',
    void_pending_intents: 'each intent re-read through the money-path ledger',
    cancel_active_subscriptions: 'each subscription re-read through the money-path ledger',
  };
  for (const a of stale) {
    store.finishAction(a.id, {
      success: false,
      error_code: 'interrupted',
      error_message: 'the process running this step stopped before its outcome was recorded',
      result: { reconciled: how[a.action] ?? 'outcome unknown; nothing to redo', at: clock.now() },
    });
  }
  return {
    action: 'reconcile_interrupted_actions',
    success: true,
    detail: { actions: stale.length, which: [...new Set(stale.map((a) => a.action))] },
    started_at: clock.now(),
    duration_ms: 0,
  };
}

interface Run {
  startedAt: number;
  detectedAt: number;
  steps: StepReport[];
  frozenAt: number | null;
  wallet: WalletGate;
  capsZero: boolean;
}

function finish(
  deps: OpsDeps,
  incident: Incident,
  run: Run,
  unlock: UnlockOutcome,
  compromised: boolean,
  money: { paths: PathsOutcome | undefined; clawback: Clawback },
  opts: ContainOptions = {},
): ContainResult {
  const { clock, store, config, logger } = deps;
  const agentId = incident.primary_agent_id;
  const finishedAt = clock.now();
  const elapsed = finishedAt - run.startedAt;
  const exposure: Exposure = {
    wallet_frozen: run.wallet.frozen,
    caps_zero: run.capsZero,
    held_escrows: unlock.heldLeft,
    held_amount: unlock.heldLeftCents === null ? null : formatCents(unlock.heldLeftCents),
    pending_intents: money.paths?.intents.pending_left ?? null,
    pending_intents_amount:
      money.paths?.intents.pending_left_cents == null
        ? null
        : formatCents(money.paths.intents.pending_left_cents),
    active_subscriptions: money.paths?.subscriptions.active_left ?? null,
  };
  const status = !exposure.wallet_frozen
    ? 'containment_failed'
    : exposure.caps_zero &&
        exposure.held_escrows === 0 &&
        exposure.pending_intents === 0 &&
        exposure.active_subscriptions === 0
      ? 'contained'
      : 'containment_partial';
  // The SLA is met by a containment that ends frozen in time, whatever happened to the first freeze.
  const metSla = status !== 'containment_failed' && finishedAt - run.detectedAt <= config.containment.slaMs;
  const totals = store.escrows.totals(incident.id);
  const failed = unlock.heldLeft ?? totals.open;
  store.transition(incident.id, status, {
    contained_at: finishedAt,
    containment_elapsed_ms: elapsed,
    met_sla: metSla,
    escrows_cancelled: totals.cancelled,
    escrows_failed: failed,
    amount_unlocked_cents: totals.cancelled_cents,
  });
  opts.onProgress?.(4, 4, `containment ${status}`);
  const paths = pathsReport(deps, incident.id, money.paths, money.clawback);
  publishQuietly(deps, incident.id, 'incident_contained', {
    agent_id: agentId,
    status,
    elapsed_ms: elapsed,
    escrows_cancelled: totals.cancelled,
    escrows_failed: failed,
    amount_unlocked: formatCents(totals.cancelled_cents),
    intents_voided: paths.intents.voided,
    subscriptions_cancelled: paths.subscriptions.cancelled,
    clawback_possible: paths.clawback.total,
  });
  if (status !== 'contained') pageExposure(deps, incident, status, exposure);
  logger.info(
    {
      incident_id: incident.id,
      agent_id: agentId,
      status,
      elapsed_ms: elapsed,
      escrows_cancelled: totals.cancelled,
    },
    'containment finished',
  );
  return {
    incident_id: incident.id,
    agent_id: agentId,
    existing: false,
    status,
    steps: run.steps,
    escrows_cancelled: totals.cancelled,
    escrows_failed: failed,
    escrows_skipped: totals.gone,
    amount_unlocked_cents: totals.cancelled_cents,
    amount_unlocked: formatCents(totals.cancelled_cents),
    time_to_freeze_ms: run.frozenAt === null ? null : run.frozenAt - run.startedAt,
    refund_window_ms: unlock.windowMs,
    elapsed_ms: elapsed,
    met_sla: metSla,
    identity_compromised: compromised,
    exposure,
    paths,
  };
}

/** A containment that leaves money exposed pages a person, saying exactly what is exposed. */
function pageExposure(deps: OpsDeps, incident: Incident, status: string, exposure: Exposure): void {
  const exposed = [
    exposure.wallet_frozen ? undefined : 'wallet NOT frozen',
    exposure.caps_zero ? undefined : 'budget caps not 0',
    exposure.held_escrows === null
      ? 'held escrows unknown (list failed)'
      : exposure.held_escrows > 0
        ? `${exposure.held_escrows} escrows still held (${exposure.held_amount})`
        : undefined,
    exposure.pending_intents === null
      ? 'pending intents unknown (list failed)'
      : exposure.pending_intents > 0
        ? `${exposure.pending_intents} intents still pending (${exposure.pending_intents_amount})`
        : undefined,
    exposure.active_subscriptions === null
      ? 'active subscriptions unknown (list failed)'
      : exposure.active_subscriptions > 0
        ? `${exposure.active_subscriptions} subscriptions still active`
        : undefined,
  ].filter(Boolean) as string[];
  deps.page?.({
    level: 'page',
    priority: exposure.wallet_frozen ? 'P1' : 'P0',
    severity: 'critical',
    agent_id: incident.primary_agent_id,
    signal: incident.signal ?? 'containment',
    title: `Containment ${status} for ${incident.primary_agent_id}: ${exposed.join('; ')}`,
    actions: ['contain_agent again to resume (it retries what is left)', 'check the wallet by hand'],
    incident_id: incident.id,
    details: { ...exposure },
  });
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
    monitor.getAgentReputationRecord({ agent_id: agentId }, callOpts),
    monitor.getVerifiedClaims({ agent_id: agentId }, callOpts),
  ]);
  const pin = store.getPin(agentId);
  let reason: string | undefined;
  let registeredKey: string | null = null;
  if (identity.status === 'rejected') {
    const info = errorInfo(identity.reason);
    const missing = info.code === 'not_found' || info.code === 'agent_not_found';
    // No record and never pinned (a key made directly in the gateway's database): nothing to compare.
    // A pinned agent whose record is gone is compromised.
    reason = missing && store.getPin(agentId) ? 'identity record missing for a pinned agent' : undefined;
    if (!missing) {
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
    // An unpinned key is not pinned here: the agent is being contained, possibly because its key was
    // swapped, and pinning the key registered now would vouch for the thief's. Detection pins on first
    // sight, after any challenge has passed.
    if (pin && registeredKey !== pin.public_key) reason = 'registered public key differs from the pinned key';
  }
  const detail: Record<string, unknown> = {
    pinned_key: pin?.public_key ?? registeredKey,
    registered_key: registeredKey,
    reputation:
      reputation.status === 'rejected'
        ? { error: errorInfo(reputation.reason).code }
        : (reputation.value ?? { no_record: true, note: 'no reputation row (key made directly)' }),
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
    // What was published, so a caller can tell whether the same event already went out.
    params: payload,
  });
  const published = actor
    .publishEvent(
      {
        event_type: eventType,
        source: 'agent-incident-mcp',
        payload: { incident_id: incidentId, ...payload },
      },
      { timeoutMs: 5_000, agentId: typeof payload.agent_id === 'string' ? payload.agent_id : undefined },
    )
    .then(
      (r) => deps.store.finishAction(id, { success: true, result: { event_id: r.event_id } }),
      (e) => {
        const info = errorInfo(e);
        deps.store.finishAction(id, { success: false, error_code: info.code, error_message: info.message });
      },
    )
    .catch(() => undefined);
  trackInFlight(id, published);
}
