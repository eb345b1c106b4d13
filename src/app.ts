/**
 * The composition root: from a validated config to a running engine (clients, store, optional
 * embedded sandbox, watcher). cli.ts calls this; tests call it too.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, ConfigError } from './config.js';
import { GreenHelixClient } from './greenhelix/index.js';
import { type ApprovalPage, startApprovalPage } from './guards/index.js';
import { openStore } from './incidents/index.js';
import type { Logger } from './logger.js';
import { createOps, type Ops } from './runbooks/ops.js';
import { type Sandbox, startSandbox } from './sandbox/index.js';
import type { Clock } from './util/clock.js';
import { systemClock } from './util/clock.js';

export interface App {
  config: Config;
  ops: Ops;
  sandbox: Sandbox | null;
  /** The operator's approval page on 127.0.0.1, when an operator secret is configured (always with the sandbox). */
  approvalPage: ApprovalPage | null;
  close(): Promise<void>;
}

/**
 * With `config.sandbox.enabled`, an embedded gateway is started first and the config is pointed at it:
 * its own URL, separate generated monitor and containment keys, its fleet and shared wallet, and a
 * fresh data directory per run (sandbox state is in memory, so old incidents would refer to nothing).
 * The sandbox's fleet is explicit (its own agents: not the treasury, not the counterparties), and without
 * INCIDENT_OPERATOR_SECRET it makes a throwaway one, logged once, so fleet shutdowns can be tried.
 */
export async function startApp(input: Config, logger: Logger, opts: { clock?: Clock } = {}): Promise<App> {
  let config = input;
  let sandbox: Sandbox | null = null;
  let clock = opts.clock ?? systemClock;
  if (config.sandbox.enabled) {
    sandbox = await startSandbox({
      agents: config.sandbox.agents,
      seed: config.sandbox.seed,
      latencyMs: config.sandbox.latencyMs,
      jitterMs: config.sandbox.jitterMs,
      errorRate: config.sandbox.errorRate,
      timeScale: config.sandbox.timeScale,
    });
    clock = opts.clock ?? sandbox.clock;
    config = {
      ...config,
      greenhelix: {
        ...config.greenhelix,
        baseUrl: sandbox.url,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
        agentKeys: sandbox.keys.agents,
      },
      fleet: config.fleet ?? sandbox.fleet,
      approval: {
        ...config.approval,
        operatorSecret: config.approval.operatorSecret ?? randomBytes(18).toString('base64url'),
      },
      sharedWallets: sandbox.sharedWallet ? [sandbox.sharedWallet] : [],
      // The demo agents sign identity challenges through the sandbox (their own signer on a real fleet).
      identityChallenge: config.identityChallenge ?? {
        url: `${sandbox.url}/_sandbox/agents/{agent_id}/sign`,
        token: sandbox.controlToken,
      },
      dataDir: join(
        config.dataDir,
        'sandbox',
        `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`,
      ),
    };
    const started = config.sandbox.scenarios.map((spec) => {
      const [name, agent] = spec.split(':') as [string, string];
      try {
        return { scenario: name, agent_id: agent, id: sandbox!.startScenario(name, agent) };
      } catch (e) {
        throw new ConfigError(
          `--scenario ${spec}: ${(e as { detail?: string }).detail ?? (e as Error).message}`,
        );
      }
    });
    logger.info(
      { url: sandbox.url, agents: sandbox.fleet.length, data_dir: config.dataDir, scenarios: started },
      'embedded sandbox gateway started',
    );
  }
  mkdirSync(config.dataDir, { recursive: true });
  const store = openStore({ dataDir: config.dataDir, clock });
  // Configured keys are the known-good ones: they replace a first-sight pin that disagrees.
  for (const [agentId, key] of Object.entries(config.pinnedKeys)) {
    const pinned = store.getPin(agentId);
    if (pinned?.public_key.toLowerCase() !== key.toLowerCase()) {
      store.repin(agentId, key.toLowerCase(), 'configuration');
      if (pinned) logger.warn({ agent_id: agentId }, 'configured key replaces the key pinned at first sight');
    }
  }
  const clientOpts = {
    baseUrl: config.greenhelix.baseUrl,
    timeoutMs: config.greenhelix.timeoutMs,
    concurrency: config.greenhelix.concurrency,
    logger,
  };
  const monitor = new GreenHelixClient({ ...clientOpts, apiKey: config.greenhelix.monitorKey as string });
  // The containment client exists only for a key distinct from the monitor key; the guards say why not.
  const actor =
    config.greenhelix.containmentKey && config.greenhelix.containmentKey !== config.greenhelix.monitorKey
      ? new GreenHelixClient({
          ...clientOpts,
          apiKey: config.greenhelix.containmentKey,
          concurrency: Math.max(config.greenhelix.concurrency, config.containment.concurrency),
        })
      : null;
  const ops = createOps({ config, monitor, actor, store, clock, logger });
  const approvalPage = config.approval.operatorSecret
    ? await startApprovalPage({
        book: ops.acting.book,
        operatorSecret: config.approval.operatorSecret,
        port: config.approval.port,
        clock,
        onError: (err) => logger.error({ err }, 'approval page failed'),
      }).catch(async (e: unknown) => {
        await monitor.close();
        await actor?.close();
        store.close();
        await sandbox?.close();
        throw new ConfigError(
          `approval.port ${config.approval.port}: cannot serve the approval page on 127.0.0.1 (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        );
      })
    : null;
  if (approvalPage) {
    ops.acting.attachPage(approvalPage);
    logger.info({ url: approvalPage.url }, 'approval page for operators (needs INCIDENT_OPERATOR_SECRET)');
    if (sandbox && !input.approval.operatorSecret)
      logger.warn(
        { url: approvalPage.url },
        `sandbox: operator secret for the approval page is ${config.approval.operatorSecret} (throwaway; set INCIDENT_OPERATOR_SECRET to choose one)`,
      );
  } else {
    logger.warn(
      'no INCIDENT_OPERATOR_SECRET: the approval page is off, so actions beyond the blast radius and fleet shutdowns cannot be approved',
    );
  }
  return {
    config,
    ops,
    sandbox,
    approvalPage,
    close: async () => {
      await approvalPage?.close();
      await monitor.close();
      await actor?.close();
      store.close();
      await sandbox?.close();
    },
  };
}
