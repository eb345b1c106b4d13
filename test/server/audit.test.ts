/**
 * The audit trail of a real containment over MCP: each guard decision the seam made, and every request
 * that changed state on the (sandbox) gateway, each written ahead and given its outcome, in one intact
 * chain that the built CLI's verify-audit accepts.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditRecord, verifyAudit } from '../../src/incidents/index.js';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';
import { CLI } from '../helpers/spawn.js';

describe('audit log of a containment', () => {
  let f: Fixture;
  let agent: string;
  let records: AuditRecord[];
  let sandboxWrites: { method: string; path: string; status: number }[];

  beforeAll(async () => {
    f = await startFixture({ agents: 6 });
    agent = f.sandbox.fleet[1]!;
    const id = f.sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 150 });
    await f.sandbox.advance(20_000);
    f.sandbox.stopScenario(id);
    const since = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    const r = await f.call('contain_agent', { agent_id: agent, reason: 'runaway retry loop' });
    expect(r.isError).toBeFalsy();
    // Out of the fleet: refused by the blast-radius guard, and recorded as refused.
    const refused = await f.call('contain_agent', { agent_id: 'not-in-fleet', reason: 'outside the fleet' });
    expect(errorOf(refused).code).toBe('agent_not_in_fleet');
    // Containment publishes its event in the background: wait until every write has its outcome.
    for (let i = 0; i < 100; i++) {
      f.ops.store.audit.flush();
      records = [...f.ops.store.audit.records()];
      if (verifyAudit(records, records.length).open_writes.length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    sandboxWrites = f.sandbox
      .requestLog(since)
      .filter((x) => x.method !== 'GET' && x.caller !== null)
      .map(({ method, path, status }) => ({ method, path, status }));
  });
  afterAll(() => f?.close());

  const data = (r: AuditRecord) => JSON.parse(r.data) as Record<string, unknown>;

  it('records each guard decision of the call, allowed and refused', () => {
    const guards = records.filter((r) => r.kind === 'guard').map(data);
    const key = (agent_ids: string[]) => ({
      guard: 'containment_key',
      allowed: true,
      tool: 'contain_agent',
      agent_ids,
      reason: expect.any(String),
    });
    expect(guards).toEqual([
      key([agent]),
      { guard: 'acting_fleet', allowed: true, tool: 'contain_agent', agent_ids: [agent], reason: 'allowed' },
      { guard: 'blast_radius', allowed: true, tool: 'contain_agent', agent_ids: [agent], reason: 'admitted' },
      key(['not-in-fleet']),
      {
        guard: 'acting_fleet',
        allowed: false,
        tool: 'contain_agent',
        agent_ids: ['not-in-fleet'],
        reason: expect.stringMatching(/^agent_not_in_fleet: /),
      },
    ]);
  });

  it('records every state-changing request the gateway received, before it was sent, with its outcome', () => {
    const intents = records.filter((r) => r.kind === 'gateway_write');
    const outcomes = new Map(
      records
        .filter((r) => r.kind === 'gateway_outcome')
        .map((r) => [data(r).intent as number, { ...data(r), seq: r.seq } as Record<string, unknown>]),
    );
    expect(sandboxWrites.length).toBeGreaterThan(3); // freeze, caps, one cancel per held escrow…
    expect(intents.map((r) => ({ method: data(r).method, path: data(r).route }))).toEqual(
      sandboxWrites.map(({ method, path }) => ({ method, path })),
    );
    for (const [i, r] of intents.entries()) {
      const o = outcomes.get(r.seq);
      expect(o, `outcome of record ${r.seq}`).toBeDefined();
      expect(o!.seq as number).toBeGreaterThan(r.seq);
      expect(o!.status).toBe(sandboxWrites[i]!.status);
      // Every write names the agent it acts for, cancels included (their params name only the escrow).
      expect(data(r).agent_id).toBe(agent);
    }
    const cancels = intents.map(data).filter((d) => d.tool === 'cancel_escrow');
    expect(cancels.length).toBe(f.sandbox.groundTruth(agent).escrows_refunded ?? cancels.length);
    expect(
      cancels.every((d) => typeof d.target === 'string' && d.key === f.ops.deps.actor!.keyHashPrefix),
    ).toBe(true);
  });

  it('is one intact chain, and the built CLI says so (exit 0)', () => {
    expect(verifyAudit(records, records.length)).toMatchObject({ ok: true, open_writes: [] });
    const r = spawnSync(
      process.execPath,
      [CLI, 'verify-audit', '--store', join(f.dataDir, 'incidents.sqlite')],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^audit log intact: \d+ records/);
    expect(r.status).toBe(0);
  });

  it('the built CLI exits 2 with one line for a missing store', () => {
    const r = spawnSync(process.execPath, [CLI, 'verify-audit', '--store', join(f.dataDir, 'nope.sqlite')], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringContaining('no incident store at')]);
  });
});

describe('audit log of a fleet shutdown request', () => {
  it('records the approval guard holding it back, with the digest of the pending request', async () => {
    const f = await startFixture({ agents: 4, operatorSecret: 'operator-secret-for-tests' });
    try {
      const pending = await f.call('fleet_shutdown', { reason: 'cascade drill' });
      const digest = pending.structuredContent.digest as string;
      expect(pending.structuredContent.status).toBe('approval_pending');
      expect(digest).toBeTruthy();
      const decisions = [...f.ops.store.audit.records()]
        .filter((r) => r.kind === 'guard')
        .map((r) => JSON.parse(r.data) as { guard: string; allowed: boolean; reason: string })
        .filter((d) => d.guard === 'fleet_shutdown_approval');
      expect(decisions).toEqual([
        expect.objectContaining({ allowed: false, reason: `pending digest ${digest}` }),
      ]);
      expect(f.sandbox.fleet.every((a) => !f.sandbox.groundTruth(a).frozen)).toBe(true);
    } finally {
      await f.close();
    }
  });
});
