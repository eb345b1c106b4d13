/**
 * Unlocking an agent's held escrows, money-exact.
 *
 * The gateway refunds a cancelled escrow into the payer's wallet, and refuses a refund into a frozen one, so
 * each round opens a short refund window: unfreeze, cancel, refreeze (always), then read back. What makes it
 * exact against the real gateway, whose escrow list pages by shifting offsets and whose refund is not
 * atomic (two concurrent cancels of one escrow both refund):
 *  - every cancel goes through the escrow ledger (incidents/escrow-ledger.ts): an id is claimed in the store
 *    before its cancel is sent and is never sent again unless the last attempt is known to have changed
 *    nothing (429, 403…). The list is de-duplicated, and the ledger de-duplicates across rounds, runs and
 *    processes;
 *  - a cancel is sent once (no transport retry): an attempt with no trustworthy answer (timeout, reset, 5xx)
 *    is re-read with GET after the refreeze, when a straggling duplicate could only fail on the frozen
 *    wallet. `refunded` then counts as ours, `held` is retried, anything else is gone;
 *  - rounds continue, with backoff and the wallet frozen between them, while anything is still held or
 *    retryable, up to `maxRefundRounds` and the unlock deadline;
 *  - totals are read from the ledger, so an interrupted and resumed containment counts each refund once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Escrow } from '../greenhelix/index.js';
import { money, sumCents } from '../greenhelix/money.js';
import type { EscrowCancelState } from '../incidents/index.js';
import type { OpsDeps, Recorded, StepReport } from './deps.js';
import { errorInfo } from './deps.js';
import { mapBounded } from './limit.js';

export interface HeldEscrow {
  id: string;
  payee: string;
  amount: number;
}

export interface CallOpts {
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

export type Act = <T>(
  action: string,
  target: string | undefined,
  params: Record<string, unknown> | undefined,
  fn: () => Promise<T>,
  summarize?: (value: T) => Record<string, unknown>,
) => Promise<Recorded<T>>;

export type HeldList = { ok: true; held: HeldEscrow[] } | { ok: false; error: unknown };

/** The agent's held escrows as payer (to one payee, for exploitation), each id once. */
export async function listHeld(
  deps: Pick<OpsDeps, 'monitor'>,
  agentId: string,
  onlyPayee: string | undefined,
  callOpts: CallOpts,
): Promise<HeldList> {
  try {
    const escrows = await deps.monitor.listAllEscrows({ agent_id: agentId, status: 'held' }, callOpts);
    const byId = new Map<string, HeldEscrow>();
    for (const e of escrows) {
      if (e.status !== 'held' || e.payer !== agentId || (onlyPayee && e.payee !== onlyPayee)) continue;
      byId.set(e.id, { id: e.id, payee: e.payee, amount: e.amount });
    }
    return { ok: true, held: [...byId.values()] };
  } catch (error) {
    return { ok: false, error };
  }
}

/** What the wallet is known to be, from our own last freeze/unfreeze outcome (no endpoint reports it). */
export interface WalletGate {
  frozen: boolean;
  /** Freezes, retrying until it sticks or the deadline passes. Recorded as `action` (one row per attempt). */
  freeze(action: string, params?: Record<string, unknown>): Promise<StepReport[]>;
  unfreeze(action: string, params?: Record<string, unknown>): Promise<StepReport>;
}

export interface UnlockOutcome {
  steps: StepReport[];
  cancelled: number;
  cancelledCents: number;
  gone: number;
  /** Still held (or not confirmed either way) at the end, from the last read; null when it could not be read. */
  heldLeft: number | null;
  heldLeftCents: number | null;
  windowMs: number | null;
  rounds: number;
}

interface UnlockContext {
  deps: OpsDeps;
  incidentId: string;
  agentId: string;
  onlyPayee: string | undefined;
  act: Act;
  wallet: WalletGate;
  callOpts: CallOpts;
  /** Epoch ms of real time (Date.now(), not the store's clock) after which no new round starts. */
  deadline: number;
  onProgress?: ((done: number, total: number, message: string) => void) | undefined;
}

/** How long a create that passed the gateway's freeze check may take to write its escrow (see below). */
const SETTLE_MS = 250;

/** Backoff before round n (n ≥ 2), while frozen: 250 ms, 500 ms, 1 s, 2 s, 2 s… */
const roundBackoffMs = (round: number) => Math.min(2_000, 250 * 2 ** (round - 2));

export async function unlockEscrows(ctx: UnlockContext, firstList: HeldList): Promise<UnlockOutcome> {
  const { deps, incidentId, agentId, onlyPayee, act, wallet, callOpts } = ctx;
  const { config, clock, store } = deps;
  const ledger = store.escrows;
  const steps: StepReport[] = [];
  let windowMs: number | null = null;
  let rounds = 0;
  // Escrows whose cancel may still be travelling (we stopped waiting for it): not read back, and so never
  // retried, before `notBefore`, so a late original cannot race our retry (the gateway's refund is not
  // atomic) or turn our retry's 409 into an undercount.
  const notBefore = new Map<string, number>();
  // Escrows one of our attempts may have refunded: a later 409 on them is read back before it counts as gone.
  const maybeOurs = new Set<string>();
  // A run resumed after a crash first settles what the last run may or may not have done (the dead
  // process's requests were on the wire before it died; none can still be travelling now).
  const carried = ledger.unresolved(incidentId).map((r) => r.escrow_id);
  for (const id of carried) maybeOurs.add(id);
  if (carried.length > 0) steps.push(await reconcile(ctx, carried));
  const waitingIds = () =>
    ledger
      .unresolved(incidentId)
      .map((r) => r.escrow_id)
      .filter((id) => (notBefore.get(id) ?? 0) > Date.now());
  const readBackDue = async () => {
    const due = ledger
      .unresolved(incidentId)
      .map((r) => r.escrow_id)
      .filter((id) => (notBefore.get(id) ?? 0) <= Date.now());
    if (due.length > 0) steps.push(await reconcile(ctx, due));
  };

  let list = firstList;
  if (!list.ok) steps.push(failedRead('list_held_escrows', agentId, list.error, clock.now()));
  // Escrows seen so far: one that shows up later was created inside a refund window (a live loop).
  const seen = new Set(list.ok ? list.held.map((e) => e.id) : []);
  let creating = false;
  for (let round = 1; round <= config.containment.maxRefundRounds; round++) {
    if (round > 1) {
      const idle =
        (!list.ok || list.held.length === 0) &&
        ledger.retryable(incidentId).length === 0 &&
        ledger.unresolved(incidentId).length === 0;
      if (idle) break;
      if (Date.now() + roundBackoffMs(round) > ctx.deadline) break;
      await sleep(roundBackoffMs(round));
      await readBackDue();
    }
    const held = list.ok ? list.held : [];
    const retry = ledger
      .retryable(incidentId)
      .map((r) => ({ id: r.escrow_id, payee: r.payee, amount: r.amount_cents }));
    const candidates = new Map([...retry, ...held].map((e) => [e.id, e]));
    const todo = ledger
      .claim(incidentId, agentId, [...candidates.values()])
      .map((id) => candidates.get(id) as HeldEscrow);
    if (todo.length === 0) {
      if (round === 1 && list.ok && candidates.size === 0) steps.push(nothingHeld(agentId, clock.now()));
      // Nothing to send now. Cancels that may still be travelling are read back once their grace ends.
      const waiting = waitingIds();
      if (waiting.length === 0) break;
      const until = Math.min(...waiting.map((id) => notBefore.get(id) as number));
      if (until > ctx.deadline) break;
      await sleep(Math.max(0, until - Date.now()));
      await readBackDue();
      list = await listHeld(deps, agentId, onlyPayee, callOpts);
      continue;
    }
    rounds = round;
    const unfreeze = await wallet.unfreeze('open_refund_window', { round });
    steps.push(unfreeze);
    const opened = clock.now();
    let outcomes: CancelOutcome[] = [];
    try {
      if (!unfreeze.success) {
        outcomes = todo.map((escrow) => ({ escrow, state: 'retry', error: 'refund window did not open' }));
      } else {
        const sent = await act(
          'cancel_held_escrows',
          agentId,
          {
            round,
            escrow_ids: todo.map((e) => e.id),
            amount: money(sumCents(todo.map((e) => e.amount))),
          },
          async () => {
            outcomes = await mapBounded(
              todo,
              config.containment.concurrency,
              (escrow) => cancelOnce(ctx, escrow, maybeOurs.has(escrow.id)),
              (done) =>
                ctx.onProgress?.(2 + done / todo.length, 4, `cancelled ${done}/${todo.length} escrows`),
            );
            return outcomes;
          },
          summarizeCancels,
        );
        steps.push(sent.report);
      }
    } finally {
      // Always, even if the cancels threw: the wallet never stays open because of a failure here.
      steps.push(...(await wallet.freeze('close_refund_window', { round })));
      windowMs = (windowMs ?? 0) + (clock.now() - opened);
      ledger.settle(outcomes.map((o) => ({ escrow_id: o.escrow.id, state: o.state, error: o.error })));
    }
    for (const o of outcomes) {
      if (o.state !== 'unknown') continue;
      maybeOurs.add(o.escrow.id);
      if (o.travelling) notBefore.set(o.escrow.id, Date.now() + config.greenhelix.timeoutMs);
    }
    await readBackDue();
    list = await listHeld(deps, agentId, onlyPayee, callOpts);
    if (!list.ok) steps.push(failedRead('verify_no_held_escrows', agentId, list.error, clock.now()));
    for (const e of list.ok ? list.held : []) {
      if (!seen.has(e.id)) creating = true;
      seen.add(e.id);
    }
  }

  if (creating) {
    // The agent was creating escrows in our refund windows. The gateway checks the freeze before it writes
    // a new escrow, in another database, a few awaits later: a create that passed the check just before our
    // last refreeze can land after the read above. Read once more after it has had time to, so the exposure
    // we report is not one short.
    await sleep(SETTLE_MS);
    list = await listHeld(deps, agentId, onlyPayee, callOpts);
    if (!list.ok) steps.push(failedRead('verify_no_held_escrows', agentId, list.error, clock.now()));
  }
  const totals = ledger.totals(incidentId);
  const heldNow = list.ok ? list.held : null;
  // Unconfirmed ledger rows are still exposure: the money may still be held.
  const openRows = ledger.unresolved(incidentId).concat(ledger.retryable(incidentId));
  const heldIds = new Set(heldNow?.map((e) => e.id) ?? []);
  const extra = openRows.filter((r) => !heldIds.has(r.escrow_id));
  return {
    steps,
    cancelled: totals.cancelled,
    cancelledCents: totals.cancelled_cents,
    gone: totals.gone,
    heldLeft: heldNow === null ? null : heldNow.length + extra.length,
    heldLeftCents:
      heldNow === null
        ? null
        : sumCents(heldNow.map((e) => e.amount)) + sumCents(extra.map((r) => r.amount_cents)),
    windowMs,
    rounds,
  };
}

interface CancelOutcome {
  escrow: HeldEscrow;
  state: EscrowCancelState;
  error?: string | undefined;
  /** We stopped waiting while the request may still be on its way to the gateway (deadline, abort). */
  travelling?: boolean | undefined;
}

/**
 * One cancel, one attempt. The outcome decides what the ledger may do next: only a definite refusal that
 * changed nothing may be retried; no answer must be read back first. A 409 on an escrow an earlier attempt
 * of ours may have refunded is read back: `refunded` then is ours, not gone.
 */
async function cancelOnce(
  ctx: UnlockContext,
  escrow: HeldEscrow,
  maybeOurs: boolean,
): Promise<CancelOutcome> {
  const actor = ctx.deps.actor;
  if (!actor) throw new Error('containment requires the containment key client');
  try {
    await actor.cancelEscrow(
      { escrow_id: escrow.id },
      { ...ctx.callOpts, retry: false, agentId: ctx.agentId },
    );
    return { escrow, state: 'cancelled' };
  } catch (e) {
    const err = e as { status?: number; code?: string };
    const info = errorInfo(e);
    const status = typeof err.status === 'number' ? err.status : 0;
    if (status === 409 && maybeOurs) {
      const now = await ctx.deps.monitor
        .getEscrow({ escrow_id: escrow.id }, ctx.callOpts)
        .catch(() => undefined);
      if (now?.status === 'refunded')
        return { escrow, state: 'cancelled', error: 'refunded by an earlier attempt' };
      if (!now) return { escrow, state: 'unknown', error: info.code };
    }
    // Settled, released, expired or refunded by someone else before our cancel: nothing of ours to unlock.
    if (status === 409 || status === 404) return { escrow, state: 'gone', error: info.code };
    if (status >= 400 && status < 500) return { escrow, state: 'retry', error: info.code };
    return {
      escrow,
      state: 'unknown',
      error: info.code,
      travelling: info.code === 'deadline_exceeded' || info.code === 'aborted',
    };
  }
}

/**
 * Reads back escrows whose cancel has no trustworthy outcome (in flight when a process died, timed out,
 * reset, 5xx). Runs while the wallet is frozen. `refunded` after our attempt is ours; `held` means the
 * attempt changed nothing and may be retried; anything else left held on its own.
 */
async function reconcile(ctx: UnlockContext, ids: string[]): Promise<StepReport> {
  const { deps, agentId, callOpts } = ctx;
  const { clock, store, config } = deps;
  const t = clock.now();
  const reads = await mapBounded(ids, config.containment.concurrency, async (id) => {
    try {
      const e: Escrow = await deps.monitor.getEscrow({ escrow_id: id }, callOpts);
      const state: EscrowCancelState =
        e.status === 'refunded' ? 'cancelled' : e.status === 'held' ? 'retry' : 'gone';
      return { escrow_id: id, state, error: `re-read: ${e.status}` };
    } catch (err) {
      const info = errorInfo(err);
      return {
        escrow_id: id,
        state: (info.code === 'escrow_not_found' || info.code === 'not_found'
          ? 'gone'
          : 'unknown') as EscrowCancelState,
        error: `re-read failed: ${info.code}`,
      };
    }
  });
  store.escrows.settle(reads);
  const count = (s: EscrowCancelState) => reads.filter((r) => r.state === s).length;
  return {
    action: 'reconcile_escrow_cancels',
    target: agentId,
    success: count('unknown') === 0,
    detail: {
      checked: reads.length,
      refunded_by_us: count('cancelled'),
      still_held: count('retry'),
      gone: count('gone'),
      unresolved: count('unknown'),
    },
    started_at: t,
    duration_ms: clock.now() - t,
  };
}

function summarizeCancels(results: CancelOutcome[]): Record<string, unknown> {
  const outcomes: Record<string, number> = {};
  const failures: Record<string, number> = {};
  let unlocked = 0;
  for (const r of results) {
    outcomes[r.state] = (outcomes[r.state] ?? 0) + 1;
    if (r.state === 'cancelled') unlocked += r.escrow.amount;
    else if (r.error) failures[r.error] = (failures[r.error] ?? 0) + 1;
  }
  return {
    attempted: results.length,
    cancelled: outcomes.cancelled ?? 0,
    amount_unlocked: money(unlocked),
    outcomes,
    failures,
  };
}

function nothingHeld(agentId: string, at: number): StepReport {
  return {
    action: 'cancel_held_escrows',
    target: agentId,
    success: true,
    skipped: true,
    detail: { held: 0, reason: 'no held escrows as payer' },
    started_at: at,
    duration_ms: 0,
  };
}

function failedRead(action: string, agentId: string, error: unknown, at: number): StepReport {
  return { action, target: agentId, success: false, error: errorInfo(error), started_at: at, duration_ms: 0 };
}
