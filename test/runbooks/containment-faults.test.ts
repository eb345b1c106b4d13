/**
 * Containment through a misbehaving network and beside a second process: every run ends frozen with
 * nothing held, or says exactly what is still exposed, and its totals equal the sandbox's own ledger
 * (refund credits in the payer's wallet), with no escrow refunded twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import type { ContainResult } from '../../src/runbooks/contain.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { type RecordingProxy, startProxy } from '../contract/proxy.js';
import { type FaultPlan, faultInjector } from '../helpers/faults.js';
import { FIXTURE_START } from '../helpers/fixture.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(held = 120): Promise<{ sandbox: Sandbox; proxy: RecordingProxy; agent: string }> {
  const sandbox = await startSandbox({
    agents: 4,
    seed: 11,
    timeScale: 0,
    startAt: FIXTURE_START,
    autoStartTraffic: false,
  });
  const proxy = await startProxy(sandbox.url);
  cleanups.push(async () => {
    await proxy.close();
    await sandbox.close();
  });
  const agent = sandbox.fleet[0] as string;
  sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 150 });
  await sandbox.advance((held / 30) * 60_000);
  for (const s of sandbox.scenarios()) sandbox.stopScenario(s.id);
  return { sandbox, proxy, agent };
}

async function engine(
  sandbox: Sandbox,
  baseUrl: string,
  containment: Record<string, number> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'aim-faults-')),
) {
  const config = loadConfig({
    env: {},
    flags: {
      greenhelix: {
        baseUrl,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
        agentKeys: sandbox.keys.agents,
        timeoutMs: 4_000,
      },
      containment,
      fleet: sandbox.fleet,
      sharedWallets: sandbox.sharedWallet ? [sandbox.sharedWallet] : [],
      dataDir,
      logLevel: 'silent',
    },
  });
  const app = await startApp(config, silentLogger(), { clock: sandbox.clock });
  cleanups.push(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { app, dataDir };
}

/** The report against the sandbox's own books: exact totals, no double refund, exposure as it is. */
function expectTruth(sandbox: Sandbox, agent: string, r: ContainResult): void {
  const truth = sandbox.groundTruth(agent);
  expect(truth.double_refunds).toBe(0);
  expect(r.escrows_cancelled).toBe(truth.escrows_refunded);
  expect(r.amount_unlocked).toBe(truth.refunded_amount);
  expect(r.exposure.wallet_frozen).toBe(truth.frozen);
  if (r.status === 'contained') {
    expect(truth).toMatchObject({ frozen: true, held_escrows: 0, daily_cap: 0 });
  } else if (r.exposure.held_escrows !== null) {
    // null says the list could not be read at the end: unknown, and said so, never a guess.
    expect(r.exposure.held_escrows).toBe(truth.held_escrows);
    expect(r.exposure.held_amount).toBe(truth.held_amount);
  }
}

const cancelsPerEscrow = (proxy: RecordingProxy) => {
  const n = new Map<string, number>();
  for (const c of proxy.log) {
    const m = /^\/v1\/payments\/escrows\/([^/]+)\/cancel$/.exec(c.path);
    if (c.method === 'POST' && m) n.set(m[1] as string, (n.get(m[1] as string) ?? 0) + 1);
  }
  return n;
};

describe('containment, money-exact', () => {
  it('cancels each escrow once when the held list repeats ids across pages (offsets shifting under load)', async () => {
    const { sandbox, proxy, agent } = await world(120);
    // Every list answer repeats its first 40 rows at the end, as offset paging does while rows are added.
    proxy.intercept = async (c, res, forward) => {
      if (c.method !== 'GET' || c.path !== '/v1/payments/escrows') return false;
      const u = await forward();
      const body = JSON.parse(u.text) as { escrows: unknown[]; count: number };
      body.escrows = [...body.escrows, ...body.escrows.slice(0, 40)];
      body.count = body.escrows.length;
      res.writeHead(u.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return true;
    };
    const { app } = await engine(sandbox, proxy.url);
    const r = await app.ops.contain({ agent_id: agent, reason: 'repeating list' });
    expect(r.status).toBe('contained');
    expect(r.escrows_cancelled).toBe(120);
    expect(Math.max(...cancelsPerEscrow(proxy).values())).toBe(1);
    expectTruth(sandbox, agent, r);
  });

  it('never cancels an escrow twice when a later read still lists one it already refunded (stale page)', async () => {
    const { sandbox, proxy, agent } = await world(40);
    let firstPage: unknown[] | undefined;
    proxy.intercept = async (c, res, forward) => {
      if (c.method !== 'GET' || c.path !== '/v1/payments/escrows') return false;
      const u = await forward();
      const body = JSON.parse(u.text) as { escrows: unknown[]; count: number };
      if (!firstPage) firstPage = body.escrows;
      else body.escrows = [...body.escrows, ...firstPage.slice(0, 3)];
      body.count = body.escrows.length;
      res.writeHead(u.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return true;
    };
    const { app } = await engine(sandbox, proxy.url);
    const r = await app.ops.contain({ agent_id: agent, reason: 'stale page' });
    expect(Math.max(...cancelsPerEscrow(proxy).values())).toBe(1);
    expect(r.escrows_cancelled).toBe(40);
    expectTruth(sandbox, agent, { ...r, exposure: { ...r.exposure, held_escrows: null } });
  });

  it.each([1, 2, 3, 4, 5])(
    'through 5xx on 1 request in 10, resets and 3–5 s stalls, seed %i: frozen and nothing held, or exposure stated; totals exact',
    async (seed) => {
      const { sandbox, proxy, agent } = await world(120);
      const faults = faultInjector({ seed, error5xx: 0.1, reset: 0.05, stall: 0.03 });
      proxy.intercept = faults.intercept;
      const { app } = await engine(sandbox, proxy.url);
      const r = await app.ops.contain({ agent_id: agent, reason: `faults seed ${seed}` });
      expect(faults.counts.error5xxAfter + faults.counts.resetAfter).toBeGreaterThan(0);
      expectTruth(sandbox, agent, r);
      expect(r.status).toBe('contained');
    },
    60_000,
  );

  it('rides out a 3 s 429 storm: failed cancels are retried with backoff inside the deadline', async () => {
    const { sandbox, proxy, agent } = await world(100);
    const plan: FaultPlan = { seed: 9, storm: { startMs: 0, ms: 3_000, onCancel: true } };
    const faults = faultInjector(plan);
    proxy.intercept = faults.intercept;
    const { app } = await engine(sandbox, proxy.url);
    const r = await app.ops.contain({ agent_id: agent, reason: '429 storm' });
    expect(faults.counts.rateLimited).toBeGreaterThan(0);
    expectTruth(sandbox, agent, r);
    expect(r.status).toBe('contained');
  }, 60_000);

  it('a refreeze that fails is retried; one that never sticks is reported as unfrozen, not contained', async () => {
    const a = await world(30);
    a.proxy.intercept = faultInjector({ seed: 1, failRefreezes: 3 }).intercept;
    const ok = await (await engine(a.sandbox, a.proxy.url)).app.ops.contain({
      agent_id: a.agent,
      reason: 'x',
    });
    expect(ok.status).toBe('contained');
    expectTruth(a.sandbox, a.agent, ok);

    const b = await world(30);
    b.proxy.intercept = faultInjector({ seed: 1, failRefreezes: 10_000 }).intercept;
    const { app } = await engine(b.sandbox, b.proxy.url, { unlockDeadlineMs: 1_000 });
    const bad = await app.ops.contain({ agent_id: b.agent, reason: 'x' });
    expect(bad.status).toBe('containment_failed');
    expect(bad.exposure.wallet_frozen).toBe(false);
    expect(b.sandbox.groundTruth(b.agent).frozen).toBe(false);
    expectTruth(b.sandbox, b.agent, bad);
    expect(
      app.ops.alerts.sent.some((x) => x.incident_id === bad.incident_id && /NOT frozen/.test(x.title)),
    ).toBe(true);
    // The network heals: a second call resumes the failed incident and counts each refund once.
    b.proxy.intercept = undefined;
    const again = await app.ops.contain({ agent_id: b.agent, reason: 'again' });
    expect(again.incident_id).toBe(bad.incident_id);
    expect(again.existing).toBe(false);
    expect(again.status).toBe('contained');
    expectTruth(b.sandbox, b.agent, again);
  }, 60_000);

  it('a first freeze that fails is retried, and the result is judged by the end state: contained', async () => {
    const { sandbox, proxy, agent } = await world(30);
    // More than the client's own retries (3), so the step itself fails and containment retries it.
    let failures = 6;
    proxy.intercept = async (c, res) => {
      if (c.method !== 'POST' || !c.path.endsWith(`/${agent}/freeze`) || failures === 0) return false;
      failures--;
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'https://api.greenhelix.net/errors/service-unavailable', status: 503 }));
      return true;
    };
    const { app } = await engine(sandbox, proxy.url);
    const r = await app.ops.contain({ agent_id: agent, reason: 'first freeze fails' });
    expect(failures).toBe(0);
    expect(r.steps.filter((s) => s.action === 'freeze_wallet').map((s) => s.success)).toContain(false);
    expect(r.status).toBe('contained');
    expect(r.time_to_freeze_ms).not.toBeNull();
    expectTruth(sandbox, agent, r);
  }, 60_000);

  it('a partial containment (deadline passed in a storm) resumes on the next call and totals count every run once', async () => {
    const { sandbox, proxy, agent } = await world(80);
    const faults = faultInjector({ seed: 4, storm: { startMs: 0, ms: 60_000, onCancel: true } });
    proxy.intercept = faults.intercept;
    const { app } = await engine(sandbox, proxy.url, { unlockDeadlineMs: 1_500 });
    const first = await app.ops.contain({ agent_id: agent, reason: 'storm' });
    expect(first.status).not.toBe('contained');
    expectTruth(sandbox, agent, first);
    proxy.intercept = undefined;
    const second = await app.ops.contain({ agent_id: agent, reason: 'resume' });
    expect(second.incident_id).toBe(first.incident_id);
    expect(second.status).toBe('contained');
    expectTruth(sandbox, agent, second);
    expect(second.escrows_cancelled).toBe(80);
  }, 60_000);

  it('two engines on one store: one set of gateway actions; the other gets the same incident, never an error', async () => {
    const { sandbox, proxy, agent } = await world(60);
    const one = await engine(sandbox, proxy.url);
    const two = await engine(sandbox, proxy.url, {}, one.dataDir);
    const [a, b] = await Promise.all([
      one.app.ops.contain({ agent_id: agent, reason: 'replica one' }),
      two.app.ops.contain({ agent_id: agent, reason: 'replica two' }),
    ]);
    expect(a.incident_id).toBe(b.incident_id);
    expect([a.existing, b.existing].sort()).toEqual([false, true]);
    const posts = proxy.log.filter((c) => c.method === 'POST');
    expect(posts.filter((c) => c.path.endsWith('/unfreeze')).length).toBe(1);
    expect(Math.max(...cancelsPerEscrow(proxy).values())).toBe(1);
    expect(cancelsPerEscrow(proxy).size).toBe(60);
    expectTruth(sandbox, agent, a.existing ? b : a);
  }, 60_000);
});

describe('a second contain_agent right after the first', () => {
  it('reports the still-running event publish as pending, never as a failed step', async () => {
    const { sandbox, proxy, agent } = await world(20);
    proxy.intercept = async (c) => {
      if (c.method === 'POST' && c.path === '/v1/events') await new Promise((r) => setTimeout(r, 800));
      return false;
    };
    const { app } = await engine(sandbox, proxy.url);
    const first = await app.ops.contain({ agent_id: agent, reason: 'first' });
    const second = await app.ops.contain({ agent_id: agent, reason: 'second' });
    expect(second).toMatchObject({ existing: true, status: 'contained', incident_id: first.incident_id });
    expect(second.escrows_cancelled).toBe(20);
    const publishes = second.steps.filter((s) => s.action.startsWith('publish_'));
    expect(publishes.some((s) => s.pending)).toBe(true);
    expect(second.steps.filter((s) => !s.success && !s.pending)).toEqual([]);
  });
});
