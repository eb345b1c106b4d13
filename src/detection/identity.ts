/**
 * identity_compromise (P0): the identity record is missing, a verification challenge failed, or the
 * registered public key differs from the one pinned at first sighting. Anyone holding an agent's API
 * key can overwrite its registered key (CONTRACT §10), so a changed key is treated as a breach until a
 * person says otherwise. Keys are compared as lower-case hex: the gateway stores what it was sent.
 */
import { anomaly } from './anomaly.js';
import type { AgentObservation, Anomaly } from './types.js';

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
  if (!key) return { anomaly: flag('identity_missing', `${id} has no registered identity or public key`) };
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
