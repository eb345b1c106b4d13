/**
 * An agent on every money path beyond escrows, on a sandbox behind a recording proxy, and the engine
 * pointed at the proxy: the world the money-path runbook tests (containment, claw-back) share.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import { silentLogger } from '../../src/logger.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { type RecordingProxy, startProxy } from '../contract/proxy.js';
import { FIXTURE_START } from './fixture.js';

/** What each test started, closed in reverse by `closeAll` (call it in afterEach). */
export const cleanups: (() => Promise<void>)[] = [];
export async function closeAll(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

export interface World {
  sandbox: Sandbox;
  proxy: RecordingProxy;
  agent: string;
  /** Settled intents inside the claw-back window (an hour before now), and their total in cents. */
  settledInWindow: string[];
  settledCents: number;
  /** A settled intent long before the incident (outside the window), and a pending one paid TO the agent. */
  settledBefore: string;
  paidToAgent: string;
}

export async function world(opts: {
  pending: number;
  subscriptions: number;
  escrows: number;
}): Promise<World> {
  const sandbox = await startSandbox({
    agents: 4,
    seed: 21,
    timeScale: 0,
    startAt: FIXTURE_START,
    autoStartTraffic: false,
  });
  const proxy = await startProxy(sandbox.url);
  const agent = sandbox.fleet[0] as string;
  const [payee, other] = sandbox.fleet.slice(1) as [string, string];
  const own = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.agents[agent] as string });
  cleanups.push(async () => {
    await own.close();
    await proxy.close();
    await sandbox.close();
  });
  // One settled intent long before the incident: outside the claw-back window.
  const old = await own.createIntent({ payer: agent, payee, amount: 9 });
  await own.captureIntent({ intent_id: old.id });
  await sandbox.advance(3 * 3_600_000);
  const settledInWindow: string[] = [];
  let settledCents = 0;
  for (const amount of [4, 6, 11]) {
    const i = await own.createIntent({ payer: agent, payee: other, amount });
    await own.captureIntent({ intent_id: i.id });
    settledInWindow.push(i.id);
    settledCents += amount * 100;
  }
  for (let n = 0; n < opts.pending; n++) await own.createIntent({ payer: agent, payee, amount: 2 + (n % 5) });
  // An intent paid TO the agent: not the agent's spending, left alone.
  const theirs = new GreenHelixClient({ baseUrl: sandbox.url, apiKey: sandbox.keys.agents[payee] as string });
  const paidToAgent = (await theirs.createIntent({ payer: payee, payee: agent, amount: 3 })).id;
  await theirs.close();
  for (let n = 0; n < opts.subscriptions; n++)
    await own.createSubscription({ payer: agent, payee: other, amount: 1, interval: 'hourly' });
  if (opts.escrows > 0) {
    sandbox.startScenario('runaway_spending', agent, { rate_per_min: 30, amount: 20 });
    await sandbox.advance((opts.escrows / 30) * 60_000);
    for (const s of sandbox.scenarios()) sandbox.stopScenario(s.id);
  }
  return { sandbox, proxy, agent, settledInWindow, settledCents, settledBefore: old.id, paidToAgent };
}

export async function engine(
  sandbox: Sandbox,
  baseUrl: string,
  dataDir = mkdtempSync(join(tmpdir(), 'aim-paths-')),
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

/** POSTs per object id on a path pattern, from the proxy's log. */
export function sendsPer(proxy: RecordingProxy, re: RegExp): Map<string, number> {
  const n = new Map<string, number>();
  for (const c of proxy.log) {
    const m = re.exec(c.path);
    if (c.method === 'POST' && m) n.set(m[1] as string, (n.get(m[1] as string) ?? 0) + 1);
  }
  return n;
}
export const VOID = /^\/v1\/payments\/intents\/([^/]+)\/refund$/;
export const CANCEL = /^\/v1\/payments\/subscriptions\/([^/]+)\/cancel$/;
