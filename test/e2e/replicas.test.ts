/**
 * Three replicas (separate processes, `--watch`) on one PostgreSQL database, watching a sandbox fleet in a process of its
 * own; ground truth from the sandbox's request log and its books:
 * - each agent is polled by exactly one replica, about once an interval, never twice in one;
 * - 20 concurrent contain_agent calls for one agent, spread over the replicas: one incident, one set of
 *   gateway actions;
 * - kill -9 of the replica that began a containment, mid-way: its agents are polled by the others within
 *   two intervals, and one of them finishes the incident with totals equal to the sandbox's refunds.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/util/clock.js';
import { pidOf, pollStats, pollsIn, requestLog, startReplicas, takeoverMs } from '../helpers/replicas.js';
import { spawnSandbox } from '../helpers/spawn.js';
import { cleanupStores, newStorePlace } from '../helpers/stores.js';

const AGENTS = 300;
const INTERVAL_MS = 5_000;
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupStores();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// SQLite replicas (processes sharing one data dir on one host) run the same code: test/runbooks/replicas.test.ts
// runs the split on both engines, and bench/replicas.ts measures both at 3,000 agents.
describe('three replicas on one PostgreSQL database', () => {
  it('split the fleet, act once for 20 callers, and take over a killed replica', async () => {
    const place = newStorePlace('postgres');
    const dataDir = mkdtempSync(join(tmpdir(), 'aim-replicas-'));
    dirs.push(dataDir);
    const sb = await spawnSandbox(
      [
        '--agents',
        String(AGENTS),
        '--traffic',
        'none',
        '--latency-ms',
        '40',
        '--time-scale',
        '0',
        '--seed',
        '9',
      ],
      children,
    );
    const fleet = sb.info.fleet;
    const fleetSet = new Set(fleet);
    const replicas = await startReplicas(sb, children, {
      count: 3,
      env: { INCIDENT_DATABASE_URL: place.url as string },
      dataDir,
      intervalMs: INTERVAL_MS,
    });

    // 1. The split, in a steady window of four intervals after two of warm-up.
    await sleep(2 * INTERVAL_MS);
    const from = Date.now();
    await sleep(4 * INTERVAL_MS);
    const to = Date.now();
    let log = await requestLog(sb);
    const steady = pollStats(pollsIn(log, fleetSet), fleet, from, to, INTERVAL_MS);
    const context = JSON.stringify(steady);
    expect(steady.unpolled, context).toBe(0);
    expect(steady.shared, context).toBe(0);
    expect(Object.keys(steady.per_replica).length, context).toBe(3);
    for (const n of Object.values(steady.per_replica)) expect(n, context).toBeGreaterThan(AGENTS / 6);
    expect(steady.most_in_one_interval, context).toBe(1);
    expect(steady.longest_gap_intervals, context).toBeLessThan(1.5);
    expect(steady.per_interval_min, context).toBeGreaterThan(0.8);
    expect(steady.per_interval_max, context).toBeLessThan(1.1);

    const ownerOf = (agent: string) => {
      const polls = pollsIn(log, fleetSet).filter((p) => p.agent === agent);
      return polls[polls.length - 1]?.replica as string;
    };
    const serverOf = (replica: string) =>
      replicas.find((r) => r.child.pid === pidOf(replica)) as (typeof replicas)[number];

    // 2. Twenty callers, spread over the three replicas, contain one agent at once.
    const target = fleet[7] as string;
    await sb.runaway(target, 3);
    const held = (await sb.control(`/agents/${target}`)).held_escrows as number;
    expect(held).toBeGreaterThan(50);
    const since = log.at(-1)?.seq ?? 0;
    const answers = (await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (replicas[i % 3] as (typeof replicas)[number]).rpc('tools/call', {
          name: 'contain_agent',
          arguments: { agent_id: target, reason: `caller ${i}` },
        }),
      ),
    )) as { result?: { isError?: boolean; structuredContent?: { incident_id?: string } } }[];
    for (const a of answers)
      expect(a.result?.isError ?? false, JSON.stringify(a).slice(0, 2_000)).toBe(false);
    const incidents = new Set(answers.map((a) => a.result?.structuredContent?.incident_id));
    expect([...incidents]).toHaveLength(1);
    const writes = (await requestLog(sb, since)).filter(
      (r) => (r.method === 'POST' && r.path.includes(target)) || /\/escrows\/[^/]+\/cancel$/.test(r.path),
    );
    const cancels = writes.filter((r) => r.path.endsWith('/cancel'));
    expect(new Set(cancels.map((r) => r.path)).size).toBe(cancels.length);
    expect(cancels.length).toBe(held);
    expect(writes.filter((r) => r.path.endsWith(`/${target}/unfreeze`))).toHaveLength(1);
    expect(writes.filter((r) => r.path.endsWith(`/${target}/freeze`))).toHaveLength(2);
    expect(await sb.control(`/agents/${target}`)).toMatchObject({
      frozen: true,
      held_escrows: 0,
      double_refunds: 0,
    });

    // 3. kill -9 mid-containment: the replica that owns the victim begins its containment and dies.
    log = await requestLog(sb);
    const victim = fleet.find((a, i) => i > 7 && ownerOf(a) !== undefined) as string;
    const doomed = ownerOf(victim);
    const doomedServer = serverOf(doomed);
    await sb.runaway(victim, 8);
    const store = place.open(systemClock);
    try {
      void doomedServer.rpc('tools/call', {
        name: 'contain_agent',
        arguments: { agent_id: victim, reason: 'kill test' },
      });
      let incidentId: string | undefined;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && !incidentId) {
        const incident = store.findActiveIncident(victim);
        if (incident && store.listActions(incident.id).some((a) => a.action === 'cancel_held_escrows'))
          incidentId = incident.id;
        else await sleep(5);
      }
      const killedAt = Date.now();
      doomedServer.child.kill('SIGKILL');
      await once(doomedServer.child, 'exit');
      expect(incidentId).toBeDefined();
      expect(store.getIncident(incidentId as string)?.status).toBe('containing');

      // Another replica finishes it.
      let finished = store.getIncident(incidentId as string);
      const until = Date.now() + 4 * INTERVAL_MS + 20_000;
      while (Date.now() < until && finished?.status === 'containing') {
        await sleep(200);
        finished = store.getIncident(incidentId as string);
      }
      expect(finished?.status).toBe('contained');
      const truth = await sb.control(`/agents/${victim}`);
      expect(truth).toMatchObject({ frozen: true, held_escrows: 0, double_refunds: 0 });
      expect(finished?.escrows_cancelled).toBe(truth.escrows_refunded);
      expect((finished?.amount_unlocked_cents ?? 0) / 100).toBe(Number(truth.refunded_amount));

      // The dead replica's agents were polled again by the others within two intervals, and from then on
      // the two survivors cover the fleet between them.
      await sleep(Math.max(0, killedAt + 4 * INTERVAL_MS - Date.now()));
      log = await requestLog(sb);
      const polls = pollsIn(log, fleetSet);
      const took = takeoverMs(polls, doomed, killedAt);
      expect(took, 'every agent of the killed replica polled again').not.toBeNull();
      expect(took as number).toBeLessThan(2 * INTERVAL_MS);
      const after = pollStats(
        polls,
        fleet,
        killedAt + 2 * INTERVAL_MS,
        killedAt + 4 * INTERVAL_MS,
        INTERVAL_MS,
      );
      expect(after.unpolled, JSON.stringify(after)).toBe(0);
      expect(after.shared, JSON.stringify(after)).toBe(0);
      expect(Object.keys(after.per_replica)).not.toContain(doomed);
    } finally {
      store.close();
    }
    for (const r of replicas) if (r !== doomedServer) r.child.stdin?.end();
    await Promise.all(replicas.filter((r) => r !== doomedServer).map((r) => once(r.child, 'exit')));
    sb.child.kill('SIGTERM');
  }, 240_000);
});
