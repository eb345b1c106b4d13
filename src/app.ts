/**
 * The composition root: from a validated config to a running engine (clients, store, optional
 * embedded sandbox, watcher). cli.ts calls this; tests call it too.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, ConfigError, DEFAULT_DATA_DIR, redactedDatabaseUrl } from './config.js';
import { DEFAULT_THRESHOLDS } from './detection/index.js';
import { GreenHelixClient } from './greenhelix/index.js';
import {
  type ApprovalPage,
  checkContainmentKey,
  KeyVerdictCache,
  startApprovalPage,
} from './guards/index.js';
import { openStore } from './incidents/index.js';
import type { Logger } from './logger.js';
import { leaseOwner } from './runbooks/lease.js';
import { createOps, type Ops } from './runbooks/ops.js';
import type { ReplicaSet } from './runbooks/replicas.js';
import { type Sandbox, startSandbox } from './sandbox/index.js';
import type { Clock } from './util/clock.js';
import { systemClock } from './util/clock.js';
import { nearMiss } from './util/near-miss.js';

export interface App {
  config: Config;
  ops: Ops;
  sandbox: Sandbox | null;
  /** The operator's approval page on 127.0.0.1, when an operator secret is configured (always with the sandbox). */
  approvalPage: ApprovalPage | null;
  /** This process's membership among the servers sharing the store (replicas.ts). */
  replicas: ReplicaSet;
  close(): Promise<void>;
}

/**
 * With `config.sandbox.enabled`, an embedded gateway is started first and the config is pointed at it:
 * its own URL, separate generated monitor and containment keys, its fleet and shared wallet, and a
 * fresh data directory per run (sandbox state is in memory, so old incidents would refer to nothing):
 * under the given data directory when there is one, else a temporary one removed on close.
 * The sandbox's fleet is explicit (its own agents: not the treasury, not the counterparties), and without
 * INCIDENT_OPERATOR_SECRET it makes a throwaway one, logged once, so fleet shutdowns can be tried.
 * @throws ConfigError for a threshold name the detectors do not have.
 */
export async function startApp(input: Config, logger: Logger, opts: { clock?: Clock } = {}): Promise<App> {
  checkThresholdNames(input.thresholds);
  let config: Config = { ...input, dataDir: input.dataDir ?? DEFAULT_DATA_DIR };
  let sandbox: Sandbox | null = null;
  let tempStore: string | null = null;
  let clock = opts.clock ?? systemClock;
  if (config.sandbox.enabled) {
    const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`;
    sandbox = await startSandbox({
      agents: config.sandbox.agents,
      seed: config.sandbox.seed,
      latencyMs: config.sandbox.latencyMs,
      jitterMs: config.sandbox.jitterMs,
      errorRate: config.sandbox.errorRate,
      timeScale: config.sandbox.timeScale,
    });
    clock = opts.clock ?? sandbox.clock;
    const running = sandbox;
    const started = config.sandbox.scenarios.map((spec) => {
      const [name, agent] = spec.split(':') as [string, string];
      try {
        return { scenario: name, agent_id: agent, id: running.startScenario(name, agent) };
      } catch (e) {
        void running.close();
        throw new ConfigError(
          `--scenario ${spec}: ${(e as { detail?: string }).detail ?? (e as Error).message}`,
        );
      }
    });
    if (input.dataDir === undefined) tempStore = mkdtempSync(join(tmpdir(), 'agent-incident-sandbox-'));
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
      dataDir: tempStore ?? join(input.dataDir as string, 'sandbox', stamp),
      // Sandbox incidents refer to the sandbox's in-memory gateway: never into a shared store.
      databaseUrl: undefined,
    };
    if (input.databaseUrl)
      logger.warn(
        { database_url: redactedDatabaseUrl(input.databaseUrl) },
        'the sandbox keeps its incidents in its own SQLite store, not in INCIDENT_DATABASE_URL',
      );
    logger.info(
      { url: sandbox.url, agents: sandbox.fleet.length, data_dir: config.dataDir, scenarios: started },
      'embedded sandbox gateway started',
    );
  }
  const dataDir = config.dataDir as string;
  mkdirSync(dataDir, { recursive: true });
  // INCIDENT_DATABASE_URL: a PostgreSQL store shared by replicas; otherwise SQLite in the data dir.
  const store = openStore({
    databaseUrl: config.databaseUrl,
    dataDir,
    clock,
    postgres: { statementTimeoutMs: config.databaseTimeoutMs },
  });
  // Configured keys are the known-good ones: they replace a first-sight pin that disagrees.
  for (const [agentId, key] of Object.entries(config.pinnedKeys)) {
    const pinned = store.getPin(agentId);
    if (pinned?.public_key.toLowerCase() !== key.toLowerCase()) {
      store.repin(agentId, key.toLowerCase(), 'configuration');
      if (pinned) logger.warn({ agent_id: agentId }, 'configured key replaces the key pinned at first sight');
    }
  }
  store.audit.onError = (e) =>
    logger.error(
      { err: (e as Error).message },
      'audit log: a batch could not be written (outcomes in it are lost)',
    );
  const clientOpts = {
    baseUrl: config.greenhelix.baseUrl,
    timeoutMs: config.greenhelix.timeoutMs,
    concurrency: config.greenhelix.concurrency,
    logger,
    // Every state-changing request is written ahead to the audit log, its outcome after.
    writeRecorder: store.audit,
    // The replica's name (its lease owner: host, pid, nonce), so the gateway's log tells replicas apart.
    userAgent: `agent-incident-mcp (${leaseOwner(store)})`,
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
  // Every server heartbeats in the store, so others take over its containment leases once it dies, and its
  // watcher (when it runs one) takes a share of the fleet.
  const { replicas } = ops;
  replicas.start();
  const approvalPage = config.approval.operatorSecret
    ? await startApprovalPage({
        book: ops.acting.book,
        operatorSecret: config.approval.operatorSecret,
        port: config.approval.port,
        clock,
        onError: (err) => logger.error({ err }, 'approval page failed'),
      }).catch(async (e: unknown) => {
        replicas.stop();
        await monitor.close();
        await actor?.close();
        store.close();
        await sandbox?.close();
        if (tempStore) rmSync(tempStore, { recursive: true, force: true });
        throw new ConfigError(
          `approval.port ${config.approval.port}: cannot serve the approval page on 127.0.0.1 (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        );
      })
    : null;
  if (approvalPage) ops.acting.attachPage(approvalPage);
  return {
    config,
    ops,
    sandbox,
    approvalPage,
    replicas,
    close: async () => {
      replicas.stop();
      await approvalPage?.close();
      await monitor.close();
      await actor?.close();
      store.close();
      await sandbox?.close();
      if (tempStore) rmSync(tempStore, { recursive: true, force: true });
    },
  };
}

/**
 * Tells the operator which store is open and where the approval page is (or that there is none). Called
 * once the start-up checks
 * passed, so that a refused start stays one line.
 */
export function logApprovalPage(app: App, input: Config, logger: Logger): void {
  // Which store, once the start-up checks passed (a refused start stays one line).
  logger.info(
    app.config.databaseUrl
      ? { engine: 'postgres', database_url: redactedDatabaseUrl(app.config.databaseUrl) }
      : { engine: 'sqlite', data_dir: app.config.dataDir },
    'incident store open',
  );
  const page = app.approvalPage;
  if (!page) {
    logger.info(
      'no INCIDENT_OPERATOR_SECRET: the approval page is off, so actions beyond the blast radius and fleet shutdowns cannot be approved',
    );
    return;
  }
  logger.info({ url: page.url }, 'approval page for operators (needs INCIDENT_OPERATOR_SECRET)');
  if (app.sandbox && !input.approval.operatorSecret)
    logger.warn(
      { url: page.url },
      `sandbox: operator secret for the approval page is ${app.config.approval.operatorSecret} (throwaway; set INCIDENT_OPERATOR_SECRET to choose one)`,
    );
}

/** Threshold overrides must name thresholds the detectors have: a misspelt one would silently do nothing. */
function checkThresholdNames(thresholds: Readonly<Record<string, number>>): void {
  const known = Object.keys(DEFAULT_THRESHOLDS);
  const unknown = Object.keys(thresholds).filter((name) => !known.includes(name));
  if (unknown.length === 0) return;
  const named = unknown
    .slice(0, 5)
    .map((name) => {
      const guess = nearMiss(name, known);
      return `"${name.slice(0, 64)}"${guess ? ` (did you mean "${guess}"?)` : ''}`;
    })
    .join(', ');
  throw new ConfigError(
    `thresholds: unknown name${unknown.length > 1 ? 's' : ''} ${named}; accepted: ${known.join(', ')}`,
  );
}

/** Refusals that no later call can change: the key is the monitor key, an agent's, or revoked. */
const DEFINITE_REFUSALS = new Set([
  'containment_key_not_separate',
  'containment_key_belongs_to_fleet_agent',
  'containment_key_revoked',
]);

/**
 * Refuses at start (ConfigError, so exit 2 and one line) a containment key that could never act safely:
 * equal to the monitor key or to a configured agent key (known without the gateway), owned by a fleet
 * agent or revoked (the gateway's key list), or without the admin scope that freezing a wallet needs (the
 * admin-only key list, read with the containment key itself). A gateway that cannot be reached leaves the
 * check to the guard seam, which runs it again before every state-changing call; that is logged.
 */
export async function checkKeysAtStart(app: App, logger: Logger): Promise<void> {
  const { config, ops } = app;
  const { monitorKey, containmentKey, agentKeys } = config.greenhelix;
  if (!containmentKey) return;
  const base = { monitorKey, containmentKey, agentKeys, cache: new KeyVerdictCache() };
  const local = await checkContainmentKey({ ...base, fleet: config.fleet ?? [] });
  if (!local.ok && DEFINITE_REFUSALS.has(local.code)) throw new ConfigError(`${local.message} ${local.fix}`);
  // Read-only mode never acts, so what only the gateway can tell does not matter.
  if (config.readOnly || !ops.deps.actor) return;
  const timeoutMs = Math.min(config.greenhelix.timeoutMs, 5_000);
  const fleet = config.fleet ?? (await ops.fleet().catch(() => []));
  const verdict = await checkContainmentKey({
    ...base,
    fleet,
    listGatewayKeys: async () => (await ops.deps.monitor.listApiKeys({}, { timeoutMs })).keys,
  });
  if (!verdict.ok && DEFINITE_REFUSALS.has(verdict.code))
    throw new ConfigError(`${verdict.message} ${verdict.fix}`);
  try {
    await ops.deps.actor.listApiKeys({}, { timeoutMs });
  } catch (e) {
    const err = e as { status?: number; code?: string };
    if (err.status === 401 || err.status === 403)
      throw new ConfigError(
        `the containment key lacks the admin scope freezing a wallet needs (the gateway answered ${err.status} ${err.code} to the admin-only key list): ` +
          'provision it as enterprise with scopes [read, write, admin], owned by an operator identity that is not a fleet agent',
      );
    logger.warn(
      { code: err.code ?? 'error', key_check: verdict.ok ? 'passed' : verdict.code },
      'could not check the containment key at start (gateway unreachable); every state-changing call checks it again',
    );
    return;
  }
  if (!verdict.ok)
    logger.warn(
      { key_check: verdict.code },
      `could not check the containment key at start: ${verdict.message}`,
    );
}
