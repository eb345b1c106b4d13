/**
 * "Containment triggers itself": the refunds our containment makes must never read as the agent's
 * cancellations, nor name the loop's payee a farmer. Through the real runbooks and the sandbox over HTTP;
 * containment records each escrow it cancels in the store's ledger (escrowIdsCancelledByUs), and detection
 * reads which refunds were ours from there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectAgent } from '../../src/detection/index.js';
import { observeAgent } from '../../src/runbooks/detect.js';
import { type Fixture, startFixture } from '../helpers/fixture.js';

const MIN = 60_000;

interface PassAnomaly {
  agent_id: string;
  signal: string;
  details: Record<string, unknown>;
}

describe('refunds made by our own containment feed no detection', () => {
  let f: Fixture;
  let looping: string;
  let farmer: string;
  let incidentId: string;
  let refundedIds: string[];

  const anomaliesOf = async (agent: string) => {
    const r = await f.call('detect_anomalies', { agent_ids: [agent] });
    return (r.structuredContent.anomalies as PassAnomaly[]).filter((a) => a.agent_id === agent);
  };
  const exploitationOf = async (agent: string) =>
    (await anomaliesOf(agent)).filter((a) => a.signal === 'escrow_exploitation');

  beforeAll(async () => {
    f = await startFixture({ agents: 6 });
    looping = f.sandbox.fleet[1]!;
    farmer = f.sandbox.fleet[2]!;
    const loop = f.sandbox.startScenario('runaway_spending', looping, { rate_per_min: 30, amount: 150 });
    await f.sandbox.advance(40_000);
    f.sandbox.stopScenario(loop);
    const c = await f.call('contain_agent', { agent_id: looping, reason: 'runaway retry loop' });
    expect(c.structuredContent.status).toBe('contained');
    incidentId = c.structuredContent.incident_id as string;
    const { escrows } = await f.ops.deps.monitor.listEscrows({ agent_id: looping, status: 'refunded' });
    refundedIds = escrows.map((e) => e.id);
    // More than 10 refunded escrows to one payee, and every decided escrow refunded: both rules' bait.
    expect(refundedIds.length).toBeGreaterThan(10);
  });
  afterAll(() => f?.close());

  it('containment recorded each escrow it cancelled, and the observation carries those ids', async () => {
    expect([...f.ops.store.escrowIdsCancelledByUs(looping)].sort()).toEqual([...refundedIds].sort());
    const obs = await observeAgent(f.ops.deps, looping, {});
    expect([...(obs.cancelled_by_us ?? [])].sort()).toEqual([...refundedIds].sort());
    // Not vacuous: the same observation, without knowing which refunds were ours, blames the agent.
    const blind = detectAgent({ ...obs, cancelled_by_us: [] }, undefined).anomalies;
    expect(blind.find((a) => a.signal === 'escrow_exploitation')?.details.rule).toBe('cancel_rate');
  });

  it('right after containment, the contained agent raises nothing: no exploitation, no cost anomaly', async () => {
    expect(await anomaliesOf(looping)).toEqual([]);
  });

  it('a recovering agent (stage 1, ordinary orders again) stays silent, and no payee is named', async () => {
    const r = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
    expect(r.structuredContent.applied).toBe(true);
    const orders = f.sandbox.startScenario('normal_traffic', looping, { escrows_per_hour: 12 });
    for (let i = 0; i < 6; i++) {
      await f.sandbox.advance(MIN);
      expect(await anomaliesOf(looping)).toEqual([]);
    }
    f.sandbox.stopScenario(orders);
    expect(f.sandbox.groundTruth('vendor-flaky').frozen).toBe(false);
  });

  it('a real farming pattern on another agent is still caught, naming its payee', async () => {
    const s = f.sandbox.startScenario('escrow_exploitation', farmer, { rate_per_min: 4 });
    await f.sandbox.advance(4 * MIN);
    f.sandbox.stopScenario(s);
    const found = await exploitationOf(farmer);
    expect(found).toHaveLength(1);
    expect(found[0]?.details.suspect_payee).toBe('merchant-shady');
  });
});
