/**
 * The escrow ledger: one row per escrow our containment has tried to cancel, keyed by the escrow id.
 *
 * Why a ledger and not the gateway's list: the real gateway lists escrows newest first with offset paging,
 * so while the agent keeps creating escrows the same id shows up on two pages, and its refund is not
 * atomic (two concurrent cancels of one held escrow both refund the payer). The ledger makes "never cancel
 * an escrow twice" a property of the store: an id is claimed (written ahead, `sending`) in one transaction
 * before its cancel is sent, and a claimed id is never sent again unless the earlier attempt is known not
 * to have taken effect (`retry`). An attempt whose outcome is unknown (timeout, reset, 5xx, crash) is
 * re-read on the gateway before anything else happens to it. Totals are sums over `cancelled` rows, so a
 * resumed or repeated containment counts each refund exactly once.
 *
 * States: `sending` (claimed; a cancel may be in flight) → `cancelled` (the gateway said so, or a re-read
 * found it refunded after our attempt) | `retry` (a definite refusal that changed nothing: 429, 403
 * wallet_frozen…) | `unknown` (no answer we can trust) | `gone` (settled, released or expired: not ours).
 */

import type { Clock } from '../util/clock.js';
import type { SqlDatabase } from './sql.js';

export type EscrowCancelState = 'sending' | 'cancelled' | 'retry' | 'unknown' | 'gone';

export interface EscrowCancelRow {
  escrow_id: string;
  incident_id: string;
  agent_id: string;
  payee: string;
  amount_cents: number;
  state: EscrowCancelState;
  attempts: number;
  last_error: string | null;
  updated_at: number;
}

export interface EscrowCancelTotals {
  /** Cancelled by us: refunded to the payer. */
  cancelled: number;
  cancelled_cents: number;
  /** Claimed but not cancelled yet: still held, or outcome not yet confirmed. */
  open: number;
  open_cents: number;
  /** Settled, released or expired before we could cancel: nothing to unlock. */
  gone: number;
}

export class EscrowLedger {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: Clock,
  ) {}

  /**
   * Claims escrows for a cancel attempt, in one transaction: new ids and ids whose last attempt is known to
   * have changed nothing (`retry`, even under an earlier incident of the agent: no refund of it was counted)
   * become `sending` and are returned; every other id (in flight, cancelled, unknown, gone) is left alone. The caller sends a cancel for exactly the
   * returned ids.
   */
  claim(
    incidentId: string,
    agentId: string,
    escrows: readonly { id: string; payee: string; amount: number }[],
  ): string[] {
    const now = this.clock.now();
    const insert = this.db.prepare(
      `INSERT INTO escrow_cancels (escrow_id, incident_id, agent_id, payee, amount_cents, state, attempts, updated_at)
       VALUES (?, ?, ?, ?, ?, 'sending', 1, ?) ON CONFLICT (escrow_id) DO NOTHING`,
    );
    const retry = this.db.prepare(
      `UPDATE escrow_cancels SET state = 'sending', incident_id = ?, attempts = attempts + 1, updated_at = ?
       WHERE escrow_id = ? AND state = 'retry'`,
    );
    const tx = this.db.transaction(() => {
      const claimed: string[] = [];
      const seen = new Set<string>();
      for (const e of escrows) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        if (
          insert.run(e.id, incidentId, agentId, e.payee, e.amount, now).changes === 1 ||
          retry.run(incidentId, now, e.id).changes === 1
        )
          claimed.push(e.id);
      }
      return claimed;
    });
    return tx.immediate();
  }

  /** Records the outcomes of one round of attempts in one transaction (one fsync, not one per escrow). */
  settle(
    outcomes: readonly { escrow_id: string; state: EscrowCancelState; error?: string | undefined }[],
  ): void {
    if (outcomes.length === 0) return;
    const now = this.clock.now();
    const upd = this.db.prepare(
      'UPDATE escrow_cancels SET state = ?, last_error = ?, updated_at = ? WHERE escrow_id = ?',
    );
    this.db.transaction(() => {
      for (const o of outcomes) upd.run(o.state, o.error ?? null, now, o.escrow_id);
    })();
  }

  /**
   * Rows whose outcome must be read back from the gateway before anything else is done with them:
   * `unknown`, and `sending` (in flight for a live run; after a crash, sent or not, nobody knows).
   */
  unresolved(incidentId: string): EscrowCancelRow[] {
    return this.db
      .prepare(
        "SELECT * FROM escrow_cancels WHERE incident_id = ? AND state IN ('sending', 'unknown') ORDER BY escrow_id",
      )
      .all(incidentId) as EscrowCancelRow[];
  }

  /** Rows still waiting for another attempt. */
  retryable(incidentId: string): EscrowCancelRow[] {
    return this.db
      .prepare("SELECT * FROM escrow_cancels WHERE incident_id = ? AND state = 'retry' ORDER BY escrow_id")
      .all(incidentId) as EscrowCancelRow[];
  }

  totals(incidentId: string): EscrowCancelTotals {
    const rows = this.db
      .prepare(
        'SELECT state, COUNT(*) AS n, COALESCE(SUM(amount_cents), 0) AS cents FROM escrow_cancels WHERE incident_id = ? GROUP BY state',
      )
      .all(incidentId) as { state: EscrowCancelState; n: number; cents: number }[];
    const t: EscrowCancelTotals = { cancelled: 0, cancelled_cents: 0, open: 0, open_cents: 0, gone: 0 };
    for (const r of rows) {
      if (r.state === 'cancelled') {
        t.cancelled += r.n;
        t.cancelled_cents += r.cents;
      } else if (r.state === 'gone') t.gone += r.n;
      else {
        t.open += r.n;
        t.open_cents += r.cents;
      }
    }
    return t;
  }

  /**
   * Escrow ids our containment cancelled or may have cancelled for this agent (any incident): their refunds
   * are our doing and must never feed detection.
   */
  idsCancelledByUs(agentId: string): Set<string> {
    const rows = this.db
      .prepare("SELECT escrow_id FROM escrow_cancels WHERE agent_id = ? AND state != 'gone'")
      .all(agentId) as { escrow_id: string }[];
    return new Set(rows.map((r) => r.escrow_id));
  }
}

export interface LeaseRecord {
  name: string;
  owner: string;
  acquired_at: number;
  expires_at: number;
}

/**
 * Leases: at most one owner acts under a name (an agent's containment) at a time, across every process
 * sharing the store. Taken atomically (one upsert that only wins over an expired or own lease), renewed by
 * its holder, released when done; a holder that dies simply stops renewing and the lease expires.
 */
export class Leases {
  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: Clock,
  ) {}

  /** True when `owner` now holds the lease (newly, or renewed because it already did). */
  acquire(name: string, owner: string, ttlMs: number): boolean {
    const now = this.clock.now();
    const r = this.db
      .prepare(
        `INSERT INTO leases (name, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at,
           expires_at = excluded.expires_at
         WHERE leases.owner = excluded.owner OR leases.expires_at <= ?`,
      )
      .run(name, owner, now, now + ttlMs, now);
    return r.changes === 1;
  }

  /** Takes the lease from `deadOwner` (known to have died), and only from it. */
  takeOver(name: string, deadOwner: string, owner: string, ttlMs: number): boolean {
    const now = this.clock.now();
    return (
      this.db
        .prepare('UPDATE leases SET owner = ?, acquired_at = ?, expires_at = ? WHERE name = ? AND owner = ?')
        .run(owner, now, now + ttlMs, name, deadOwner).changes === 1
    );
  }

  /** False when the lease was lost (expired and taken by another owner): the holder must stop acting. */
  renew(name: string, owner: string, ttlMs: number): boolean {
    return (
      this.db
        .prepare('UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?')
        .run(this.clock.now() + ttlMs, name, owner).changes === 1
    );
  }

  release(name: string, owner: string): void {
    this.db.prepare('DELETE FROM leases WHERE name = ? AND owner = ?').run(name, owner);
  }

  get(name: string): LeaseRecord | undefined {
    return this.db.prepare('SELECT * FROM leases WHERE name = ?').get(name) as LeaseRecord | undefined;
  }
}
