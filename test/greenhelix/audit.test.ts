/**
 * The client's write recorder: a state-changing call is recorded before it is sent (and not sent when it
 * cannot be recorded), its outcome after, retries counted; reads are not recorded. Real HTTP to a tiny
 * node:http server on port 0.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type GatewayWrite,
  type GatewayWriteRecorder,
  GreenHelixClient,
  GreenHelixError,
} from '../../src/greenhelix/index.js';

let server: Server;
let url: string;
let statuses: number[];
let sent: string[];

beforeAll(async () => {
  server = createServer((req, res) => {
    sent.push(`${req.method} ${req.url}`);
    const status = statuses.shift() ?? 200;
    res.writeHead(status, {
      'content-type': status < 400 ? 'application/json' : 'application/problem+json',
    });
    res.end(
      status < 400
        ? JSON.stringify({ agent_id: 'a1', frozen: true, balance: '10.00', currency: 'CREDITS' })
        : JSON.stringify({
            type: 'https://api.greenhelix.net/errors/conflict',
            title: 'x',
            status,
            detail: 'd',
          }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  statuses = [];
  sent = [];
});

function recorder(fail = false) {
  const log: unknown[] = [];
  const r: GatewayWriteRecorder = {
    writeIntent: async (w: GatewayWrite) => {
      if (fail) throw new Error('disk full');
      log.push({ intent: w });
      return log.length;
    },
    writeOutcome: (o) => log.push({ outcome: o }),
  };
  return { r, log };
}

const client = (r: GatewayWriteRecorder) =>
  new GreenHelixClient({
    baseUrl: url,
    apiKey: 'a2a_test_key',
    writeRecorder: r,
    baseDelayMs: 1,
    maxDelayMs: 2,
  });

describe('write recorder', () => {
  it('records the intent before the write and its outcome after, retries counted', async () => {
    const { r, log } = recorder();
    statuses = [503, 200];
    await client(r).freezeWallet({ agent_id: 'a1' });
    expect(log).toEqual([
      {
        intent: {
          tool: 'freeze_wallet',
          method: 'POST',
          route: '/v1/billing/wallets/a1/freeze',
          agent_id: 'a1',
          target: null,
          idempotency_key: null,
          key: expect.stringMatching(/^[0-9a-f]{8}$/),
        },
      },
      { outcome: { intent: 1, status: 200, code: null, attempts: 2 } },
    ]);
    expect(sent).toHaveLength(2);
  });

  it('records a refused write with its status and code, and the agent given for an escrow cancel', async () => {
    const { r, log } = recorder();
    statuses = [409];
    const e = await client(r)
      .cancelEscrow({ escrow_id: 'esc_1' }, { agentId: 'a1', retry: false })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(GreenHelixError);
    expect(log[0]).toMatchObject({ intent: { tool: 'cancel_escrow', agent_id: 'a1', target: 'esc_1' } });
    expect(log[1]).toEqual({
      outcome: { intent: 1, status: 409, code: (e as GreenHelixError).code, attempts: 1 },
    });
  });

  it('sends nothing when the intent cannot be recorded', async () => {
    const { r } = recorder(true);
    const e = await client(r)
      .freezeWallet({ agent_id: 'a1' })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'audit_unavailable', retryable: false });
    expect(sent).toEqual([]);
  });

  it('does not record reads', async () => {
    const { r, log } = recorder();
    await client(r).getBalance({ agent_id: 'a1' });
    expect(sent).toHaveLength(1);
    expect(log).toEqual([]);
  });
});
