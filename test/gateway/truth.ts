/**
 * Ground truth from the real gateway's own SQLite files under A2A_DATA_DIR, opened read-only: what the
 * gateway did, independent of anything the product reports. Money is stored in atomic units
 * (1 CREDIT = 10^8); these readers return integer cents, exact (BigInt on the way).
 *
 * Files and tables (gateway 1.4.8): billing.db wallets, wallet_freeze, budget_caps, transactions;
 * payments.db escrows; paywall.db api_keys; identity.db agent_reputation. A refund of escrow X is the
 * payer's transaction with description `escrow_refund:X` (products/payments/src/engine.py refund_escrow).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';

const ATOMIC_PER_CENT = 1_000_000n;

function cents(atomic: bigint | number | null): number {
  if (atomic === null) return 0;
  const a = BigInt(atomic);
  if (a % ATOMIC_PER_CENT !== 0n) throw new RangeError(`amount ${a} atomic is not a whole number of cents`);
  return Number(a / ATOMIC_PER_CENT);
}

export interface TruthEscrow {
  id: string;
  payer: string;
  payee: string;
  amount_cents: number;
  status: string;
  created_at: number;
  updated_at: number;
}

export interface RefundTally {
  /** Escrow ids refunded at least once, with the number of refund deposits each received. */
  byEscrow: Map<string, number>;
  /** Escrows refunded more than once: the gateway's non-atomic refund paid the payer twice. */
  doubleRefunded: string[];
  refundCount: number;
  refundedCents: number;
}

export class GatewayTruth {
  private readonly dbs = new Map<string, Database.Database>();

  constructor(private readonly dataDir: string) {}

  private db(name: 'billing' | 'payments' | 'paywall' | 'identity'): Database.Database {
    let d = this.dbs.get(name);
    if (!d) {
      d = new Database(join(this.dataDir, `${name}.db`), { readonly: true, fileMustExist: true });
      d.defaultSafeIntegers(true);
      this.dbs.set(name, d);
    }
    return d;
  }

  escrows(payer: string, status?: string): TruthEscrow[] {
    const rows = this.db('payments')
      .prepare(
        `SELECT id, payer, payee, amount, status, created_at, updated_at FROM escrows
         WHERE payer = ? ${status ? 'AND status = ?' : ''} ORDER BY created_at`,
      )
      .all(...(status ? [payer, status] : [payer])) as {
      id: string;
      payer: string;
      payee: string;
      amount: bigint;
      status: string;
      created_at: number;
      updated_at: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      payer: r.payer,
      payee: r.payee,
      amount_cents: cents(r.amount),
      status: r.status,
      created_at: Number(r.created_at),
      updated_at: Number(r.updated_at),
    }));
  }

  /** Payment intents `payer` pays, as the gateway stores them (amount: what is left to capture). */
  intents(payer: string, status?: string): { id: string; status: string; amount_cents: number }[] {
    const rows = this.db('payments')
      .prepare(
        `SELECT id, status, amount FROM payment_intents WHERE payer = ? ${status ? 'AND status = ?' : ''}
         ORDER BY created_at`,
      )
      .all(...(status ? [payer, status] : [payer])) as { id: string; status: string; amount: bigint }[];
    return rows.map((r) => ({ id: r.id, status: r.status, amount_cents: cents(r.amount) }));
  }

  /** Subscriptions `payer` pays. */
  subscriptions(payer: string, status?: string): { id: string; status: string }[] {
    return this.db('payments')
      .prepare(`SELECT id, status FROM subscriptions WHERE payer = ? ${status ? 'AND status = ?' : ''}`)
      .all(...(status ? [payer, status] : [payer])) as { id: string; status: string }[];
  }

  /** Refund deposits of settled intents into `payer`'s wallet (`refund:<intent id>`), per intent. */
  intentRefunds(payer: string): Map<string, number> {
    const rows = this.db('billing')
      .prepare(
        `SELECT description FROM transactions WHERE agent_id = ? AND description LIKE 'refund:%' AND amount > 0`,
      )
      .all(payer) as { description: string }[];
    const n = new Map<string, number>();
    for (const r of rows) {
      const id = r.description.slice('refund:'.length);
      n.set(id, (n.get(id) ?? 0) + 1);
    }
    return n;
  }

  /** Every escrow in the gateway, any payer. */
  escrowCount(): number {
    const r = this.db('payments').prepare('SELECT COUNT(*) AS n FROM escrows').get() as { n: bigint };
    return Number(r.n);
  }

  held(payer: string): { count: number; cents: number } {
    const held = this.escrows(payer, 'held');
    return { count: held.length, cents: held.reduce((n, e) => n + e.amount_cents, 0) };
  }

  balanceCents(agentId: string): number | null {
    const r = this.db('billing').prepare('SELECT balance FROM wallets WHERE agent_id = ?').get(agentId) as
      | { balance: bigint }
      | undefined;
    return r ? cents(r.balance) : null;
  }

  frozen(agentId: string): boolean {
    const r = this.db('billing')
      .prepare('SELECT frozen FROM wallet_freeze WHERE agent_id = ?')
      .get(agentId) as { frozen: bigint } | undefined;
    return r !== undefined && r.frozen !== 0n;
  }

  /** Every wallet the gateway has frozen now. */
  frozenWallets(): string[] {
    const rows = this.db('billing')
      .prepare('SELECT agent_id FROM wallet_freeze WHERE frozen != 0 ORDER BY agent_id')
      .all() as { agent_id: string }[];
    return rows.map((r) => r.agent_id);
  }

  /** Budget caps in cents; null = no cap (or no row). */
  caps(agentId: string): { daily_cents: number | null; monthly_cents: number | null } {
    const r = this.db('billing')
      .prepare('SELECT daily_cap, monthly_cap FROM budget_caps WHERE agent_id = ?')
      .get(agentId) as { daily_cap: bigint | null; monthly_cap: bigint | null } | undefined;
    return {
      daily_cents: r?.daily_cap == null ? null : cents(r.daily_cap),
      monthly_cents: r?.monthly_cap == null ? null : cents(r.monthly_cap),
    };
  }

  /** Refund deposits into `payer`'s wallet, per escrow id. */
  refunds(payer: string): RefundTally {
    const rows = this.db('billing')
      .prepare(
        `SELECT description, amount FROM transactions
         WHERE agent_id = ? AND description LIKE 'escrow_refund:%'`,
      )
      .all(payer) as { description: string; amount: bigint }[];
    const byEscrow = new Map<string, number>();
    let refundedCents = 0;
    for (const r of rows) {
      const id = r.description.slice('escrow_refund:'.length);
      byEscrow.set(id, (byEscrow.get(id) ?? 0) + 1);
      refundedCents += cents(r.amount);
    }
    return {
      byEscrow,
      doubleRefunded: [...byEscrow].filter(([, n]) => n > 1).map(([id]) => id),
      refundCount: rows.length,
      refundedCents,
    };
  }

  /** Whether the identity service holds a reputation row for the agent (keys made directly get none). */
  hasReputationRow(agentId: string): boolean {
    return (
      this.db('identity')
        .prepare('SELECT 1 FROM agent_reputation WHERE agent_id = ? LIMIT 1')
        .get(agentId) !== undefined
    );
  }

  keys(agentId: string): { tier: string; scopes: string[]; revoked: boolean }[] {
    const rows = this.db('paywall')
      .prepare('SELECT tier, scopes, revoked FROM api_keys WHERE agent_id = ? ORDER BY created_at')
      .all(agentId) as { tier: string; scopes: string; revoked: bigint }[];
    return rows.map((r) => ({
      tier: r.tier,
      scopes: JSON.parse(r.scopes) as string[],
      revoked: r.revoked !== 0n,
    }));
  }

  close(): void {
    for (const d of this.dbs.values()) d.close();
    this.dbs.clear();
  }
}
