/**
 * (c) Error families over HTTP against the sandbox become the right typed error; retries happen only
 * where safe (attempts counted in the sandbox's request log) and stop at the deadline; the
 * cancel_escrow retry after an unseen success reports what the gateway holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, GreenHelixClient, type GreenHelixError } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { failure } from '../helpers/failure.js';
import { type RecordingProxy, startProxy } from './proxy.js';

let sb: Sandbox;
let agent: string;
let other: string;
const clients: GreenHelixClient[] = [];
function client(apiKey: string, extra: Partial<ClientOptions> = {}): GreenHelixClient {
  const c = new GreenHelixClient({ baseUrl: sb.url, apiKey, baseDelayMs: 5, maxDelayMs: 20, ...extra });
  clients.push(c);
  return c;
}
const agentKey = (id: string) => sb.keys.agents[id] as string;

/** Requests the sandbox received while `run` ran, from its request log. */
async function attempts(run: () => Promise<unknown>): Promise<{ count: number; error: GreenHelixError }> {
  const since = sb.requestLog().at(-1)?.seq ?? 0;
  const error = await failure(run());
  return { count: sb.requestLog(since).length, error };
}

async function register(agentId: string, tier: string, scopes?: string[]): Promise<string> {
  const r = await fetch(`${sb.url}/_sandbox/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${sb.controlToken}` },
    body: JSON.stringify({ agent_id: agentId, tier, ...(scopes ? { scopes } : {}) }),
  });
  return ((await r.json()) as { api_key: string }).api_key;
}

beforeAll(async () => {
  sb = await startSandbox({ agents: 3, seed: 4, timeScale: 0, autoStartTraffic: false });
  [agent, other] = sb.fleet as [string, string];
});
afterAll(async () => {
  sb.setFaults({ errorRate: 0, latencyMs: 0, rateLimitStorm: false });
  for (const c of clients) await c.close();
  await sb?.close();
});

describe('error families', () => {
  it('401: an unknown key is authentication_error, with the request id from the X-Request-ID header', async () => {
    const logs: { request_id?: string }[] = [];
    const e = await failure(
      client('a2a_pro_000000000000000000000000', { logger: { debug: (o) => logs.push(o) } }).getBalance({
        agent_id: agent,
      }),
    );
    expect([e.status, e.code, e.retryable]).toEqual([401, 'authentication_error', false]);
    expect(e.requestId).toBe(logs[0]?.request_id);
    expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('403: admin_only, forbidden_admin_only, forbidden, scope_violation, insufficient_tier', async () => {
    const mine = client(agentKey(agent));
    expect((await failure(mine.freezeWallet({ agent_id: agent }))).code).toBe('admin_only');
    expect((await failure(mine.listApiKeys({}))).code).toBe('forbidden_admin_only');
    expect((await failure(mine.getBalance({ agent_id: other }))).code).toBe('forbidden');
    const reader = client(await register('reader-1', 'pro', ['read']));
    expect((await reader.getBalance({ agent_id: 'reader-1' })).balance).toBeGreaterThan(0);
    const scope = await failure(reader.publishEvent({ event_type: 'x', source: 'reader-1' }));
    expect([scope.status, scope.code]).toEqual([403, 'scope_violation']);
    const free = client(await register('free-1', 'free'));
    const tier = await failure(free.createEscrow({ payer: 'free-1', payee: agent, amount: 5 }));
    expect([tier.status, tier.code, tier.retryable]).toEqual([403, 'insufficient_tier', false]);
  });

  it('402 budget_exceeded at a cap of 0 for a fee-bearing REST call, which batch does not check (CONTRACT §8)', async () => {
    const admin = client(sb.keys.containment);
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 0, monthly_cap: 0 });
    const mine = client(agentKey(agent));
    const e = await failure(mine.createEscrow({ payer: agent, payee: other, amount: 10 }));
    expect([e.status, e.code, e.retryable]).toEqual([402, 'budget_exceeded', false]);
    const [batched] = await mine.batch([
      { tool: 'create_escrow', params: { payer: agent, payee: other, amount: 10 } },
    ]);
    expect(batched?.success).toBe(true);
    await admin.setBudgetCap({ agent_id: agent, daily_cap: 1000, monthly_cap: 20000 });
  });

  it('404 not found, 409 invalid_state (sent once: no unseen attempt before it)', async () => {
    const admin = client(sb.keys.containment);
    const missing = await failure(admin.getEscrow({ escrow_id: 'f'.repeat(32) }));
    expect([missing.status, missing.code]).toEqual([404, 'escrow_not_found']);
    const e1 = await client(agentKey(agent)).createEscrow({ payer: agent, payee: other, amount: 12 });
    await admin.cancelEscrow({ escrow_id: e1.id });
    const { count, error } = await attempts(() => admin.cancelEscrow({ escrow_id: e1.id }));
    expect([error.status, error.code, count]).toEqual([409, 'invalid_state', 1]);
  });

  it('422 for an extra field: the client refuses it by name before sending; the gateway refuses it too', async () => {
    const admin = client(sb.keys.containment);
    const { count, error } = await attempts(() =>
      admin.call('set_budget_cap', { agent_id: agent, daily_cap: 1, monthly_cap: null, daily: 1 } as never),
    );
    expect([error.code, count]).toEqual(['invalid_request', 0]);
    expect(error.detail).toMatch(/unknown parameter "daily"/);
    const raw = await fetch(`${sb.url}/v1/billing/wallets/${agent}/budget`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${sb.keys.containment}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: agent, daily_cap: 1, monthly_cap: null }),
    });
    expect([raw.status, raw.headers.get('content-type')]).toEqual([422, 'application/problem+json']);
    expect(((await raw.json()) as { detail: string }).detail).toBe(
      'body.agent_id: Extra inputs are not permitted',
    );
  });

  it('410: /v1/execute is dead (raw request: the client never calls it)', async () => {
    const dead = await fetch(`${sb.url}/v1/execute`, { method: 'POST', body: '{}' });
    expect(dead.status).toBe(410);
    expect(dead.headers.get('deprecation')).toBe('true');
    expect(((await dead.json()) as { type: string }).type).toMatch(/endpoint-removed$/);
  });

  it('429 without Retry-After: reads retried with backoff until the attempts run out; a publish is sent once', async () => {
    sb.setFaults({ rateLimitStorm: true });
    try {
      const admin = client(sb.keys.containment, { maxRetries: 2 });
      const read = await attempts(() => admin.getBalance({ agent_id: agent }));
      expect([read.error.status, read.error.code, read.error.retryable, read.count]).toEqual([
        429,
        'rate_limit_exceeded',
        true,
        3,
      ]);
      expect(read.error.retryAfterSeconds).toBeUndefined();
      const publish = await attempts(() => admin.publishEvent({ event_type: 'x', source: 't' }));
      expect([publish.error.code, publish.count]).toEqual(['rate_limit_exceeded', 1]);
    } finally {
      sb.setFaults({ rateLimitStorm: false });
    }
  });
});

describe('retries only where safe, inside the deadline', () => {
  it('with every call failing 503: reads, idempotent transitions and keyed creates retried; unsafe calls once', async () => {
    const admin = client(sb.keys.containment, { maxRetries: 3 });
    const mine = client(agentKey(agent), { maxRetries: 3 });
    const held = await mine.createEscrow({ payer: agent, payee: other, amount: 4 });
    sb.setFaults({ errorRate: 1 });
    try {
      const count = async (run: () => Promise<unknown>) => {
        const r = await attempts(run);
        expect(r.error.code).toBe('service_error');
        return r.count;
      };
      const counts = {
        read: await count(() => admin.getBalance({ agent_id: agent })),
        freeze: await count(() => admin.freezeWallet({ agent_id: agent })),
        caps: await count(() => admin.setBudgetCap({ agent_id: agent, daily_cap: 1000, monthly_cap: 20000 })),
        cancel: await count(() => admin.cancelEscrow({ escrow_id: held.id })),
        publish: await count(() => admin.publishEvent({ event_type: 'x', source: 'test' })),
        webhook: await count(() =>
          mine.registerWebhook({ url: 'https://hooks.example.com/x', event_types: ['x'], secret: 's' }),
        ),
        unkeyedCreate: await count(() => mine.createEscrow({ payer: agent, payee: other, amount: 5 })),
        unkeyedRelease: await count(() => mine.releaseEscrow({ escrow_id: held.id })),
        keyedCreate: await count(() =>
          mine.createEscrow({ payer: agent, payee: other, amount: 5 }, { idempotencyKey: 'k-retry-1' }),
        ),
      };
      expect(counts).toEqual({
        read: 4,
        freeze: 4,
        caps: 4,
        cancel: 4,
        publish: 1,
        webhook: 1,
        unkeyedCreate: 1,
        unkeyedRelease: 1,
        keyedCreate: 4,
      });
      // Through batch: a chunk of reads is retried, a chunk with a write is not; both report per call.
      const before = sb.requestLog().at(-1)?.seq ?? 0;
      const reads = await mine.batch([{ tool: 'get_balance', params: { agent_id: agent } }]);
      expect(sb.requestLog(before)).toHaveLength(4);
      expect(reads[0]).toMatchObject({ success: false, error: { code: 'service_error' } });
      const mid = sb.requestLog().at(-1)?.seq ?? 0;
      await mine.batch([{ tool: 'publish_event', params: { event_type: 'x', source: agent } }]);
      expect(sb.requestLog(mid)).toHaveLength(1);
    } finally {
      sb.setFaults({ errorRate: 0 });
    }
  });

  it('stops at the deadline with the last error, long before maxRetries, counted through GET /_sandbox/requests', async () => {
    const since = sb.requestLog().at(-1)?.seq ?? 0;
    // random ≈ 1: backoffs of 49, 99, 199, 399 ms… so a 300 ms deadline allows only a few attempts.
    const admin = client(sb.keys.containment, {
      maxRetries: 20,
      baseDelayMs: 50,
      maxDelayMs: 5_000,
      random: () => 0.999,
    });
    sb.setFaults({ errorRate: 1 });
    let e: GreenHelixError;
    try {
      e = await failure(admin.getBalance({ agent_id: agent }, { timeoutMs: 300 }));
    } finally {
      sb.setFaults({ errorRate: 0 });
    }
    const log = await fetch(`${sb.url}/_sandbox/requests?since=${since}`, {
      headers: { authorization: `Bearer ${sb.controlToken}` },
    });
    const { requests: all } = (await log.json()) as { requests: { path: string; status: number }[] };
    // The log also holds this control request itself.
    const requests = all.filter((r) => !r.path.startsWith('/_sandbox'));
    expect(e.code).toBe('service_error');
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(requests.length).toBeLessThanOrEqual(4);
    expect(requests.every((r) => r.status === 503 && r.path === `/v1/billing/wallets/${agent}/balance`)).toBe(
      true,
    );
  });

  it('a response slower than the deadline is deadline_exceeded after one attempt; an abort is aborted', async () => {
    const admin = client(sb.keys.containment, { maxRetries: 10 });
    sb.setFaults({ latencyMs: 300 });
    try {
      const slow = await attempts(() => admin.getBalance({ agent_id: agent }, { timeoutMs: 150 }));
      expect([slow.error.code, slow.count]).toEqual(['deadline_exceeded', 1]);
      const ctl = new AbortController();
      const p = admin.getBalance({ agent_id: agent }, { signal: ctl.signal, timeoutMs: 5_000 });
      setTimeout(() => ctl.abort(), 20);
      expect((await failure(p)).code).toBe('aborted');
    } finally {
      sb.setFaults({ latencyMs: 0 });
    }
  });
});

describe('an attempt that succeeded unseen', () => {
  let proxy: RecordingProxy;
  beforeAll(async () => {
    proxy = await startProxy(sb.url);
  });
  afterAll(() => proxy.close());

  /** The first matching request reaches the sandbox (which acts), then the connection is cut. */
  function dropFirstAnswer(path: RegExp, before?: () => Promise<void>) {
    let dropped = false;
    proxy.intercept = async (c, res, forward) => {
      if (dropped || c.method !== 'POST' || !path.test(c.path)) return false;
      dropped = true;
      if (before) await before();
      else await forward();
      res.socket?.destroy();
      return true;
    };
  }

  it('cancel_escrow: the retry gets 409, the escrow reads refunded, so the cancel is reported done (confirmed by a read)', async () => {
    const admin = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sb.keys.containment, baseDelayMs: 1 });
    clients.push(admin);
    const e = await client(agentKey(agent)).createEscrow({ payer: agent, payee: other, amount: 21 });
    const heldBefore = sb.groundTruth(agent).held_escrows;
    dropFirstAnswer(/\/cancel$/);
    const since = proxy.log.length;
    const r = await admin.cancelEscrow({ escrow_id: e.id });
    expect(r).toMatchObject({ id: e.id, status: 'refunded', amount: 2100, confirmed_by_read: true });
    expect(proxy.log.slice(since).map((c) => [c.method, c.status])).toEqual([
      ['POST', 200],
      ['POST', 409],
      ['GET', 200],
    ]);
    expect(sb.groundTruth(agent).held_escrows).toBe(heldBefore - 1);
  });

  it('cancel_escrow: when the payee released the escrow meanwhile, the 409 stands (never a false success)', async () => {
    const admin = new GreenHelixClient({ baseUrl: proxy.url, apiKey: sb.keys.containment, baseDelayMs: 1 });
    clients.push(admin);
    const e = await client(agentKey(agent)).createEscrow({ payer: agent, payee: other, amount: 22 });
    dropFirstAnswer(/\/cancel$/, async () => {
      await client(agentKey(other)).releaseEscrow({ escrow_id: e.id });
    });
    const err = await failure(admin.cancelEscrow({ escrow_id: e.id }));
    expect([err.status, err.code]).toEqual([409, 'invalid_state']);
    expect((await admin.getEscrow({ escrow_id: e.id })).status).toBe('settled');
  });

  it('create_escrow with an Idempotency-Key: the retry returns the escrow the unseen attempt made, not a second one', async () => {
    const mine = new GreenHelixClient({ baseUrl: proxy.url, apiKey: agentKey(agent), baseDelayMs: 1 });
    clients.push(mine);
    const heldBefore = sb.groundTruth(agent).held_escrows;
    dropFirstAnswer(/^\/v1\/payments\/escrows$/);
    const since = proxy.log.length;
    const r = await mine.createEscrow(
      { payer: agent, payee: other, amount: 150 },
      { idempotencyKey: `unseen-${Date.now()}` },
    );
    const first = proxy.log[since]?.response as { id: string };
    expect(r.id).toBe(first.id);
    expect(sb.groundTruth(agent).held_escrows).toBe(heldBefore + 1);
  });
});

describe('containment mechanics the client must respect (CONTRACT §8)', () => {
  it('a frozen payer: its escrow cannot be refunded and it cannot fund a new one; the payee can still release', async () => {
    const admin = client(sb.keys.containment);
    const mine = client(agentKey(agent));
    const payee = client(agentKey(other));
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
