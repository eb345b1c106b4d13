/**
 * A fleet on the real gateway, made by the gateway's own means, in the two ways real fleets have:
 *  - `register`: `POST /v1/register` (wallet with the signup bonus, a free key, an identity and a
 *    reputation row), then a pro key made by the operator (directly, as generate_audit_keys.py does:
 *    the gateway has no self-service upgrade), topped up with the agent's own `POST …/deposit`;
 *  - `billing_keys`: a funded wallet and a bootstrap pro key made directly, then the key the agent uses
 *    from `POST /v1/billing/keys` (the running gateway's key manager, whose hook adds the identity and
 *    reputation row);
 *  - `direct`: wallet and pro key made directly only: no identity, no reputation row.
 * Plus counterparties (funded wallets with pro keys) and two separate admin keys (tier enterprise, scopes
 * read/write/admin) owned by two operator identities: monitor (reads) and containment (acts).
 */
import { randomUUID } from 'node:crypto';
import { Agent, fetch } from 'undici';
import type { RealGateway } from './harness.js';

export type Provisioning = 'register' | 'billing_keys' | 'direct';

export interface AgentSpec {
  id: string;
  via: Provisioning;
  /** CREDITS, e.g. "20000.00". */
  balance: string;
  caps?: { daily: string | null; monthly: string | null };
}

export interface FleetSpec {
  agents: AgentSpec[];
  counterparties: string[];
  counterpartyBalance?: string;
}

export interface Fleet {
  ids: string[];
  via: Record<string, Provisioning>;
  keys: Record<string, string>;
  counterpartyKeys: Record<string, string>;
  monitorKey: string;
  containmentKey: string;
  monitorAgent: string;
  containmentAgent: string;
}

export interface RestResult {
  status: number;
  headers: Headers;
  body: unknown;
}

/**
 * One connection per request: the real gateway sometimes drops a kept-alive connection just as the next
 * request goes out on it ("other side closed"), and a POST cannot be retried blindly.
 */
const noKeepAlive = new Agent({ pipelining: 0 });

/** One REST call to a gateway (real or sandbox): JSON in, parsed JSON out, never throws on a status. */
export async function rest(
  baseUrl: string,
  method: string,
  path: string,
  opts: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<RestResult> {
  const headers: Record<string, string> = { 'x-request-id': randomUUID(), ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(30_000),
    dispatcher: noKeepAlive,
  });
  const text = await r.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text.
  }
  return { status: r.status, headers: r.headers, body };
}

async function ok(
  r: Promise<RestResult>,
  what: string,
  expected: number[] = [200, 201],
): Promise<RestResult> {
  const res = await r;
  if (!expected.includes(res.status))
    throw new Error(`provisioning: ${what} answered ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res;
}

interface DirectKey {
  agent_id: string;
  tier: string;
  scopes: string[];
  key: string;
}

/** Wallets and keys made directly in the gateway's SQLite files (scripts/gateway/provision.py). */
export function provisionDirect(
  gw: RealGateway,
  req: {
    wallets?: { agent_id: string; balance: string }[];
    keys?: { agent_id: string; tier: string; scopes: string[] }[];
  },
): DirectKey[] {
  const out = JSON.parse(gw.runTool('provision.py', JSON.stringify(req))) as { keys: DirectKey[] };
  return out.keys;
}

const SIGNUP_BONUS_CENTS = 50_000;
const PRO_DEPOSIT_LIMIT_CENTS = 10_000_000;

function toCents(s: string): number {
  return Math.round(Number(s) * 100);
}
function toCredits(cents: number): string {
  return (cents / 100).toFixed(2);
}

export async function provisionFleet(gw: RealGateway, spec: FleetSpec): Promise<Fleet> {
  const url = gw.url;
  const monitorAgent = 'ops-monitor';
  const containmentAgent = 'ops-containment';

  for (const a of spec.agents.filter((x) => x.via === 'register'))
    await ok(rest(url, 'POST', '/v1/register', { body: { agent_id: a.id } }), `register ${a.id}`, [201]);

  const direct = provisionDirect(gw, {
    wallets: [
      ...spec.agents.filter((a) => a.via !== 'register').map((a) => ({ agent_id: a.id, balance: a.balance })),
      ...spec.counterparties.map((c) => ({ agent_id: c, balance: spec.counterpartyBalance ?? '1000.00' })),
      { agent_id: monitorAgent, balance: '1000.00' },
      { agent_id: containmentAgent, balance: '1000.00' },
    ],
    keys: [
      ...[...spec.agents.map((a) => a.id), ...spec.counterparties].map((id) => ({
        agent_id: id,
        tier: 'pro',
        scopes: ['read', 'write'],
      })),
      { agent_id: monitorAgent, tier: 'enterprise', scopes: ['read', 'write', 'admin'] },
      { agent_id: containmentAgent, tier: 'enterprise', scopes: ['read', 'write', 'admin'] },
    ],
  });
  const keyOf = (id: string) => direct.find((k) => k.agent_id === id)!.key;

  const keys: Record<string, string> = {};
  for (const a of spec.agents) {
    keys[a.id] = keyOf(a.id);
    if (a.via === 'billing_keys') {
      const r = await ok(
        rest(url, 'POST', '/v1/billing/keys', { key: keys[a.id], body: { tier: 'pro' } }),
        `billing key for ${a.id}`,
        [201],
      );
      keys[a.id] = (r.body as { key: string }).key;
    }
    if (a.via === 'register') {
      let topUp = toCents(a.balance) - SIGNUP_BONUS_CENTS;
      while (topUp > 0) {
        const amount = Math.min(topUp, PRO_DEPOSIT_LIMIT_CENTS);
        await ok(
          rest(url, 'POST', `/v1/billing/wallets/${a.id}/deposit`, {
            key: keys[a.id],
            body: { amount: toCredits(amount) },
          }),
          `deposit for ${a.id}`,
        );
        topUp -= amount;
      }
    }
    if (a.caps) {
      await ok(
        rest(url, 'PUT', `/v1/billing/wallets/${a.id}/budget`, {
          key: keys[a.id],
          body: { daily_cap: a.caps.daily, monthly_cap: a.caps.monthly },
        }),
        `budget caps for ${a.id}`,
      );
    }
  }
  return {
    ids: spec.agents.map((a) => a.id),
    via: Object.fromEntries(spec.agents.map((a) => [a.id, a.via])),
    keys,
    counterpartyKeys: Object.fromEntries(spec.counterparties.map((c) => [c, keyOf(c)])),
    monitorKey: keyOf(monitorAgent),
    containmentKey: keyOf(containmentAgent),
    monitorAgent,
    containmentAgent,
  };
}
