/**
 * Detection quality on the sandbox scenarios, beside the naive rule (mean + 2σ of balance deltas over
 * 30 s polls, needing 5 samples) on the same traffic:
 *   - time to detect, escrows created and CREDITS locked before the freeze, per scenario;
 *   - false alarms per agent-day on normal traffic.
 * Our watcher contains at detection; the naive rule is credited with containing at the moment it fires.
 * Prints a table and writes bench/results/detection.json.
 *
 *   npx tsx bench/detection.ts [--agents 20] [--hours 24]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type NaiveState, naiveStep } from '../src/detection/index.js';
import { formatCents } from '../src/greenhelix/money.js';
import { silentLogger } from '../src/logger.js';
import { startWatcher } from '../src/runbooks/watcher.js';
import { startSandbox } from '../src/sandbox/index.js';

const { values } = parseArgs({ options: { agents: { type: 'string' }, hours: { type: 'string' } } });
const QUIET_AGENTS = Number(values.agents ?? 20);
const QUIET_HOURS = Number(values.hours ?? 24);
const POLL = 30_000;
const WARMUP_POLLS = 60;
/** A fixed origin: the twin worlds see the same times on the detectors' grid, and a rerun repeats. */
const START = Date.UTC(2026, 10, 24, 2, 47, 13);

async function world(agents: number, traffic: boolean) {
  const sandbox = await startSandbox({
    agents,
    seed: 21,
    timeScale: 0,
    startAt: START,
    autoStartTraffic: traffic,
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-detect-'));
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
      watch: { intervalMs: POLL },
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

const SCENARIOS = [
  'runaway_spending',
  'escrow_exploitation',
  'identity_compromise',
  'service_degradation',
  'cascade_failure',
] as const;

/**
 * One scenario, twice on the same seed: our watcher (which contains at detection) in one world, the
 * naive rule watching an uncontained twin in the other, so each is judged on the same traffic.
 */
async function scenarioRun(name: (typeof SCENARIOS)[number]) {
  const limit = 6 * 120;
  const exposure = async (w: Awaited<ReturnType<typeof world>>, agent: string, t0: number) => {
    const all = await w.app.ops.deps.monitor.listAllEscrows({ agent_id: agent });
    const mine = all.filter((e) => e.payer === agent && Date.parse(String(e.created_at)) >= t0);
    return { count: mine.length, amount: mine.reduce((n, e) => n + e.amount, 0) };
  };

  const ours = await world(8, true);
  const agent = ours.sandbox.fleet[3]!;
  // Both rules get the same 30 minutes of normal traffic first: the naive rule needs history to judge.
  for (let t = 0; t < WARMUP_POLLS; t++) {
    await ours.sandbox.advance(POLL);
    await ours.watcher.tick();
  }
  const t0 = ours.sandbox.clock.now();
  ours.sandbox.startScenario(name, agent, {});
  let oursHit: { at: number; count: number; amount: number } | undefined;
  for (let t = 0; t < limit && !oursHit; t++) {
    await ours.sandbox.advance(POLL);
    const r = await ours.watcher.tick();
    if (r.actions.some((x) => x.runbook && (x.agent_id === agent || x.runbook === 'cascade_failure'))) {
      oursHit = { at: ours.sandbox.clock.now() - t0, ...(await exposure(ours, agent, t0)) };
    }
  }
  await ours.close();

  const twin = await world(8, true);
  const naive = new Map<string, NaiveState | undefined>();
  const step = () => {
    // The agent's own balance hides a loop refilled from the shared wallet; give the naive rule the
    // balance it would see if the agent paid everything itself.
    const truth = twin.sandbox.groundTruth(agent);
    const b = Math.round((Number(truth.balance) - Number(truth.shared_wallet_draws)) * 100);
    const r = naiveStep(naive.get(agent), { at: twin.sandbox.clock.now(), balance: b });
    naive.set(agent, r.state);
    return r.alert;
  };
  step();
  for (let t = 0; t < WARMUP_POLLS; t++) {
    await twin.sandbox.advance(POLL);
    step();
  }
  const t1 = twin.sandbox.clock.now();
  twin.sandbox.startScenario(name, agent, {});
  let naiveHit: { at: number; count: number; amount: number } | undefined;
  for (let t = 0; t < limit && !naiveHit; t++) {
    await twin.sandbox.advance(POLL);
    if (step()) naiveHit = { at: twin.sandbox.clock.now() - t1, ...(await exposure(twin, agent, t1)) };
  }
  await twin.close();
  const fmt = (x: typeof oursHit) =>
    x
      ? { detect_s: Math.round(x.at / 1000), escrows: x.count, locked: formatCents(x.amount) }
      : { detect_s: 'never (6 h)', escrows: '-', locked: '-' };
  return { scenario: name, ours: fmt(oursHit), naive: fmt(naiveHit) };
}

async function quietRun() {
  const w = await world(QUIET_AGENTS, true);
  const naive = new Map<string, NaiveState | undefined>();
  let oursAlarms = 0;
  let naiveAlarms = 0;
  /** What our alarms were, by signal and priority: a P2 budget warning is not a P0 page. */
  const bySignal: Record<string, number> = {};
  for (let t = 0; t < (QUIET_HOURS * 3_600_000) / POLL; t++) {
    await w.sandbox.advance(POLL);
    const r = await w.watcher.tick({ all: true });
    for (const a of r.anomalies) {
      if (a.signal === 'detection_failure' || a.severity === 'info') continue;
      oursAlarms++;
      const k = `${a.signal}:${a.priority}`;
      bySignal[k] = (bySignal[k] ?? 0) + 1;
    }
    for (const a of w.sandbox.fleet) {
      const s = naiveStep(naive.get(a), {
        at: w.sandbox.clock.now(),
        balance: Math.round(
          (Number(w.sandbox.groundTruth(a).balance) - Number(w.sandbox.groundTruth(a).shared_wallet_draws)) *
            100,
        ),
      });
      naive.set(a, s.state);
      if (s.alert) naiveAlarms++;
    }
  }
  await w.close();
  const agentDays = (QUIET_AGENTS * QUIET_HOURS) / 24;
  return {
    agent_days: agentDays,
    ours_per_agent_day: +(oursAlarms / agentDays).toFixed(3),
    naive_per_agent_day: +(naiveAlarms / agentDays).toFixed(3),
    ours_alarms: oursAlarms,
    ours_by_signal:
      Object.entries(bySignal)
        .map(([k, n]) => `${k} ×${n}`)
        .join(', ') || 'none',
  };
}

const scenarios = [];
for (const s of SCENARIOS) scenarios.push(await scenarioRun(s));
console.log(
  '\nTime to detect and exposure before the freeze (30 s polls; naive: mean + 2σ of balance deltas, 5 samples)\n',
);
console.table(
  scenarios.map((s) => ({
    scenario: s.scenario,
    ours_detect_s: s.ours.detect_s,
    ours_escrows: s.ours.escrows,
    ours_locked: s.ours.locked,
    naive_detect_s: s.naive.detect_s,
    naive_escrows: s.naive.escrows,
    naive_locked: s.naive.locked,
  })),
);
const quiet = await quietRun();
console.log(
  `\nFalse alarms on normal traffic (${QUIET_AGENTS} agents × ${QUIET_HOURS} h, polled every 30 s)\n`,
);
console.table([quiet]);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/detection.json', import.meta.url),
  `${JSON.stringify({ at: new Date().toISOString(), poll_ms: POLL, scenarios, quiet }, null, 2)}\n`,
);
