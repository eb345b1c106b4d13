/**
 * Client-side validation: a bad call is refused before anything is sent, with an error that names the
 * field and says what is accepted; the input schemas and the route table agree field for field.
 */
import { describe, expect, it } from 'vitest';
import {
  acceptedFields,
  GreenHelixClient,
  GreenHelixError,
  ROUTES,
  TOOL_INPUTS,
  type ToolName,
  validateParams,
} from '../../src/greenhelix/index.js';

const message = (tool: ToolName, params: unknown) => {
  const r = validateParams(tool, params);
  if (r.ok) throw new Error(`${tool} accepted ${JSON.stringify(params)}`);
  return r.message;
};

describe('input schemas', () => {
  it('cover every route, and every field they accept has a place in the request (path, query or body)', () => {
    expect(Object.keys(TOOL_INPUTS).sort()).toEqual(Object.keys(ROUTES).sort());
    for (const [tool, spec] of Object.entries(ROUTES)) {
      const placed = new Set([...spec.pathParams, ...spec.query, ...spec.body]);
      // create_escrow's idempotency_key travels as the Idempotency-Key header (CONTRACT §5).
      if (tool === 'create_escrow') placed.add('idempotency_key');
      for (const field of acceptedFields(tool as ToolName))
        expect(placed, `${tool}.${field}`).toContain(field);
      for (const p of spec.pathParams) expect(acceptedFields(tool as ToolName), `${tool} path`).toContain(p);
    }
  });

  it('name an unknown field and list the accepted ones', () => {
    expect(message('get_balance', { agent_id: 'a1', bogus: 1 })).toBe(
      'unknown parameter "bogus" (accepted: agent_id, currency)',
    );
    // The seed guide's shapes (CONTRACT §11) are refused by name.
    expect(message('publish_event', { event_type: 'x', agent_id: 'a1', payload: {} })).toMatch(
      /unknown parameter "agent_id".*parameter "source": is required/,
    );
    expect(
      message('register_webhook', { agent_id: 'a', event_type: 'x', webhook_url: 'https://h.example' }),
    ).toMatch(/unknown parameters "agent_id", "event_type", "webhook_url"/);
    expect(message('rate_service', { service_id: 's', rating: 3, comment: 'ok' })).toMatch(/"comment"/);
    expect(message('verify_agent', { agent_id: 'a1' })).toMatch(
      /"message": is required.*"signature": is required/,
    );
  });

  it('set_budget_cap: agent_id goes in the path, both caps are required (PUT replaces both), aliases refused', () => {
    expect(message('set_budget_cap', { agent_id: 'a1', daily_cap: 10 })).toMatch(
      /"monthly_cap": is required/,
    );
    expect(message('set_budget_cap', { agent_id: 'a1', daily: 10, monthly: 300 })).toMatch(
      /unknown parameters "daily", "monthly"/,
    );
    expect(message('set_budget_cap', { agent_id: 'a1', daily_cap: -1, monthly_cap: null })).toMatch(
      /"daily_cap": expected a cap ≥ 0/,
    );
    expect(message('set_budget_cap', { agent_id: 'a1', daily_cap: '1.005', monthly_cap: null })).toMatch(
      /"daily_cap"/,
    );
    const ok = validateParams('set_budget_cap', { agent_id: 'a1', daily_cap: '150.50', monthly_cap: null });
    expect(ok).toEqual({ ok: true, value: { agent_id: 'a1', daily_cap: 150.5, monthly_cap: null } });
  });

  it('create_escrow: amounts are positive decimals ≤ 1e9 with ≤ 2 decimals in CREDITS; payer ≠ payee', () => {
    const base = { payer: 'a1', payee: 'v1' };
    expect(message('create_escrow', { ...base, amount: 0 })).toMatch(/"amount": expected an amount > 0/);
    expect(message('create_escrow', { ...base, amount: '1e3' })).toMatch(/"amount": expected a decimal/);
    expect(message('create_escrow', { ...base, amount: 2e9 })).toMatch(/≤ 1000000000/);
    expect(message('create_escrow', { ...base, amount: '1.234' })).toMatch(/at most 2 decimals/);
    expect(validateParams('create_escrow', { ...base, amount: '0.001', currency: 'BTC' }).ok).toBe(true);
    expect(message('create_escrow', { payer: 'a1', payee: 'a1', amount: 5 })).toMatch(/payee must differ/);
    expect(message('create_escrow', { ...base, amount: 5, currency: 'JPY' })).toMatch(/"currency"/);
    expect(message('create_escrow', { ...base, amount: 5, timeout_hours: 1.5 })).toMatch(/"timeout_hours"/);
  });

  it('ids that would make a bad path, agent ids outside the gateway pattern, ms for unix seconds', () => {
    expect(message('get_escrow', { escrow_id: '../x/y' })).toMatch(/must not contain "\/"/);
    expect(message('get_escrow', { escrow_id: 'e'.repeat(129) })).toMatch(/at most 128/);
    expect(message('get_balance', { agent_id: '-lead' })).toMatch(/"agent_id": expected an agent id/);
    expect(message('get_usage_summary', { agent_id: 'a1', since: Date.now() })).toMatch(/milliseconds/);
    expect(message('rate_service', { service_id: 's', rating: 6 })).toMatch(
      /"rating": expected an integer 1–5/,
    );
    expect(message('submit_metrics', { agent_id: 'a1', metrics: { vibes: 1 } })).toMatch(
      /unknown metric "vibes"/,
    );
    expect(message('list_escrows', { agent_id: 'a1', status: 'pending' })).toMatch(/"status"/);
    expect(message('get_balance', undefined as never)).toMatch(/"agent_id": is required/);
  });
});

describe('the client refuses bad input before sending', () => {
  // Port 9 on loopback (discard) is never listened on here: a request that got out would be a network_error.
  const client = new GreenHelixClient({
    baseUrl: 'http://127.0.0.1:9',
    apiKey: 'a2a_pro_0123456789abcdef01234567',
  });
  const refused = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(GreenHelixError);
    expect((e as GreenHelixError).code).toBe('invalid_request');
    expect((e as GreenHelixError).retryable).toBe(false);
    return (e as GreenHelixError).detail;
  };

  it('unknown params, unknown tools, keys on tools that ignore them, conflicting keys', async () => {
    expect(await refused(client.call('get_balance', { agent_id: 'a', extra: true } as never))).toMatch(
      /"extra"/,
    );
    expect(await refused(client.call('execute' as ToolName, {} as never))).toMatch(/unknown tool "execute"/);
    expect(
      await refused(client.publishEvent({ event_type: 'x', source: 's' }, { idempotencyKey: 'k' })),
    ).toMatch(/ignores Idempotency-Key for publish_event/);
    expect(
      await refused(
        client.createEscrow(
          { payer: 'a', payee: 'b', amount: 1, idempotency_key: 'k1' },
          { idempotencyKey: 'k2' },
        ),
      ),
    ).toMatch(/differ/);
    expect(await refused(client.getBalance({ agent_id: 'a' }, { timeoutMs: -1 }))).toMatch(/timeoutMs/);
  });

  it('batch: a bad call anywhere refuses the whole batch before sending; admin-only tools are refused', async () => {
    const calls = [
      { tool: 'get_balance', params: { agent_id: 'a' } },
      { tool: 'set_budget_cap', params: { agent_id: 'a', daily: 1 } },
    ] as never;
    expect(await refused(client.batch(calls))).toMatch(
      /^calls\[1\] \(set_budget_cap\): unknown parameter "daily"/,
    );
    expect(await refused(client.batch([{ tool: 'freeze_wallet', params: { agent_id: 'a' } }]))).toMatch(
      /admin-only and batch never acts as admin/,
    );
    expect(await refused(client.batch({} as never))).toMatch(/expected an array/);
    expect(await client.batch([])).toEqual([]);
    await client.close();
  });

  it('refuses a missing or malformed key and base URL, without echoing the key', () => {
    expect(() => new GreenHelixClient({ baseUrl: 'http://127.0.0.1:9', apiKey: '' })).toThrow(
      /exactly one apiKey/,
    );
    expect(() => new GreenHelixClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'a2a_pro_x y' })).toThrow(
      /^GreenHelixClient: apiKey contains whitespace or non-ASCII characters$/,
    );
    expect(() => new GreenHelixClient({ baseUrl: 'ftp://h', apiKey: 'k' })).toThrow(/baseUrl/);
    expect(() => new GreenHelixClient({ baseUrl: 'http://h', apiKey: 'k', concurrency: 0 })).toThrow(
      /concurrency/,
    );
  });
});
