/**
 * Key separation. Two keys, two jobs: the monitor key only reads, the containment key acts. The key
 * that acts must be configured, must differ from the monitor key, and must belong to no fleet agent:
 * a compromised agent holding the key that contains it could unfreeze itself, and an agent's key is
 * exactly what leaks when the agent is compromised.
 *
 * The gateway stores SHA3-256(key) and lists the first 8 hex characters (`key_hash_prefix`) with the
 * owning agent, so ownership is proved from the gateway's key list without any agent key in clear.
 * When the list cannot be read, the agents' own keys (if configured) are compared instead, and the
 * verdict says which proof was used. A check that could prove nothing refuses rather than passing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { keyHashPrefix } from '../greenhelix/key-hash.js';
import { ROUTES } from '../greenhelix/routes.js';
import { type Clock, systemClock } from '../util/clock.js';
import { redactKey, untrustedText } from './redact.js';
import { type GuardRefusal, refusal, refusalError } from './refusal.js';

export { keyHashPrefix };

/** How the containment key was shown not to belong to a fleet agent. */
export type KeyCheckMethod = 'gateway_key_list' | 'configured_agent_keys';

/** The verdict on the containment key. */
export type KeyVerdict =
  | {
      ok: true;
      method: KeyCheckMethod;
      /** The identity the gateway lists for the key, when the key list was read and lists it. */
      containmentKeyOwner?: string;
      /** Why the gateway key list was not the proof this time (it failed), when that happened. */
      fallback_reason?: string;
    }
  | GuardRefusal;

/** One row of the gateway's `list_api_keys` result, as far as this check needs it. */
export interface GatewayKeyRow {
  key_hash_prefix: string;
  agent_id: string;
  owner?: unknown;
  /** The gateway answers a boolean over REST and 0/1 in raw batch results. */
  revoked?: unknown;
}

/** What {@link checkContainmentKey} needs. Everything is injected; the guard makes no request itself. */
export interface KeyCheck {
  monitorKey?: string | undefined;
  containmentKey?: string | undefined;
  /** The fleet's agent ids: the identities that must not own the containment key. */
  fleet: readonly string[];
  /** Agents' own keys, when configured: compared every time, and the proof when the key list is unreadable. */
  agentKeys?: Readonly<Record<string, string>> | undefined;
  /** The gateway's key list (admin `list_api_keys`). May throw, e.g. 403 for a key without admin scope. */
  listGatewayKeys?: (() => Promise<readonly GatewayKeyRow[]>) | undefined;
  clock?: Clock | undefined;
  /** How long a verdict from the key list is reused, positive or negative (default 60 s). */
  ttlMs?: number | undefined;
  /** Where verdicts are kept; defaults to one shared per process. Give each server its own. */
  cache?: KeyVerdictCache | undefined;
}

const DEFAULT_TTL_MS = 60_000;
const MAX_FINGERPRINTS = 64;

interface Cached {
  at: number;
  verdict: KeyVerdict;
}

/**
 * Verdicts per configuration fingerprint (a hash of both keys, the fleet and the agent keys), so a
 * changed configuration is never answered from the cache. Containment must not pay a key-list round
 * trip per call, and concurrent checks share one request.
 */
export class KeyVerdictCache {
  readonly #fresh = new Map<string, Cached>();
  /** The last positive verdict proved by the key list, per fingerprint: reused only if the list fails. */
  readonly #lastProved = new Map<string, Cached>();
  readonly #inFlight = new Map<string, Promise<KeyVerdict>>();

  /** @internal */
  fresh(fp: string, now: number, ttlMs: number): KeyVerdict | undefined {
    const hit = this.#fresh.get(fp);
    return hit && now - hit.at < ttlMs && now >= hit.at ? hit.verdict : undefined;
  }

  /** @internal */
  lastProved(fp: string): Cached | undefined {
    return this.#lastProved.get(fp);
  }

  /** @internal */
  store(fp: string, at: number, verdict: KeyVerdict): void {
    remember(this.#fresh, fp, { at, verdict });
    if (verdict.ok && verdict.method === 'gateway_key_list' && !verdict.fallback_reason) {
      remember(this.#lastProved, fp, { at, verdict });
    }
  }

  /** @internal */
  once(fp: string, run: () => Promise<KeyVerdict>): Promise<KeyVerdict> {
    const pending = this.#inFlight.get(fp);
    if (pending) return pending;
    const p = run().finally(() => this.#inFlight.delete(fp));
    this.#inFlight.set(fp, p);
    return p;
  }

  /** Forgets every verdict (tests; a key rotated on the gateway). */
  clear(): void {
    this.#fresh.clear();
    this.#lastProved.clear();
  }
}

function remember(map: Map<string, Cached>, fp: string, value: Cached): void {
  map.delete(fp);
  map.set(fp, value);
  if (map.size > MAX_FINGERPRINTS) map.delete(map.keys().next().value as string);
}

const sharedCache = new KeyVerdictCache();

/** Forgets the process-wide cached verdicts. */
export function clearKeyVerdictCache(): void {
  sharedCache.clear();
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time equality of two secrets (hashed first, so lengths do not leak either). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Decides whether state-changing tools may act with the configured containment key. Never throws:
 * a failing key list becomes a fallback or a refusal that says what to fix.
 */
export async function checkContainmentKey(input: KeyCheck): Promise<KeyVerdict> {
  // The gateway trims the Authorization header, so " key" and "key" are the same credential there.
  const containmentKey = typeof input.containmentKey === 'string' ? input.containmentKey.trim() : '';
  const monitorKey = typeof input.monitorKey === 'string' ? input.monitorKey.trim() : '';
  if (!containmentKey) return missingKey();
  if (monitorKey && sameSecret(monitorKey, containmentKey)) return notSeparate(containmentKey);
  const agentKeys = Object.entries(input.agentKeys ?? {}).filter(
    (e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== '',
  );
  const holder = agentKeys.find(([, key]) => sameSecret(key.trim(), containmentKey));
  if (holder) return ownedByAgent(holder[0], 'it is configured as that agent’s own key');
  if (!input.listGatewayKeys) return byConfiguredKeys(agentKeys.length, undefined);

  const clock = input.clock ?? systemClock;
  const ttlMs = typeof input.ttlMs === 'number' && input.ttlMs >= 0 ? input.ttlMs : DEFAULT_TTL_MS;
  const cache = input.cache ?? sharedCache;
  const fp = fingerprint(containmentKey, monitorKey, input.fleet, agentKeys);
  const hit = cache.fresh(fp, clock.now(), ttlMs);
  if (hit) return hit;
  const list = input.listGatewayKeys;
  return cache.once(fp, async () => {
    const verdict = await checkByKeyList(list, containmentKey, input.fleet, agentKeys.length, cache, fp);
    // An unproved pass is never cached: the next call tries the key list again.
    if (verdict.ok || verdict.code !== 'containment_key_unverified') cache.store(fp, clock.now(), verdict);
    return verdict;
  });
}

async function checkByKeyList(
  list: () => Promise<readonly GatewayKeyRow[]>,
  containmentKey: string,
  fleet: readonly string[],
  agentKeyCount: number,
  cache: KeyVerdictCache,
  fp: string,
): Promise<KeyVerdict> {
  let rows: readonly GatewayKeyRow[];
  try {
    rows = await list();
    if (!Array.isArray(rows)) throw new TypeError('the key list is not an array');
  } catch (e) {
    const reason = `the gateway key list could not be read (${untrustedText(e instanceof Error ? e.message : e, 200)})`;
    if (agentKeyCount > 0) return byConfiguredKeys(agentKeyCount, reason);
    // The same key and fleet were proved before: a key's owner never changes on the gateway.
    const before = cache.lastProved(fp);
    if (before?.verdict.ok) {
      return {
        ...before.verdict,
        fallback_reason: `${reason}; reused the verdict proved at ${iso(before.at)}`,
      };
    }
    return unverified(reason);
  }
  return verdictFromRows(rows, keyHashPrefix(containmentKey), new Set(fleet));
}

function verdictFromRows(rows: readonly GatewayKeyRow[], prefix: string, fleet: Set<string>): KeyVerdict {
  // Hash prefixes are public (the gateway lists them), so a plain comparison leaks nothing.
  const mine = rows.filter(
    (r) => r && typeof r.key_hash_prefix === 'string' && r.key_hash_prefix.toLowerCase() === prefix,
  );
  for (const row of mine) {
    const owners = [row.agent_id, row.owner].filter((o): o is string => typeof o === 'string');
    const agent = owners.find((o) => fleet.has(o));
    if (agent) return ownedByAgent(agent, 'the gateway key list shows that agent owns it');
  }
  if (mine.length > 0 && mine.every(isRevoked)) return revoked();
  const owner = mine.find((r) => !isRevoked(r) && typeof r.agent_id === 'string')?.agent_id;
  return {
    ok: true,
    method: 'gateway_key_list',
    ...(owner ? { containmentKeyOwner: untrustedText(owner, 128) } : {}),
  };
}

const isRevoked = (r: GatewayKeyRow) => r.revoked === true || r.revoked === 1;

function byConfiguredKeys(count: number, reason: string | undefined): KeyVerdict {
  if (count === 0) return unverified(reason ?? 'no gateway key list was given');
  return { ok: true, method: 'configured_agent_keys', ...(reason ? { fallback_reason: reason } : {}) };
}

function fingerprint(
  containmentKey: string,
  monitorKey: string,
  fleet: readonly string[],
  agentKeys: readonly [string, string][],
): string {
  const parts = [containmentKey, monitorKey, [...fleet].sort(), [...agentKeys].sort()];
  return digest(JSON.stringify(parts)).toString('hex');
}

const iso = (ms: number) => new Date(ms).toISOString();

const SEPARATE_KEY_FIX =
  'Provision a dedicated admin-scoped key (enterprise, scopes [read, write, admin]) owned by an operator identity that is not a fleet agent, and set it as GREENHELIX_CONTAINMENT_KEY.';

function missingKey(): GuardRefusal {
  return refusal(
    'containment_key_missing',
    'No containment key is configured, so nothing that changes state may run. The monitor key only reads.',
    'Set GREENHELIX_CONTAINMENT_KEY to a separate admin-scoped key owned by an operator identity (not a fleet agent).',
  );
}

function notSeparate(key: string): GuardRefusal {
  return refusal(
    'containment_key_not_separate',
    `The containment key (${redactKey(key)}) is the same as the monitor key: the key that reads must never be the key that acts.`,
    'Provision a separate admin-scoped key and set it as GREENHELIX_CONTAINMENT_KEY; keep GREENHELIX_MONITOR_KEY for reads only.',
  );
}

function ownedByAgent(agentId: string, how: string): GuardRefusal {
  return refusal(
    'containment_key_belongs_to_fleet_agent',
    `The containment key belongs to agent ${untrustedText(agentId, 128)} (${how}): an agent must never hold the key that contains it.`,
    SEPARATE_KEY_FIX,
  );
}

function revoked(): GuardRefusal {
  return refusal(
    'containment_key_revoked',
    'The gateway lists the containment key as revoked; it stops working within 300 s of revocation.',
    SEPARATE_KEY_FIX,
  );
}

function unverified(reason: string): GuardRefusal {
  return refusal(
    'containment_key_unverified',
    `Cannot show that the containment key belongs to no fleet agent: ${reason}, and no agent keys are configured to compare with.`,
    'Give the monitor key the admin scope so the gateway key list (list_api_keys) can be read, or configure greenhelix.agentKeys with each fleet agent’s key.',
  );
}

/** Which configured credential a gateway call is made with. */
export type KeyRole = 'monitor' | 'containment';

/**
 * The monitor key never acts: a gateway tool with any side effect (every route whose retry class is
 * not `read`, and any tool this build does not know) is refused for it. The containment key may read
 * and act.
 */
export function checkKeyRole(role: KeyRole, gatewayTool: string): { ok: true } | GuardRefusal {
  if (role === 'containment') return { ok: true };
  const route = (ROUTES as Readonly<Record<string, { retry: string }>>)[gatewayTool];
  if (route?.retry === 'read') return { ok: true };
  return refusal(
    'monitor_key_cannot_act',
    `${untrustedText(gatewayTool, 64)} changes state on the gateway, and the monitor key only reads.`,
    'Make state-changing calls with the containment client (GREENHELIX_CONTAINMENT_KEY), through the guard seam.',
  );
}

/**
 * Throws the tool seam's error when `role` may not make `gatewayTool`. Call it wherever a client is
 * chosen for a call, e.g. `assertActingKey('monitor', 'freeze_wallet')` throws `monitor_key_cannot_act`.
 */
export function assertActingKey(role: KeyRole, gatewayTool: string): void {
  const verdict = checkKeyRole(role, gatewayTool);
  if (!verdict.ok) throw refusalError(verdict);
}
