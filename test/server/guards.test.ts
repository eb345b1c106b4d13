/**
 * The guard seam, over the real server and sandbox: a misconfigured containment key makes every
 * write tool refuse and nothing change on the gateway; out-of-fleet agents are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { TOOLS } from '../../src/tools/index.js';
import { errorOf, startFixture } from '../helpers/fixture.js';

// Tools that act on fleet agents (they name targets). run_postmortem also writes (its report, an event) but
// acts on no agent: with a bad key it still reports, and publishes nothing (see below).
const WRITE_TOOLS = TOOLS.filter((t) => t.targets).map((t) => t.name);

function argsFor(tool: string, agent: string): Record<string, unknown> {
  switch (tool) {
    case 'contain_agent':
      return { agent_id: agent, reason: 'guard test' };
    case 'recover_agent':
      return { incident_id: 'inc_doesnotexist', root_cause_fixed: true };
    case 'fleet_shutdown':
      return { reason: 'guard test', agent_ids: [agent] };
    case 'run_runbook':
      return { runbook: 'runaway_spending', agent_ids: [agent] };
    default:
      throw new Error(`no args for ${tool}`);
  }
}

describe('containment key separation', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox({ agents: 3, seed: 3, timeScale: 0, autoStartTraffic: false });
  });
  afterAll(() => sandbox?.close());

  const cases: [string, (s: Sandbox) => Record<string, unknown>, RegExp][] = [
    ['same key as the monitor key', (s) => ({ containmentKey: s.keys.monitor }), /differ|same/i],
    [
      "a fleet agent's own key",
      (s) => ({ containmentKey: s.keys.agents[s.fleet[1]!] }),
      /fleet agent|belongs/i,
    ],
    ['no containment key', () => ({ containmentKey: undefined }), /GREENHELIX_CONTAINMENT_KEY/],
  ];

  for (const [label, patch, message] of cases) {
    it(`${label}: every write tool refuses and nothing changes`, async () => {
      const f = await startFixture({
        sandbox,
        config: (c) => ({ ...c, greenhelix: { ...c.greenhelix, ...patch(sandbox) } }),
      });
      try {
        const agent = sandbox.fleet[0]!;
        const seq = sandbox.requestLog().at(-1)?.seq ?? 0;
        for (const tool of WRITE_TOOLS) {
          const r = await f.call(tool, argsFor(tool, agent));
          expect(r.isError, tool).toBe(true);
          const err = errorOf(r);
          expect(`${err.message} ${err.fix}`, tool).toMatch(message);
        }
        expect(sandbox.requestLog(seq).filter((x) => x.method !== 'GET')).toEqual([]);
        expect(sandbox.groundTruth(agent).frozen).toBe(false);
      } finally {
        await f.close();
      }
    });
  }

  it('without INCIDENT_FLEET and with a monitor key that cannot list agents, detection says what to set', async () => {
    const f = await startFixture({
      sandbox,
      config: (c) => ({
        ...c,
        fleet: null,
        greenhelix: { ...c.greenhelix, monitorKey: sandbox.keys.agents[sandbox.fleet[0]!] },
      }),
    });
    try {
      const r = await f.call('detect_anomalies', {});
      expect(r.isError).toBe(true);
      expect(errorOf(r)).toMatchObject({
        code: 'fleet_unknown',
        fix: expect.stringContaining('INCIDENT_FLEET'),
      });
    } finally {
      await f.close();
    }
  });

  it('refuses agents outside the fleet, even in a dry run', async () => {
    const f = await startFixture({
      sandbox,
      config: (c) => ({ ...c, fleet: [sandbox.fleet[0]!, sandbox.fleet[1]!] }),
    });
    try {
      const outside = await f.call('contain_agent', { agent_id: sandbox.fleet[2]!, reason: 'not ours' });
      expect(errorOf(outside)).toMatchObject({ code: 'agent_not_in_fleet' });
      expect(errorOf(outside).message).toContain(sandbox.fleet[2]!);
      expect(sandbox.groundTruth(sandbox.fleet[2]!).frozen).toBe(false);
      const mixed = await f.call('run_runbook', {
        runbook: 'runaway_spending',
        agent_ids: [sandbox.fleet[0]!, sandbox.fleet[2]!],
        dry_run: true,
      });
      expect(errorOf(mixed).code).toBe('agent_not_in_fleet');
    } finally {
      await f.close();
    }
  });
});
