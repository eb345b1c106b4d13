/**
 * The sandbox as the product's stand-in for the real gateway: each scenario changes state as described,
 * malformed input gets problem+json (never a crash or a hung request), the control API needs its token,
 * and webhook deliveries are signed as the real gateway signs them.
 */
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

const MIN = 60_000;
let sb: Sandbox;
let admin: GreenHelixClient;

async function fresh(): Promise<void> {
  sb = await startSandbox({ agents: 6, seed: 8, timeScale: 0, autoStartTraffic: false });
  admin = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.monitor });
}
describe('scenarios change state as described', () => {
  afterEach(async () => {
    await admin?.close();
    await sb?.close();
  });

  it('runaway_spending: escrows of the set amount at the set rate to one payee, never released', async () => {
    await fresh();
    const a = sb.fleet[1]!;
    sb.startScenario('runaway_spending', a, { rate_per_min: 30, amount: 150, payee: 'vendor-flaky' });
    await sb.advance(10 * MIN);
    const held = await admin.listAllEscrows({ agent_id: a, status: 'held' });
    expect(held.length).toBe(300);
    expect(new Set(held.map((e) => e.payee))).toEqual(new Set(['vendor-flaky']));
    expect(new Set(held.map((e) => e.amount))).toEqual(new Set([15_000]));
    // The loop drains the shared wallet it tops up from.
    expect(Number(sb.groundTruth('fleet-treasury').balance)).toBeLessThan(50_000 - 40_000);
  });

  it('runaway_spending stops creating escrows once frozen (wallet_frozen) and keeps retrying', async () => {
    await fresh();
    const a = sb.fleet[1]!;
    sb.startScenario('runaway_spending', a, {});
    await sb.advance(MIN);
    const containment = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.containment });
    await containment.freezeWallet({ agent_id: a });
    const before = sb.groundTruth(a).held_escrows;
    await sb.advance(5 * MIN);
    expect(sb.groundTruth(a).held_escrows).toBe(before);
    const info = sb.scenarios()[0]!;
    expect(info.failures.wallet_frozen).toBeGreaterThan(100);
    await containment.close();
  });

  it('escrow_exploitation: >10 escrows to one payee in 5 min, the payee releases some, most cancelled', async () => {
    await fresh();
    const a = sb.fleet[2]!;
    sb.startScenario('escrow_exploitation', a, {
      payee: 'merchant-shady',
      rate_per_min: 4,
      cancel_ratio: 0.6,
    });
    await sb.advance(30 * MIN);
    const all = (await admin.listAllEscrows({ agent_id: a })).filter((e) => e.payee === 'merchant-shady');
    expect(all.length).toBeGreaterThanOrEqual(110);
    const refunded = all.filter((e) => e.status === 'refunded').length;
    const settled = all.filter((e) => e.status === 'settled').length;
    expect(refunded / all.length).toBeGreaterThan(0.5);
    expect(settled).toBeGreaterThan(10);
  });

  it('identity_compromise: the registered public key is replaced and escrows go to a new payee', async () => {
    await fresh();
    const a = sb.fleet[3]!;
    const before = (await admin.getAgentIdentity({ agent_id: a })).public_key;
    sb.startScenario('identity_compromise', a, {});
    await sb.advance(3 * MIN);
    const after = (await admin.getAgentIdentity({ agent_id: a })).public_key;
    expect(after).not.toBe(before);
    expect(after).toMatch(/^[0-9a-f]{64}$/);
    const held = await admin.listAllEscrows({ agent_id: a, status: 'held' });
    expect(held.some((e) => e.payee === 'merchant-unknown')).toBe(true);
  });

  it('service_degradation: reputation falls steadily and ingested success rate drops', async () => {
    await fresh();
    const a = sb.fleet.find((x) => sb.groundTruth(x) && true)!;
    const start = (await admin.getAgentReputation({ agent_id: a })).composite_score;
    sb.startScenario('service_degradation', a, { drop_per_hour: 0.2 });
    await sb.advance(60 * MIN);
    const after = (await admin.getAgentReputation({ agent_id: a })).composite_score;
    if (start > 0) expect(start - after).toBeGreaterThan(0.15);
    const deltas = (await admin.call('get_metric_deltas', { agent_id: a, metric_name: 'success_rate' })) as {
      deltas: Record<string, { relative_delta: number }>;
    };
    expect(deltas.deltas.success_rate?.relative_delta).toBeLessThan(0);
  });

  it('cascade_failure: the root drains the shared wallet; other agents start failing loops of their own', async () => {
    await fresh();
    const root = sb.fleet[0]!;
    sb.startScenario('cascade_failure', root, {});
    await sb.advance(30 * MIN);
    expect(Number(sb.groundTruth('fleet-treasury').balance)).toBeLessThan(500);
    const downstream = sb.fleet.slice(1, 4).map((a) => sb.groundTruth(a));
    for (const d of downstream) {
      expect(d.held_escrows).toBeGreaterThan(30);
      expect(Number(d.balance)).toBeLessThan(50);
    }
    expect(sb.groundTruth(sb.fleet[5]!).held_escrows).toBe(0);
    expect(sb.scenarios()[0]!.failures.insufficient_balance).toBeGreaterThan(0);
  });

  it('normal_traffic: a few escrows per hour per agent, most released', async () => {
    sb = await startSandbox({ agents: 10, seed: 8, timeScale: 0, autoStartTraffic: true });
    admin = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.monitor });
    await sb.advance(6 * 60 * MIN);
    let total = 0;
    let settled = 0;
    for (const a of sb.fleet) {
      const mine = (await admin.listAllEscrows({ agent_id: a })).filter((e) => e.payer === a);
      total += mine.length;
      settled += mine.filter((e) => e.status === 'settled').length;
    }
    expect(total / sb.fleet.length / 6).toBeGreaterThan(0.5);
    expect(total / sb.fleet.length / 6).toBeLessThan(6);
    expect(settled / total).toBeGreaterThan(0.7);
  });
});

describe('malformed input and the control API', () => {
  beforeAll(fresh);
  afterAll(async () => {
    await admin?.close();
    await sb?.close();
  });

  const send = (path: string, init: RequestInit = {}) =>
    fetch(`${sb.url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${sb.keys.monitor}`,
        'content-type': 'application/json',
        ...(init.headers as Record<string, string>),
      },
      signal: AbortSignal.timeout(5_000),
    });

  const cases: [string, () => Promise<Response>, number][] = [
    ['invalid JSON', () => send('/v1/infra/events', { method: 'POST', body: '{"event_type": ' }), 422],
    ['a JSON array body', () => send('/v1/infra/events', { method: 'POST', body: '[1,2]' }), 422],
    [
      'a body over 1 MiB',
      () =>
        send('/v1/infra/events', {
          method: 'POST',
          body: JSON.stringify({ event_type: 'x', source: 'y', payload: { blob: 'x'.repeat(1_100_000) } }),
        }),
      413,
    ],
    ['an encoded path separator', () => send('/v1/billing/wallets/a%2Fb/balance'), 400],
    ['bad percent-encoding', () => send('/v1/billing/wallets/%E0%A4%A/balance'), 400],
    ['a 200-character path segment', () => send(`/v1/billing/wallets/${'a'.repeat(200)}/balance`), 400],
    [
      'a wrong type',
      () =>
        send(`/v1/billing/wallets/${'agent-00'}/budget`, {
          method: 'PUT',
          body: JSON.stringify({ daily_cap: { nope: 1 } }),
        }),
      422,
    ],
    [
      'an amount with 3 decimals',
      () =>
        send('/v1/payments/escrows', {
          method: 'POST',
          body: JSON.stringify({ payer: 'agent-00', payee: 'agent-01', amount: '1.005' }),
        }),
      422,
    ],
    ['a non-numeric limit', () => send('/v1/payments/escrows?agent_id=agent-00&limit=lots'), 422],
    ['an unknown path', () => send('/v1'), 404],
    ['no key at all', () => fetch(`${sb.url}/v1/infra/events`), 401],
  ];
  for (const [label, req, status] of cases) {
    it(`${label} → ${status} problem+json`, async () => {
      const r = await req();
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toBe('application/problem+json');
      expect(r.headers.get('x-request-id')).toBeTruthy();
      const body = (await r.json()) as { type: string; title: string; status: number; detail: string };
      expect(body.status).toBe(status);
      expect(body.type).toMatch(/^https:\/\/api\.greenhelix\.net\/errors\/[a-z-]+$/);
    });
  }

  it('still serves after all of that', async () => {
    expect((await admin.getBalance({ agent_id: sb.fleet[0]! })).balance).toBeGreaterThan(0);
  });

  it('the control API needs the control token; ground truth has the documented shape', async () => {
    expect((await fetch(`${sb.url}/_sandbox/agents/${sb.fleet[0]}`)).status).toBe(401);
    expect(
      (
        await fetch(`${sb.url}/_sandbox/agents/${sb.fleet[0]}`, {
          headers: { authorization: `Bearer ${sb.keys.monitor}` },
        })
      ).status,
    ).toBe(401);
    const r = await fetch(`${sb.url}/_sandbox/agents/${sb.fleet[0]}`, {
      headers: { authorization: `Bearer ${sb.controlToken}` },
    });
    expect(await r.json()).toEqual({
      agent_id: sb.fleet[0],
      frozen: false,
      daily_cap: 1000,
      monthly_cap: 20000,
      balance: '2000.00',
      held_escrows: 0,
      held_amount: '0.00',
      shared_wallet_draws: '0.00',
      public_key: expect.stringMatching(/^[0-9a-f]{64}$/),
      escrows_refunded: 0,
      refunded_amount: '0.00',
      double_refunds: 0,
      pending_intents: 0,
      active_subscriptions: 0,
      intents_refunded: 0,
      intent_double_refunds: 0,
      holdings: {},
    });
    const started = await fetch(`${sb.url}/_sandbox/scenarios`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ scenario: 'runaway_spending', agent_id: sb.fleet[0], rate_per_min: 60 }),
    });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    await fetch(`${sb.url}/_sandbox/clock/advance`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ ms: 60_000 }),
    });
    expect(sb.groundTruth(sb.fleet[0]!).held_escrows).toBe(60);
    expect(
      (
        await fetch(`${sb.url}/_sandbox/scenarios/${id}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${sb.controlToken}` },
        })
      ).status,
    ).toBe(200);
    const bad = await fetch(`${sb.url}/_sandbox/scenarios`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ scenario: 'nope', agent_id: sb.fleet[0] }),
    });
    expect(bad.status).toBe(422);
  });
});

describe('webhooks', () => {
  it('test_webhook delivers a test.ping signed with HMAC-SHA256 over the exact body (loopback allowed only when enabled)', async () => {
    sb = await startSandbox({ agents: 2, seed: 1, timeScale: 0, autoStartTraffic: false });
    const agent = sb.fleet[0]!;
    const mine = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.agents[agent]! });
    const received: { body: string; sig: string | undefined }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        received.push({ body, sig: req.headers['x-a2a-signature'] as string | undefined });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const refused = await mine
      .call('register_webhook', { url, event_types: ['test.ping'], secret: 'topsecret' })
      .catch((e: { code: string }) => e.code);
    expect(refused).toBe('https_required');
    await fetch(`${sb.url}/_sandbox/config`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ allow_loopback_webhooks: true }),
    });
    const hook = (await mine.call('register_webhook', {
      url,
      event_types: ['test.ping'],
      secret: 'topsecret',
    })) as { id: string };
    await mine.call('test_webhook', { webhook_id: hook.id });
    for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(received).toHaveLength(1);
    const { body, sig } = received[0]!;
    expect(sig).toBe(createHmac('sha256', 'topsecret').update(body).digest('hex'));
    expect(body).toMatch(
      /^\{"type": "test\.ping", "webhook_id": "whk-[0-9a-f]{24}", "timestamp": [\d.]+, "message": "Test ping from A2A gateway"\}$/,
    );
    receiver.close();
    await mine.close();
    await sb.close();
  });
});

describe('rate limits', () => {
  it('soft hourly limit with a burst allowance; headers on success; no Retry-After on 429; a batch is checked once', async () => {
    sb = await startSandbox({ agents: 1, seed: 1, timeScale: 0, autoStartTraffic: false });
    const reg = await fetch(`${sb.url}/_sandbox/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.controlToken}` },
      body: JSON.stringify({ agent_id: 'free-1' }),
    });
    const { api_key } = (await reg.json()) as { api_key: string };
    const call = () =>
      fetch(`${sb.url}/v1/billing/wallets/free-1/balance`, {
        headers: { authorization: `Bearer ${api_key}` },
      });
    const first = await call();
    expect(first.headers.get('x-ratelimit-limit')).toBe('100');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('99');
    expect(Number(first.headers.get('x-ratelimit-reset'))).toBeGreaterThan(0);
    const statuses: number[] = [];
    for (let i = 0; i < 120; i++) statuses.push((await call()).status);
    // Free tier: 100/h, and past that only while the last minute stays under 100//60 + 10 = 11 calls.
    expect(statuses.indexOf(429)).toBe(98);
    const limited = await call();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeNull();
    expect(limited.headers.get('x-ratelimit-remaining')).toBeNull();
    const batch = await fetch(`${sb.url}/v1/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api_key}` },
      body: JSON.stringify({ calls: [{ tool: 'get_balance', params: { agent_id: 'free-1' } }] }),
    });
    expect(batch.status).toBe(429);
    // An hour later the window has moved on.
    await sb.advance(3_600_000);
    expect((await call()).status).toBe(200);
    const own = await fetch(`${sb.url}/v1/billing/keys`, { headers: { authorization: `Bearer ${api_key}` } });
    expect(((await own.json()) as { keys: { agent_id: string }[] }).keys).toEqual([
      expect.objectContaining({ agent_id: 'free-1' }),
    ]);
    // Keys older than 90 days carry a warning header.
    await sb.advance(91 * 86_400_000);
    expect((await call()).headers.get('x-key-age-warning')).toMatch(/90 days/);
    await sb.close();
  });
});

describe('event stream (SSE)', () => {
  it('streams bus events after since_id, filtered by source, and resumes from Last-Event-ID', async () => {
    sb = await startSandbox({ agents: 2, seed: 1, timeScale: 0, autoStartTraffic: false });
    const a = sb.fleet[0]!;
    const b = sb.fleet[1]!;
    const publisher = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.monitor });
    await publisher.publishEvent({ event_type: 'before', source: a, payload: {} });
    const ctl = new AbortController();
    const res = await fetch(`${sb.url}/v1/events/stream?since_id=1&agent_id=${a}`, {
      headers: { authorization: `Bearer ${sb.keys.monitor}` },
      signal: ctl.signal,
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    await publisher.publishEvent({ event_type: 'other', source: b, payload: {} });
    await publisher.publishEvent({ event_type: 'mine', source: a, payload: { n: 1 } });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"mine"')) text += new TextDecoder().decode((await reader.read()).value);
    ctl.abort();
    expect(text).toMatch(/^id: 3\ndata: \{.*"event_type":"mine".*\}\n\n/);
    expect(text).not.toContain('"other"');
    expect(text).not.toContain('"before"');
    const resumed = new AbortController();
    const again = await fetch(`${sb.url}/v1/events/stream`, {
      headers: { authorization: `Bearer ${sb.keys.monitor}`, 'last-event-id': '2' },
      signal: resumed.signal,
    });
    const r2 = again.body!.getReader();
    let t2 = '';
    while (!t2.includes('"mine"')) t2 += new TextDecoder().decode((await r2.read()).value);
    resumed.abort();
    expect(t2.startsWith('id: 3\n')).toBe(true);
    expect((await fetch(`${sb.url}/v1/events/stream`)).status).toBe(401);
    await publisher.close();
    await sb.close();
  });
});
