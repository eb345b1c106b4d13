/**
 * The blast radius over the real server and sandbox (issue 9, findings 1 and 3): no call, and no run of
 * calls, contains more than a few agents without an operator's approval; and the server acts only on an
 * explicit fleet, never on the treasury or the counterparties the monitor key also lists.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { COUNTERPARTIES, type Sandbox, startSandbox, TREASURY } from '../../src/sandbox/index.js';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';

const SECRET = 'operator-secret-for-tests';

let f: Fixture | undefined;
let sandbox: Sandbox | undefined;
afterEach(async () => {
  await f?.close();
  f = undefined;
  await sandbox?.close();
  sandbox = undefined;
});

async function demoFleet(): Promise<Fixture> {
  sandbox = await startSandbox({ agents: 40, seed: 9, timeScale: 0, autoStartTraffic: false });
  f = await startFixture({ sandbox, operatorSecret: SECRET });
  return f;
}

const frozen = (s: Sandbox) => s.fleet.filter((a) => s.groundTruth(a).frozen);
const writes = (s: Sandbox, seq: number) =>
  s.requestLog(seq).filter((x) => x.method !== 'GET' && !x.path.startsWith('/_sandbox'));

describe('finding 1: no fleet-wide containment without a person', () => {
  it('run_runbook cascade_failure with every agent listed waits for approval and freezes nobody', async () => {
    const fx = await demoFleet();
    const seq = fx.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await fx.call('run_runbook', { runbook: 'cascade_failure', agent_ids: fx.sandbox.fleet });
    const err = errorOf(r);
    expect(err).toMatchObject({ code: 'approval_pending', retryable: true });
    expect(err.message).toMatch(/40 agents in one call; without an operator's approval the limit is 3/);
    expect(err.message).toMatch(/action digest [0-9a-f]{16}/);
    expect(JSON.stringify(r)).not.toContain(fx.approvalPage!.url);
    expect(frozen(fx.sandbox)).toEqual([]);
    expect(writes(fx.sandbox, seq)).toEqual([]);
    // Asking again is the status check: still pending, the same digest, still nothing frozen.
    const again = errorOf(
      await fx.call('run_runbook', {
        runbook: 'cascade_failure',
        agent_ids: [...fx.sandbox.fleet].reverse(),
      }),
    );
    expect(again.code).toBe('approval_pending');
    expect(again.message.match(/digest ([0-9a-f]{16})/)?.[1]).toBe(
      err.message.match(/digest ([0-9a-f]{16})/)?.[1],
    );
    expect(frozen(fx.sandbox)).toEqual([]);
  });

  it('splitting the work into calls of one agent does not get around it', async () => {
    const fx = await demoFleet();
    const [a, b, c, d] = fx.sandbox.fleet as [string, string, string, string];
    for (const agent of [a, b, c]) {
      const r = await fx.call('contain_agent', { agent_id: agent, reason: 'split' });
      expect(r.isError, agent).toBeFalsy();
    }
    const fourth = await fx.call('contain_agent', { agent_id: d, reason: 'split' });
    expect(errorOf(fourth).message).toMatch(/4 distinct agents acted on within 10 min/);
    expect(frozen(fx.sandbox)).toEqual([a, b, c]);
    // Acting again on an agent already counted adds nothing.
    expect((await fx.call('contain_agent', { agent_id: a, reason: 'again' })).isError).toBeFalsy();
  });

  it('once the operator approves, the same call runs once; the next one asks anew', async () => {
    const fx = await demoFleet();
    const agents = fx.sandbox.fleet.slice(0, 5);
    const args = { runbook: 'runaway_spending', agent_ids: agents, params: { reason: 'five loops' } };
    expect(errorOf(await fx.call('run_runbook', args)).code).toBe('approval_pending');
    const [request] = fx.ops.acting.book.list();
    expect(request).toMatchObject({ tool: 'run_runbook', agent_count: 5, status: 'pending' });
    // Another session (another requester) cannot use it.
    expect(fx.ops.acting.book.decide(request!.id, 'approve', request!.full_digest, 'test operator').ok).toBe(
      true,
    );
    const ran = await fx.call('run_runbook', args);
    expect(ran.isError).toBeFalsy();
    expect(frozen(fx.sandbox).sort()).toEqual([...agents].sort());
    expect(fx.ops.acting.book.get(request!.id)?.status).toBe('used');
    const next = await fx.call('run_runbook', { ...args, agent_ids: fx.sandbox.fleet.slice(5, 6) });
    expect(errorOf(next).code).toBe('approval_pending');
  });

  it('a rejection is reported and nothing changes', async () => {
    const fx = await demoFleet();
    const args = { runbook: 'cascade_failure', agent_ids: fx.sandbox.fleet.slice(0, 4) };
    expect(errorOf(await fx.call('run_runbook', args)).code).toBe('approval_pending');
    const [request] = fx.ops.acting.book.list();
    fx.ops.acting.book.decide(request!.id, 'reject', request!.full_digest, 'test operator');
    expect(errorOf(await fx.call('run_runbook', args)).code).toBe('approval_rejected');
    expect(frozen(fx.sandbox)).toEqual([]);
  });
});

describe('approval requests are not alarms', () => {
  it('two pending requests do not make their agents look like a cascade', async () => {
    const fx = await demoFleet();
    for (const agent_ids of [fx.sandbox.fleet.slice(0, 5), fx.sandbox.fleet.slice(5, 10)])
      expect(errorOf(await fx.call('run_runbook', { runbook: 'runaway_spending', agent_ids })).code).toBe(
        'approval_pending',
      );
    const r = await fx.call('detect_anomalies', {});
    expect(r.isError).toBeFalsy();
    expect(JSON.stringify(r.structuredContent)).not.toMatch(/"signal":"cascade"/);
  });
});

describe('finding 3: an explicit fleet for acting', () => {
  it('without INCIDENT_FLEET the server acts on nobody: not the treasury, not a counterparty', async () => {
    sandbox = await startSandbox({ agents: 40, seed: 9, timeScale: 0, autoStartTraffic: false });
    const s = sandbox;
    // As a user pointing the server at `agent-incident-mcp sandbox` with only the two keys.
    f = await startFixture({
      sandbox: s,
      operatorSecret: SECRET,
      config: (c) => ({ ...c, fleet: null, sharedWallets: [] }),
    });
    const seq = s.requestLog().at(-1)?.seq ?? 0;
    // Before: a dry run offered 50 agents, fleet-treasury and the counterparties among them.
    const shutdown = await f.call('fleet_shutdown', { reason: 'drill', dry_run: true });
    expect(errorOf(shutdown)).toMatchObject({
      code: 'fleet_not_configured',
      fix: expect.stringContaining('INCIDENT_FLEET'),
    });
    for (const agent of [TREASURY, COUNTERPARTIES[0]!, s.fleet[0]!]) {
      const r = await f.call('contain_agent', { agent_id: agent, reason: 'runaway loop' });
      expect(errorOf(r).code, agent).toBe('fleet_not_configured');
    }
    expect(writes(s, seq)).toEqual([]);
    // Watching still works on everything the monitor key lists.
    expect((await f.call('detect_anomalies', {})).isError).toBeFalsy();
  });

  it('a shared wallet listed in INCIDENT_FLEET is still never acted on', async () => {
    sandbox = await startSandbox({ agents: 4, seed: 9, timeScale: 0, autoStartTraffic: false });
    const s = sandbox;
    f = await startFixture({ sandbox: s, config: (c) => ({ ...c, fleet: [...s.fleet, TREASURY] }) });
    expect(f.ops.acting.actingFleet()).toEqual(s.fleet);
    expect(errorOf(await f.call('contain_agent', { agent_id: TREASURY, reason: 'runaway loop' })).code).toBe(
      'agent_not_in_fleet',
    );
  });

  it('--sandbox sets an explicit fleet: its own 40 agents, no treasury, no counterparty', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aim-fleet-'));
    const config = loadConfig({
      env: {},
      flags: { dataDir, logLevel: 'silent', sandbox: { enabled: true, agents: 40, timeScale: 0 } },
    });
    const app = await startApp(config, silentLogger());
    try {
      const acting = app.ops.acting.actingFleet();
      expect(acting).toEqual(app.sandbox!.fleet);
      expect(acting).toHaveLength(40);
      expect(acting).not.toContain(TREASURY);
      for (const c of COUNTERPARTIES) expect(acting).not.toContain(c);
      // The sandbox always has an approval page (a throwaway secret, logged), so a shutdown can be tried.
      expect(app.approvalPage?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
