/**
 * Containment of the money paths beyond escrows (CONTRACT.md §8, the gateway at ec0b30f):
 *
 * - Pending intents are voided (refund_intent on a pending intent). A freeze blocks their capture, but
 *   they stay capturable the moment recovery unfreezes the wallet, so they must go.
 * - Active subscriptions the agent pays are cancelled. A freeze only makes their charges fail; they stay
 *   due. The gateway never reactivates a cancelled subscription (reactivate takes only `suspended`), so
 *   each is recorded with what recovery needs to offer it back as a new one.
 * - Settled intents since the claw-back window are listed with their total, never refunded here: the
 *   gateway lets a settled intent be refunded again and again (the status stays `settled`), so a refund is
 *   a separate, human-confirmed action that goes through the same ledger (at most once per intent).
 * - Splits, withdrawals and conversions move money at once and leave nothing to stop: the freeze is what
 *   blocks them (403 wallet_frozen on every leg that touches the wallet).
 *
 * Same guarantees as escrows: every object is written ahead to the money-path ledger before its call is
 * sent (one row per id, so nothing is voided or cancelled twice by us), an attempt with no trustworthy
 * answer is read back before anything else happens to it, and a resumed run reconciles what a stopped one
 * left in flight. These calls need no refund window: voiding and cancelling move no money, so they run
 * while the wallet is frozen, before any escrow refund window opens. The pending list is read only once
 * the freeze has succeeded: from then on no capture can succeed (it withdraws from the frozen payer), so
 * an intent listed as pending is still pending when its void arrives. The gateway has no void route; a
 * "void" is refund_intent, which on an intent that settled meanwhile would refund it, and into a frozen
 * payer fail after debiting the payee.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  MoneyPathAction,
  MoneyPathItem,
  MoneyPathKind,
  MoneyPathRow,
  MoneyPathState,
} from '../incidents/index.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo } from './deps.js';
import { mapBounded } from './limit.js';
import type { Act, CallOpts } from './unlock.js';

/** A subscription containment cancelled: what recovery needs to offer it back (as a new one). */
export interface CancelledSubscription {
  id: string;
  payee: string;
  amount_cents: number;
  interval: string;
  description: string | null;
}

export interface PathsOutcome {
  steps: StepReport[];
  intents: {
    voided: number;
    voided_cents: number;
    /** Settled between the list and our void, so the "void" refunded it (once: the ledger holds its id). */
    refunded_instead: number;
    /** No longer pending when we got there (captured or voided by someone else). */
    skipped: number;
    /** Claimed and not confirmed: refused, or no trustworthy answer. */
    failed: number;
    /** Pending as payer at the last read; null when it could not be read. */
    pending_left: number | null;
    pending_left_cents: number | null;
  };
  subscriptions: {
    cancelled: number;
    skipped: number;
    failed: number;
    /** Active as payer at the last read; null when it could not be read. */
    active_left: number | null;
    cancelled_list: CancelledSubscription[];
  };
}

export interface ClawbackCandidate {
  id: string;
  payee: string;
  amount_cents: number;
  settled_at: string | number | null | undefined;
}

export interface Clawback {
  /** Settled intents the agent paid since `since`, not yet refunded by us; null when unreadable. */
  intents: ClawbackCandidate[] | null;
  total_cents: number | null;
  since: number;
}

export interface PathsContext {
  deps: OpsDeps;
  incidentId: string;
  agentId: string;
  onlyPayee: string | undefined;
  act: Act;
  callOpts: CallOpts;
  deadline: number;
}

export type Listed<T> = { ok: true; items: T[] } | { ok: false; error: unknown };

/**
 * The rows the agent pays in one state (to one payee, for exploitation), each id once: the list reads
 * by agent, which also returns rows where it is the payee, and pages may repeat a row.
 */
async function listOwn<R extends { id: string; payer: string; payee: string; status: string }>(
  read: () => Promise<R[]>,
  agentId: string,
  status: string,
  onlyPayee: string | undefined,
  item: (row: R) => MoneyPathItem,
): Promise<Listed<MoneyPathItem>> {
  try {
    const byId = new Map<string, MoneyPathItem>();
    for (const r of await read())
      if (r.status === status && r.payer === agentId && (!onlyPayee || r.payee === onlyPayee))
        byId.set(r.id, item(r));
    return { ok: true, items: [...byId.values()] };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Pending intents the agent pays (to one payee, for exploitation), each id once. */
export function listPendingIntents(
  deps: Pick<OpsDeps, 'monitor'>,
  agentId: string,
  onlyPayee: string | undefined,
  callOpts: CallOpts,
): Promise<Listed<MoneyPathItem>> {
  return listOwn(
    () => deps.monitor.listAllIntents({ agent_id: agentId, status: 'pending' }, callOpts),
    agentId,
    'pending',
    onlyPayee,
    (i) => ({ id: i.id, payee: i.payee, amount: i.amount }),
  );
}

/** Active subscriptions the agent pays, each id once, with what recovery needs to offer them back. */
export function listActiveSubscriptions(
  deps: Pick<OpsDeps, 'monitor'>,
  agentId: string,
  onlyPayee: string | undefined,
  callOpts: CallOpts,
): Promise<Listed<MoneyPathItem>> {
  return listOwn(
    () => deps.monitor.listAllSubscriptions({ agent_id: agentId, status: 'active' }, callOpts),
    agentId,
    'active',
    onlyPayee,
    (s) => ({
      id: s.id,
      payee: s.payee,
      amount: s.amount,
      detail: { interval: s.interval, description: s.description ?? null },
    }),
  );
}

/**
 * Settled intents the agent paid in [since, until] (ms), each id once, by their settle time (the gateway's
 * updated_at). Throws when the list cannot be read.
 */
export async function settledInWindow(
  deps: Pick<OpsDeps, 'monitor'>,
  agentId: string,
  window: { since: number; until?: number | undefined },
  callOpts: CallOpts,
): Promise<ClawbackCandidate[]> {
  const rows = await deps.monitor.listAllIntents({ agent_id: agentId, status: 'settled' }, callOpts);
  const byId = new Map<string, ClawbackCandidate>();
  for (const i of rows) {
    if (i.status !== 'settled' || i.payer !== agentId || byId.has(i.id)) continue;
    const at = timeMs(i.updated_at ?? i.created_at);
    if (at === null || at < window.since || (window.until !== undefined && at > window.until)) continue;
    const settledAt = i.updated_at ?? i.created_at ?? null;
    byId.set(i.id, { id: i.id, payee: i.payee, amount_cents: i.amount, settled_at: settledAt });
  }
  return [...byId.values()];
}

/**
 * Settled intents the agent paid since `since` (ms), minus those our ledger already holds (voided or
 * refunded by us): "claw-back possible". Read only; nothing is refunded.
 */
export async function listClawback(
  deps: Pick<OpsDeps, 'monitor' | 'store'>,
  agentId: string,
  since: number,
  callOpts: CallOpts,
): Promise<Clawback> {
  try {
    const intents = (await settledInWindow(deps, agentId, { since }, callOpts)).filter(
      (i) => !deps.store.moneyPaths.get('intent', i.id),
    );
    return { intents, total_cents: intents.reduce((n, i) => n + i.amount_cents, 0), since };
  } catch {
    return { intents: null, total_cents: null, since };
  }
}

/**
 * Voids the agent's pending intents and cancels its active subscriptions, in rounds until nothing new
 * is pending or active (an agent may keep creating them: create_intent is never blocked by a freeze),
 * the rounds run out or the deadline passes; then reads both back.
 */
export async function stopMoneyPaths(
  ctx: PathsContext,
  first: { intents: Listed<MoneyPathItem>; subscriptions: Listed<MoneyPathItem> },
  maxRounds: number,
): Promise<PathsOutcome> {
  const steps: StepReport[] = [];
  steps.push(...(await reconcile(ctx, 'intent', 'void')), ...(await reconcile(ctx, 'subscription')));
  let intents = first.intents;
  let subs = first.subscriptions;
  for (let round = 0; round < maxRounds; round++) {
    // The read that closes the round goes out beside its calls, not after them: one round trip less before
    // the first refund window, and with a round that fits in one wave of calls, the read is as fresh when
    // the window opens as a read sent after the calls would be. The gateway may answer it before some of
    // our calls land, so what it still shows pending or active that our ledger holds as done (voided or
    // cancelled: final on the gateway) is not left; anything else it shows is (new, refused, unconfirmed).
    const [a, b, lists] = await Promise.all([
      intents.ok ? sendRound(ctx, 'intent', 'void', intents.items) : undefined,
      subs.ok ? sendRound(ctx, 'subscription', 'cancel', subs.items) : undefined,
      Promise.all([
        listPendingIntents(ctx.deps, ctx.agentId, ctx.onlyPayee, ctx.callOpts),
        listActiveSubscriptions(ctx.deps, ctx.agentId, ctx.onlyPayee, ctx.callOpts),
      ]),
    ]);
    if (a) steps.push(a.report);
    if (b) steps.push(b.report);
    // Unanswered calls are read back now, so this run's report counts what the gateway did.
    steps.push(...(await reconcile(ctx, 'intent', 'void')), ...(await reconcile(ctx, 'subscription')));
    intents = notDone(ctx, 'intent', lists[0]);
    subs = notDone(ctx, 'subscription', lists[1]);
    const left = (intents.ok ? intents.items.length : 1) + (subs.ok ? subs.items.length : 1);
    // Something is left (new ones keep coming, or a list failed): back off, frozen, within the deadline.
    const wait = Math.min(2_000, 200 * 2 ** round);
    if (left === 0 || round === maxRounds - 1 || Date.now() + wait >= ctx.deadline) break;
    await sleep(wait);
  }
  return outcome(ctx, steps, intents, subs);
}

/** What a list shows minus what our ledger holds as done: a voided intent or cancelled subscription stays so. */
function notDone(ctx: PathsContext, kind: MoneyPathKind, l: Listed<MoneyPathItem>): Listed<MoneyPathItem> {
  if (!l.ok) return l;
  const ledger = ctx.deps.store.moneyPaths;
  return { ok: true, items: l.items.filter((i) => ledger.get(kind, i.id)?.state !== 'done') };
}

const ROUND_NAMES: Record<MoneyPathAction, string> = {
  void: 'void_pending_intents',
  cancel: 'cancel_active_subscriptions',
  refund: 'refund_settled_intents',
};

/**
 * Sends one round: claims (write-ahead), then one call per claimed id, then the outcomes in one write.
 * Returns the ids this round claimed (and so sent) beside its step.
 */
export async function sendRound(
  ctx: PathsContext,
  kind: MoneyPathKind,
  action: MoneyPathAction,
  items: MoneyPathItem[],
): Promise<{ report: StepReport; claimed: string[] } | undefined> {
  const { deps, incidentId, agentId } = ctx;
  const ledger = deps.store.moneyPaths;
  const retryIds = new Set(
    ledger.rows(incidentId, kind, { action, states: ['retry'] }).map((r) => r.object_id),
  );
  const claimed = ledger.claim(kind, action, incidentId, agentId, items);
  if (claimed.length === 0) return undefined;
  const byId = new Map(items.map((i) => [i.id, i]));
  const r = await ctx.act(
    ROUND_NAMES[action],
    agentId,
    { count: claimed.length, retried: claimed.filter((id) => retryIds.has(id)).length },
    async () => {
      const outcomes = await mapBounded(claimed, deps.config.containment.concurrency, (id) =>
        sendOne(ctx, kind, action, byId.get(id) as MoneyPathItem),
      );
      ledger.settle(kind, outcomes);
      const count = (s: MoneyPathState) => outcomes.filter((o) => o.state === s).length;
      const summary = {
        done: count('done'),
        done_cents: outcomes
          .filter((o) => o.state === 'done')
          .reduce((n, o) => n + (byId.get(o.id)?.amount ?? 0), 0),
        gone: count('gone'),
        retry: count('retry'),
        unknown: count('unknown'),
        refunded_instead: action === 'void' ? outcomes.filter((o) => o.action === 'refund').length : 0,
      };
      if (summary.retry + summary.unknown > 0)
        throw Object.assign(
          new Error(`${summary.retry + summary.unknown} of ${claimed.length} not confirmed`),
          {
            code: 'partial_failure',
            retryable: summary.retry > 0,
            summary,
          },
        );
      return summary;
    },
    (s) => s,
  );
  if (!r.ok) r.report.detail = (r.error as { summary?: Record<string, unknown> }).summary;
  return { report: r.report, claimed };
}

interface SendOutcome {
  id: string;
  state: MoneyPathState;
  error?: string | undefined;
  action?: MoneyPathAction;
}

/**
 * One void, cancel or refund, sent once (retry: false: a second send without a trustworthy answer could
 * race the first). 409/404: no longer pending/active/settled, nothing for us. Another 4xx is a definite
 * refusal that changed nothing (retry later). No answer, or a 5xx: unknown, read back before anything else.
 */
async function sendOne(
  ctx: PathsContext,
  kind: MoneyPathKind,
  action: MoneyPathAction,
  item: MoneyPathItem,
): Promise<SendOutcome> {
  const actor = ctx.deps.actor;
  if (!actor) throw new Error('containment requires the containment key client');
  const { id } = item;
  const opts = { ...ctx.callOpts, retry: false, agentId: ctx.agentId };
  try {
    if (kind === 'intent') {
      const r = await actor.refundIntent({ intent_id: id }, opts);
      if (action === 'refund')
        return r.status === 'refunded'
          ? { id, state: 'done' }
          : // Pending after all: the gateway voided it, and nothing was refunded.
            {
              id,
              state: 'done',
              action: 'void',
              error: `answered ${r.status}: it was pending, not refunded`,
            };
      if (r.status === 'voided') return { id, state: 'done' };
      // It settled between our list and our void, so the gateway refunded it. Done once: the ledger row
      // keeps any later claw-back from refunding it again.
      return { id, state: 'done', action: 'refund', error: `answered ${r.status}: settled before the void` };
    }
    await actor.cancelSubscription({ subscription_id: id }, opts);
    return { id, state: 'done' };
  } catch (e) {
    const status = (e as { status?: number }).status ?? 0;
    const info = errorInfo(e);
    if (status === 409 || status === 404) return { id, state: 'gone', error: info.code };
    if (action === 'refund') return refundFailure(id, item.payee, status, info);
    // A void touches no wallet; wallet_frozen means the intent had settled and the gateway's refund failed
    // on a leg (the payee may already be debited: its refund is not atomic). Never sent again.
    if (info.code === 'wallet_frozen' || info.code === 'insufficient_balance')
      return {
        id,
        state: 'unknown',
        error: `${info.code}: settled before the void; refund may be half done`,
      };
    if (status >= 400 && status < 500) return { id, state: 'retry', error: info.code };
    return { id, state: 'unknown', error: info.code };
  }
}

/**
 * A refused refund of a settled intent. The gateway withdraws from the payee first, then deposits to the
 * payer, with no transaction: a refusal of the first leg (the payee frozen, missing or short of funds)
 * moved nothing, and can be tried again; a refusal naming anyone else came after the payee was debited
 * (the money is gone from the payee and never reached the payer), so it is unknown and never re-sent.
 */
function refundFailure(
  id: string,
  payee: string,
  status: number,
  info: { code: string; message: string },
): SendOutcome {
  const wallet = info.code === 'wallet_frozen' || info.code === 'wallet_not_found';
  if (info.code === 'insufficient_balance' || (wallet && info.message.endsWith(` ${payee}`)))
    return { id, state: 'retry', error: `${info.code}: the payee leg was refused; nothing moved` };
  if (wallet)
    return {
      id,
      state: 'unknown',
      error: `${info.code}: the payer leg was refused after the payee was debited; check by hand`,
    };
  if (status >= 400 && status < 500) return { id, state: 'retry', error: info.code };
  return { id, state: 'unknown', error: info.code };
}

/** Reads back rows with no trustworthy outcome: the state each is in now, and why. */
export type ReadBack = (
  rows: MoneyPathRow[],
) => Promise<{ id: string; state: MoneyPathState; error?: string | undefined }[]>;

/**
 * Rows a stopped run (or an unanswered call) left `sending` or `unknown`, of one action or all: each is
 * read back. By default from the object's status: a voided intent or cancelled subscription is done; a
 * pending or active one changed nothing (retry). A settled intent is ambiguous (captured before our void,
 * or refunded by it: the gateway shows `settled` either way), so it stays `unknown` and is never sent
 * again. A refund's read-back cannot use the status at all; its caller passes `readBack`.
 */
export async function reconcile(
  ctx: PathsContext,
  kind: MoneyPathKind,
  action?: MoneyPathAction,
  readBack: ReadBack = (rows) => readStatuses(ctx, kind, rows),
): Promise<StepReport[]> {
  const { deps, incidentId } = ctx;
  const ledger = deps.store.moneyPaths;
  const rows = ledger.rows(incidentId, kind, { action, states: ['sending', 'unknown'] });
  if (rows.length === 0) return [];
  const name =
    kind === 'subscription'
      ? 'reconcile_subscription_cancels'
      : action === 'refund'
        ? 'reconcile_intent_refunds'
        : 'reconcile_intent_voids';
  const r = await ctx.act(
    name,
    ctx.agentId,
    { count: rows.length },
    async () => {
      const outcomes = await readBack(rows);
      ledger.settle(kind, outcomes);
      return { read: outcomes.length, done: outcomes.filter((o) => o.state === 'done').length };
    },
    (s) => s,
  );
  return [r.report];
}

function readStatuses(ctx: PathsContext, kind: MoneyPathKind, rows: MoneyPathRow[]): ReturnType<ReadBack> {
  const { deps } = ctx;
  return mapBounded(rows, deps.config.containment.concurrency, async (row) => {
    try {
      const status =
        kind === 'intent'
          ? (await deps.monitor.getIntent({ intent_id: row.object_id }, ctx.callOpts)).status
          : (await deps.monitor.getSubscription({ subscription_id: row.object_id }, ctx.callOpts)).status;
      const state: MoneyPathState =
        status === 'voided' || status === 'cancelled'
          ? 'done'
          : status === 'pending' || status === 'active' || status === 'suspended'
            ? 'retry'
            : 'unknown';
      return { id: row.object_id, state, error: state === 'done' ? undefined : `read back: ${status}` };
    } catch (e) {
      return { id: row.object_id, state: 'unknown' as const, error: errorInfo(e).code };
    }
  });
}

function outcome(
  ctx: PathsContext,
  steps: StepReport[],
  intents: Listed<MoneyPathItem>,
  subs: Listed<MoneyPathItem>,
): PathsOutcome {
  const totals = pathTotals(ctx.deps, ctx.incidentId);
  return {
    steps,
    intents: {
      ...totals.intents,
      pending_left: intents.ok ? intents.items.length : null,
      pending_left_cents: intents.ok ? intents.items.reduce((n, i) => n + i.amount, 0) : null,
    },
    subscriptions: {
      ...totals.subscriptions,
      active_left: subs.ok ? subs.items.length : null,
    },
  };
}

/** A confirmed claw-back's ledger row (refund rows are also voids that met a settled intent). */
export function isClawback(row: MoneyPathRow): boolean {
  return row.action === 'refund' && row.detail !== null && row.detail.includes('"clawback":true');
}

/**
 * What an incident did on these paths, from the ledger alone (a resumed run counts once): containment's
 * voids and cancels, and the claw-backs a person confirmed through recovery.
 */
export function pathTotals(
  deps: Pick<OpsDeps, 'store'>,
  incidentId: string,
): {
  intents: Omit<PathsOutcome['intents'], 'pending_left' | 'pending_left_cents'>;
  subscriptions: Omit<PathsOutcome['subscriptions'], 'active_left'>;
  clawback: { refunded: number; refunded_cents: number; failed: number; unknown: number };
} {
  const ledger = deps.store.moneyPaths;
  const voids = ledger.totals(incidentId, 'intent', 'void');
  const refunds = ledger.rows(incidentId, 'intent', { action: 'refund' });
  const clawbacks = refunds.filter(isClawback);
  const cancels = ledger.totals(incidentId, 'subscription', 'cancel');
  const clawedBack = clawbacks.filter((r) => r.state === 'done');
  return {
    intents: {
      voided: voids.done,
      voided_cents: voids.done_cents,
      refunded_instead: refunds.filter((r) => !isClawback(r) && r.state === 'done').length,
      skipped: voids.gone,
      failed: voids.open,
    },
    subscriptions: {
      cancelled: cancels.done,
      skipped: cancels.gone,
      failed: cancels.open,
      cancelled_list: cancelledSubscriptions(deps, incidentId),
    },
    clawback: {
      refunded: clawedBack.length,
      refunded_cents: clawedBack.reduce((n, r) => n + r.amount_cents, 0),
      // Refused by the gateway with nothing moved (it may be confirmed again), or no longer refundable.
      failed: clawbacks.filter((r) => r.state === 'retry' || r.state === 'gone').length,
      unknown: clawbacks.filter((r) => r.state === 'sending' || r.state === 'unknown').length,
    },
  };
}

/** The subscriptions an incident's containment cancelled, with what recovery needs to offer them back. */
export function cancelledSubscriptions(
  deps: Pick<OpsDeps, 'store'>,
  incidentId: string,
): CancelledSubscription[] {
  return deps.store.moneyPaths
    .rows(incidentId, 'subscription', { action: 'cancel', states: ['done'] })
    .map((r) => {
      const d = (r.detail ? JSON.parse(r.detail) : {}) as { interval?: string; description?: string | null };
      return {
        id: r.object_id,
        payee: r.payee,
        amount_cents: r.amount_cents,
        interval: d.interval ?? 'unknown',
        description: d.description ?? null,
      };
    });
}

/** A gateway time (ISO-8601 on REST, unix seconds through batch) in ms, or null. */
function timeMs(v: string | number | null | undefined): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v * 1000 : null;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}
