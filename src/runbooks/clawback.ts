/**
 * The claw-back of settled intents (issue 10): a separate, human-confirmed action, run by recovery, that
 * refunds each intent a person confirmed exactly once.
 *
 * The gateway cannot tell us whether a settled intent was refunded: a refund answers `refunded` and the
 * status stays `settled`, so a second refund pays the payer again. Three records decide instead:
 * - our money-path ledger (one row per intent id, whatever incident or action: written ahead, in one
 *   transaction, before the call is sent, so no id is sent twice by us across retries, crashes,
 *   concurrent calls and incidents);
 * - what the refund call answered (`refunded`, or a refusal that names the leg that failed);
 * - the payer's wallet: the gateway records every completed refund as a deposit `refund:<intent id>` to
 *   the payer. It tells a refund that happened (ours with no answer, or one made outside this server)
 *   from one that did not reach the payer; its absence never proves nothing moved (the call may still be
 *   running, or the payee may have been debited and the payer leg refused), so such a row stays `unknown`,
 *   is reported, and is never sent again.
 *
 * Money is never refunded into a frozen payer: there the gateway debits the payee, then fails to credit
 * the payer, and the money is gone. The claw-back runs only while our record says the agent's wallet is
 * unfrozen (recovery's stage 1, in the same call or an earlier one).
 */
import { formatCents } from '../greenhelix/money.js';
import type { Incident, MoneyPathItem, MoneyPathRow } from '../incidents/index.js';
import { ToolError } from '../util/errors.js';
import { toEpochMs } from '../util/time.js';
import {
  type ClawbackCandidate,
  isClawback,
  type PathsContext,
  type ReadBack,
  reconcile,
  sendRound,
  settledInWindow,
} from './contain-paths.js';
import type { OpsDeps, StepReport } from './deps.js';
import { errorInfo } from './deps.js';
import { KeyedMutex, mapBounded } from './limit.js';
import type { CallOpts } from './unlock.js';

/** At most this many intents per confirmed claw-back call. */
export const MAX_CLAWBACK_IDS = 100;

/**
 * refunded: by this call. already_refunded: by us earlier (ledger), or outside this server (a refund
 * deposit on the payer's wallet); nothing sent. would_refund: dry run. not_sent: the claw-back did not
 * run (wallet still frozen, or a gate failed). failed: refused by the gateway with nothing moved (confirm
 * it again later), or no longer refundable. unknown: no trustworthy answer, or the payee was debited and
 * the payer leg refused; never sent again: check it by hand.
 */
export type ClawbackOutcome =
  | 'refunded'
  | 'already_refunded'
  | 'would_refund'
  | 'not_sent'
  | 'failed'
  | 'unknown';

export interface ClawbackEntry {
  id: string;
  payee: string;
  amount_cents: number;
  outcome: ClawbackOutcome;
  note?: string | undefined;
}

/** The confirmed ids, each checked against the incident's claw-back list; nothing sent yet. */
export interface ClawbackPlan {
  agentId: string;
  since: number;
  /** Each id once, in the order given; `known` when its outcome is settled before anything is sent. */
  intents: (ClawbackCandidate & { known?: { outcome: ClawbackOutcome; note: string } | undefined })[];
}

/** Intents the claw-back would send now (no outcome known yet). */
export function toSend(plan: ClawbackPlan): ClawbackCandidate[] {
  return plan.intents.filter((i) => !i.known);
}

/**
 * The incident's claw-back window: settled from `clawbackWindowMs` before detection (as containment lists
 * them) until recovery first unfroze the wallet (after that the agent may pay again, legitimately).
 */
export function clawbackWindow(
  deps: Pick<OpsDeps, 'config' | 'store'>,
  incident: Incident,
): { since: number; until: number | undefined } {
  const detected = incident.detected_at ?? incident.created_at;
  const unfreezes = deps.store
    .listActions(incident.id)
    .filter((a) => a.phase === 'recover' && a.action === 'unfreeze_wallet' && a.success)
    .map((a) => a.started_at);
  return {
    since: detected - deps.config.containment.clawbackWindowMs,
    until: unfreezes.length ? Math.min(...unfreezes) : undefined,
  };
}

/**
 * Refund deposits on the agent's wallet since `since` (ms), per intent id: the gateway's own record of
 * each refund that reached the payer (`refund:<intent id>`). Reads transactions newest first until one is
 * older than `since`; throws when that point cannot be reached (unreadable, or too many pages).
 */
export async function refundDeposits(
  deps: Pick<OpsDeps, 'monitor'>,
  agentId: string,
  since: number,
  callOpts: CallOpts,
  pageSize = 500,
  maxPages = 40,
): Promise<Map<string, number>> {
  const n = new Map<string, number>();
  for (let page = 0; page < maxPages; page++) {
    const { transactions } = await deps.monitor.getTransactions(
      { agent_id: agentId, limit: pageSize, offset: page * pageSize },
      callOpts,
    );
    let older = false;
    for (const t of transactions) {
      const at = toEpochMs(t.created_at);
      if (at !== undefined && at < since) older = true;
      const d = t.description ?? '';
      if (t.amount > 0 && d.startsWith('refund:')) {
        const id = d.slice('refund:'.length);
        n.set(id, (n.get(id) ?? 0) + 1);
      }
    }
    if (older || transactions.length < pageSize) return n;
  }
  throw new ToolError(
    'clawback_unverifiable',
    `More than ${maxPages * pageSize} wallet transactions of ${agentId} in the claw-back window; refunds cannot be checked`,
  );
}

/**
 * Checks each confirmed id against the incident's claw-back list (settled, paid by the incident's agent,
 * in the window) and our ledger, before anything moves. Throws `clawback_refused`, naming each id that is
 * not in the list and why, so a call with one wrong id refunds nothing.
 */
export async function planClawback(
  deps: OpsDeps,
  incident: Incident,
  ids: readonly string[],
  callOpts: CallOpts,
): Promise<ClawbackPlan> {
  const agentId = incident.primary_agent_id;
  const window = clawbackWindow(deps, incident);
  let settled: ClawbackCandidate[];
  let deposits: Map<string, number>;
  try {
    [settled, deposits] = await Promise.all([
      settledInWindow(deps, agentId, { since: Number.NEGATIVE_INFINITY }, callOpts),
      refundDeposits(deps, agentId, window.since, callOpts),
    ]);
  } catch (e) {
    const info = errorInfo(e);
    throw new ToolError(
      'clawback_unverifiable',
      `Could not read ${agentId}'s settled intents or wallet transactions (${info.code}: ${info.message}); nothing was refunded and no stage applied.`,
      true,
      'Try again.',
    );
  }
  const byId = new Map(settled.map((i) => [i.id, i]));
  const ledger = deps.store.moneyPaths;
  const intents: ClawbackPlan['intents'] = [];
  const refused: { id: string; why: string }[] = [];
  const unlisted: string[] = [];
  for (const id of new Set(ids)) {
    const row = ledger.get('intent', id);
    const s = byId.get(id);
    if (row && row.action !== 'refund') {
      refused.push({ id, why: `our ${row.action} of it (incident ${row.incident_id}) is ${row.state}` });
      continue;
    }
    if (row && (row.state !== 'retry' || !isClawback(row))) {
      intents.push({ ...fromRow(row), known: knownFromRow(row) });
      continue;
    }
    if (!s) {
      unlisted.push(id);
      continue;
    }
    const at = toEpochMs(s.settled_at);
    if (at === undefined || at < window.since || (window.until !== undefined && at > window.until)) {
      const end = window.until === undefined ? 'now' : new Date(window.until).toISOString();
      refused.push({
        id,
        why: `settled ${at === undefined ? 'at an unknown time' : new Date(at).toISOString()}, outside the incident window ${new Date(window.since).toISOString()} – ${end}`,
      });
      continue;
    }
    const outside = deposits.get(id) ?? 0;
    intents.push(
      outside > 0
        ? {
            ...s,
            known: {
              outcome: 'already_refunded',
              note: `refunded outside this server (${outside} refund deposit${outside > 1 ? 's' : ''} on ${agentId}'s wallet); not sent`,
            },
          }
        : s,
    );
  }
  refused.push(...(await whyUnlisted(deps, agentId, unlisted, callOpts)));
  if (refused.length > 0)
    throw new ToolError(
      'clawback_refused',
      `Claw-back refused; nothing was refunded and no stage applied. Not in incident ${incident.id}'s claw-back list: ${refused
        .map((r) => `${r.id} (${r.why})`)
        .join('; ')}.`,
      false,
      'Pass only ids from the claw-back list (contain_agent clawback_ids), or none.',
    );
  return { agentId, since: window.since, intents };
}

/** Why an id is not among the agent's settled intents: one read per id, to name the reason. */
function whyUnlisted(
  deps: OpsDeps,
  agentId: string,
  ids: string[],
  callOpts: CallOpts,
): Promise<{ id: string; why: string }[]> {
  return mapBounded(ids, 8, async (id) => {
    try {
      const i = await deps.monitor.getIntent({ intent_id: id }, callOpts);
      if (i.payer !== agentId) return { id, why: `paid by ${i.payer}, not ${agentId}` };
      return { id, why: i.status === 'settled' ? 'settled at no readable time' : `${i.status}, not settled` };
    } catch (e) {
      const info = errorInfo(e);
      return { id, why: info.code === 'intent_not_found' ? 'no such intent' : `unreadable (${info.code})` };
    }
  });
}

function fromRow(row: MoneyPathRow): ClawbackCandidate {
  return { id: row.object_id, payee: row.payee, amount_cents: row.amount_cents, settled_at: null };
}

/** The outcome a ledger row already records (nothing is sent for it). */
function knownFromRow(row: MoneyPathRow): { outcome: ClawbackOutcome; note: string } {
  const by = `incident ${row.incident_id}`;
  const why = row.last_error ? `: ${row.last_error}` : '';
  switch (row.state) {
    case 'done':
      return { outcome: 'already_refunded', note: `refunded once by us (${by}); not sent again` };
    case 'gone':
      return { outcome: 'failed', note: `no longer refundable (${by})${why}` };
    case 'retry':
      // A refund that met a settled intent in containment's void round is never retried here.
      return { outcome: 'failed', note: `refused earlier (${by})${why}` };
    default:
      return {
        outcome: 'unknown',
        note: `an earlier refund (${by}) has no confirmed outcome${why}; never re-sent`,
      };
  }
}

const mutex = new KeyedMutex();

/**
 * Runs a planned claw-back: what earlier attempts left unanswered is read back, the rest is claimed in the
 * ledger and sent once each, unanswered calls are read back, and each intent's outcome is reported.
 * `blocked` (the wallet is still frozen, or a gate failed) sends nothing and says why.
 */
export async function runClawback(
  ctx: PathsContext,
  plan: ClawbackPlan,
  opts: { dryRun: boolean; blocked?: string | undefined; confirmedBy?: string | undefined },
): Promise<{ steps: StepReport[]; entries: ClawbackEntry[] }> {
  const entry = (i: ClawbackCandidate, outcome: ClawbackOutcome, note?: string): ClawbackEntry => ({
    id: i.id,
    payee: i.payee,
    amount_cents: i.amount_cents,
    outcome,
    note,
  });
  const known = (i: ClawbackPlan['intents'][number]) =>
    i.known ? entry(i, i.known.outcome, i.known.note) : undefined;
  if (opts.dryRun || opts.blocked !== undefined)
    return {
      steps: [],
      entries: plan.intents.map(
        (i) => known(i) ?? (opts.dryRun ? entry(i, 'would_refund') : entry(i, 'not_sent', opts.blocked)),
      ),
    };
  return mutex.run(plan.agentId, async () => {
    const readBack = walletReadBack(ctx, plan.since);
    const steps = await reconcile(ctx, 'intent', 'refund', readBack);
    const items: MoneyPathItem[] = toSend(plan).map((i) => ({
      id: i.id,
      payee: i.payee,
      amount: i.amount_cents,
      detail: { clawback: true, confirmed_by: opts.confirmedBy ?? null },
    }));
    const round = items.length ? await sendRound(ctx, 'intent', 'refund', items) : undefined;
    if (round) steps.push(round.report, ...(await reconcile(ctx, 'intent', 'refund', readBack)));
    const sent = new Set(round?.claimed ?? []);
    const ledger = ctx.deps.store.moneyPaths;
    const entries = plan.intents.map((i) => {
      const k = known(i);
      if (k && k.outcome === 'already_refunded') return k;
      const row = ledger.get('intent', i.id);
      if (!row) return k ?? entry(i, 'not_sent', 'not claimed');
      if (row.action !== 'refund') return entry(i, 'failed', row.last_error ?? `${row.action}, not refunded`);
      if (row.state === 'done')
        return sent.has(i.id)
          ? entry(i, 'refunded')
          : entry(i, 'already_refunded', `refunded once by us (incident ${row.incident_id}); not sent again`);
      const r = knownFromRow(row);
      return entry(i, r.outcome, sent.has(i.id) ? (row.last_error ?? undefined) : r.note);
    });
    return { steps, entries };
  });
}

/**
 * Read-back of refunds with no trustworthy answer, from the payer's wallet (the intent's status says
 * nothing): a `refund:<id>` deposit means the refund reached the payer (done); none leaves it unknown.
 */
function walletReadBack(ctx: PathsContext, since: number): ReadBack {
  return async (rows) => {
    let deposits: Map<string, number>;
    try {
      deposits = await refundDeposits(ctx.deps, ctx.agentId, since, ctx.callOpts);
    } catch (e) {
      const code = errorInfo(e).code;
      return rows.map((r) => ({ id: r.object_id, state: 'unknown' as const, error: `read back: ${code}` }));
    }
    return rows.map((r) =>
      (deposits.get(r.object_id) ?? 0) > 0
        ? { id: r.object_id, state: 'done' as const }
        : {
            id: r.object_id,
            state: 'unknown' as const,
            error: r.last_error?.includes('read back')
              ? r.last_error
              : `${r.last_error ?? 'no answer'}; read back: no refund deposit to ${ctx.agentId}`,
          },
    );
  };
}

/** One line per outcome count, for the tool text. */
export function clawbackSummary(entries: readonly ClawbackEntry[]): string {
  const by = new Map<ClawbackOutcome, ClawbackEntry[]>();
  for (const e of entries) by.set(e.outcome, [...(by.get(e.outcome) ?? []), e]);
  return [...by]
    .map(
      ([outcome, es]) =>
        `${es.length} ${outcome.replace('_', ' ')} (${formatCents(es.reduce((n, e) => n + e.amount_cents, 0))} CREDITS)`,
    )
    .join(', ');
}
