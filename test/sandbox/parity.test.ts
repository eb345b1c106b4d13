/**
 * Sandbox parity (issue 7): each row of the table "Where it differs from the project's sandbox" in
 * shared/greenhelix/gateway/README.md, reproduced over HTTP as the real gateway (1.4.8) behaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

let sb: Sandbox;

beforeAll(async () => {
  sb = await startSandbox({
    agents: 8,
    seed: 3,
    timeScale: 0,
    autoStartTraffic: false,
    // Wide enough that two cancels sent together always overlap inside it.
    refundWindowMs: 100,
  });
});
afterAll(async () => {
  await sb?.close();
});

const A0 = 'agent-00';
const key = (agent: string) => sb.keys.agents[agent]!;

function send(path: string, apiKey: string | null, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sb.url}${path}`, {
    ...init,
    headers: {
      ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
      'content-type': 'application/json',
      ...(init.headers as Record<string, string> | undefined),
    },
    signal: AbortSignal.timeout(5_000),
  });
}

const post = (path: string, apiKey: string, body?: unknown) =>
  send(path, apiKey, { method: 'POST', ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

async function createEscrow(payer: string, payee: string, amount: string): Promise<string> {
  const r = await post('/v1/payments/escrows', key(payer), { payer, payee, amount });
  expect(r.status).toBe(201);
  return ((await r.json()) as { id: string }).id;
}

async function problem(r: Response) {
  expect(r.headers.get('content-type')).toBe('application/problem+json');
  return (await r.json()) as {
    type: string;
    title: string;
    status: number;
    detail: string;
    instance: string;
  };
}

describe('escrow refunds are not atomic (products/payments/src/engine.py refund_escrow)', () => {
  it('concurrent cancels of one held escrow: those that check before the first update all refund the payer', async () => {
    // How the requests interleave decides which succeed (as on the real gateway); over ten escrows some
    // escrow is refunded twice, every answer is 200 or 409, and the payer gets 150.00 per 200.
    let twice = 0;
    for (let i = 0; i < 10; i++) {
      const id = await createEscrow(A0, 'vendor-01', '150.00');
      const before = Number(sb.groundTruth(A0).balance);
      const all = await Promise.all(
        [1, 2, 3, 4].map(() => post(`/v1/payments/escrows/${id}/cancel`, key(A0))),
      );
      const ok = all.filter((r) => r.status === 200);
      expect(all.every((r) => r.status === 200 || r.status === 409)).toBe(true);
      expect(await ok[0]?.json()).toEqual({ id, status: 'refunded', amount: '150.0' });
      expect(Number(sb.groundTruth(A0).balance)).toBeCloseTo(before + 150 * ok.length, 2);
      if (ok.length > 1) twice++;
    }
    expect(twice).toBeGreaterThan(0);
    expect(sb.groundTruth(A0).double_refunds).toBeGreaterThan(0);
  });

  it('a cancel after the first has finished gets 409 invalid_state, and nothing moves', async () => {
    const id = await createEscrow(A0, 'vendor-02', '40.00');
    expect((await post(`/v1/payments/escrows/${id}/cancel`, key(A0))).status).toBe(200);
    const before = sb.groundTruth(A0).balance;
    const again = await post(`/v1/payments/escrows/${id}/cancel`, key(A0));
    expect(again.status).toBe(409);
    expect((await problem(again)).type).toBe('https://api.greenhelix.net/errors/invalid-state');
    expect(sb.groundTruth(A0).balance).toBe(before);
  });
});

describe('reputation rows exist only for keys provisioned through the gateway', () => {
  it('an agent whose key was made directly: 404 "Agent reputation not found", while its identity answers', async () => {
    const r = await send('/v1/identity/agents/agent-03/reputation', sb.keys.monitor);
    expect(r.status).toBe(404);
    const body = await problem(r);
    expect(body.type).toBe('https://api.greenhelix.net/errors/not-found');
    expect(body.detail).toMatch(/^Agent reputation not found: agent-03\./);
    expect((await send('/v1/identity/agents/agent-03', sb.keys.monitor)).status).toBe(200);
  });

  it('a gateway-provisioned agent has its row (found: true); the default fleet holds both kinds', async () => {
    const r = await send(`/v1/identity/agents/${A0}/reputation`, sb.keys.monitor);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ agent_id: A0, found: true });
    const statuses = await Promise.all(
      sb.fleet.map(async (a) => (await send(`/v1/identity/agents/${a}/reputation`, sb.keys.monitor)).status),
    );
    expect(statuses).toEqual([200, 200, 200, 404, 200, 200, 200, 404]);
  });

  it('directAgents chooses which agents were provisioned directly', async () => {
    const other = await startSandbox({
      agents: 4,
      timeScale: 0,
      autoStartTraffic: false,
      directAgents: [A0],
    });
    try {
      const status = (a: string) =>
        fetch(`${other.url}/v1/identity/agents/${a}/reputation`, {
          headers: { authorization: `Bearer ${other.keys.monitor}` },
        }).then((r) => r.status);
      expect([await status(A0), await status('agent-03')]).toEqual([404, 200]);
    } finally {
      await other.close();
    }
  });
});

describe('request validation answers in the gateway’s exact 422 shape', () => {
  it('create escrow with amount 0: 422 validation_error naming body.amount', async () => {
    const r = await post('/v1/payments/escrows', key(A0), { payer: A0, payee: 'vendor-01', amount: 0 });
    expect(r.status).toBe(422);
    expect(await problem(r)).toEqual({
      type: 'https://api.greenhelix.net/errors/validation-error',
      title: 'Unprocessable Entity',
      status: 422,
      detail: 'body.amount: Input should be greater than 0',
      instance: '/v1/payments/escrows',
    });
  });

  it('GET escrows without agent_id: 422 query.agent_id: Field required', async () => {
    const r = await send('/v1/payments/escrows', sb.keys.monitor);
    expect(r.status).toBe(422);
    expect((await problem(r)).detail).toBe('query.agent_id: Field required');
  });

  it('a query parameter the route does not declare is ignored, as FastAPI does', async () => {
    expect((await send('/v1/infra/events?bogus=1', sb.keys.monitor)).status).toBe(200);
  });
});

describe('response shapes', () => {
  it('GET escrows/{id} is exactly 7 fields; the list carries the whole row (updated_at included)', async () => {
    const id = await createEscrow(A0, 'merchant-01', '12.50');
    const one = (await (await send(`/v1/payments/escrows/${id}`, sb.keys.monitor)).json()) as Record<
      string,
      unknown
    >;
    expect(Object.keys(one).sort()).toEqual([
      'amount',
      'created_at',
      'description',
      'id',
      'payee',
      'payer',
      'status',
    ]);
    expect(one).toMatchObject({ id, status: 'held', payer: A0, payee: 'merchant-01', amount: '12.5' });
    const list = (await (
      await send(`/v1/payments/escrows?agent_id=${A0}&limit=1`, sb.keys.monitor)
    ).json()) as {
      escrows: Record<string, unknown>[];
      count: number;
    };
    expect(Object.keys(list.escrows[0]!).sort()).toEqual([
      'amount',
      'created_at',
      'description',
      'id',
      'idempotency_key',
      'metadata',
      'payee',
      'payer',
      'settlement_id',
      'status',
      'timeout_at',
      'updated_at',
    ]);
  });

  it('balance is {"balance": "…"} with no currency; a non-CREDITS request names its currency', async () => {
    const r = await send('/v1/billing/wallets/vendor-01/balance', sb.keys.monitor);
    expect(Object.keys((await r.json()) as object)).toEqual(['balance']);
    const usd = await send('/v1/billing/wallets/vendor-01/balance?currency=USD', sb.keys.monitor);
    expect(await usd.json()).toMatchObject({ currency: 'USD' });
  });

  it('wallet timeseries cost is 1e8 too large, as the gateway reports it (its bug, reproduced)', async () => {
    const fresh = 'agent-05';
    // One escrow of 150.00 costs its payer a fee of 2.25.
    await createEscrow(fresh, 'vendor-03', '150.00');
    const r = await send(`/v1/billing/wallets/${fresh}/timeseries?interval=hour`, sb.keys.monitor);
    const { buckets } = (await r.json()) as { buckets: { calls: number; cost: string }[] };
    expect(buckets.reduce((n, b) => n + b.calls, 0)).toBeGreaterThan(0);
    expect(buckets.map((b) => b.cost)).toContain('225000000.00');
  });
});

describe('batch, headers and seeded data', () => {
  it('/v1/batch checks ownership before admin-only: an admin key freezing another wallet gets forbidden', async () => {
    const r = await post('/v1/batch', sb.keys.monitor, {
      calls: [
        { tool: 'freeze_wallet', params: { agent_id: A0 } },
        { tool: 'freeze_wallet', params: { agent_id: 'ops-monitor' } },
        { tool: 'cancel_escrow', params: { escrow_id: 'f'.repeat(32) } },
      ],
    });
    expect(r.status).toBe(200);
    const { results } = (await r.json()) as { results: { success: boolean; error?: { code: string } }[] };
    expect(results.map((x) => x.error?.code)).toEqual(['forbidden', 'admin_only', 'execution_error']);
    expect(sb.groundTruth(A0).frozen).toBe(false);
  });

  it('404 wallet_not_found comes without X-Request-ID (the catch-all handler); other 404s echo it', async () => {
    const missing = await send('/v1/billing/wallets/nobody-here/balance', sb.keys.monitor, {
      headers: { 'x-request-id': 'parity-1' },
    });
    expect(missing.status).toBe(404);
    expect((await problem(missing)).type).toBe('https://api.greenhelix.net/errors/wallet-not-found');
    expect(missing.headers.get('x-request-id')).toBeNull();
    const escrow = await send(`/v1/payments/escrows/${'e'.repeat(32)}`, sb.keys.monitor, {
      headers: { 'x-request-id': 'parity-2' },
    });
    expect(escrow.status).toBe(404);
    expect(escrow.headers.get('x-request-id')).toBe('parity-2');
  });

  it('rate-limit headers also on /v1/health (per IP, 1 000/h), /v1/batch and GET /v1/billing/keys', async () => {
    const health = await send('/v1/health', null);
    expect(health.headers.get('x-ratelimit-limit')).toBe('1000');
    const first = Number(health.headers.get('x-ratelimit-remaining'));
    expect(first).toBeLessThan(1000);
    const again = await send('/v1/health', null);
    expect(Number(again.headers.get('x-ratelimit-remaining'))).toBe(first - 1);
    expect(Number(health.headers.get('x-ratelimit-reset'))).toBeGreaterThan(0);

    const batch = await post('/v1/batch', key(A0), {
      calls: [{ tool: 'get_balance', params: { agent_id: A0 } }],
    });
    // A pro key: 10 000 an hour.
    expect(batch.headers.get('x-ratelimit-limit')).toBe('10000');
    expect(Number(batch.headers.get('x-ratelimit-remaining'))).toBeLessThan(10_000);
    // The batch route reports the key's own tier: an admin key counts as enterprise there.
    const adminBatch = await post('/v1/batch', sb.keys.monitor, { calls: [] });
    expect(adminBatch.headers.get('x-ratelimit-limit')).toBe('100000');

    const keys = await send('/v1/billing/keys', key(A0));
    expect(keys.status).toBe(200);
    expect(keys.headers.get('x-ratelimit-limit')).toBe('10000');
  });

  it('no claim chains exist until an agent builds one', async () => {
    const read = async () =>
      (
        (await (await send(`/v1/identity/agents/${A0}/claim-chains`, key(A0))).json()) as {
          chains: unknown[];
        }
      ).chains;
    expect(await read()).toEqual([]);
    expect((await post(`/v1/identity/agents/${A0}/claim-chains`, key(A0))).status).toBe(200);
    expect(await read()).toHaveLength(1);
  });
});
