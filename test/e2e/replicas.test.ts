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
import {
  containFromMany,
  killMidContainment,
  pidOf,
  pollStats,
  pollsIn,
  requestLog,
  startReplicas,
  takeoverMs,
} from '../helpers/replicas.js';
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
    const many = await containFromMany(sb, replicas, fleet[7] as string, { callers: 20, minutes: 3 });
    const manyContext = JSON.stringify(many).slice(0, 4_000);
    expect(many.errors, manyContext).toBe(0);
    expect(many.incidents, manyContext).toBe(1);
    expect(many.held_before, manyContext).toBeGreaterThan(50);
    // Each escrow cancelled once; one containment: a first freeze and one refund window (open, close).
    expect(many.most_cancels_per_escrow, manyContext).toBe(1);
    expect(many.cancels, manyContext).toBe(many.held_before);
    expect(many.unfreezes, manyContext).toBe(1);
    expect(many.freezes, manyContext).toBe(2);
    expect(many.truth, manyContext).toMatchObject({ frozen: true, held_escrows: 0, double_refunds: 0 });

    // 3. kill -9 mid-containment: the replica that owns the victim begins its containment and dies;
    // another finishes it.
    log = await requestLog(sb);
    const victim = fleet.find((a, i) => i > 7 && ownerOf(a) !== undefined) as string;
    const doomed = ownerOf(victim);
    const doomedServer = serverOf(doomed);
    const store = place.open(systemClock);
    try {
      const killed = await killMidContainment(sb, doomedServer, store, victim, {
        minutes: 8,
        waitMs: 4 * INTERVAL_MS + 20_000,
      });
      const killedAt = killed.killed_at;
      const killContext = JSON.stringify(killed);
      expect(killed.incident_id, killContext).not.toBeNull();
      expect(killed.status_at_kill, killContext).toBe('containing');
      expect(killed.status, killContext).toBe('contained');
      expect(killed.exact, killContext).toBe(true);

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
