/**
 * The worst unfrozen window after a crash: a server is killed (-9) inside a refund window, with the
 * agent's wallet unfrozen, and the time until the wallet is frozen again is measured from the sandbox's
 * own state (polled every 20 ms), for the two ways a containment gets finished:
 *   restart  — the same server restarted on the same host and data dir (it sees the dead pid);
 *   replica  — a second server already running with --watch on the same data dir (it waits for the
 *              lease to expire, then its watcher resumes the containment).
 * Prints a table and writes bench/results/crash-exposure.json.
 *
 *   npx tsx bench/crash-exposure.ts [--trials 3]
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../src/incidents/index.js';
import { systemClock } from '../src/util/clock.js';
import { spawnSandbox, spawnServer } from '../test/helpers/spawn.js';

const { values } = parseArgs({ options: { trials: { type: 'string' } } });
const TRIALS = Number(values.trials ?? 3);
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function trial(mode: 'restart' | 'replica', n: number): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aim-exposure-'));
  // 120 ms of latency makes the refund window long enough to be killed inside.
  const sb = await spawnSandbox(
    ['--agents', '3', '--latency-ms', '120', '--time-scale', '0', '--seed', String(n)],
    children,
  );
  const agent = sb.info.fleet[0] as string;
  const s = await sb.control('/scenarios', {
    method: 'POST',
    body: JSON.stringify({ scenario: 'runaway_spending', agent_id: agent, rate_per_min: 100, amount: 150 }),
  });
  await sb.control('/clock/advance', { method: 'POST', body: JSON.stringify({ ms: 2 * 60_000 }) });
  await sb.control(`/scenarios/${s.id as string}`, { method: 'DELETE' });
  // The replica runs before the crash, as a second replica would: its watcher ticks every 5 s. It watches
  // another agent, so its own detection does not contain this one first; what it finishes is the dead
  // server's containment, found in the shared store.
  if (mode === 'replica')
    await spawnServer(sb.info, dataDir, children, { INCIDENT_FLEET: sb.info.fleet[1] as string }, ['--watch'])
      .ready;
  const first = spawnServer(sb.info, dataDir, children);
  await first.ready;
  void first.rpc('tools/call', { name: 'contain_agent', arguments: { agent_id: agent, reason: 'bench' } });
  const store = openStore({ dataDir, clock: systemClock });
  for (;;) {
    const inc = store.findActiveIncident(agent);
    const acts = inc ? store.listActions(inc.id) : [];
    if (acts.some((a) => a.action === 'cancel_held_escrows')) break;
    await sleep(5);
  }
  first.child.kill('SIGKILL');
  const killedAt = Date.now();
  await once(first.child, 'exit');
  store.close();
  const open = await sb.control(`/agents/${agent}`);
  if (open.frozen) throw new Error('the wallet was not open at the kill: the kill missed the refund window');
  if (mode === 'restart') {
    const again = spawnServer(sb.info, dataDir, children);
    await again.ready;
  }
  let frozenAt = 0;
  while (Date.now() - killedAt < 120_000) {
    if ((await sb.control(`/agents/${agent}`)).frozen) {
      frozenAt = Date.now();
      break;
    }
    await sleep(20);
  }
  for (const c of children.splice(0)) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  if (!frozenAt) throw new Error(`${mode}: the wallet stayed unfrozen for 120 s`);
  return frozenAt - killedAt;
}

const rows: { mode: string; ms: number[] }[] = [];
for (const mode of ['restart', 'replica'] as const) {
  const ms: number[] = [];
  for (let i = 0; i < TRIALS; i++) ms.push(await trial(mode, i + 1));
  rows.push({ mode, ms });
}
console.log('\nWallet unfrozen after a kill -9 inside the refund window, until frozen again');
console.log('| finished by | trials | min | max |');
console.log('|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.mode} | ${r.ms.length} | ${(Math.min(...r.ms) / 1000).toFixed(2)} s | ${(Math.max(...r.ms) / 1000).toFixed(2)} s |`,
  );
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/crash-exposure.json', import.meta.url),
  JSON.stringify({ at: new Date().toISOString(), lease_ttl_ms: 15_000, watch_tick_ms: 5_000, rows }, null, 2),
);
process.exit(0);
