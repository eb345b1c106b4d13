/**
 * The money-path scenarios on the sandbox: each moves money the way its incident does, declares its
 * ground truth, and is contained end to end by one contain_agent call, after which the sandbox's books
 * show nothing pending, nothing active and no more money leaving, however long the scenario keeps going.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { FIXTURE_START } from '../helpers/fixture.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ sandbox: Sandbox; agent: string }> {
  const sandbox = await startSandbox({
    agents: 3,
    seed: 5,
    timeScale: 0,
    startAt: FIXTURE_START,
    autoStartTraffic: false,
  });
  cleanups.push(() => sandbox.close());
  return { sandbox, agent: sandbox.fleet[0] as string };
}

async function contain(sandbox: Sandbox, agent: string) {
  const dataDir = mkdtempSync(join(tmpdir(), 'aim-money-scn-'));
  const config = loadConfig({
    env: {},
    flags: {
      greenhelix: {
        baseUrl: sandbox.url,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
        agentKeys: sandbox.keys.agents,
        timeoutMs: 4_000,
      },
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
  return app.ops.contain({ agent_id: agent, reason: 'money-path scenario' });
}

/** CREDITS balance plus other currencies at their CREDITS rate is not needed: money out is CREDITS here. */
const balanceCents = (sb: Sandbox, agent: string) => Math.round(Number(sb.groundTruth(agent).balance) * 100);

describe('money-path scenarios', () => {
  it('intent_loop: pending intents pile up; contained: none pending, and no capture or new intent after', async () => {
    const { sandbox, agent } = await setup();
    const id = sandbox.startScenario('intent_loop', agent, {
      rate_per_min: 20,
      amount: 30,
      capture_ratio: 0.4,
    });
    await sandbox.advance(3 * 60_000);
    const info = sandbox.scenarios().find((s) => s.id === id);
    expect(info?.truth).toMatchObject({
      incident: 'runaway_spending',
      agents: [agent],
      details: { path: 'intents' },
    });
    expect(info?.onset_at).not.toBeNull();
    const records = sandbox.intentRecords(agent);
    expect(records.filter((i) => i.status === 'pending').length).toBeGreaterThan(5);
    expect(records.filter((i) => i.status === 'settled').length).toBeGreaterThan(5);
    const r = await contain(sandbox, agent);
    expect(r.status).toBe('contained');
    expect(r.paths.intents.voided).toBe(
      sandbox.intentRecords(agent).filter((i) => i.status === 'voided').length,
    );
    expect(r.paths.clawback.intents).toBe(
      sandbox.intentRecords(agent).filter((i) => i.status === 'settled').length,
    );
    // The loop keeps running: the freeze stops captures, the caps stop new intents (their fee).
    const after = balanceCents(sandbox, agent);
    const count = sandbox.intentRecords(agent).length;
    await sandbox.advance(3 * 60_000);
    expect(sandbox.groundTruth(agent).pending_intents).toBe(0);
    expect(sandbox.intentRecords(agent)).toHaveLength(count);
    expect(balanceCents(sandbox, agent)).toBe(after);
  });

  it('split_loop: money leaves at once to each payee; contained: no split goes through after', async () => {
    const { sandbox, agent } = await setup();
    sandbox.startScenario('split_loop', agent, { rate_per_min: 10, amount: 20 });
    const before = balanceCents(sandbox, agent);
    await sandbox.advance(2 * 60_000);
    expect(balanceCents(sandbox, agent)).toBeLessThan(before);
    expect(sandbox.scenarios()[0]?.truth?.details).toMatchObject({ path: 'splits' });
    const r = await contain(sandbox, agent);
    expect(r.status).toBe('contained');
    const after = balanceCents(sandbox, agent);
    await sandbox.advance(3 * 60_000);
    expect(balanceCents(sandbox, agent)).toBe(after);
    // Refused by the caps of 0 (each split carries a fee) before the freeze is even reached.
    expect(sandbox.scenarios()[0]?.failures).toHaveProperty('budget_exceeded');
  });

  it('subscription_storm: active subscriptions charged by the scheduler; contained: none active, no charge after', async () => {
    const { sandbox, agent } = await setup();
    sandbox.startScenario('subscription_storm', agent, { rate_per_min: 4, amount: 3, interval: 'hourly' });
    await sandbox.advance(90 * 60_000);
    const subs = sandbox.subscriptionRecords(agent);
    expect(subs.length).toBeGreaterThan(100);
    expect(subs.some((s) => s.charge_count > 0)).toBe(true);
    expect(sandbox.scenarios()[0]?.truth?.details).toMatchObject({ path: 'subscriptions' });
    const r = await contain(sandbox, agent);
    expect(r.status).toBe('contained');
    expect(r.paths.subscriptions.cancelled).toBe(subs.filter((s) => s.status === 'active').length);
    expect(sandbox.groundTruth(agent).active_subscriptions).toBe(0);
    // The storm keeps going. create_subscription is free: caps of 0 refuse it only once the agent has fee
    // spend (this one has none), and a freeze does not block it. New subscriptions appear, but none is
    // charged while the wallet is frozen.
    const after = balanceCents(sandbox, agent);
    await sandbox.advance(2 * 60 * 60_000);
    expect(balanceCents(sandbox, agent)).toBe(after);
    expect(sandbox.groundTruth(agent).active_subscriptions).toBeGreaterThan(0);
  });

  it('stolen_key_drain: CREDITS converted and withdrawn; contained: the drain stops', async () => {
    const { sandbox, agent } = await setup();
    sandbox.startScenario('stolen_key_drain', agent, { rate_per_min: 2, amount: 100, currency: 'USD' });
    const before = balanceCents(sandbox, agent);
    await sandbox.advance(3 * 60_000);
    expect(balanceCents(sandbox, agent)).toBeLessThan(before);
    expect(sandbox.scenarios()[0]?.truth).toMatchObject({
      incident: 'identity_compromise',
      details: { path: 'withdraw_convert' },
    });
    // Converted and taken out: nothing stays in USD.
    expect(sandbox.groundTruth(agent).holdings.USD).toBe('0');
    const r = await contain(sandbox, agent);
    expect(r.exposure.wallet_frozen).toBe(true);
    const after = balanceCents(sandbox, agent);
    await sandbox.advance(5 * 60_000);
    expect(balanceCents(sandbox, agent)).toBe(after);
    expect(sandbox.scenarios()[0]?.failures).toHaveProperty('wallet_frozen');
  });
});
