/**
 * The client against the real gateway's shapes: the timeseries cost bug is scaled back so no figure we
 * compute is 1e8 too large, and a missing reputation row is an answer (null), not a failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient, GreenHelixError, isReputationMissing } from '../../src/greenhelix/index.js';
import { TIMESERIES_COST_BUG_SCALE, TimeseriesSchema } from '../../src/greenhelix/schemas.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

describe('wallet timeseries cost', () => {
  it('a bucket cost no call could reach is the gateway bug: scaled back to cents and marked', () => {
    const [b] = TimeseriesSchema.parse({
      buckets: [{ timestamp: '2026-11-24T02:00:00+00:00', calls: 3, cost: '225000000.00' }],
    }).buckets;
    expect(b).toMatchObject({ calls: 3, cost: 225, cost_as_reported: 225 * TIMESERIES_COST_BUG_SCALE });
    expect(b?.cost_corrected).toBe(true);
  });

  it('a plausible cost (at most 10 CREDITS a call) is kept as sent', () => {
    const { buckets } = TimeseriesSchema.parse({
      buckets: [
        { timestamp: 1, calls: 2, cost: '4.50' },
        { timestamp: 2, calls: 1, cost: '10.00' },
        { timestamp: 3, calls: 5, cost: 0 },
      ],
    });
    expect(buckets.map((b) => [b.cost, b.cost_corrected])).toEqual([
      [450, false],
      [1_000, false],
      [0, false],
    ]);
  });

  describe('through the sandbox, which reproduces the bug', () => {
    let sb: Sandbox;
    beforeAll(async () => {
      sb = await startSandbox({ agents: 2, timeScale: 0, autoStartTraffic: false });
    });
    afterAll(() => sb?.close());

    it('the fees of the hour come out in true cents and match the usage summary', async () => {
      const agent = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.agents['agent-01']! });
      const admin = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.monitor });
      try {
        await agent.createEscrow({ payer: 'agent-01', payee: 'vendor-01', amount: '150.00' });
        await agent.createEscrow({ payer: 'agent-01', payee: 'vendor-02', amount: '20.00' });
        const { buckets } = await admin.getMetricsTimeseries({ agent_id: 'agent-01', interval: 'hour' });
        const usage = await admin.getUsageSummary({ agent_id: 'agent-01' });
        // 2.25 + 0.30 in fees.
        expect(buckets.reduce((n, b) => n + b.cost, 0)).toBe(255);
        expect(usage.total_cost_cents).toBe(255);
        expect(buckets.every((b) => b.cost_corrected)).toBe(true);
      } finally {
        await agent.close();
        await admin.close();
      }
    });
  });
});

describe('isReputationMissing', () => {
  const err = (status: number, code: string, detail: string) => new GreenHelixError({ status, code, detail });
  it('is the 404 "Agent reputation not found", and nothing else', () => {
    expect(
      isReputationMissing(
        err(
          404,
          'not_found',
          'Agent reputation not found: a1. Register identity first: POST /v1/identity/agents',
        ),
      ),
    ).toBe(true);
    expect(isReputationMissing(err(404, 'not_found', 'Agent not found: a1.'))).toBe(false);
    expect(isReputationMissing(err(404, 'http_error', 'Agent reputation not found'))).toBe(false);
    expect(isReputationMissing(err(503, 'service_error', 'Agent reputation not found'))).toBe(false);
    expect(isReputationMissing(new Error('Agent reputation not found'))).toBe(false);
  });
});
