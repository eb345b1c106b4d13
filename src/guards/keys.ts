/**
 * Containment key separation. The key that acts must be configured, must differ from the monitor key,
 * and must belong to no fleet agent: a compromised agent holding the key that contains it could
 * unfreeze itself. The gateway stores SHA3-256(key) and lists its first 8 hex characters, so the check
 * compares prefixes and never needs another agent's key in clear.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { keyHashPrefix } from '../greenhelix/key-hash.js';
import type { Clock } from '../util/clock.js';
import type { GuardRefusal } from './index.js';

export { keyHashPrefix };

function sameKey(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export type KeyVerdict =
  | { ok: true; method: 'gateway_key_list' | 'configured_agent_keys'; containmentKeyOwner?: string }
  | GuardRefusal;

export interface KeyCheck {
  monitorKey?: string | undefined;
  containmentKey?: string | undefined;
  fleet: readonly string[];
  /** Agents' own keys, when configured: the fallback proof when the gateway key list is unreadable. */
  agentKeys?: Readonly<Record<string, string>> | undefined;
  /** The gateway's key list (admin `list_api_keys`); may throw (403 for a non-admin key). */
  listGatewayKeys?: (() => Promise<readonly { key_hash_prefix: string; agent_id: string }[]>) | undefined;
  clock?: Clock | undefined;
  /** How long a verdict is reused (containment must not pay a key-list round trip each time). */
  ttlMs?: number | undefined;
}

function refuse(code: string, message: string, fix: string): GuardRefusal {
  return { ok: false, code, message, fix, retryable: false };
}

const cache = new Map<string, { at: number; verdict: KeyVerdict }>();

/** Decides whether state-changing tools may act with the configured containment key. */
export async function checkContainmentKey(input: KeyCheck): Promise<KeyVerdict> {
  const { monitorKey, containmentKey } = input;
  if (!containmentKey) {
    return refuse(
      'containment_key_missing',
      'No containment key is configured, so nothing that changes state may run. The monitor key only reads.',
      'Set GREENHELIX_CONTAINMENT_KEY to a separate admin-scoped key owned by an operator identity (not a fleet agent).',
    );
  }
  if (monitorKey && sameKey(monitorKey, containmentKey)) {
    return refuse(
      'containment_key_not_separate',
      'The containment key is the same as the monitor key; the key that reads must never be the key that acts.',
      'Provision a second admin-scoped key and set it as GREENHELIX_CONTAINMENT_KEY; keep GREENHELIX_MONITOR_KEY for reads.',
    );
  }
  const now = input.clock?.now() ?? Date.now();
  const cacheKey = `${keyHashPrefix(containmentKey)}:${[...input.fleet].sort().join(',')}`;
  const hit = cache.get(cacheKey);
  if (hit && now - hit.at < (input.ttlMs ?? 60_000)) return hit.verdict;
  const verdict = await checkOwnership(input, containmentKey);
  cache.set(cacheKey, { at: now, verdict });
  return verdict;
}

async function checkOwnership(input: KeyCheck, containmentKey: string): Promise<KeyVerdict> {
  const prefix = keyHashPrefix(containmentKey);
  const fleet = new Set(input.fleet);
  if (input.listGatewayKeys) {
    try {
      const keys = await input.listGatewayKeys();
      const row = keys.find((k) => k.key_hash_prefix === prefix);
      if (row && fleet.has(row.agent_id)) return ownedByFleetAgent(row.agent_id);
      return { ok: true, method: 'gateway_key_list', ...(row ? { containmentKeyOwner: row.agent_id } : {}) };
    } catch {
      // The list is admin-only; fall back to the configured agent keys and say which proof was used.
    }
  }
  for (const [agentId, key] of Object.entries(input.agentKeys ?? {})) {
    if (sameKey(key, containmentKey)) return ownedByFleetAgent(agentId);
  }
  return { ok: true, method: 'configured_agent_keys' };
}

function ownedByFleetAgent(agentId: string): GuardRefusal {
  return refuse(
    'containment_key_belongs_to_fleet_agent',
    `The containment key belongs to fleet agent ${agentId}: an agent must not hold the key that contains it.`,
    'Provision a dedicated admin-scoped key owned by a non-fleet operator identity and set it as GREENHELIX_CONTAINMENT_KEY.',
  );
}

/** For tests: forget cached verdicts. */
export function clearKeyVerdictCache(): void {
  cache.clear();
}
