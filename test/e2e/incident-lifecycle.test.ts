/**
 * The incident this product exists for, end to end through the MCP SDK client, against the sandbox over
 * real HTTP: a runaway loop is seen on the first pass, contained, written up, and recovered in steps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCents } from '../../src/greenhelix/money.js';
import { thresholdsFor } from '../../src/runbooks/detect.js';
import { TOOLS } from '../../src/tools/index.js';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';

const outputOf = (name: string) => TOOLS.find((t) => t.name === name)!.output;
const HOUR = 3_600_000;

describe('runaway loop: detect → contain → post-mortem → recover', () => {
  let f: Fixture;
  let agent: string;
  let incidentId: string;
  let preDailyCap: number | null;
  let scenarioId: string;

  beforeAll(async () => {
    f = await startFixture({ agents: 6 });
    agent = f.sandbox.fleet[2]!;
    preDailyCap = f.sandbox.groundTruth(agent).daily_cap;
    scenarioId = f.sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 150 });
    await f.sandbox.advance(20_000);
  });
  afterAll(() => f?.close());

  it('detects the loop on the first detect_anomalies pass', async () => {
    const before = f.sandbox.groundTruth(agent);
    expect(before.held_escrows).toBeGreaterThan(0);
    const r = await f.call('detect_anomalies', { agent_ids: f.sandbox.fleet });
    expect(r.isError).toBeFalsy();
    const parsed = outputOf('detect_anomalies').parse(r.structuredContent) as {
      anomalies: { agent_id: string; signal: string; priority: string; tier: string }[];
    };
    const mine = parsed.anomalies.filter((a) => a.agent_id === agent);
    expect(mine.map((a) => a.signal)).toContain('escrow_burst');
    expect(mine.find((a) => a.signal === 'escrow_burst')?.priority).toBe('P0');
    // Nobody else is flagged by a quiet fleet.
    expect(parsed.anomalies.filter((a) => a.agent_id !== agent && a.signal !== 'detection_failure')).toEqual(
      [],
    );
  });

  it('contains: frozen, caps 0, no held escrows, the locked amount refunded', async () => {
    await f.sandbox.advance(10_000);
    const before = f.sandbox.groundTruth(agent);
    const r = await f.call('contain_agent', { agent_id: agent, reason: 'runaway retry loop' });
    expect(r.isError).toBeFalsy();
    const out = outputOf('contain_agent').parse(r.structuredContent) as Record<string, unknown>;
    incidentId = out.incident_id as string;
    const after = f.sandbox.groundTruth(agent);
    expect(after.frozen).toBe(true);
    expect(after.daily_cap).toBe(0);
    expect(after.monthly_cap).toBe(0);
    expect(after.held_escrows).toBe(0);
    expect(out.escrows_failed).toBe(0);
    // Every held escrow came back: the amount unlocked is what was locked, to the cent.
    const unlocked = out.amount_unlocked as { amount: string; currency: string };
    expect(unlocked.currency).toBe('CREDITS');
    expect(parseCents(unlocked.amount)).toBeGreaterThanOrEqual(parseCents(before.held_amount));
    expect(parseCents(after.balance)).toBeGreaterThanOrEqual(
      parseCents(before.balance) + parseCents(before.held_amount) - 15_000,
    );
    expect(out.steps).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'freeze_wallet', success: true })]),
    );
  });

  it('a second contain_agent reports the existing incident and does nothing twice', async () => {
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await f.call('contain_agent', { agent_id: agent, reason: 'again' });
    expect(r.structuredContent.existing).toBe(true);
    expect(r.structuredContent.incident_id).toBe(incidentId);
    const writes = f.sandbox.requestLog(seq).filter((x) => x.method !== 'GET');
    expect(writes).toEqual([]);
  });

  it("the post-mortem's timeline is the recorded actions, in order", async () => {
    const r = await f.call('run_postmortem', { incident_id: incidentId });
    expect(r.isError).toBeFalsy();
    const report = r.structuredContent.report as {
      timeline: { entries: { action: string; at: number }[] } | { action: string; at: number }[];
    };
    const entries = Array.isArray(report.timeline) ? report.timeline : report.timeline.entries;
    const actions = f.ops.store.listActions(incidentId);
    for (const a of actions.filter((x) => x.phase === 'contain')) {
      expect(entries.some((e) => e.action === a.action && e.at === a.started_at)).toBe(true);
    }
    const times = entries.map((e) => e.at);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    const md = await f.client.readResource({ uri: `incident://${incidentId}/postmortem` });
    expect((md.contents[0] as { text: string }).text).toContain(incidentId);
  });

  it('recovery refuses while gates fail, then restores the recorded caps in steps', async () => {
    const refused = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: false });
    expect(refused.structuredContent.applied).toBe(false);
    expect(refused.structuredContent.gates).toEqual([
      expect.objectContaining({ gate: 'root_cause_fixed', passed: false }),
    ]);
    expect(f.sandbox.groundTruth(agent).frozen).toBe(true);

    // The person fixed the loop: the scenario stops before they state the root cause fixed.
    f.sandbox.stopScenario(scenarioId);
    const stage1 = await f.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      confirmed_by: 'test',
    });
    expect(stage1.isError).toBeFalsy();
    expect(stage1.structuredContent.applied).toBe(true);
    const truth1 = f.sandbox.groundTruth(agent);
    expect(truth1.frozen).toBe(false);
    expect(truth1.daily_cap).toBe((preDailyCap ?? 0) / 2);

    const early = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
    expect(early.structuredContent.applied).toBe(false);
    expect(early.structuredContent.gates).toEqual(
      expect.arrayContaining([expect.objectContaining({ gate: 'budget_restorable', passed: false })]),
    );

    await f.sandbox.advance(6 * HOUR);
    const stage2 = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
    expect(stage2.structuredContent.applied).toBe(true);
    expect(f.sandbox.groundTruth(agent).daily_cap).toBe((preDailyCap ?? 0) * 0.75);

    await f.sandbox.advance(18 * HOUR);
    const stage3 = await f.call('recover_agent', { incident_id: incidentId, root_cause_fixed: true });
    expect(stage3.structuredContent.applied).toBe(true);
    expect(stage3.structuredContent.status).toBe('resolved');
    expect(f.sandbox.groundTruth(agent).daily_cap).toBe(preDailyCap);
  });
});

describe('fleet_shutdown', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 4, operatorSecret: 'operator-secret-for-tests' });
  });
  afterAll(() => f?.close());

  it('waits for the operator: pending with a digest, never a URL, a secret or a code; nothing changes', async () => {
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await f.call('fleet_shutdown', { reason: 'test' });
    expect(r.structuredContent).toMatchObject({
      status: 'approval_pending',
      agent_count: 4,
      digest: expect.stringMatching(/^[0-9a-f]{16}$/),
      at_risk: { amount: '0.00', currency: 'CREDITS' },
    });
    const seen = JSON.stringify(r);
    expect(seen).not.toContain(f.approvalPage!.url);
    expect(seen).not.toContain('operator-secret-for-tests');
    expect(seen).not.toMatch(/apr_/);
    const again = await f.call('fleet_shutdown', { reason: 'test, again' });
    expect(again.structuredContent).toMatchObject({
      status: 'approval_pending',
      digest: r.structuredContent.digest,
    });
    for (const a of f.sandbox.fleet) expect(f.sandbox.groundTruth(a).frozen).toBe(false);
    expect(f.sandbox.requestLog(seq).filter((x) => x.method !== 'GET')).toEqual([]);
  });

  it('without an approval page it is refused, naming INCIDENT_OPERATOR_SECRET', async () => {
    const bare = await startFixture({ agents: 2 });
    try {
      const r = await bare.call('fleet_shutdown', { reason: 'test' });
      expect(errorOf(r)).toMatchObject({
        code: 'approval_unavailable',
        fix: expect.stringContaining('INCIDENT_OPERATOR_SECRET'),
      });
      for (const a of bare.sandbox.fleet) expect(bare.sandbox.groundTruth(a).frozen).toBe(false);
    } finally {
      await bare.close();
    }
  });
});

describe('idempotency and feedback', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 4 });
  });
  afterAll(() => f?.close());

  it('two callers at once produce one incident and one set of actions', async () => {
    const agent = f.sandbox.fleet[1]!;
    f.sandbox.startScenario('runaway_spending', agent, { rate_per_min: 20 });
    await f.sandbox.advance(60_000);
    const [a, b] = await Promise.all([
      f.call('contain_agent', { agent_id: agent, reason: 'caller one' }),
      f.call('contain_agent', { agent_id: agent, reason: 'caller two' }),
    ]);
    expect(a.structuredContent.incident_id).toBe(b.structuredContent.incident_id);
    expect([a.structuredContent.existing, b.structuredContent.existing].sort()).toEqual([false, true]);
    const actions = f.ops.store.listActions(a.structuredContent.incident_id as string);
    expect(actions.filter((x) => x.action === 'freeze_wallet')).toHaveLength(1);
    expect(actions.filter((x) => x.action === 'cancel_held_escrows')).toHaveLength(1);
    expect(f.ops.store.listIncidents({ agent_id: agent, limit: 10, offset: 0 })).toHaveLength(1);
  });

  it('a containment that missed 60 s tightens that agent’s detection, persistently', async () => {
    const agent = f.sandbox.fleet[2]!;
    const before = thresholdsFor(f.ops.deps, agent).k_sigma;
    // Detected two minutes before containment started: the SLA is already missed.
    const r = await f.ops.contain({
      agent_id: agent,
      reason: 'late',
      detected_at: f.ops.clock.now() - 120_000,
    });
    expect(r.met_sla).toBe(false);
    const pm = await f.call('run_postmortem', { incident_id: r.incident_id });
    expect(pm.structuredContent.thresholds_tightened).toBe(true);
    expect(thresholdsFor(f.ops.deps, agent).k_sigma).toBe(before - 0.5);
    expect(f.ops.store.thresholdHistory(agent)).toHaveLength(1);
    await f.call('run_postmortem', { incident_id: r.incident_id });
    expect(f.ops.store.thresholdHistory(agent)).toHaveLength(1);
    expect(thresholdsFor(f.ops.deps, f.sandbox.fleet[3]!).k_sigma).toBe(before);
  });
});
