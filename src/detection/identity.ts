/**
 * identity_compromise (P0): the identity record of a pinned agent is gone, a verification challenge failed, or the
 * registered public key differs from the one pinned at first sighting. Anyone holding an agent's API
 * key can overwrite its registered key (CONTRACT §10), so a changed key is treated as a breach until a
 * person says otherwise. Keys are compared as lower-case hex: the gateway stores what it was sent.
 */
import { anomaly, credits, idList } from './anomaly.js';
import { isCold } from './baseline.js';
import type { Thresholds } from './thresholds.js';
import type { AgentDetectionState, AgentObservation, Anomaly, EscrowObservation } from './types.js';

export function identityCheck(
  id: string,
  at: number,
  identity: NonNullable<AgentObservation['identity']>,
  pinnedKey: string | null,
): { anomaly?: Anomaly; pinKey?: string } {
  const key = typeof identity.public_key === 'string' ? normalizeKey(identity.public_key) : null;
  const pinned = pinnedKey ? normalizeKey(pinnedKey) : null;
  const flag = (reason: string, summary: string, extra: Record<string, unknown> = {}) =>
    anomaly(id, at, 'identity_compromise', 'critical', summary, {
      reason,
      pinned_key: pinned,
      registered_key: key,
      ...extra,
    });
  // Never seen with a key (keys made directly in the gateway's database have no identity row): nothing to
  // compare, no evidence of anything. A record that had a pinned key and is now gone is a breach.
  if (!key)
    return pinned
      ? { anomaly: flag('identity_missing', `${id}'s identity record is gone; its key was pinned`) }
      : {};
  if (pinned && key !== pinned)
    return {
      anomaly: flag('key_changed', `${id}'s registered public key differs from the pinned key`),
    };
  if (identity.verified === false)
    return { anomaly: flag('verification_failed', `${id} failed verification against its registered key`) };
  return pinned ? {} : { pinKey: key };
}

export function normalizeKey(key: string): string {
  return key.trim().toLowerCase();
}

/**
 * identity_compromise from behaviour: a stolen key spends where the agent never did. Fires when, within
 * `new_payee_window_ms`, at least `new_payee_count` escrows as payer go to payees the agent never paid
 * before that window, each above `new_payee_amount_multiple` × its typical escrow. Judged only once the
 * agent's history is known (`cold_start_ms`, at least `new_payee_min_known` of its escrows): a new agent has
 * no "usual" to betray. This is what catches a key used without touching the identity record, or swapped
 * before anyone pinned it, or swapped and restored between polls (the record keeps `created_at` on an
 * overwrite, so the record itself shows nothing).
 */
export function strangerSpending(
  id: string,
  at: number,
  paid: readonly EscrowObservation[],
  s: AgentDetectionState,
  t: Thresholds,
): Anomaly | undefined {
  const known = new Set(s.payees ?? []);
  const typical = s.escrow_amount.mean;
  if (known.size === 0 || s.escrow_amount.n < t.new_payee_min_known || isCold(s, t, at)) return undefined;
  const from = at - t.new_payee_window_ms;
  const strange = paid.filter(
    (e) =>
      e.created_at > from &&
      !known.has(e.payee) &&
      e.amount > typical * t.new_payee_amount_multiple &&
      e.status !== 'refunded',
  );
  if (strange.length < t.new_payee_count) return undefined;
  const total = strange.reduce((n, e) => n + e.amount, 0);
  return anomaly(
    id,
    at,
    'identity_compromise',
    'critical',
    `${id} sent ${strange.length} escrows (${credits(total)}) to payees it never paid, each over ${t.new_payee_amount_multiple}× its typical escrow`,
    {
      reason: 'stranger_spending',
      count: strange.length,
      threshold_count: t.new_payee_count,
      window_ms: t.new_payee_window_ms,
      new_payees: [...new Set(strange.map((e) => e.payee))].sort().slice(0, 10),
      amount_cents: total,
      typical_escrow_cents: Math.round(typical),
      known_payees: known.size,
      ...idList(strange.map((e) => e.id)),
    },
  );
}
