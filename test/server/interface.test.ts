/**
 * What a model reads, through the SDK client against the sandbox: the text of each result carries the
 * facts needed to act (a host may pass only text), contain_agent/run_runbook record the anomaly they
 * answer so the SLA runs from detection, and money is one format everywhere (decimal string + CREDITS).
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';

type Result = CallToolResult & { structuredContent: Record<string, unknown> };
const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

/** Every key path in a value whose key ends in `_cents`: amounts a model would read in cents. */
function centsKeys(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => centsKeys(v, `${path}[${i}]`));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(k.endsWith('_cents') ? [`${path}.${k}`] : []),
    ...centsKeys(v, `${path}.${k}`),
  ]);
}

/** Every `{amount, currency}` object in a value. */
function moneyObjects(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) return value.flatMap(moneyObjects);
  if (!value || typeof value !== 'object') return [];
  const o = value as Record<string, unknown>;
  return [...('currency' in o ? [o] : []), ...Object.values(o).flatMap(moneyObjects)];
}

describe('results a model can act on from text alone', () => {
  let f: Fixture;
  let agent: string;
  const seen: { tool: string; r: CallToolResult }[] = [];
  const call = async (tool: string, args: Record<string, unknown>): Promise<Result> => {
    const r = await f.call(tool, args);
    seen.push({ tool, r });
    return r;
  };
  let detected: { signal: string; priority: string; detected_at: string };
  let incidentId: string;

  beforeAll(async () => {
    // Contains several of its 4 agents within minutes: the blast radius (test/server/blast-radius.test.ts) is
    // not what this file is about, so it is lifted to the whole fleet.
    f = await startFixture({
      agents: 4,
      config: (c) => ({ ...c, guards: { maxFleetShare: 1, maxAgentsPerCall: 10 } }),
    });
    agent = f.sandbox.fleet[1]!;
    f.sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, payee: 'merchant-shady' });
    await f.sandbox.advance(20_000);
  });
  afterAll(() => f?.close());

  it('check_readiness: each failing check with its fix is in the text', async () => {
    const r = await call('check_readiness', {});
    const failed = (
      r.structuredContent.items as { item: string; passed: boolean; fix: string | null }[]
    ).filter((i) => !i.passed);
    expect(failed.length).toBeGreaterThan(0);
    const text = textOf(r);
    for (const i of failed) {
      expect(text).toContain(i.item);
      if (i.fix) expect(text).toContain(i.fix);
    }
  });

  it('detect_anomalies: agent, signal, priority, tier and the detection time are in the text', async () => {
    const r = await call('detect_anomalies', {});
    const burst = (
      r.structuredContent.anomalies as {
        agent_id: string;
        signal: string;
        priority: string;
        detected_at: string;
      }[]
    ).find((a) => a.agent_id === agent && a.signal === 'escrow_burst')!;
    expect(burst).toBeDefined();
    detected = { signal: burst.signal, priority: burst.priority, detected_at: burst.detected_at };
    const text = textOf(r);
    expect(text).toContain(`${agent} escrow_burst ${burst.priority} tier=`);
    expect(text).toContain(`detected_at=${burst.detected_at}`);
    expect(text).toMatch(/Next: contain_agent/);
  });

  it('contain_agent: decision, incident, money, suspect payee and next step are in the text', async () => {
    await f.sandbox.advance(8_000);
    const r = await call('contain_agent', {
      agent_id: agent,
      reason: 'loop to a suspect payee',
      suspect_payee: 'merchant-shady',
      anomaly: detected,
    });
    expect(r.isError).toBeFalsy();
    incidentId = r.structuredContent.incident_id as string;
    const text = textOf(r);
    expect(text).toContain(`${agent}: contained (incident ${incidentId})`);
    expect(text).toContain('Suspect payee: merchant-shady');
    const unlocked = r.structuredContent.amount_unlocked as { amount: string; currency: string };
    expect(text).toContain(
      `${r.structuredContent.escrows_cancelled} escrows cancelled, ${unlocked.amount} CREDITS unlocked`,
    );
    expect(text).toMatch(/Exposure: none/);
    expect(text).toMatch(/Next: run_postmortem/);
  });

  it('contain_agent records the anomaly it answers: signal, priority, and the SLA runs from detection', async () => {
    const incident = f.ops.store.getIncident(incidentId)!;
    expect(incident.signal).toBe('escrow_burst');
    expect(incident.priority).toBe(detected.priority);
    expect(incident.detected_at).toBe(Date.parse(detected.detected_at));
    // Detected before the 8 s the model took to call: the elapsed time counts from detection.
    expect(incident.contained_at! - incident.detected_at!).toBeGreaterThanOrEqual(8_000);
  });

  it('run_postmortem: the report body (signal, timeline, impact, recommendations) is in the text', async () => {
    const r = await call('run_postmortem', { incident_id: incidentId });
    const text = textOf(r);
    expect(text).toContain(`# Post-mortem ${incidentId}`);
    expect(text).toContain(`| Signal / priority | escrow\\_burst / ${detected.priority} |`);
    expect(text).toMatch(/## Timeline[\s\S]*freeze\\_wallet[\s\S]*## Impact[\s\S]*## Recommendations/);
    expect(text).toContain("Review merchant-shady's claim chains");
    expect(text).toMatch(/\| Cancelled \(recovered\) \| \d+ \| \d+\.\d\d CREDITS \|/);
  });

  it('get_incident: status, signal, money, suspect payee, recovery and next step are in the text', async () => {
    const r = await call('get_incident', { incident_id: incidentId });
    const text = textOf(r);
    expect(text).toContain(`${incidentId} escrow_exploitation: contained`);
    expect(text).toContain(`Signal escrow_burst, priority ${detected.priority}`);
    expect(text).toMatch(/Money: \d+\.\d\d CREDITS unlocked/);
    expect(text).toContain('Suspect payee: merchant-shady');
    expect(text).toMatch(/Next: recover_agent/);
  });

  it('recover_agent: which gate failed and why is in the text', async () => {
    const r = await call('recover_agent', { incident_id: incidentId, root_cause_fixed: false });
    expect(textOf(r)).toMatch(/Gate root_cause_fixed failed: .+/);
  });

  it('list_incidents: status, signal, priority and money per incident', async () => {
    const r = await call('list_incidents', {});
    expect(textOf(r)).toMatch(
      new RegExp(
        `${incidentId} ${agent} escrow_exploitation contained signal=escrow_burst priority=P\\d .*unlocked=\\d+\\.\\d\\d CREDITS`,
      ),
    );
  });

  it('money is one format everywhere: {amount: "0.00", currency: "CREDITS"}, never cents or "$"', async () => {
    const view = await f.client.readResource({ uri: `incident://${incidentId}` });
    const pm = await f.client.readResource({ uri: `incident://${incidentId}/postmortem` });
    const resources = [view, pm].map((x) => (x.contents[0] as { text: string }).text);
    expect(seen.length).toBeGreaterThanOrEqual(7);
    for (const { tool, r } of seen) {
      expect(centsKeys(r.structuredContent), tool).toEqual([]);
      expect(textOf(r), tool).not.toMatch(/\$\s?\d/);
      for (const m of moneyObjects(r.structuredContent)) {
        expect(m, tool).toEqual({ amount: expect.stringMatching(/^-?\d+\.\d{2}$/), currency: 'CREDITS' });
      }
    }
    expect(centsKeys(JSON.parse(resources[0]!))).toEqual([]);
    expect(moneyObjects(JSON.parse(resources[0]!)).length).toBeGreaterThan(0);
    expect(resources[1]).not.toMatch(/\$\s?\d/);
    // Alerts (MCP notifications, stderr, webhooks) show amounts the same way.
    for (const a of f.ops.alerts.sent) expect(a.title).not.toMatch(/\$\s?\d/);
  });
});

describe('the anomaly a containment answers', () => {
  let f: Fixture;
  beforeAll(async () => {
    // Contains several of its 4 agents within minutes: the blast radius (test/server/blast-radius.test.ts) is
    // not what this file is about, so it is lifted to the whole fleet.
    f = await startFixture({
      agents: 4,
      config: (c) => ({ ...c, guards: { maxFleetShare: 1, maxAgentsPerCall: 10 } }),
    });
  });
  afterAll(() => f?.close());

  it('a detection 70 s before the call misses the 60 s SLA; without one the clock starts at the call', async () => {
    const [late, plain] = [f.sandbox.fleet[0]!, f.sandbox.fleet[1]!];
    const at = new Date(f.ops.clock.now() - 70_000).toISOString();
    const r = await f.call('contain_agent', {
      agent_id: late,
      reason: 'answered late',
      anomaly: { signal: 'cost_anomaly', priority: 'P1', detected_at: at },
    });
    expect(r.structuredContent.met_sla).toBe(false);
    expect(textOf(r)).toMatch(/SLA 60 s MISSED/);
    const incident = f.ops.store.getIncident(r.structuredContent.incident_id as string)!;
    expect(incident).toMatchObject({ signal: 'cost_anomaly', priority: 'P1', detected_at: Date.parse(at) });
    const pm = await f.call('run_postmortem', { incident_id: incident.id });
    expect(textOf(pm)).toContain('| Signal / priority | cost\\_anomaly / P1 |');
    const p = await f.call('contain_agent', { agent_id: plain, reason: 'no anomaly given' });
    expect(p.structuredContent.met_sla).toBe(true);
  });

  it('run_runbook records the anomaly too', async () => {
    const agent = f.sandbox.fleet[2]!;
    const at = new Date(f.ops.clock.now() - 5_000).toISOString();
    const r = await f.call('run_runbook', {
      runbook: 'runaway_spending',
      agent_ids: [agent],
      anomaly: { signal: 'escrow_burst', priority: 'P0', detected_at: at },
    });
    expect(r.isError).toBeFalsy();
    expect(f.ops.store.getIncident(r.structuredContent.incident_id as string)).toMatchObject({
      signal: 'escrow_burst',
      priority: 'P0',
      detected_at: Date.parse(at),
    });
  });

  it.each([
    [
      'in the future',
      (now: number) => ({ signal: 'cost_anomaly', detected_at: new Date(now + 60_000).toISOString() }),
      /invalid_detected_at/,
    ],
    [
      'more than 24 h old',
      (now: number) => ({
        signal: 'cost_anomaly',
        detected_at: new Date(now - 25 * 3_600_000).toISOString(),
      }),
      /invalid_detected_at/,
    ],
    ['not an ISO time', () => ({ signal: 'cost_anomaly', detected_at: 'yesterday' }), /detected_at/],
    ['an unknown signal', () => ({ signal: 'made_up' }), /signal/],
    ['an unknown key', () => ({ signal: 'cost_anomaly', severity: 'critical' }), /severity|unrecognized/i],
  ])('refuses an anomaly %s, and changes nothing', async (_label, anomaly, message) => {
    const agent = f.sandbox.fleet[3]!;
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    for (const [tool, args] of [
      ['contain_agent', { agent_id: agent, reason: 'bad anomaly' }],
      ['run_runbook', { runbook: 'runaway_spending', agent_ids: [agent] }],
    ] as const) {
      const r = await f.call(tool, { ...args, anomaly: anomaly(f.ops.clock.now()) });
      expect(r.isError, tool).toBe(true);
      expect(textOf(r), tool).toMatch(message);
    }
    expect(f.sandbox.requestLog(seq).filter((x) => x.method !== 'GET')).toEqual([]);
    expect(f.ops.store.findActiveIncident(agent)).toBeUndefined();
  });

  it('the refusal says what to do', async () => {
    const r = await f.call('contain_agent', {
      agent_id: f.sandbox.fleet[3]!,
      reason: 'bad anomaly',
      anomaly: { signal: 'cost_anomaly', detected_at: new Date(f.ops.clock.now() + 1_000).toISOString() },
    });
    expect(errorOf(r)).toMatchObject({
      code: 'invalid_detected_at',
      fix: expect.stringMatching(/detect_anomalies/),
    });
  });
});
