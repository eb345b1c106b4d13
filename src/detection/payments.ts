/**
 * Intents and subscriptions as the escrow rules see them: each mapped onto the escrow state that means the
 * same for the agent's money, so the burst, exploitation, spend and stranger rules (and the agent's own
 * baselines) judge every path alike.
 *
 * - intent: `pending` is committed and capturable at any moment (`held`); `captured` (transient) and
 *   `settled` moved the money (`settled`; a refunded intent stays `settled` on the gateway); `voided` is
 *   a cancellation (`refunded`).
 * - subscription: `active` or `suspended` is money the payee will take every interval (`held`: one charge
 *   is its amount); `cancelled` ends it (`refunded`).
 * Any other status is kept as it is: it counts as neither held nor decided.
 */
import type { EscrowObservation } from './types.js';

/** A wallet transaction as get_transactions lists it (amount in cents of its currency, signed). */
export interface WalletTransaction {
  id: string;
  amount: number;
  tx_type?: string | undefined;
  description?: string | null | undefined;
  currency?: string | undefined;
  /** Epoch ms. */
  created_at: number;
}

/**
 * Withdrawals already seen on their own path (escrow holds, intent captures, subscription charges), or
 * not the agent's spending (a payee's refund of a settlement it received).
 */
const SEEN_ELSEWHERE = /^(escrow_hold|payment|partial_capture|subscription|refund):/;

export interface PaymentRow {
  id: string;
  payer: string;
  payee: string;
  /** Cents. */
  amount: number;
  status: string;
  /** Epoch ms. */
  created_at: number;
}

const INTENT: Record<string, EscrowObservation['status']> = {
  pending: 'held',
  captured: 'settled',
  settled: 'settled',
  voided: 'refunded',
};
const SUBSCRIPTION: Record<string, EscrowObservation['status']> = {
  active: 'held',
  suspended: 'held',
  cancelled: 'refunded',
};

export function fromIntent(r: PaymentRow): EscrowObservation {
  return { ...pick(r), path: 'intent', status: mapped(INTENT, r.status) };
}

export function fromSubscription(r: PaymentRow): EscrowObservation {
  return { ...pick(r), path: 'subscription', status: mapped(SUBSCRIPTION, r.status) };
}

const mapped = (states: Record<string, EscrowObservation['status']>, status: string) =>
  Object.hasOwn(states, status) ? (states[status] as EscrowObservation['status']) : status;

const pick = (r: PaymentRow) => ({
  id: r.id,
  payer: r.payer,
  payee: r.payee,
  amount: r.amount,
  created_at: r.created_at,
});

/**
 * The wallet's own outflows that no other list shows, as the escrow rules see them (money gone at once:
 * `settled`): a split (`split:…`, payee `(split)`: the payer's row names none), a conversion out of
 * CREDITS (`convert:CREDITS->X`, payee `(convert to X)`, the CREDITS amount), a withdrawal (any other
 * CREDITS withdrawal, payee `(withdraw)`). A withdrawal in another currency is the second leg of a
 * conversion already counted; escrow holds, captures and charges are judged on their own paths.
 */
export function fromTransaction(agentId: string, tx: WalletTransaction): EscrowObservation | undefined {
  if (tx.tx_type !== 'withdrawal' || !(tx.amount < 0)) return undefined;
  const d = tx.description ?? '';
  const currency = tx.currency ?? 'CREDITS';
  if (SEEN_ELSEWHERE.test(d)) return undefined;
  const base = {
    id: `tx:${tx.id}`,
    payer: agentId,
    amount: -tx.amount,
    status: 'settled',
    created_at: tx.created_at,
  };
  if (d.startsWith('convert:')) {
    const to = /->(\S+)$/.exec(d)?.[1] ?? 'other';
    return currency === 'CREDITS' ? { ...base, path: 'withdrawal', payee: `(convert to ${to})` } : undefined;
  }
  if (currency !== 'CREDITS') return undefined;
  if (d.startsWith('split:')) return { ...base, path: 'split', payee: '(split)' };
  return { ...base, path: 'withdrawal', payee: '(withdraw)' };
}
