/**
 * The watcher's tiered reads against the sandbox over HTTP: what a quiet poll reads, that unread checks
 * are not blind, and that a small page overrun by a loop is read again at the full size.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import { MAX_ESCROW_PAGE, MIN_ESCROW_PAGE } from '../../src/runbooks/cadence.js';
import { startWatcher, type Watcher } from '../../src/runbooks/watcher.js';
import { type Fixture, startFixture } from '../helpers/fixture.js';

let f: Fixture | undefined;
let watcher: Watcher | undefined;
afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await f?.close();
  f = undefined;
});

/** Gateway calls since `seq`, by tool, and the list_escrows limits asked for one agent. */
function callsSince(fx: Fixture, seq: number, agent?: string) {
  const log = fx.sandbox.requestLog(seq);
  const byTool: Record<string, number> = {};
  for (const e of log) if (e.tool) byTool[e.tool] = (byTool[e.tool] ?? 0) + 1;
  const limits = log
    .filter((e) => e.tool === 'list_escrows' && (!agent || e.query.includes(`agent_id=${agent}`)))
    .map((e) => Number(new URLSearchParams(e.query).get('limit')));
  return { byTool, limits, last: log.at(-1)?.seq ?? seq };
}

describe('tiered detection pass', () => {
  it('a quiet poll reads escrows (small page) and budget for every agent, slow checks for few, and reports no blind check', async () => {
    f = await startFixture({ agents: 8, config: (c) => ({ ...c, watch: { intervalMs: 30_000 } }) });
    watcher = await startWatcher(f.ops, { schedule: false });
    const first = await watcher.tick();
    expect(first.polled).toHaveLength(8);
    let seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    await f.sandbox.advance(30_000);
    const quiet = await watcher.tick();
    expect(quiet.polled).toHaveLength(8);
    const c = callsSince(f, seq);
    expect(c.byTool.get_budget_status).toBe(8);
    expect(c.byTool.list_escrows).toBe(8);
    expect(c.limits.every((l) => l === MIN_ESCROW_PAGE)).toBe(true);
    // Slow reads are spread: nowhere near one of each per agent per poll.
    expect(c.byTool.get_usage_summary ?? 0).toBeLessThan(8);
    expect(c.byTool.get_balance ?? 0).toBeLessThan(8);
    expect(quiet.anomalies.filter((a) => a.signal === 'detection_failure')).toEqual([]);
    seq = c.last;

    // A tick with `all` reads everything at the full page, as before tiers.
    await f.sandbox.advance(30_000);
    await watcher.tick({ all: true });
    const full = callsSince(f, seq);
    for (const tool of ['get_usage_summary', 'get_agent_identity', 'get_metric_deltas'])
      expect(full.byTool[tool]).toBe(8);
    // Every agent's balance, plus the shared wallet's (read every pass, fleet-level).
    expect(full.byTool.get_balance).toBe(8 + (f.sandbox.sharedWallet ? 1 : 0));
    expect(full.limits.every((l) => l === MAX_ESCROW_PAGE)).toBe(true);
  });

  it('a loop that overruns the small page between polls is read again at the full size and contained', async () => {
    f = await startFixture({
      agents: 4,
      // No probes between polls here: the poll itself must find the loop whole.
      config: (c) => ({ ...c, watch: { intervalMs: 60_000, probeIntervalMs: 3_600_000 } }),
    });
    watcher = await startWatcher(f.ops, { schedule: false });
    const agent = f.sandbox.fleet[2]!;
    await watcher.tick();
    await f.sandbox.advance(60_000);
    await watcher.tick();
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    // 30/min for a minute: 30 new escrows, three times the small page.
    f.sandbox.startScenario('runaway_spending', agent, {});
    await f.sandbox.advance(60_000);
    const r = await watcher.tick();
    expect(callsSince(f, seq, agent).limits.slice(0, 2)).toEqual([MIN_ESCROW_PAGE, MAX_ESCROW_PAGE]);
    const burst = r.anomalies.find((a) => a.agent_id === agent && a.signal === 'escrow_burst');
    expect(burst?.details.count).toBeGreaterThanOrEqual(29);
    expect(f.sandbox.groundTruth(agent).frozen).toBe(true);
  });
});

describe('first sight of an agent', () => {
  it('pages back through the history the gateway has, so a busy agent starts with its own peaks', async () => {
    f = await startFixture({ agents: 8, config: (c) => ({ ...c, watch: { intervalMs: 30_000 } }) });
    const agent = f.sandbox.fleet[2]!;
    f.sandbox.startScenario('normal_traffic', agent, { profile: 'busy' });
    await f.sandbox.advance(2 * 60 * 60_000);
    const seq = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    watcher = await startWatcher(f.ops, { schedule: false });
    const first = await watcher.tick();
    // ~20 escrows a minute for two hours: far more than one page, read by offset on first sight only.
    const offsets = f.sandbox
      .requestLog(seq)
      .filter((e) => e.tool === 'list_escrows' && e.query.includes(`agent_id=${agent}`))
      .map((e) => Number(new URLSearchParams(e.query).get('offset') ?? 0));
    expect(Math.max(...offsets)).toBeGreaterThanOrEqual(MAX_ESCROW_PAGE * 5);
    const state = f.ops.store.getDetectionState(agent) as { intervals: { count: number[] } };
    expect(state.intervals.count.filter((n) => n > 0).length).toBeGreaterThan(15);
    expect(first.anomalies.filter((a) => a.agent_id === agent && a.priority <= 'P1')).toEqual([]);
    // Later polls do not page back again.
    const seq2 = f.sandbox.requestLog().at(-1)?.seq ?? 0;
    await f.sandbox.advance(30_000);
    await watcher.tick();
    const again = f.sandbox
      .requestLog(seq2)
      .filter((e) => e.tool === 'list_escrows' && new URLSearchParams(e.query).get('offset'));
    expect(again.filter((e) => Number(new URLSearchParams(e.query).get('offset')) > 0)).toEqual([]);
  });
});

describe("the agent's own failing calls", () => {
  it('an agent reporting 70 % errors (a percentage) is failing in the pass; its neighbours are not', async () => {
    f = await startFixture({ agents: 4 });
    const agent = f.sandbox.fleet[1]!;
    const self = new GreenHelixClient({ baseUrl: f.sandbox.url, apiKey: f.sandbox.keys.agents[agent]! });
    for (const error_rate of [3, 70]) {
      await self.ingestMetrics({ agent_id: agent, metrics: { error_rate } });
      await f.sandbox.advance(60_000);
    }
    const pass = await f.ops.detect({});
    expect(pass.failing).toEqual([agent]);
  });
});
