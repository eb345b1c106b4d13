/**
 * Detection at fleet scale, against the embedded sandbox on loopback:
 *   1. one pass over 1,000 agents at 50 ms injected latency: everything read (the detect tool), the
 *      watcher's first tick (tiered, cold) and a steady watcher poll 30 s later: time, calls, calls by tool;
 *   2. at 200 ms: how many agents one 30 s interval covers, from the wall time of a steady 30 s cycle of
 *      the watcher (polls and probes) over 1,000 agents, and from the everything-read pass;
 *   3. the cost of the schedule on a quiet fleet (normal traffic, no incident): gateway calls per
 *      agent-minute over 10 simulated minutes, after 5 minutes of warm-up;
 *   4. a runaway loop (30/min × $150) started at a random offset in the poll cycle, 20 seeds: escrows
 *      created before the freeze and onset → detection, with the watcher's adaptive schedule.
 * Sections 1–3 run the sandbox in a process of its own (bench/lib/remote-sandbox.ts): the times and CPU
 * are the watcher's, as against a gateway elsewhere. Sandbox time stands still inside a tick (timeScale 0): the bench advances it in 1 s steps and ticks
 * after each, as the loop timer would (it wakes at the next due time, at least 1 s apart).
 * Prints tables and writes bench/results/detection-scale.json.
 *
 *   npx tsx bench/detection-scale.ts [--agents 1000] [--trials 20] [--skip-scale] [--only pass]
 * --only pass runs section 1 alone; --skip-scale runs section 4 alone.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/logger.js';
import { startWatcher } from '../src/runbooks/watcher.js';
import { type Sandbox, startSandbox } from '../src/sandbox/index.js';
import { prng } from '../src/sandbox/world.js';
import { type RemoteSandbox, spawnSandbox } from './lib/remote-sandbox.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string' },
    trials: { type: 'string' },
    'skip-scale': { type: 'boolean' },
    only: { type: 'string' },
  },
});
const AGENTS = Number(values.agents ?? 1000);
const TRIALS = Number(values.trials ?? 20);
const INTERVAL = 30_000;
const START = Date.UTC(2026, 10, 24, 2, 47, 13);
const S = 1_000;
const MIN = 60 * S;

/** The app and watcher on a sandbox: in this process (the runaway trials), or in its own (the timings). */
async function world(opts: { agents: number; seed: number; latencyMs: number }): Promise<World<Sandbox>>;
async function world(opts: {
  agents: number;
  seed: number;
  latencyMs: number;
  remote: true;
}): Promise<World<RemoteSandbox>>;
async function world(opts: { agents: number; seed: number; latencyMs: number; remote?: boolean }) {
  const sbOpts = {
    agents: opts.agents,
    seed: opts.seed,
    timeScale: 0,
    startAt: START,
    latencyMs: 0,
    autoStartTraffic: true,
  };
  const sandbox = opts.remote ? await spawnSandbox(sbOpts) : await startSandbox(sbOpts);
  // An hour of normal traffic first, so every agent has an escrow history for the pages to read.
  await sandbox.advance(60 * MIN);
  await sandbox.setFaults({ latencyMs: opts.latencyMs, jitterMs: 0 });
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-scale-'));
  const config = loadConfig({
    env: {},
    flags: {
      greenhelix: {
        baseUrl: sandbox.url,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
        agentKeys: sandbox.keys.agents,
      },
      fleet: sandbox.fleet,
      sharedWallets: sandbox.sharedWallet ? [sandbox.sharedWallet] : [],
      dataDir,
      logLevel: 'silent',
      watch: { intervalMs: INTERVAL },
    },
  });
  const app = await startApp(config, silentLogger(), { clock: sandbox.clock });
  const watcher = await startWatcher(app.ops, { schedule: false });
  return {
    sandbox,
    app,
    watcher,
    close: async () => {
      await watcher.stop();
      await app.close();
      await sandbox.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

interface World<S> {
  sandbox: S;
  app: Awaited<ReturnType<typeof startApp>>;
  watcher: Awaited<ReturnType<typeof startWatcher>>;
  close(): Promise<void>;
}

const lastSeq = async (sb: RemoteSandbox) => (await sb.requestLog()).at(-1)?.seq ?? 0;

/** Gateway calls since `seq`, by tool (the monitor key's and the containment key's alike). */
async function calls(
  sb: RemoteSandbox,
  seq: number,
): Promise<{ total: number; byTool: Record<string, number> }> {
  const byTool: Record<string, number> = {};
  let total = 0;
  for (const e of await sb.requestLog(seq)) {
    if (!e.tool) continue;
    byTool[e.tool] = (byTool[e.tool] ?? 0) + 1;
    total++;
  }
  return { total, byTool };
}

/** Wall time, and this process's CPU time (the watcher's alone: the sandbox serves from its own process). */
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; cpuMs: number; value: T }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const value = await fn();
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, value };
}

const short: Record<string, string> = {
  list_escrows: 'escrows',
  get_budget_status: 'budget',
  get_balance: 'balance',
  get_usage_summary: 'usage',
  get_agent_reputation: 'reputation',
  get_agent_identity: 'identity',
  get_metric_deltas: 'metrics',
  get_events: 'events',
};
const toolCells = (byTool: Record<string, number>) =>
  Object.fromEntries(Object.entries(byTool).map(([k, v]) => [short[k] ?? k, v]));

/** 1. One pass over the fleet at 50 ms. */
async function passAt50() {
  const w = await world({ agents: AGENTS, seed: 31, latencyMs: 50, remote: true });
  const rows: Record<string, unknown>[] = [];
  const row = (
    pass: string,
    t: { ms: number; cpuMs: number },
    c: Awaited<ReturnType<typeof calls>>,
    polled = AGENTS,
    probed = 0,
  ) =>
    rows.push({
      pass,
      agents: AGENTS,
      polled,
      probed,
      rtt_ms: 50,
      pass_s: +(t.ms / 1000).toFixed(2),
      cpu_s: +(t.cpuMs / 1000).toFixed(2),
      calls: c.total,
      ...toolCells(c.byTool),
    });
  let seq = await lastSeq(w.sandbox);
  const full = await timed(() => w.app.ops.detect({}));
  row('everything read (detect tool)', full, await calls(w.sandbox, seq));
  seq = await lastSeq(w.sandbox);
  const cold = await timed(() => w.watcher.tick());
  row('watcher, first tick (cold)', cold, await calls(w.sandbox, seq), cold.value.polled.length);
  const steady: number[] = [];
  for (let k = 0; k < 3; k++) {
    // Probes at +10 s and +20 s, the poll at +30 s.
    await w.sandbox.advance(10 * S);
    await w.watcher.tick();
    await w.sandbox.advance(10 * S);
    await w.watcher.tick();
    await w.sandbox.advance(10 * S);
    seq = await lastSeq(w.sandbox);
    const t = await timed(() => w.watcher.tick());
    steady.push(t.ms);
    // Agents whose escrows rose since are on their own (tighter) schedule: not all are due at +30 s.
    if (k === 2)
      row('watcher, poll at +30 s', t, await calls(w.sandbox, seq), t.value.polled.length, t.value.probed);
  }
  await w.close();
  return { rows, steady_poll_s: steady.map((x) => +(x / 1000).toFixed(2)) };
}

/** 2. At 200 ms: the wall time of one steady 30 s watcher cycle (poll + probes), and of a full pass. */
async function coverageAt200() {
  const w = await world({ agents: AGENTS, seed: 32, latencyMs: 200, remote: true });
  await w.watcher.tick();
  // One cycle to settle, then the measured one: ticks where the loop timer would wake (every 10 s here,
  // since every agent was first polled at the same time).
  for (let k = 0; k < 3; k++) {
    await w.sandbox.advance(10 * S);
    await w.watcher.tick();
  }
  const seq = await lastSeq(w.sandbox);
  let wall = 0;
  for (let k = 0; k < 3; k++) {
    await w.sandbox.advance(10 * S);
    wall += (await timed(() => w.watcher.tick())).ms;
  }
  const cycle = await calls(w.sandbox, seq);
  const full = await timed(() => w.app.ops.detect({}));
  await w.close();
  return {
    agents: AGENTS,
    rtt_ms: 200,
    watcher_cycle_wall_s: +(wall / 1000).toFixed(2),
    watcher_cycle_calls: cycle.total,
    agents_per_30s_watcher: Math.floor((AGENTS * INTERVAL) / wall),
    full_pass_s: +(full.ms / 1000).toFixed(2),
    agents_per_30s_full_reads: Math.floor((AGENTS * INTERVAL) / full.ms),
  };
}

/** 3. Calls per agent-minute on a quiet fleet (normal traffic), steady state, ticks every 1 s. */
async function quietCost() {
  const w = await world({ agents: AGENTS, seed: 33, latencyMs: 0, remote: true });
  for (let t = 0; t < 5 * 60; t++) {
    await w.sandbox.advance(S);
    await w.watcher.tick();
  }
  const seq = await lastSeq(w.sandbox);
  let alarms = 0;
  for (let t = 0; t < 10 * 60; t++) {
    await w.sandbox.advance(S);
    const r = await w.watcher.tick();
    alarms += r.actions.filter((a) => a.runbook).length;
  }
  const c = await calls(w.sandbox, seq);
  await w.close();
  const perAgentMin = (n: number) => +(n / AGENTS / 10).toFixed(2);
  return {
    agents: AGENTS,
    minutes: 10,
    calls: c.total,
    calls_per_agent_min: perAgentMin(c.total - (c.byTool.get_events ?? 0)),
    event_bus_reads_per_min: +((c.byTool.get_events ?? 0) / 10).toFixed(1),
    by_tool_per_agent_min: Object.fromEntries(
      Object.entries(c.byTool).map(([k, v]) => [short[k] ?? k, perAgentMin(v)]),
    ),
    monitor_calls_per_s: +(c.total / 600).toFixed(1),
    responses_run: alarms,
  };
}

/** 4. The runaway loop at a random offset in the poll cycle, one seed per trial. */
async function runawayTrial(seed: number) {
  const random = prng(1000 + seed);
  const w = await world({ agents: 20, seed, latencyMs: 0 });
  const agent = w.sandbox.fleet[3]!;
  await w.watcher.tick();
  // Two minutes of watching, then the loop starts at a random second of the 30 s cycle.
  const offset = Math.floor(random() * 30);
  for (let t = 0; t < 120 + offset; t++) {
    await w.sandbox.advance(S);
    await w.watcher.tick();
  }
  const onset = w.sandbox.clock.now();
  w.sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 150 });
  let detectedAt: number | null = null;
  let frozenAt: number | null = null;
  for (let t = 0; t < 180 && frozenAt === null; t++) {
    await w.sandbox.advance(S);
    const r = await w.watcher.tick();
    const now = w.sandbox.clock.now();
    if (detectedAt === null && r.anomalies.some((a) => a.agent_id === agent && a.severity === 'critical'))
      detectedAt = now;
    if (w.sandbox.groundTruth(agent).frozen) frozenAt = now;
  }
  const all = await w.app.ops.deps.monitor.listAllEscrows({ agent_id: agent });
  const locked = all.filter((e) => e.payer === agent && Date.parse(String(e.created_at)) >= onset);
  await w.close();
  return {
    seed,
    offset_s: offset,
    detect_s: detectedAt === null ? null : (detectedAt - onset) / 1000,
    escrows_before_freeze: locked.length,
    usd_locked: locked.reduce((n, e) => n + e.amount, 0) / 100,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const out: Record<string, unknown> = { node: process.version, at: new Date().toISOString() };
if (!values['skip-scale']) {
  const p = await passAt50();
  console.log(
    `\none detection pass over ${AGENTS} sandbox agents at 50 ms injected latency (concurrency 64)\n`,
  );
  console.table(p.rows);
  console.log(`steady polls: ${p.steady_poll_s.join(' s, ')} s`);
  out.pass_50ms = p;
}
if (!values['skip-scale'] && values.only !== 'pass') {
  const c = await coverageAt200();
  console.log('\nat 200 ms: agents one 30 s interval covers\n');
  console.table([c]);
  out.coverage_200ms = c;
  const q = await quietCost();
  console.log('\nquiet fleet: gateway calls per agent-minute (10 simulated min after 5 min warm-up)\n');
  console.table([{ ...q, by_tool_per_agent_min: undefined }]);
  console.table([q.by_tool_per_agent_min]);
  out.quiet_cost = q;
}
const trials = [];
for (let seed = 1; seed <= (values.only === 'pass' ? 0 : TRIALS); seed++)
  trials.push(await runawayTrial(seed));
const escrows = trials.map((t) => t.escrows_before_freeze);
const detect = trials.map((t) => t.detect_s ?? Number.POSITIVE_INFINITY);
const summary = {
  trials: TRIALS,
  median_escrows_before_freeze: median(escrows),
  max_escrows_before_freeze: Math.max(...escrows),
  median_detect_s: median(detect),
  max_detect_s: Math.max(...detect),
  median_usd_locked: median(trials.map((t) => t.usd_locked)),
};
if (trials.length > 0) {
  console.log('\nrunaway loop, 30/min × $150, random offset in the 30 s cycle\n');
  console.table(trials);
  console.table([summary]);
  out.runaway = { summary, trials };
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL(`./results/detection-scale${values.only ? `-${values.only}` : ''}.json`, import.meta.url),
  `${JSON.stringify(out, null, 2)}\n`,
);
