/**
 * Time to freeze and time to contain an agent holding 5, 50 and 312 escrows at 200 ms injected latency:
 * the product's containment engine beside the same steps made one call at a time (the seed approach).
 * Then a mixed agent on every money path (300 held escrows, 100 pending intents, 20 active
 * subscriptions), contained by the product in one call, with the per-path counts.
 * Each run gets a fresh sandbox. Prints tables and writes bench/results/containment.json.
 *
 *   npx tsx bench/containment.ts [--latency-ms 200] [--sizes 5,50,312] [--mixed 300,100,20] [--runs 1]
 *     [--mixed-only] [--timeline]
 *
 * --mixed-only skips the escrow-only sizes; --runs repeats the mixed run (median and range reported);
 * --timeline prints the mixed run's recorded steps against the clock, in round trips, to see the
 * critical path.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { GreenHelixClient } from '../src/greenhelix/index.js';
import { silentLogger } from '../src/logger.js';
import { type Sandbox, startSandbox } from '../src/sandbox/index.js';

const { values } = parseArgs({
  options: {
    'latency-ms': { type: 'string' },
    sizes: { type: 'string' },
    mixed: { type: 'string' },
    runs: { type: 'string' },
    'mixed-only': { type: 'boolean' },
    timeline: { type: 'boolean' },
  },
});
const RUNS = Number(values.runs ?? 1);
const LATENCY = Number(values['latency-ms'] ?? 200);
const SIZES = values['mixed-only'] ? [] : (values.sizes ?? '5,50,312').split(',').map(Number);
const [MIXED_ESCROWS, MIXED_INTENTS, MIXED_SUBSCRIPTIONS] = (values.mixed ?? '300,100,20')
  .split(',')
  .map(Number) as [number, number, number];

/**
 * Creates `n` held escrows of $150 paid by `agent` the way the incident does: a runaway loop, here at
 * n per minute for one simulated minute (topping up from the shared wallet), with latency off for set-up.
 */
async function loadEscrows(sandbox: Sandbox, agent: string, n: number): Promise<void> {
  sandbox.setFaults({ latencyMs: 0, jitterMs: 0 });
  const id = sandbox.startScenario('runaway_spending', agent, { rate_per_min: n, amount: 150 });
  await sandbox.advance(60_000);
  sandbox.stopScenario(id);
  const held = sandbox.groundTruth(agent).held_escrows;
  if (held !== n) throw new Error(`set-up made ${held} held escrows, wanted ${n}`);
  sandbox.setFaults({ latencyMs: LATENCY, jitterMs: 0 });
}

async function fresh(n: number) {
  const sandbox = await startSandbox({ agents: 3, seed: 11, timeScale: 0, autoStartTraffic: false });
  const agent = sandbox.fleet[0]!;
  await loadEscrows(sandbox, agent, n);
  return { sandbox, agent };
}

/** The mixed agent: escrows as the runaway makes them, then intents and subscriptions with its own key. */
async function freshMixed() {
  const { sandbox, agent } = await fresh(MIXED_ESCROWS);
  sandbox.setFaults({ latencyMs: 0, jitterMs: 0 });
  const own = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.agents[agent]! });
  const payee = sandbox.fleet[1]!;
  for (let i = 0; i < MIXED_INTENTS; i++) await own.createIntent({ payer: agent, payee, amount: 2 });
  for (let i = 0; i < MIXED_SUBSCRIPTIONS; i++)
    await own.createSubscription({ payer: agent, payee, amount: 1, interval: 'daily' });
  await own.close();
  sandbox.setFaults({ latencyMs: LATENCY, jitterMs: 0 });
  return { sandbox, agent };
}

async function productRun(n: number, mixed = false) {
  const { sandbox, agent } = mixed ? await freshMixed() : await fresh(n);
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-contain-'));
  const config = loadConfig({
    env: {},
    flags: {
      greenhelix: {
        baseUrl: sandbox.url,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
      },
      fleet: sandbox.fleet,
      dataDir,
      logLevel: 'silent',
    },
  });
  const app = await startApp(config, silentLogger());
  const t0 = performance.now();
  const at0 = Date.now();
  const r = await app.ops.contain({ agent_id: agent, reason: 'bench' });
  const wall = performance.now() - t0;
  const truth = sandbox.groundTruth(agent);
  await app.close();
  await sandbox.close();
  rmSync(dataDir, { recursive: true, force: true });
  if (
    !truth.frozen ||
    truth.held_escrows !== 0 ||
    truth.pending_intents !== 0 ||
    truth.active_subscriptions !== 0
  )
    throw new Error(
      `product run left ${truth.held_escrows} held, ${truth.pending_intents} pending intents, ${truth.active_subscriptions} active subscriptions, frozen=${truth.frozen}`,
    );
  return {
    status: r.status,
    freeze_ms: r.time_to_freeze_ms ?? Number.NaN,
    contain_ms: wall,
    cancelled: r.escrows_cancelled,
    intents_voided: r.paths.intents.voided,
    subscriptions_cancelled: r.paths.subscriptions.cancelled,
    refund_window_ms: r.refund_window_ms ?? 0,
    timeline: r.steps.map((s) => ({
      step: s.action,
      start_rtt: +((s.started_at - at0) / LATENCY).toFixed(2),
      rtts: +(s.duration_ms / LATENCY).toFixed(2),
      end_rtt: +((s.started_at + s.duration_ms - at0) / LATENCY).toFixed(2),
    })),
  };
}

/** The seed guide's order, one call at a time, made workable (unfreeze to cancel, refreeze). */
async function sequentialRun(n: number) {
  const { sandbox, agent } = await fresh(n);
  const client = new GreenHelixClient({
    baseUrl: sandbox.url,
    apiKey: sandbox.keys.containment,
    concurrency: 1,
  });
  const t0 = performance.now();
  await client.getBudgetStatus({ agent_id: agent });
  await client.freezeWallet({ agent_id: agent });
  const freezeMs = performance.now() - t0;
  await client.setBudgetCap({ agent_id: agent, daily_cap: 0, monthly_cap: 0 });
  const held = await client.listAllEscrows({ agent_id: agent, status: 'held' });
  await client.unfreezeWallet({ agent_id: agent });
  let cancelled = 0;
  for (const e of held) {
    await client.cancelEscrow({ escrow_id: e.id });
    cancelled++;
  }
  await client.freezeWallet({ agent_id: agent });
  await client.getAgentIdentity({ agent_id: agent });
  await client.getAgentReputation({ agent_id: agent });
  const wall = performance.now() - t0;
  await client.close();
  await sandbox.close();
  return { freeze_ms: freezeMs, contain_ms: wall, cancelled };
}

const rows: Record<string, unknown>[] = [];
for (const n of SIZES) {
  const p = await productRun(n);
  const s = await sequentialRun(n);
  rows.push({
    escrows: n,
    product_freeze_ms: Math.round(p.freeze_ms),
    product_freeze_round_trips: +(p.freeze_ms / LATENCY).toFixed(2),
    product_contain_ms: Math.round(p.contain_ms),
    product_refund_window_ms: Math.round(p.refund_window_ms),
    sequential_freeze_ms: Math.round(s.freeze_ms),
    sequential_contain_ms: Math.round(s.contain_ms),
    speedup: +(s.contain_ms / p.contain_ms).toFixed(1),
    under_3s: p.contain_ms < 3000,
    under_60s_sequential: s.contain_ms < 60_000,
  });
}

const mixedRuns: Awaited<ReturnType<typeof productRun>>[] = [];
for (let i = 0; i < RUNS; i++) mixedRuns.push(await productRun(MIXED_ESCROWS, true));
const byTime = [...mixedRuns].sort((a, b) => a.contain_ms - b.contain_ms);
const m = byTime[Math.floor((byTime.length - 1) / 2)]!;
const mixed = {
  escrows: MIXED_ESCROWS,
  pending_intents: MIXED_INTENTS,
  subscriptions: MIXED_SUBSCRIPTIONS,
  status: m.status,
  freeze_ms: Math.round(m.freeze_ms),
  contain_ms: Math.round(m.contain_ms),
  contain_ms_range:
    RUNS > 1 ? `${Math.round(byTime[0]!.contain_ms)}–${Math.round(byTime.at(-1)!.contain_ms)}` : undefined,
  contain_rtts: +(m.contain_ms / LATENCY).toFixed(1),
  escrows_cancelled: m.cancelled,
  intents_voided: m.intents_voided,
  subscriptions_cancelled: m.subscriptions_cancelled,
  refund_window_ms: Math.round(m.refund_window_ms),
  under_3s: m.contain_ms < 3000,
};

console.log(
  `\ncontainment at ${LATENCY} ms injected latency (sandbox on loopback, Node ${process.version})\n`,
);
console.table(rows);
console.log(`\none agent on every money path, contained in one call (median of ${RUNS}):\n`);
console.table([mixed]);
if (values.timeline) {
  console.log('\nits recorded steps, in round trips from the call (start, length, end):\n');
  console.table(m.timeline);
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/containment.json', import.meta.url),
  `${JSON.stringify({ latency_ms: LATENCY, node: process.version, at: new Date().toISOString(), rows, mixed, mixed_timeline: m.timeline }, null, 2)}\n`,
);
