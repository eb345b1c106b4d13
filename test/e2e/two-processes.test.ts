/**
 * Two server processes on one store, each asked to contain the same agent at the same moment, ten
 * times: one set of gateway actions every time (one freeze to start, each escrow cancelled once, counted
 * from the sandbox's own request log), one incident, and the other process answers with that incident,
 * never an error. Once on one SQLite data dir, once as two replicas on one PostgreSQL database
 * (INCIDENT_DATABASE_URL).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PgDatabase } from '../../src/incidents/index.js';
import { spawnSandbox, spawnServer } from '../helpers/spawn.js';
import { cleanupStores, ENGINES, type Engine, newStorePlace } from '../helpers/stores.js';

const TRIALS = 10;
const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'aim-two-'));
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  cleanupStores();
});

interface Logged {
  seq: number;
  method: string;
  path: string;
  status: number;
}

describe.each(ENGINES)('two processes, one store (%s)', (engine: Engine) => {
  it(`${TRIALS} trials: one set of gateway actions, one incident, no error`, async () => {
    const sb = await spawnSandbox(
      ['--agents', String(TRIALS), '--latency-ms', '20', '--time-scale', '0', '--seed', '4'],
      children,
    );
    // Ten different agents in one run: this test is about two processes on one agent, not the blast
    // radius (3 agents or 10 % per 10 min, which would refuse the second trial), so it is lifted here.
    const place = engine === 'postgres' ? newStorePlace(engine) : null;
    const env: Record<string, string> = {
      ...(place ? { INCIDENT_DATABASE_URL: place.url as string } : {}),
      INCIDENT_LOG_LEVEL: 'info',
      INCIDENT_MAX_AGENTS_PER_CALL: String(TRIALS),
      INCIDENT_MAX_FLEET_SHARE: '1',
    };
    const dir = join(dataDir, engine);
    const one = spawnServer(sb.info, dir, children, env);
    const two = spawnServer(sb.info, dir, children, env);
    await Promise.all([one.ready, two.ready]);
    for (let trial = 0; trial < TRIALS; trial++) {
      const agent = sb.info.fleet[trial] as string;
      await sb.runaway(agent, 2);
      const before = await sb.control(`/agents/${agent}`);
      const since = ((await sb.control('/requests')).requests as Logged[]).at(-1)?.seq ?? 0;

      const call = (srv: typeof one) =>
        srv.rpc('tools/call', {
          name: 'contain_agent',
          arguments: { agent_id: agent, reason: `trial ${trial}` },
        });
      const answers = (await Promise.all([call(one), call(two)])) as {
        result?: { isError?: boolean; structuredContent?: Record<string, unknown> };
      }[];
      const context = `trial ${trial}`;
      for (const a of answers) {
        expect(a.result, `${context}: ${JSON.stringify(a).slice(0, 8_000)}`).toBeDefined();
        expect(a.result?.isError ?? false, context).toBe(false);
      }
      const [a, b] = answers.map((x) => x.result?.structuredContent as Record<string, unknown>);
      expect(a?.incident_id, context).toBe(b?.incident_id);
      expect([a?.existing, b?.existing].filter((x) => x === false).length, context).toBe(1);

      const log = ((await sb.control(`/requests?since=${since}`)).requests as Logged[]).filter(
        (r) => (r.method === 'POST' && r.path.includes(agent)) || /\/escrows\/[^/]+\/cancel$/.test(r.path),
      );
      const freezes = log.filter((r) => r.path.endsWith(`/${agent}/freeze`));
      const unfreezes = log.filter((r) => r.path.endsWith(`/${agent}/unfreeze`));
      const cancels = log.filter((r) => r.path.endsWith('/cancel'));
      const perEscrow = new Map<string, number>();
      for (const c of cancels) perEscrow.set(c.path, (perEscrow.get(c.path) ?? 0) + 1);
      expect(Math.max(...perEscrow.values()), context).toBe(1);
      expect(perEscrow.size, context).toBe(before.held_escrows);
      // One containment: a first freeze and one refund window (open, close).
      expect(unfreezes.length, context).toBe(1);
      expect(freezes.length, context).toBe(2);
      const after = await sb.control(`/agents/${agent}`);
      expect(after, context).toMatchObject({ frozen: true, held_escrows: 0, double_refunds: 0 });
    }
    one.child.stdin!.end();
    two.child.stdin!.end();
    await Promise.all([once(one.child, 'exit'), once(two.child, 'exit')]);
    // The incidents are where the engine says: the PostgreSQL database, and no SQLite file beside it.
    if (place) {
      const db = new PgDatabase(place.url as string);
      expect(db.prepare('SELECT COUNT(*) AS n FROM incidents').get()).toEqual({ n: TRIALS });
      db.close();
      expect(existsSync(join(dir, 'incidents.sqlite'))).toBe(false);
    }
    sb.child.kill('SIGTERM');
  }, 180_000);
});
