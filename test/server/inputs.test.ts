/**
 * Strict inputs (issue 9, finding 2): an argument a tool does not know is refused, never dropped. A
 * camelCase slip on `dry_run` must not run a real containment, and `agent_id` on detect_anomalies must not
 * scan the whole fleet. The refusal names the unknown key, lists the accepted ones and suggests the near miss.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS } from '../../src/tools/index.js';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';

describe('unknown arguments are refused with the accepted names', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 3 });
  });
  afterAll(() => f?.close());

  it('contain_agent {dryRun: true} changes nothing and suggests dry_run', async () => {
    const agent = f.sandbox.fleet[0]!;
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await f.call('contain_agent', { agent_id: agent, reason: 'camelCase slip', dryRun: true });
    const err = errorOf(r);
    expect(err.code).toBe('invalid_arguments');
    expect(err.message).toContain('"dryRun"');
    expect(err.message).toMatch(/did you mean "dry_run"/);
    expect(err.fix).toMatch(/agent_id, reason, suspect_payee, dry_run/);
    expect(f.sandbox.groundTruth(agent).frozen).toBe(false);
    expect(f.sandbox.requestLog(seq).filter((x) => x.method !== 'GET')).toEqual([]);
    expect(f.ops.store.listIncidents({ limit: 10 })).toEqual([]);
  });

  it('detect_anomalies {agent_id} is refused (it would scan the whole fleet) and suggests agent_ids', async () => {
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await f.call('detect_anomalies', { agent_id: f.sandbox.fleet[1]! });
    const err = errorOf(r);
    expect(err.code).toBe('invalid_arguments');
    expect(err.message).toContain('"agent_id"');
    expect(err.message).toMatch(/did you mean "agent_ids"/);
    expect(err.fix).toContain('agent_ids');
    // Refused before any gateway read.
    expect(f.sandbox.requestLog(seq)).toEqual([]);
  });

  it('unknown keys inside a nested object are named with their path and the nested accepted names', async () => {
    const r = await f.call('run_runbook', {
      runbook: 'escrow_exploitation',
      agent_ids: [f.sandbox.fleet[0]!],
      params: { payee_id: 'merchant-x' },
      dry_run: true,
    });
    const err = errorOf(r);
    expect(err.code).toBe('invalid_arguments');
    expect(err.message).toContain('params.payee_id');
    expect(err.message).toMatch(/did you mean "payee"/);
    expect(err.fix).toMatch(/payee, open_dispute, reason/);
  });

  it('a key with no near miss lists the accepted names without a guess; tools without arguments say so', async () => {
    const r = errorOf(await f.call('list_incidents', { colour: 'red' }));
    expect(r.message).toContain('"colour"');
    expect(r.message).not.toMatch(/did you mean/);
    expect(r.fix).toMatch(/status, agent_id, limit, offset/);
    const none = errorOf(await f.call('list_runbooks', { verbose: true }));
    expect(none.message).toContain('"verbose"');
    expect(none.fix).toMatch(/takes no arguments/);
  });

  it('type errors still name the field; an unknown tool lists the tools there are', async () => {
    const bad = errorOf(await f.call('contain_agent', { agent_id: 'agent-00', reason: 'x', dry_run: 'yes' }));
    expect(bad.code).toBe('invalid_arguments');
    expect(bad.message).toMatch(/reason/);
    expect(bad.message).toMatch(/dry_run/);
    const unknown = errorOf(await f.call('contain_agents', { agent_id: 'agent-00' }));
    expect(unknown.code).toBe('unknown_tool');
    expect(unknown.message).toMatch(/did you mean "contain_agent"/);
    expect(unknown.fix).toContain('detect_anomalies');
  });

  it('every listed input schema forbids additional properties, so a host can check before calling', async () => {
    const { tools } = await f.client.listTools();
    expect(tools.length).toBe(TOOLS.length);
    for (const t of tools) expect(t.inputSchema.additionalProperties, t.name).toBe(false);
  });
});
