/**
 * The money-path ledger: one row per payment intent or subscription our containment (or a confirmed
 * claw-back) has acted on, keyed by the gateway's id. Like the escrow ledger, a row is written ahead
 * (`sending`) in one transaction before the call goes out, and an id with a row is never sent again unless
 * the earlier attempt is known to have changed nothing (`retry`).
 *
 * Why our own record: the gateway's intent status cannot be trusted. Refunding a settled intent moves the
 * money back and answers `refunded`, but the stored status stays `settled`, so a second refund pays the
 * payer again (and credits the create fee back again). One row per intent id, whatever the action (void of
 * a pending intent, or refund of a settled one), makes "each intent refunded at most once by us" a
 * property of the store. Subscriptions get one row each too, with what recovery needs to offer them back:
 * the gateway never reactivates a cancelled subscription, so offering it back means creating it anew.
 *
 * States: `sending` (claimed; the call may be in flight) → `done` (the gateway confirmed) | `retry` (a
 * definite refusal that changed nothing) | `unknown` (no answer we can trust: never re-sent blindly) |
 * `gone` (no longer pending/active when we got there: nothing for us to do).
 */

import type { Clock } from '../util/clock.js';
import type { SqlDatabase } from './sql.js';

export type MoneyPathKind = 'intent' | 'subscription';
/** void: a pending intent; refund: a settled intent (claw-back); cancel: an active subscription. */
export type MoneyPathAction = 'void' | 'refund' | 'cancel';
export type MoneyPathState = 'sending' | 'done' | 'retry' | 'unknown' | 'gone';

export interface MoneyPathRow {
  kind: MoneyPathKind;
  object_id: string;
  incident_id: string;
  agent_id: string;
  action: MoneyPathAction;
  payee: string;
  amount_cents: number;
  /** JSON: what recovery needs (a subscription's interval, description, currency). */
  detail: string | null;
  state: MoneyPathState;
  attempts: number;
  last_error: string | null;
  updated_at: number;
}

export interface MoneyPathItem {
  id: string;
  payee: string;
  amount: number;
  detail?: Record<string, unknown> | undefined;
}

export interface MoneyPathTotals {
  done: number;
  done_cents: number;
  /** Claimed and not confirmed: in flight, refused (retry) or unknown. */
  open: number;
  gone: number;
}

export class MoneyPathLedger {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: Clock,
  ) {}

  /**
   * Claims objects for one action, in one transaction: ids with no row, and ids whose last attempt of the
   * same action changed nothing (`retry`), become `sending` and are returned. Every other id (in flight,
   * done, unknown, gone, or acted on another way) is left alone; the caller sends exactly the returned ids.
   */
  claim(
    kind: MoneyPathKind,
    action: MoneyPathAction,
    incidentId: string,
    agentId: string,
    items: readonly MoneyPathItem[],
  ): string[] {
    const now = this.clock.now();
    const insert = this.db.prepare(
      `INSERT INTO money_path_actions
         (kind, object_id, incident_id, agent_id, action, payee, amount_cents, detail, state, attempts, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sending', 1, ?) ON CONFLICT (kind, object_id) DO NOTHING`,
    );
    const retry = this.db.prepare(
      `UPDATE money_path_actions SET state = 'sending', incident_id = ?, attempts = attempts + 1, updated_at = ?
       WHERE kind = ? AND object_id = ? AND action = ? AND state = 'retry'`,
    );
    const tx = this.db.transaction(() => {
      const claimed: string[] = [];
      const seen = new Set<string>();
      for (const it of items) {
        if (seen.has(it.id)) continue;
        seen.add(it.id);
        const detail = it.detail ? JSON.stringify(it.detail) : null;
        if (
          insert.run(kind, it.id, incidentId, agentId, action, it.payee, it.amount, detail, now).changes ===
            1 ||
          retry.run(incidentId, now, kind, it.id, action).changes === 1
        )
          claimed.push(it.id);
      }
      return claimed;
    });
    return tx.immediate();
  }

  /**
   * Records the outcomes of one round in one transaction. `action` corrects what the call turned out to
   * do (a void that reached an intent already settled refunded it instead). Only rows still without a
   * trustworthy outcome (`sending`, `unknown`) change: a read-back by another caller that raced the call's
   * own answer never turns a confirmed row back into an unknown one.
   */
  settle(
    kind: MoneyPathKind,
    outcomes: readonly {
      id: string;
      state: MoneyPathState;
      error?: string | undefined;
      action?: MoneyPathAction | undefined;
    }[],
  ): void {
    if (outcomes.length === 0) return;
    const now = this.clock.now();
    const upd = this.db.prepare(
      `UPDATE money_path_actions SET state = ?, last_error = ?, updated_at = ?, action = COALESCE(?, action)
       WHERE kind = ? AND object_id = ? AND state IN ('sending', 'unknown')`,
    );
    this.db.transaction(() => {
      for (const o of outcomes) upd.run(o.state, o.error ?? null, now, o.action ?? null, kind, o.id);
    })();
  }

  /** Rows of an incident, optionally of one action and state. */
  rows(
    incidentId: string,
    kind: MoneyPathKind,
    filter: { action?: MoneyPathAction; states?: readonly MoneyPathState[] } = {},
  ): MoneyPathRow[] {
    const rows = this.db
      .prepare('SELECT * FROM money_path_actions WHERE incident_id = ? AND kind = ? ORDER BY object_id')
      .all(incidentId, kind) as MoneyPathRow[];
    return rows.filter(
      (r) =>
        (filter.action === undefined || r.action === filter.action) &&
        (filter.states === undefined || filter.states.includes(r.state)),
    );
  }

  /** The row for one object, whatever incident claimed it. */
  get(kind: MoneyPathKind, objectId: string): MoneyPathRow | undefined {
    return this.db
      .prepare('SELECT * FROM money_path_actions WHERE kind = ? AND object_id = ?')
      .get(kind, objectId) as MoneyPathRow | undefined;
  }

  totals(incidentId: string, kind: MoneyPathKind, action: MoneyPathAction): MoneyPathTotals {
    const t: MoneyPathTotals = { done: 0, done_cents: 0, open: 0, gone: 0 };
    for (const r of this.rows(incidentId, kind, { action })) {
      if (r.state === 'done') {
        t.done++;
        t.done_cents += r.amount_cents;
      } else if (r.state === 'gone') t.gone++;
      else t.open++;
    }
    return t;
  }

  /**
   * Ids of the agent's intents and subscriptions we voided, cancelled or refunded (or are acting on): our
   * doing, which detection must never read as the agent's. `gone` rows were not ours in the end.
   */
  idsActedOnByUs(agentId: string): string[] {
    const rows = this.db
      .prepare("SELECT object_id FROM money_path_actions WHERE agent_id = ? AND state != 'gone'")
      .all(agentId) as { object_id: string }[];
    return rows.map((r) => r.object_id);
  }
}
