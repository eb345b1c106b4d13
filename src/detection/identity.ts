/**
 * identity_compromise (P0): the identity record of a pinned agent is gone, a verification challenge failed, or the
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
