/**
 * The client over real HTTP: every error family from the sandbox becomes the right typed error; retries
 * happen only where safe and stop at the deadline; transport oddities (an HTML 502, a reset) are errors,
 * not crashes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient, GreenHelixError } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

async function failure(p: Promise<unknown>): Promise<GreenHelixError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GreenHelixError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

describe('error families against the sandbox', () => {
  let sb: Sandbox;
  let agent: string;
  let other: string;
  const clients: GreenHelixClient[] = [];
  const client = (apiKey: string, extra: Partial<ConstructorParameters<typeof GreenHelixClient>[0]> = {}) => {
    const c = new GreenHelixClient({ baseUrl: sb.url, apiKey, baseDelayMs: 5, maxDelayMs: 20, ...extra });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    sb = await startSandbox({ agents: 3, seed: 4, timeScale: 0, autoStartTraffic: false });
    [agent, other] = sb.fleet as [string, string];
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await sb?.close();
  });

  it('401: unknown key → authentication_error; no key is refused before the call', async () => {
    const e = await failure(client('a2a_pro_000000000000000000000000').getBalance({ agent_id: agent }));
    expect([e.status, e.code, e.retryable]).toEqual([401, 'authentication_error', false]);
    expect(e.requestId).toMatch(/[0-9a-f-]{36}/);
    expect(() => new GreenHelixClient({ baseUrl: sb.url, apiKey: '' })).toThrow(/apiKey/);
  });

  it('403 admin_only, forbidden, insufficient_tier', async () => {
    const mine = client(sb.keys.agents[agent]!);
    expect((await failure(mine.freezeWallet({ agent_id: agent }))).code).toBe('admin_only');
    expect((await failure(mine.listApiKeys({}))).code).toBe('forbidden_admin_only');
    expect((await failure(mine.getBalance({ agent_id: other }))).code).toBe('forbidden');
    const reg = await fetch(`${sb.url}/_sandbox/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ agent_id: 'free-agent' }),
    });
    const { api_key } = (await reg.json()) as { api_key: string };
    const free = client(api_key);
    const e = await failure(free.createEscrow({ payer: 'free-agent', payee: agent, amount: 5 }));
    expect([e.status, e.code]).toEqual([403, 'insufficient_tier']);
  });

  it('403 scope_violation for a key without the write scope', async () => {
    const reg = await fetch(`${sb.url}/_sandbox/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ agent_id: 'reader', tier: 'pro', scopes: ['read'] }),
    });
    const reader = client(((await reg.json()) as { api_key: string }).api_key);
    expect((await reader.getBalance({ agent_id: 'reader' })).balance).toBe(50_000);
    const e = await failure(reader.publishEvent({ event_type: 'x', source: 'reader' }));
    expect([e.status, e.code]).toEqual([403, 'scope_violation']);
  });

  it('402 budget_exceeded when the cap is 0, for a fee-bearing REST call — but not through batch', async () => {
    const admin = client(sb.keys.monitor);
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 0, monthly_cap: 0 });
    const mine = client(sb.keys.agents[agent]!);
    const e = await failure(mine.createEscrow({ payer: agent, payee: other, amount: 10 }));
    expect([e.status, e.code, e.retryable]).toEqual([402, 'budget_exceeded', false]);
    const [batched] = await mine.batch([
      { tool: 'create_escrow', params: { payer: agent, payee: other, amount: 10 } },
    ]);
    expect(batched?.success).toBe(true);
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 1000, monthly_cap: 20000 });
  });

  it('404, 409 invalid_state, 422 extra field, 410 /v1/execute', async () => {
    const admin = client(sb.keys.monitor);
    expect((await failure(admin.getEscrow({ escrow_id: 'f'.repeat(32) }))).code).toBe('escrow_not_found');
    const mine = client(sb.keys.agents[agent]!);
    const e1 = await mine.createEscrow({ payer: agent, payee: other, amount: 12 });
    await admin.cancelEscrow({ escrow_id: e1.id });
    const conflict = await failure(admin.cancelEscrow({ escrow_id: e1.id }));
    expect([conflict.status, conflict.code]).toEqual([409, 'invalid_state']);
    // The client refuses unknown params itself; the gateway's own 422 is checked with a raw request.
    expect((await failure(admin.call('get_balance', { agent_id: agent, bogus: 1 } as never))).code).toBe(
      'invalid_request',
    );
    const raw = await fetch(`${sb.url}/v1/billing/wallets/${agent}/budget`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${sb.keys.monitor}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: agent, daily_cap: 1 }),
    });
    expect(raw.status).toBe(422);
    expect(raw.headers.get('content-type')).toBe('application/problem+json');
    expect(((await raw.json()) as { detail: string }).detail).toBe(
      'body.agent_id: Extra inputs are not permitted',
    );
    const dead = await fetch(`${sb.url}/v1/execute`, { method: 'POST', body: '{}' });
    expect(dead.status).toBe(410);
    expect(dead.headers.get('deprecation')).toBe('true');
  });

  it('429 under a rate-limit storm, retried for reads until the attempts run out', async () => {
    const admin = client(sb.keys.monitor, { maxRetries: 2 });
    const seq = sb.requestLog().at(-1)?.seq ?? 0;
    sb.setFaults({ rateLimitStorm: true });
    const e = await failure(admin.getBalance({ agent_id: agent }));
    sb.setFaults({ rateLimitStorm: false });
    expect([e.status, e.code, e.retryable]).toEqual([429, 'rate_limit_exceeded', true]);
    expect(sb.requestLog(seq).length).toBe(3);
  });

  it('retries only where safe: reads and idempotent transitions yes, unkeyed creates and publishes no', async () => {
    const admin = client(sb.keys.monitor, { maxRetries: 3 });
    const mine = client(sb.keys.agents[agent]!, { maxRetries: 3 });
    sb.setFaults({ errorRate: 1 });
    const count = async (p: Promise<unknown>) => {
      const seq = sb.requestLog().at(-1)?.seq ?? 0;
      const e = await failure(p);
      expect(e.code).toBe('service_error');
      return sb.requestLog(seq).length;
    };
    expect(await count(admin.getBalance({ agent_id: agent }))).toBe(4);
    expect(await count(admin.freezeWallet({ agent_id: agent }))).toBe(4);
    expect(await count(admin.publishEvent({ event_type: 'x', source: 'test' }))).toBe(1);
    expect(await count(mine.createEscrow({ payer: agent, payee: other, amount: 5 }))).toBe(1);
    expect(
      await count(
        mine.createEscrow({ payer: agent, payee: other, amount: 5 }, { idempotencyKey: 'k-retry-1' }),
      ),
    ).toBe(4);
    sb.setFaults({ errorRate: 0 });
  });

  it('stops at the deadline, and a caller abort stops it at once', async () => {
    const admin = client(sb.keys.monitor, { maxRetries: 10 });
    sb.setFaults({ latencyMs: 300 });
    const started = Date.now();
    const e = await failure(admin.getBalance({ agent_id: agent }, { timeoutMs: 150 }));
    expect(e.code).toBe('deadline_exceeded');
    expect(Date.now() - started).toBeLessThan(2_000);
    const ctl = new AbortController();
    const p = admin.getBalance({ agent_id: agent }, { signal: ctl.signal, timeoutMs: 5_000 });
    setTimeout(() => ctl.abort(), 20);
    expect((await failure(p)).code).toBe('aborted');
    sb.setFaults({ latencyMs: 0 });
  });

  it('a frozen payer: its escrow cannot be refunded and its wallet cannot fund a new escrow; the payee can still release', async () => {
    const admin = client(sb.keys.containment);
    const mine = client(sb.keys.agents[agent]!);
    const payee = client(sb.keys.agents[other]!);
    const held = await mine.createEscrow({ payer: agent, payee: other, amount: 40 });
    const toRelease = await mine.createEscrow({ payer: agent, payee: other, amount: 41 });
    await admin.freezeWallet({ agent_id: agent });
    const refund = await failure(admin.cancelEscrow({ escrow_id: held.id }));
    expect([refund.status, refund.code]).toEqual([403, 'wallet_frozen']);
    expect((await admin.getEscrow({ escrow_id: held.id })).status).toBe('held');
    expect((await failure(mine.createEscrow({ payer: agent, payee: other, amount: 5 }))).code).toBe(
      'wallet_frozen',
    );
    expect((await payee.releaseEscrow({ escrow_id: toRelease.id })).status).toBe('settled');
    await admin.unfreezeWallet({ agent_id: agent });
    expect((await admin.cancelEscrow({ escrow_id: held.id })).status).toBe('refunded');
  });
});

describe('transport edge cases', () => {
  let server: Server;
  let url: string;
  let hits = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits++;
      if (req.url?.includes('html')) {
        res.writeHead(502, { 'content-type': 'text/html' });
        return res.end('<html><body>Bad gateway</body></html>');
      }
      if (req.url?.includes('retry-after')) {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
        return res.end(
          JSON.stringify({
            type: 'https://api.greenhelix.net/errors/service-error',
            title: 'Service Unavailable',
            status: 503,
            detail: 'busy',
          }),
        );
      }
      if (req.url?.includes('reset')) return req.socket.destroy();
      if (req.url?.includes('garbage')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"balance": "not money"}');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"balance":"1.00"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const at = (agent: string) =>
    new GreenHelixClient({
      baseUrl: url,
      apiKey: 'a2a_pro_0123456789abcdef01234567',
      baseDelayMs: 1,
      maxDelayMs: 5,
      maxRetries: 2,
    }).getBalance({ agent_id: agent });

  it('an HTML 502 is a typed, retryable error after the retries, not a crash', async () => {
    hits = 0;
    const e = await failure(at('html'));
    expect([e.status, e.code, e.retryable]).toEqual([502, 'bad_gateway', true]);
    expect(hits).toBe(3);
  });

  it('a connection reset is a network_error; a malformed success body is invalid_response (never a zero)', async () => {
    expect((await failure(at('reset'))).code).toBe('network_error');
    const e = await failure(at('garbage'));
    expect(e.code).toBe('invalid_response');
    expect(e.detail).toMatch(/balance/);
  });

  it('parses the problem type into the code', async () => {
    const e = await failure(at('retry-after'));
    expect([e.status, e.code, e.retryAfterSeconds]).toEqual([503, 'service_error', 0]);
    expect(await at('ok')).toEqual({ balance: 100 });
  });
});
