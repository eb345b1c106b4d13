/**
 * The client over real HTTP against a tiny node:http server started here (port 0), for what the
 * sandbox does not do: proxy HTML, empty bodies, Retry-After, hung responses, resets, malformed
 * successes. The server only records and answers; nothing of the client is mocked.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ClientOptions, GreenHelixClient } from '../../src/greenhelix/index.js';
import { failure } from '../helpers/failure.js';

const KEY = 'a2a_pro_0123456789abcdef01234567';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
type Handler = (req: Seen, res: ServerResponse, n: number) => void;

let server: Server;
let url: string;
let seen: Seen[] = [];
let handler: Handler;
let held: ServerResponse[] = [];

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const problem = (res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/problem+json', 'x-request-id': 'srv-id', ...headers });
  res.end(
    JSON.stringify({
      type: `https://api.greenhelix.net/errors/${code.replace(/_/g, '-')}`,
      title: 'x',
      status,
      detail: `${code} detail`,
    }),
  );
};
const hold: Handler = (_req, res) => {
  held.push(res);
};

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error('condition not reached');
}

const clients: GreenHelixClient[] = [];
function client(extra: Partial<ClientOptions> = {}): GreenHelixClient {
  const c = new GreenHelixClient({
    baseUrl: url,
    apiKey: KEY,
    baseDelayMs: 1,
    maxDelayMs: 5,
    maxRetries: 2,
    ...extra,
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(s);
      handler(s, res, seen.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
beforeEach(() => {
  for (const res of held) res.destroy();
  seen = [];
  held = [];
  handler = (_req, res) => json(res, 200, { balance: '1.00' });
});
afterAll(async () => {
  for (const res of held) res.destroy();
  for (const c of clients) await c.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('responses that are not what they claim', () => {
  it('an HTML 502 from a proxy is a typed, retryable error (retried for a read), and the HTML stays in the log', async () => {
    const logs: Record<string, unknown>[] = [];
    handler = (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>Bad gateway</body></html>');
    };
    const e = await failure(
      client({ logger: { debug: (o) => logs.push(o as never) } }).getBalance({ agent_id: 'a1' }),
    );
    expect([e.status, e.code, e.retryable]).toEqual([502, 'bad_gateway', true]);
    expect(e.detail).not.toContain('<html>');
    expect(seen).toHaveLength(3);
    expect(logs.filter((l) => l.body_excerpt === '<html><body>Bad gateway</body></html>')).toHaveLength(3);
  });

  it('an empty 503 and a problem document without a URL type are errors named by their status', async () => {
    handler = (_req, res) => {
      res.writeHead(503);
      res.end();
    };
    const empty = await failure(client({ maxRetries: 0 }).getBalance({ agent_id: 'a1' }));
    expect([empty.status, empty.code]).toEqual([503, 'service_unavailable']);
    expect(empty.detail).toMatch(/empty body/);
    handler = (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Bad Request', status: 400 }));
    };
    const blank = await failure(client().getBalance({ agent_id: 'a1' }));
    expect([blank.status, blank.code, blank.detail, blank.retryable]).toEqual([
      400,
      'http_400',
      'Bad Request',
      false,
    ]);
  });

  it('an RFC 9457 problem becomes {status, code from the type URL, detail, requestId from X-Request-ID}', async () => {
    handler = (_req, res) => problem(res, 403, 'wallet_frozen');
    const e = await failure(client().cancelEscrow({ escrow_id: 'e1' }));
    expect([e.status, e.code, e.detail, e.requestId, e.retryable]).toEqual([
      403,
      'wallet_frozen',
      'wallet_frozen detail',
      'srv-id',
      false,
    ]);
    expect(seen).toHaveLength(1);
  });

  it('a malformed success is invalid_response naming the field, never a zero, and is not retried', async () => {
    handler = (_req, res) => json(res, 200, { balance: 'not money' });
    const bad = await failure(client().getBalance({ agent_id: 'a1' }));
    expect([bad.code, bad.retryable]).toEqual(['invalid_response', false]);
    expect(bad.detail).toMatch(/balance: not a decimal amount/);
    handler = (_req, res) => json(res, 200, { balance: '1.005' });
    expect((await failure(client().getBalance({ agent_id: 'a1' }))).detail).toMatch(/more than 2 decimals/);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('OK');
    };
    expect((await failure(client().getBalance({ agent_id: 'a1' }))).detail).toMatch(
      /expected a JSON body, got text\/plain/,
    );
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"balance": "1.0');
    };
    expect((await failure(client().getBalance({ agent_id: 'a1' }))).detail).toMatch(/not valid JSON/);
    expect(seen).toHaveLength(4);
  });

  it('money is exact integer cents', async () => {
    handler = (_req, res) => json(res, 200, { balance: '46800.00', currency: 'CREDITS' });
    expect(await client().getBalance({ agent_id: 'a1' })).toEqual({
      balance: 4_680_000,
      currency: 'CREDITS',
    });
  });
});

describe('retries', () => {
  it('Retry-After longer than the time left ends the call at once with that error; Retry-After: 0 retries', async () => {
    handler = (_req, res) => problem(res, 503, 'service_error', { 'retry-after': '30' });
    const e = await failure(client().getBalance({ agent_id: 'a1' }, { timeoutMs: 2_000 }));
    expect([e.status, e.code, e.retryAfterSeconds]).toEqual([503, 'service_error', 30]);
    expect(seen).toHaveLength(1);
    seen = [];
    handler = (_req, res) => problem(res, 503, 'service_error', { 'retry-after': '0' });
    await failure(client().getBalance({ agent_id: 'a1' }));
    expect(seen).toHaveLength(3);
  });

  it('a header-less 429 is retried with backoff for reads, then reported', async () => {
    handler = (_req, res, n) =>
      n < 3 ? problem(res, 429, 'rate_limit_exceeded') : json(res, 200, { balance: '2.50' });
    expect((await client().getBalance({ agent_id: 'a1' })).balance).toBe(250);
    expect(seen).toHaveLength(3);
  });

  it('connection resets: a read is retried; publish_event and an unkeyed create are sent once', async () => {
    handler = (_req, res) => res.socket?.destroy();
    const read = await failure(client().getBalance({ agent_id: 'a1' }));
    expect([read.status, read.code, read.retryable]).toEqual([0, 'network_error', true]);
    expect(seen).toHaveLength(3);
    seen = [];
    expect((await failure(client().publishEvent({ event_type: 'x', source: 's' }))).code).toBe(
      'network_error',
    );
    expect(seen).toHaveLength(1);
    seen = [];
    await failure(client().createEscrow({ payer: 'a1', payee: 'v1', amount: 5 }));
    expect(seen).toHaveLength(1);
  });

  it('X-Request-ID: a fresh one per attempt for unkeyed calls, one per call for keyed ones (with the key as a header, never in the body)', async () => {
    handler = (_req, res) => res.socket?.destroy();
    await failure(client().getBalance({ agent_id: 'a1' }));
    const ids = seen.map((s) => s.headers['x-request-id']);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen = [];
    await failure(
      client().createEscrow({ payer: 'a1', payee: 'v1', amount: '150.00', idempotency_key: 'loop-7' }),
    );
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => s.headers['x-request-id'])).size).toBe(1);
    for (const s of seen) {
      expect(s.headers['idempotency-key']).toBe('loop-7');
      expect(JSON.parse(s.body)).toEqual({ payer: 'a1', payee: 'v1', amount: '150.00' });
    }
  });
});

describe('deadlines, aborts and the concurrency bound', () => {
  it('a response slower than the deadline ends in deadline_exceeded, not a retry', async () => {
    handler = hold;
    const e = await failure(client({ maxRetries: 5 }).getBalance({ agent_id: 'a1' }, { timeoutMs: 100 }));
    expect([e.status, e.code, e.retryable]).toEqual([0, 'deadline_exceeded', false]);
    expect(seen).toHaveLength(1);
    const past = await failure(client().getBalance({ agent_id: 'a1' }, { deadline: Date.now() - 1 }));
    expect(past.code).toBe('deadline_exceeded');
    expect(seen).toHaveLength(1);
  });

  it('a caller abort stops an in-flight call with code aborted', async () => {
    handler = hold;
    const ctl = new AbortController();
    const p = client().getBalance({ agent_id: 'a1' }, { signal: ctl.signal, timeoutMs: 10_000 });
    await until(() => held.length === 1);
    ctl.abort();
    expect((await failure(p)).code).toBe('aborted');
  });

  it('one caller signal shared by a fan-out of 40 calls raises no listener-leak warning, and leaves no listener behind', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const ctl = new AbortController();
      let added = 0;
      let removed = 0;
      const add = ctl.signal.addEventListener.bind(ctl.signal);
      const remove = ctl.signal.removeEventListener.bind(ctl.signal);
      ctl.signal.addEventListener = ((...a: Parameters<typeof add>) => {
        added++;
        add(...a);
      }) as typeof add;
      ctl.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
        removed++;
        remove(...a);
      }) as typeof remove;
      const c = client({ concurrency: 64 });
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => c.getBalance({ agent_id: `a${i}` }, { signal: ctl.signal })),
      );
      expect(results).toHaveLength(40);
      await new Promise((r) => setImmediate(r));
      expect(added).toBeGreaterThanOrEqual(40);
      expect(removed).toBe(added);
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('never more than `concurrency` requests in flight; queued calls leave on abort or deadline without being sent', async () => {
    handler = hold;
    const c = client({ concurrency: 3 });
    const calls = Array.from({ length: 8 }, (_, i) =>
      c.getBalance({ agent_id: `a${i}` }, { timeoutMs: 10_000 }),
    );
    await until(() => held.length === 3);
    const ctl = new AbortController();
    const aborted = c.getBalance({ agent_id: 'abort-me' }, { signal: ctl.signal, timeoutMs: 10_000 });
    const late = c.getBalance({ agent_id: 'too-late' }, { timeoutMs: 50 });
    ctl.abort();
    expect((await failure(aborted)).code).toBe('aborted');
    expect((await failure(late)).code).toBe('deadline_exceeded');
    expect(held).toHaveLength(3);
    let served = 0;
    while (served < 8) {
      await until(() => held.length > 0);
      const res = held.shift() as ServerResponse;
      json(res, 200, { balance: '1.00' });
      served++;
      expect(seen.length - served).toBeLessThanOrEqual(3);
    }
    expect(await Promise.all(calls)).toHaveLength(8);
    expect(seen.map((s) => s.url)).not.toContain('/v1/billing/wallets/abort-me/balance');
    expect(seen.map((s) => s.url)).not.toContain('/v1/billing/wallets/too-late/balance');
  });
});

describe('requests as the gateway expects them', () => {
  it('GET has no body, query params in the query string; PUT carries only body fields; POST without fields has no body', async () => {
    handler = (req, res) => {
      if (req.url.includes('/budget'))
        return json(res, 200, { agent_id: 'a.1', daily_cap: 10.5, monthly_cap: null, alert_threshold: 0.8 });
      if (req.url.includes('/cancel')) return json(res, 200, { id: 'e1', status: 'refunded', amount: '5.0' });
      if (req.url.includes('/rotate'))
        return json(res, 200, { new_key: 'k', tier: 'pro', agent_id: 'a', revoked: false });
      return json(res, 200, { escrows: [], count: 0 });
    };
    const c = client();
    await c.listEscrows({ agent_id: 'a.1', status: 'held', limit: 5 });
    const caps = await c.setBudgetCap({ agent_id: 'a.1', daily_cap: '10.50', monthly_cap: null });
    expect(caps).toMatchObject({ daily_cap: 1050, monthly_cap: null });
    expect((await c.cancelEscrow({ escrow_id: 'e1' })).amount).toBe(500);
    await c.rotateKey({ current_key: 'a2a_pro_aaaaaaaaaaaaaaaaaaaaaaaa' });
    const [list, put, cancel, rotate] = seen as [Seen, Seen, Seen, Seen];
    expect([list.method, list.url, list.body, list.headers['content-type']]).toEqual([
      'GET',
      '/v1/payments/escrows?agent_id=a.1&status=held&limit=5',
      '',
      undefined,
    ]);
    expect([put.method, put.url, JSON.parse(put.body)]).toEqual([
      'PUT',
      '/v1/billing/wallets/a.1/budget',
      { daily_cap: 10.5, monthly_cap: null },
    ]);
    expect([cancel.method, cancel.body, cancel.headers['content-type']]).toEqual(['POST', '', undefined]);
    expect(rotate.headers['x-rotate-confirmation']).toBe('confirm');
    for (const s of seen) expect(s.headers.authorization).toBe(`Bearer ${KEY}`);
  });

  it('a base URL path prefix is kept', async () => {
    await client({ baseUrl: `${url}/gw/` } as Partial<ClientOptions>).getBalance({ agent_id: 'a1' });
    expect(seen[0]?.url).toBe('/gw/v1/billing/wallets/a1/balance');
  });

  it('logs tool, status, ms, attempt and request id per attempt, and never the key', async () => {
    const logs: Record<string, unknown>[] = [];
    handler = (_req, res, n) =>
      n === 1 ? problem(res, 500, 'internal_error') : json(res, 200, { balance: '1.00' });
    const c = client({ logger: { debug: (o) => logs.push(o as never) } });
    await c.getBalance({ agent_id: 'a1' });
    const calls = logs.filter((l) => 'ms' in l);
    expect(calls.map((l) => [l.tool, l.status, l.attempt])).toEqual([
      ['get_balance', 500, 0],
      ['get_balance', 200, 1],
    ]);
    expect(calls[1]?.request_id).toBe(seen[1]?.headers['x-request-id']);
    expect(typeof calls[1]?.ms).toBe('number');
    expect(JSON.stringify(logs)).not.toContain(KEY);
    expect(JSON.stringify(c)).not.toContain(KEY);
    expect(c.keyHashPrefix).toBe(createHash('sha3-256').update(KEY).digest('hex').slice(0, 8));
  });

  it('an injected dispatcher is used and left open by close(); a closed client refuses calls', async () => {
    const agent = new Agent();
    const c = client({ dispatcher: agent });
    await c.getBalance({ agent_id: 'a1' });
    await c.close();
    expect(agent.closed).toBe(false);
    expect((await failure(c.getBalance({ agent_id: 'a1' }))).code).toBe('client_closed');
    await agent.close();
    const owned = client();
    await owned.close();
    expect((await failure(owned.getBalance({ agent_id: 'a1' }))).code).toBe('client_closed');
  });
});

describe('batch', () => {
  it('chunks into requests of at most 10 calls and returns one result per call, in order', async () => {
    handler = (req, res) => {
      const { calls } = JSON.parse(req.body) as { calls: { tool: string; params: { agent_id: string } }[] };
      json(res, 200, {
        results: calls.map((c) => ({ success: true, result: { agent: c.params.agent_id } })),
      });
    };
    const calls = Array.from({ length: 23 }, (_, i) => ({
      tool: 'get_balance' as const,
      params: { agent_id: `a${i}` },
    }));
    const results = await client().batch(calls);
    expect(seen.map((s) => [s.url, (JSON.parse(s.body) as { calls: unknown[] }).calls.length])).toEqual([
      ['/v1/batch', 10],
      ['/v1/batch', 10],
      ['/v1/batch', 3],
    ]);
    expect(results.map((r) => (r.success ? (r.result as { agent: string }).agent : null))).toEqual(
      calls.map((c) => c.params.agent_id),
    );
  });

  it('a failed chunk reports each of its calls as failed; reads are retried, a chunk with a write is not', async () => {
    handler = (_req, res) => problem(res, 503, 'service_error');
    const reads = await client().batch([{ tool: 'get_balance', params: { agent_id: 'a1' } }]);
    expect(seen).toHaveLength(3);
    expect(reads[0]).toMatchObject({ success: false, error: { code: 'service_error' } });
    seen = [];
    const writes = await client().batch([
      { tool: 'get_balance', params: { agent_id: 'a1' } },
      { tool: 'publish_event', params: { event_type: 'x', source: 's' } },
    ]);
    expect(seen).toHaveLength(1);
    expect(writes.map((r) => !r.success && r.error.message)).toEqual([
      expect.stringMatching(/may or may not have run/),
      expect.stringMatching(/may or may not have run/),
    ]);
  });

  it('a batch answer with the wrong number of results is invalid_response for each call', async () => {
    handler = (_req, res) => json(res, 200, { results: [] });
    const r = await client().batch([{ tool: 'get_balance', params: { agent_id: 'a1' } }]);
    expect(r[0]).toMatchObject({ success: false, error: { code: 'invalid_response' } });
  });
});
