/**
 * Replicas on one store, measured: three server processes (`--watch`) watching a sandbox fleet of 3,000
 * agents in a process of its own, for each store engine:
 *   polls per agent per interval — from the sandbox's request log (each poll reads the agent's budget once;
 *                                  the replica is named in the User-Agent), over a steady window;
 *   20 callers                   — concurrent contain_agent calls for one agent, spread over the replicas:
 *                                  incidents made, and the gateway writes (from the sandbox's request log);
 *   takeover                     — kill -9 of the replica with the most agents while it contains one of
 *                                  them: whether another finishes the incident with the gateway's totals,
 *                                  and the time until every agent it had polled is polled by a survivor;
 *   store throughput             — the store's hot paths, in this process: a write-ahead action pair
 *                                  (begin + finish), a detection pass's save and load of 1,000 agents'
 *                                  state, and an alert de-duplication claim.
 * Prints a table and writes bench/results/replicas.json.
 *
 *   npx tsx bench/replicas.ts [--agents 3000] [--interval-ms 30000] [--engines sqlite,postgres]
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type IncidentStore, openStore } from '../src/incidents/index.js';
import { PgDatabase } from '../src/incidents/pg.js';
import { systemClock } from '../src/util/clock.js';
import { type PgCluster, startCluster } from '../test/helpers/postgres.js';
import {
  containFromMany,
  type KilledMidway,
  killMidContainment,
  type ManyCallers,
  type PollStats,
  pidOf,
  pollStats,
  pollsIn,
  requestLog,
  startReplicas,
  takeoverMs,
} from '../test/helpers/replicas.js';
import { spawnSandbox } from '../test/helpers/spawn.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string' },
    'interval-ms': { type: 'string' },
    engines: { type: 'string' },
    'steady-intervals': { type: 'string' },
  },
});
const AGENTS = Number(values.agents ?? 3_000);
const INTERVAL_MS = Number(values['interval-ms'] ?? 30_000);
const STEADY = Number(values['steady-intervals'] ?? 3);
const ENGINES = (values.engines ?? 'sqlite,postgres').split(',');
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
let cluster: PgCluster | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Engine {
  name: string;
  env: Record<string, string>;
  dataDir: string;
  open(): IncidentStore;
}

async function engineFor(name: string): Promise<Engine> {
  const dataDir = mkdtempSync(join(tmpdir(), `aim-bench-replicas-${name}-`));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  if (name === 'sqlite')
    return { name, env: {}, dataDir, open: () => openStore({ dataDir, clock: systemClock }) };
  if (name === 'postgres') {
    // A throwaway Debian PostgreSQL cluster on loopback, fsync on (test/helpers/postgres.ts).
    cluster ??= await startCluster();
    const c = cluster;
    cleanups.push(() => c.stop());
    const admin = new PgDatabase(c.url);
    admin.exec('CREATE DATABASE bench_replicas');
    admin.close();
    const u = new URL(c.url);
    u.pathname = '/bench_replicas';
    const url = u.toString();
    return {
      name,
      env: { INCIDENT_DATABASE_URL: url },
      dataDir,
      open: () => openStore({ databaseUrl: url, clock: systemClock }),
    };
  }
  throw new Error(`--engines: unknown engine ${name} (sqlite, postgres)`);
}

interface Throughput {
  action_pairs_per_s: number;
  pass_saves_1000_agents_per_s: number;
  pass_loads_1000_agents_per_s: number;
  dedupe_claims_per_s: number;
}

function storeThroughput(store: IncidentStore): Throughput {
  const { incident } = store.claimContainment('bench-agent', {
    agent_ids: ['bench-agent'],
    primary_agent_id: 'bench-agent',
    reason: 'bench',
    kind: 'containment',
  });
  const rate = (n: number, fn: (i: number) => void) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    return Math.round((n * 1000) / (performance.now() - t0));
  };
  const action_pairs_per_s = rate(500, (i) => {
    const id = store.beginAction({
      incident_id: incident.id,
      agent_id: 'bench-agent',
      phase: 'bench',
      action: 'noop',
      params: { i },
    });
    store.finishAction(id, { success: true, result: { i } });
  });
  const rows = Array.from({ length: 1_000 }, (_, i) => ({
    agentId: `bench-${i}`,
    state: { baseline: { mean: i, n: 100 }, seen: Array.from({ length: 20 }, (_, k) => `esc_${i}_${k}`) },
  }));
  const pass_saves_1000_agents_per_s = rate(10, () => store.saveDetection(rows, 'bench'));
  const ids = rows.map((r) => r.agentId);
  const pass_loads_1000_agents_per_s = rate(10, () => store.loadDetection(ids));
  const t = Date.now();
  const dedupe_claims_per_s = rate(1_000, (i) => store.claimWindow('bench', `k${i}`, t, 60_000));
  return {
    action_pairs_per_s,
    pass_saves_1000_agents_per_s,
    pass_loads_1000_agents_per_s,
    dedupe_claims_per_s,
  };
}

interface EngineResult {
  engine: string;
  agents: number;
  interval_ms: number;
  steady: PollStats;
  /** 20 concurrent contain_agent calls for one agent, spread over the three replicas. */
  many_callers: ManyCallers;
  /** The replica with the most agents killed mid-containment; another finishes it. */
  killed_midway: KilledMidway;
  after_kill: PollStats;
  takeover_ms: number | null;
  takeover_intervals: number | null;
  throughput: Throughput;
}

async function run(name: string): Promise<EngineResult> {
  const engine = await engineFor(name);
  const sb = await spawnSandbox(
    ['--agents', String(AGENTS), '--traffic', 'none', '--time-scale', '0', '--seed', '11'],
    children,
  );
  const fleet = sb.info.fleet;
  const fleetSet = new Set(fleet);
  const replicas = await startReplicas(sb, children, {
    count: 3,
    env: engine.env,
    dataDir: engine.dataDir,
    intervalMs: INTERVAL_MS,
  });
  process.stderr.write(`${name}: 3 replicas up; warming up for 2 intervals\n`);
  await sleep(2 * INTERVAL_MS);
  const from = Date.now();
  await sleep(STEADY * INTERVAL_MS);
  const to = Date.now();
  let polls = pollsIn(await requestLog(sb), fleetSet);
  const steady = pollStats(polls, fleet, from, to, INTERVAL_MS);
  process.stderr.write(`${name}: steady window done; 20 callers contain one agent\n`);
  const manyCallers = await containFromMany(sb, replicas, fleet[7] as string, { callers: 20, minutes: 3 });
  const [doomed] = Object.entries(steady.per_replica).sort((a, b) => b[1] - a[1])[0] ?? [];
  const server = replicas.find((r) => r.child.pid === pidOf(doomed as string));
  if (!doomed || !server) throw new Error(`no replica to kill in ${JSON.stringify(steady.per_replica)}`);
  const victim = [...polls].reverse().find((p) => p.replica === doomed && p.agent !== fleet[7])
    ?.agent as string;
  process.stderr.write(`${name}: kill -9 of ${doomed} while it contains ${victim}\n`);
  const store = engine.open();
  const killedMidway = await killMidContainment(sb, server, store, victim, {
    minutes: 8,
    waitMs: 2 * INTERVAL_MS + 30_000,
  });
  store.close();
  const killedAt = killedMidway.killed_at;
  await sleep(Math.max(0, killedAt + (2 + STEADY) * INTERVAL_MS - Date.now()));
  polls = pollsIn(await requestLog(sb), fleetSet);
  const took = takeoverMs(polls, doomed, killedAt);
  const afterKill = pollStats(
    polls,
    fleet,
    killedAt + 2 * INTERVAL_MS,
    killedAt + (2 + STEADY) * INTERVAL_MS,
    INTERVAL_MS,
  );
  for (const r of replicas) if (r !== server) r.child.stdin?.end();
  await Promise.all(replicas.filter((r) => r !== server).map((r) => once(r.child, 'exit')));
  sb.child.kill('SIGTERM');
  const measured = engine.open();
  const throughput = storeThroughput(measured);
  measured.close();
  return {
    engine: name,
    agents: AGENTS,
    interval_ms: INTERVAL_MS,
    steady,
    many_callers: manyCallers,
    killed_midway: killedMidway,
    after_kill: afterKill,
    takeover_ms: took,
    takeover_intervals: took === null ? null : Number((took / INTERVAL_MS).toFixed(2)),
    throughput,
  };
}

const results: EngineResult[] = [];
try {
  for (const name of ENGINES) results.push(await run(name));
} finally {
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups) await c();
}

const col = (r: EngineResult) => [
  r.engine,
  `${r.steady.per_interval_min.toFixed(2)}–${r.steady.per_interval_max.toFixed(2)}`,
  String(r.steady.most_in_one_interval),
  `${r.steady.unpolled}/${r.steady.shared}`,
  Object.values(r.steady.per_replica).join('/'),
  `${r.many_callers.incidents} incident, ${r.many_callers.errors} errors, ${r.many_callers.cancels}/${r.many_callers.held_before} cancels (max ${r.many_callers.most_cancels_per_escrow} per escrow), ${r.many_callers.freezes} freezes, ${r.many_callers.unfreezes} unfreeze`,
  `${r.killed_midway.status_at_kill} → ${r.killed_midway.status} in ${((r.killed_midway.finished_after_ms ?? Number.NaN) / 1000).toFixed(1)} s; ${r.killed_midway.escrows_cancelled} escrows, $${((r.killed_midway.amount_unlocked_cents ?? 0) / 100).toFixed(2)}; exact: ${r.killed_midway.exact ? 'yes' : 'NO'}`,
  r.takeover_ms === null ? 'never' : `${(r.takeover_ms / 1000).toFixed(1)} s (${r.takeover_intervals} int.)`,
  `${r.after_kill.per_interval_min.toFixed(2)}–${r.after_kill.per_interval_max.toFixed(2)}, ${r.after_kill.unpolled}/${r.after_kill.shared}`,
  String(r.throughput.action_pairs_per_s),
  String(r.throughput.pass_saves_1000_agents_per_s),
  String(r.throughput.pass_loads_1000_agents_per_s),
  String(r.throughput.dedupe_claims_per_s),
];
const header = [
  'engine',
  'polls/agent/interval',
  'max in 1 interval',
  'unpolled/shared',
  'agents per replica',
  '20 concurrent contain_agent',
  'containment of the killed replica',
  'takeover',
  'after kill (rate, unpolled/shared)',
  'action pairs/s',
  '1,000-agent saves/s',
  '1,000-agent loads/s',
  'dedupe claims/s',
];
console.log(
  `\n${AGENTS} agents, 3 replicas, interval ${INTERVAL_MS / 1000} s, steady window ${STEADY} intervals\n`,
);
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of results) console.log(`| ${col(r).join(' | ')} |`);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/replicas.json', import.meta.url),
  `${JSON.stringify({ at: new Date().toISOString(), results }, null, 2)}\n`,
);
