/**
 * Detection quality on the traffic corpus (docs/TRAFFIC.md), beside the naive rule (mean + 2σ of balance
 * deltas over 30 s polls, needing 5 samples) on the same traffic:
 *   - quiet: a mixed fleet (diurnal, batch buyers, busy, payouts, new agents, cancellers) watched for days
 *     from its first hour: false P0/P1 alarms (episodes, not polls) per 40 agent-days, false freezes, and
 *     the P2 rate;
 *   - variants: each incident variant after 13 h of unwatched history (the gateway has it, the watcher
 *     pages it on first sight): onset → detect, and the escrows and money the agent committed from onset
 *     until detection, ours vs the naive rule on an uncontained twin of the same seed.
 * The watcher runs as in production (its own cadence, probes and tiers), ticked every `--step-ms` of
 * sandbox time. Prints tables and writes bench/results/detection.json.
 *
 *   npx tsx bench/detection.ts [--agents 40] [--days 3] [--step-ms 5000] [--variants a,b] [--skip-quiet]
 *     [--seed 21 | --seeds 21,22,23 [--jobs N]] [--traffic mixed|mixed_paths] [--out bench/results/detection.json]
 * --seeds runs one quiet fleet per seed, each in its own process (`--jobs` at once, default the cores),
 * and sums them: more agent-days than one process can simulate in a sitting, each seed a different fleet.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type Anomaly, type NaiveState, naiveStep } from '../src/detection/index.js';
import { formatCents } from '../src/greenhelix/money.js';
import { silentLogger } from '../src/logger.js';
import { startWatcher } from '../src/runbooks/watcher.js';
import { type Sandbox, SCENARIOS, startSandbox } from '../src/sandbox/index.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string' },
    days: { type: 'string' },
    'step-ms': { type: 'string' },
    variants: { type: 'string' },
    'skip-quiet': { type: 'boolean' },
    'skip-variants': { type: 'boolean' },
    seed: { type: 'string' },
    seeds: { type: 'string' },
    jobs: { type: 'string' },
    out: { type: 'string' },
    traffic: { type: 'string' },
  },
});
/** The quiet fleet's traffic: `mixed` (the corpus), or `mixed_paths` (half of it paying on every money path). */
const QUIET_TRAFFIC = values.traffic === 'mixed_paths' ? 'mixed_paths' : 'mixed';
const QUIET_AGENTS = Number(values.agents ?? 40);
const QUIET_DAYS = Number(values.days ?? 3);
const STEP = Number(values['step-ms'] ?? 5_000);
const SEED = Number(values.seed ?? 21);
const NAIVE_POLL = 30_000;
const HOUR = 3_600_000;
const MIN = 60_000;
/** An alarm on the same agent and signal within this gap of the last one is the same episode. */
const EPISODE_GAP = 15 * MIN;
/** A fixed origin: a rerun repeats. */
const START = Date.UTC(2026, 10, 24, 2, 47, 13);

async function world(
  agents: number,
  opts: { traffic: 'mixed' | 'mixed_paths' | 'steady'; seed: number; watch: boolean },
) {
  const sandbox = await startSandbox({
    agents,
    seed: opts.seed,
    timeScale: 0,
    startAt: START,
    traffic: opts.traffic,
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
      watch: { intervalMs: 30_000 },
    },
  });
  const app = await startApp(config, silentLogger(), { clock: sandbox.clock });
  const watcher = opts.watch ? await startWatcher(app.ops, { schedule: false }) : null;
  return {
    sandbox,
    app,
    watcher,
    close: async () => {
      await watcher?.stop();
      await app.close();
      await sandbox.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Alarms that page (P0/P1), grouped into episodes per agent and signal. */
class Episodes {
  private last = new Map<string, number>();
  readonly list: {
    agent_id: string;
    signal: string;
    priority: string;
    rule: string;
    at: number;
    summary: string;
  }[] = [];
  add(a: Anomaly): boolean {
    const key = `${a.agent_id}:${a.signal}`;
    const prev = this.last.get(key);
    this.last.set(key, a.at);
    if (prev !== undefined && a.at - prev < EPISODE_GAP) return false;
    this.list.push({
      agent_id: a.agent_id,
      signal: a.signal,
      priority: a.priority,
      rule: String(a.details.rule ?? a.details.reason ?? ''),
      at: a.at,
      summary: a.summary,
    });
    return true;
  }
}

const isPage = (a: Anomaly) =>
  (a.priority === 'P0' || a.priority === 'P1') && a.signal !== 'detection_failure';
const isP2 = (a: Anomaly) => a.priority === 'P2' && a.signal !== 'detection_failure';

async function quietRun() {
  const w = await world(QUIET_AGENTS, { traffic: QUIET_TRAFFIC, seed: SEED, watch: true });
  const pages = new Episodes();
  const warnings = new Episodes();
  const freezes: { agent_id: string; runbook: string; at: number }[] = [];
  const profiles = new Map(w.sandbox.trafficPlan.map((p) => [p.agent_id, p.params.profile]));
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  let ticks = 0;
  const naive = new Map<string, NaiveState | undefined>();
  const naiveEpisodes = new Map<string, number>();
  let naiveAlarms = 0;
  for (let t = 0; t < (QUIET_DAYS * 24 * HOUR) / STEP; t++) {
    await w.sandbox.advance(STEP);
    const r = await w.watcher!.tick();
    ticks++;
    if ((t * STEP) % NAIVE_POLL === 0)
      for (const a of w.sandbox.fleet) {
        const truth = w.sandbox.groundTruth(a);
        const b = Math.round((Number(truth.balance) - Number(truth.shared_wallet_draws)) * 100);
        const s = naiveStep(naive.get(a), { at: r.at, balance: b });
        naive.set(a, s.state);
        if (s.alert && r.at - (naiveEpisodes.get(a) ?? Number.NEGATIVE_INFINITY) >= EPISODE_GAP)
          naiveAlarms++;
        if (s.alert) naiveEpisodes.set(a, r.at);
      }
    for (const a of r.anomalies) {
      if (isPage(a)) pages.add(a);
      else if (isP2(a)) warnings.add(a);
    }
    for (const x of r.actions)
      if (x.runbook && x.incident_id) freezes.push({ agent_id: x.agent_id, runbook: x.runbook, at: r.at });
  }
  const frozenAtEnd = w.sandbox.fleet.filter((a) => w.sandbox.groundTruth(a).frozen);
  const escrows = w.sandbox.escrowRecords().length;
  await w.close();
  const agentDays = QUIET_AGENTS * QUIET_DAYS;
  const tally = (xs: { signal: string; priority: string; rule: string; agent_id: string }[]) => {
    const out: Record<string, number> = {};
    for (const x of xs) {
      const k = `${x.signal}:${x.priority}${x.rule ? `:${x.rule}` : ''} (${profiles.get(x.agent_id) ?? '?'})`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };
  return {
    agents: QUIET_AGENTS,
    days: QUIET_DAYS,
    agent_days: agentDays,
    escrows,
    p0_p1_episodes: pages.list.length,
    p0_p1_per_40_agent_days: +((pages.list.length / agentDays) * 40).toFixed(2),
    naive_alarm_episodes: naiveAlarms,
    naive_per_40_agent_days: +((naiveAlarms / agentDays) * 40).toFixed(2),
    p2_per_agent_day: +(warnings.list.length / agentDays).toFixed(2),
    false_freezes: freezes.length,
    frozen_at_end: frozenAtEnd.length,
    pages_by_signal: tally(pages.list),
    p2_by_signal: tally(warnings.list),
    // Each false page, to read: which agent (profile), when (hours from the start), and what it said.
    pages: pages.list.map((p) => ({
      ...p,
      profile: profiles.get(p.agent_id) ?? '?',
      hours_in: +((p.at - START) / HOUR).toFixed(2),
    })),
    ticks,
    wall_s: Math.round((Date.now() - t0) / 1000),
    cpu_s: Math.round((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6),
  };
}

const VARIANTS = SCENARIOS.filter((s) => s !== 'normal_traffic');
const WARM = 13 * HOUR;
const LIMIT = 6 * HOUR;

/**
 * The committed escrows of the incident's agents from onset until `until`, and every CREDITS outflow of
 * their wallets in that time (`out`): escrow holds, captures, charges, splits, withdrawals, conversions
 * (fees left out), which is what the paths beyond escrows cost.
 */
function committed(sb: Sandbox, agents: readonly string[], from: number, until: number) {
  const mine = agents.flatMap((a) =>
    sb.escrowRecords(a).filter((e) => e.created_at >= from && e.created_at <= until),
  );
  const out = agents
    .flatMap((a) => sb.transactionRecords(a))
    .filter(
      (t) =>
        t.created_at >= from &&
        t.created_at <= until &&
        t.amount < 0 &&
        t.currency === 'CREDITS' &&
        t.tx_type === 'withdrawal',
    )
    .reduce((n, t) => n - t.amount, 0);
  return { count: mine.length, cents: mine.reduce((n, e) => n + e.amount, 0), out };
}

/**
 * The agent to run a variant on: a steady one (history enough for every rule), or for the busy loop the
 * fleet's busy agent (busy from the start, as the variant means), with the variant's own busy traffic off.
 */
function subject(sb: Sandbox, name: string): { agent: string; params: Record<string, unknown> } {
  const by = (profile: string) => sb.trafficPlan.find((p) => p.params.profile === profile)?.agent_id;
  if (name === 'busy_loop') {
    const busy = by('busy');
    if (busy) return { agent: busy, params: { with_busy: false } };
  }
  return { agent: by('steady') ?? (sb.fleet[3] as string), params: {} };
}

async function variantRun(name: (typeof VARIANTS)[number], seed: number) {
  // Ours: 13 h of history nobody watched, then the watcher starts, then the incident.
  const ours = await world(8, { traffic: 'mixed', seed, watch: true });
  const { agent, params } = subject(ours.sandbox, name);
  await ours.sandbox.advance(WARM);
  const beforeSight = name === 'key_swap_before_sight';
  let id = beforeSight ? ours.sandbox.startScenario(name, agent, params) : null;
  await ours.watcher!.tick({ all: true });
  for (let t = 0; t < (30 * MIN) / STEP && !beforeSight; t++) {
    await ours.sandbox.advance(STEP);
    await ours.watcher!.tick();
  }
  id ??= ours.sandbox.startScenario(name, agent, params);
  const info = () => ours.sandbox.scenarios().find((s) => s.id === id)!;
  const truthAgents = () => info().truth?.agents ?? [agent];
  let hit: { at: number; signal: string; rule: string } | undefined;
  const started = ours.sandbox.clock.now();
  let early = 0;
  while (!hit && ours.sandbox.clock.now() - started < LIMIT) {
    await ours.sandbox.advance(STEP);
    const r = await ours.watcher!.tick();
    const a = r.anomalies.find((x) => isPage(x) && truthAgents().includes(x.agent_id));
    const onsetAt = info().onset_at;
    // A page before the incident's onset (a variant with a delayed start) is a false alarm, not a detection.
    if (a && (onsetAt === null || r.at < onsetAt)) early++;
    else if (a) hit = { at: r.at, signal: a.signal, rule: String(a.details.rule ?? a.details.reason ?? '') };
  }
  // After the watcher contained it: 30 minutes more, the scenario still trying against the frozen wallet.
  // The escrows our containment refunded must never be evidence of a page (the agent's own cancellations
  // before containment still are, and a swapped key still differs from the pin: not counted here).
  let afterContainment = 0;
  if (hit)
    for (let t = 0; t < (30 * MIN) / STEP; t++) {
      await ours.sandbox.advance(STEP);
      // What our containments had refunded before this tick (a containment inside the tick answers the
      // tick's own detection, whose evidence are the escrows it then refunds).
      const before = new Map(truthAgents().map((a) => [a, ours.app.ops.store.escrowIdsCancelledByUs(a)]));
      const r = await ours.watcher!.tick();
      for (const x of r.anomalies) {
        if (!isPage(x) || !truthAgents().includes(x.agent_id)) continue;
        const ours_ = before.get(x.agent_id) ?? new Set<string>();
        const ids = Array.isArray(x.details.escrow_ids) ? (x.details.escrow_ids as string[]) : [];
        if (ids.some((id) => ours_.has(id))) {
          afterContainment++;
          if (process.env.BENCH_DEBUG)
            process.stderr.write(
              `after containment: ${x.agent_id} ${x.signal} ${JSON.stringify({ ...x.details, escrow_ids: undefined })} incident=${ours.app.ops.store.findActiveIncident(x.agent_id)?.status}\n`,
            );
        }
      }
    }
  const onset = info().onset_at ?? started;
  const oursOut = hit
    ? {
        detect_s: Math.round((hit.at - onset) / 1000),
        by: `${hit.signal}${hit.rule ? `:${hit.rule}` : ''}`,
        ...committed(ours.sandbox, truthAgents(), onset, hit.at),
      }
    : null;
  await ours.close();

  // The naive rule on an uncontained twin: the same seed, the same warm-up, 30 s balance polls.
  const twin = await world(8, { traffic: 'mixed', seed, watch: false });
  const { agent: tAgent, params: tParams } = subject(twin.sandbox, name);
  const naive = new Map<string, NaiveState | undefined>();
  const step = (a: string) => {
    const truth = twin.sandbox.groundTruth(a);
    const b = Math.round((Number(truth.balance) - Number(truth.shared_wallet_draws)) * 100);
    const r = naiveStep(naive.get(a), { at: twin.sandbox.clock.now(), balance: b });
    naive.set(a, r.state);
    return r.alert;
  };
  for (let t = 0; t < WARM / NAIVE_POLL; t++) {
    await twin.sandbox.advance(NAIVE_POLL);
    step(tAgent);
  }
  const tid = twin.sandbox.startScenario(name, tAgent, tParams);
  const tinfo = () => twin.sandbox.scenarios().find((s) => s.id === tid)!;
  const tAgents = () => tinfo().truth?.agents ?? [tAgent];
  let naiveHit: number | undefined;
  const t1 = twin.sandbox.clock.now();
  while (naiveHit === undefined && twin.sandbox.clock.now() - t1 < LIMIT) {
    await twin.sandbox.advance(NAIVE_POLL);
    if (tAgents().map(step).some(Boolean)) naiveHit = twin.sandbox.clock.now();
  }
  const tOnset = tinfo().onset_at ?? t1;
  const naiveOut =
    naiveHit === undefined
      ? null
      : {
          detect_s: Math.round((naiveHit - tOnset) / 1000),
          ...committed(twin.sandbox, tAgents(), tOnset, naiveHit),
        };
  await twin.close();
  const fmt = (x: { detect_s: number; count: number; cents: number; out: number } | null) =>
    x
      ? {
          detect_s: x.detect_s,
          escrows: x.count,
          committed: `$${formatCents(x.cents)}`,
          out: `$${formatCents(x.out)}`,
        }
      : { detect_s: 'never (6 h)', escrows: '-', committed: '-', out: '-' };
  return {
    variant: name,
    truth: info().truth?.incident ?? null,
    ours: {
      ...fmt(oursOut),
      by: oursOut?.by ?? '-',
      pages_before_onset: early,
      pages_after_containment: afterContainment,
    },
    naive: fmt(naiveOut),
  };
}

// Every incident variant, the money paths beyond escrows (intents, splits, subscriptions, withdrawals) too.
const wanted: readonly string[] = values.variants ? values.variants.split(',') : VARIANTS;
const variants = [];
if (!values['skip-variants'])
  for (const [i, v] of VARIANTS.filter((x) => wanted.includes(x)).entries()) {
    variants.push(await variantRun(v, SEED + i));
    process.stderr.write(`${v} done\n`);
  }
if (variants.length) {
  console.log(
    `\nIncident variants after 13 h of history: onset → detect, escrows and money committed until then, and CREDITS out of the wallet by any path (out; watcher ticked every ${STEP / 1000} s; naive: 30 s balance polls, mean + 2σ)\n`,
  );
  console.table(
    variants.map((v) => ({
      variant: v.variant,
      detected_by: v.ours.by,
      pages_before_onset: v.ours.pages_before_onset,
      pages_after_containment: v.ours.pages_after_containment,
      ours_detect_s: v.ours.detect_s,
      ours_escrows: v.ours.escrows,
      ours_committed: v.ours.committed,
      ours_out: v.ours.out,
      naive_detect_s: v.naive.detect_s,
      naive_escrows: v.naive.escrows,
      naive_committed: v.naive.committed,
      naive_out: v.naive.out,
    })),
  );
}
type Quiet = Awaited<ReturnType<typeof quietRun>>;

/** One quiet run per seed, each in a child process of this script, `jobs` at a time. */
async function quietSeeds(seeds: number[], jobs: number): Promise<(Quiet & { seed: number })[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quiet-'));
  const one = (seed: number) =>
    new Promise<Quiet & { seed: number }>((resolve, reject) => {
      const out = join(dir, `${seed}.json`);
      const args = [
        ...process.execArgv,
        process.argv[1] as string,
        '--skip-variants',
        ...['--seed', String(seed), '--agents', String(QUIET_AGENTS), '--days', String(QUIET_DAYS)],
        ...['--step-ms', String(STEP), '--out', out, '--traffic', QUIET_TRAFFIC],
      ];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code !== 0) return reject(new Error(`seed ${seed}: exit ${code}`));
        resolve({ ...(JSON.parse(readFileSync(out, 'utf8')).quiet as Quiet), seed });
      });
    });
  const results: (Quiet & { seed: number })[] = [];
  const queue = [...seeds];
  await Promise.all(
    Array.from({ length: Math.min(jobs, seeds.length) }, async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) results.push(await one(s));
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  return results.sort((a, b) => a.seed - b.seed);
}

/** Several quiet runs as one: counts summed, rates over the summed agent-days. */
function sumQuiet(runs: readonly (Quiet & { seed: number })[]) {
  const sum = (f: (q: Quiet) => number) => runs.reduce((n, q) => n + f(q), 0);
  const merge = (f: (q: Quiet) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const q of runs) for (const [k, v] of Object.entries(f(q))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const agentDays = sum((q) => q.agent_days);
  const episodes = sum((q) => q.p0_p1_episodes);
  const naive = sum((q) => q.naive_alarm_episodes);
  return {
    seeds: runs.map((q) => q.seed),
    agents: QUIET_AGENTS,
    days: QUIET_DAYS,
    agent_days: agentDays,
    escrows: sum((q) => q.escrows),
    p0_p1_episodes: episodes,
    p0_p1_per_40_agent_days: +((episodes / agentDays) * 40).toFixed(2),
    naive_alarm_episodes: naive,
    naive_per_40_agent_days: +((naive / agentDays) * 40).toFixed(2),
    p2_per_agent_day: +(sum((q) => q.p2_per_agent_day * q.agent_days) / agentDays).toFixed(2),
    false_freezes: sum((q) => q.false_freezes),
    frozen_at_end: sum((q) => q.frozen_at_end),
    pages_by_signal: merge((q) => q.pages_by_signal),
    p2_by_signal: merge((q) => q.p2_by_signal),
    pages: runs.flatMap((q) => q.pages.map((p) => ({ ...p, seed: q.seed }))),
    ticks: sum((q) => q.ticks),
    wall_s: Math.max(...runs.map((q) => q.wall_s)),
    cpu_s: sum((q) => q.cpu_s),
    runs,
  };
}

const seeds = values.seeds?.split(',').map(Number);
const quiet = values['skip-quiet']
  ? null
  : seeds
    ? sumQuiet(await quietSeeds(seeds, Number(values.jobs ?? availableParallelism())))
    : await quietRun();
if (quiet) {
  console.log(
    `\nFalse alarms on the mixed corpus (${quiet.agents} agents × ${quiet.days} days, from first sight${seeds ? `, seeds ${seeds.join(', ')}` : ''})\n`,
  );
  const row = (q: Quiet, label: string) => ({
    run: label,
    agent_days: +q.agent_days.toFixed(1),
    escrows: q.escrows,
    'P0/P1 episodes': q.p0_p1_episodes,
    'per 40 agent-days': q.p0_p1_per_40_agent_days,
    false_freezes: q.false_freezes,
    'P2 per agent-day': q.p2_per_agent_day,
    'naive alarms per 40 agent-days': q.naive_per_40_agent_days,
  });
  const runs = (quiet as { runs?: (Quiet & { seed: number })[] }).runs;
  console.table(
    runs ? [...runs.map((q) => row(q, `seed ${q.seed}`)), row(quiet, 'all')] : [row(quiet, `seed ${SEED}`)],
  );
  console.log('P0/P1 by signal (profile):', quiet.pages_by_signal);
  console.log('P2 by signal (profile):', quiet.p2_by_signal);
}
const outFile = values.out ?? new URL('./results/detection.json', import.meta.url).pathname;
mkdirSync(join(outFile, '..'), { recursive: true });
writeFileSync(
  outFile,
  `${JSON.stringify({ at: new Date().toISOString(), step_ms: STEP, seed: seeds ?? SEED, variants, quiet }, null, 2)}\n`,
);
