/**
 * Agents whose keys were made directly have no reputation row: the gateway answers 404 "Agent reputation
 * not found". That is "no record", not a blind check: detection stays quiet about it and recovery's
 * identity gate stands on the identity evidence that exists. A real failure (5xx) is still a failure.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GreenHelixError } from '../../src/greenhelix/index.js';
import { observeAgent } from '../../src/runbooks/detect.js';
import { type Fixture, startFixture } from '../helpers/fixture.js';

const DIRECT = 'agent-03';
const HOUR = 3_600_000;
const outage = () =>
  new GreenHelixError({ status: 503, code: 'service_error', detail: 'identity store unavailable' });

describe('no reputation row (keys made directly)', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 8 });
  });
  afterAll(() => f?.close());
  afterEach(() => vi.restoreAllMocks());

  it('the sandbox fleet has such agents, as real fleets do', async () => {
    await expect(f.ops.deps.monitor.getAgentReputation({ agent_id: DIRECT })).rejects.toMatchObject({
      status: 404,
      code: 'not_found',
    });
  });

  it('detection: no failure, no alarm; the observation says there is no record', async () => {
    const obs = await observeAgent(f.ops.deps, DIRECT, {});
    expect(obs.failures).toEqual([]);
    expect(obs.reputation).toEqual({ composite_score: 0, found: false, no_record: true });
    const r = await f.call('detect_anomalies', { agent_ids: [DIRECT, 'agent-00'] });
    expect(r.structuredContent.blind_checks).toBe(0);
    expect(r.structuredContent.anomalies).toEqual([]);
  });

  it('detection: a 5xx on the reputation read is still a blind check', async () => {
    vi.spyOn(f.ops.deps.monitor, 'getAgentReputationRecord').mockRejectedValue(outage());
    const r = await f.call('detect_anomalies', { agent_ids: [DIRECT] });
    expect(r.structuredContent.blind_checks).toBe(1);
    expect(r.structuredContent.anomalies).toEqual([
      expect.objectContaining({
        signal: 'detection_failure',
        details: expect.objectContaining({ check: 'reputation', code: 'service_error' }),
      }),
    ]);
  });

  it('a degrading agent with no reputation row is still seen, through the quality metrics it ingests', async () => {
    const degrading = 'agent-07';
    const drift = async () => {
      const r = await f.call('detect_anomalies', { agent_ids: [degrading] });
      expect(r.structuredContent.blind_checks).toBe(0);
      return (r.structuredContent.anomalies as { signal: string; details: Record<string, unknown> }[]).find(
        (a) => a.signal === 'reputation_drift',
      );
    };
    // Healthy metrics first: a baseline, and no alarm.
    await f.ops.deps.monitor.ingestMetrics({ agent_id: degrading, metrics: { success_rate: 0.97 } });
    await f.ops.deps.monitor.ingestMetrics({ agent_id: degrading, metrics: { success_rate: 0.96 } });
    expect(await drift()).toBeUndefined();
    const s = f.sandbox.startScenario('service_degradation', degrading, { drop_per_hour: 0.4 });
    let seen: Awaited<ReturnType<typeof drift>>;
    for (let i = 0; i < 24 && !seen; i++) {
      await f.sandbox.advance(5 * 60_000);
      seen = await drift();
    }
    f.sandbox.stopScenario(s);
    expect(seen?.details).toMatchObject({
      source: 'metric:success_rate',
      reputation_record: expect.stringMatching(/^none/),
    });
  });

  describe('recovery', () => {
    let incidentId: string;
    beforeAll(async () => {
      // Pin the registered key first, as a detection pass does.
      await f.call('detect_anomalies', { agent_ids: [DIRECT] });
      const c = await f.call('contain_agent', {
        agent_id: DIRECT,
        reason: 'drill: directly provisioned agent',
      });
      expect(c.structuredContent.status).toBe('contained');
      incidentId = c.structuredContent.incident_id as string;
    });

    it('a real failure of the reputation read fails the identity gate (nothing was verified)', async () => {
      vi.spyOn(f.ops.deps.monitor, 'getAgentReputationRecord').mockRejectedValue(outage());
      const r = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
      expect(r.structuredContent.applied).toBe(false);
      expect(r.structuredContent.gates).toEqual([
        expect.objectContaining({ gate: 'root_cause_fixed', passed: true }),
        expect.objectContaining({
          gate: 'identity_verified',
          passed: false,
          reason: expect.stringContaining('service_error'),
        }),
      ]);
    });

    it('the identity gate passes on the pinned key and says plainly that no reputation record exists', async () => {
      const r = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
      expect(r.structuredContent.applied).toBe(true);
      const gate = (r.structuredContent.gates as { gate: string; passed: boolean; reason: string }[]).find(
        (g) => g.gate === 'identity_verified',
      );
      expect(gate?.passed).toBe(true);
      expect(gate?.reason).toMatch(/registered key matches the pinned key/);
      expect(gate?.reason).toMatch(/no reputation record exists/);
    });

    it('a later stage is not held back by a blind detection pass: the missing row is not a failure', async () => {
      await f.sandbox.advance(6 * HOUR + 60_000);
      const r = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
      const budget = (r.structuredContent.gates as { gate: string; passed: boolean; reason: string }[]).find(
        (g) => g.gate === 'budget_restorable',
      );
      expect(budget).toMatchObject({ passed: true });
      expect(r.structuredContent.stage).toBe(2);
    });
  });
});
