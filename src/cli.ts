#!/usr/bin/env node
/**
 * Entry point: parse argv and env, pick the transport, handle signals. Nothing else.
 *
 *   agent-incident-mcp [--sandbox] [--read-only] [--watch[=shadow]] [--config FILE] [--data-dir DIR]
 *                      [--transport stdio|http] [--host H] [--port N]
 *   agent-incident-mcp sandbox [--port N] [--host H] [--agents N] [--seed S] [--latency-ms N] ...
 *   agent-incident-mcp demo [--agents N] [--latency-ms N]
 *   agent-incident-mcp config claude-desktop [--sandbox] [--read-only]
 *   agent-incident-mcp verify-audit [--store FILE | --database-url URL]
 *
 * Exit codes: 0 clean shutdown, 1 unexpected failure, 2 bad configuration or usage.
 */
import { realpathSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkKeysAtStart, logApprovalPage, startApp } from './app.js';
import { DESKTOP_CONFIG_USAGE, runDesktopConfigCommand } from './claude-desktop.js';
import { ConfigError, hasGatewayAccess, loadConfig, MISSING_CREDENTIALS_MESSAGE } from './config.js';
import { runDemo } from './demo.js';
import { startHttpServer } from './http.js';
import { nativeStoreProblem } from './incidents/native.js';
import { createLogger, type Logger } from './logger.js';
import type { Ops } from './runbooks/ops.js';
import { startWatcher } from './runbooks/watcher.js';
import { runSandboxCommand } from './sandbox/cli.js';
import { createServer, SERVER_NAME, SERVER_VERSION } from './server.js';
import { GuardedStdioTransport } from './stdio.js';
import { runVerifyAudit, VERIFY_AUDIT_USAGE } from './verify-audit.js';

const USAGE = `usage: agent-incident-mcp [--sandbox [--scenario NAME:AGENT]...] [--read-only] [--watch[=shadow]] [--config FILE] [--data-dir DIR]
                          [--transport stdio|http] [--host 127.0.0.1] [--port 3333] [--log-level LEVEL]
       agent-incident-mcp --version | --help
       agent-incident-mcp sandbox [--port N] [--host 127.0.0.1] [--agents N] [--seed S] [--latency-ms N]
                          [--jitter-ms N] [--error-rate R] [--time-scale X]
       agent-incident-mcp demo [--agents N] [--latency-ms N] [--escrows N]
       ${DESKTOP_CONFIG_USAGE.replace('usage: ', '')}
       ${VERIFY_AUDIT_USAGE.replace('usage: ', '')}`;

function writeErr(line: string): void {
  process.stderr.write(`${line}\n`);
}

function num(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new ConfigError(`--${name}: expected a number, got ${JSON.stringify(raw)}`);
  return n;
}

async function serve(argv: string[]): Promise<number> {
  // `--watch=shadow` (and `--watch=enforce`): parseArgs has no optional values, so the mode is split off.
  let watchMode: string | undefined;
  const args = argv.map((a) => {
    const m = /^--watch=(.*)$/.exec(a);
    if (!m) return a;
    watchMode = m[1];
    return '--watch';
  });
  if (watchMode !== undefined && watchMode !== 'shadow' && watchMode !== 'enforce')
    throw new ConfigError(`--watch=${watchMode}: expected --watch, --watch=shadow or --watch=enforce`);
  const { values } = parseArgs({
    args,
    options: {
      sandbox: { type: 'boolean' },
      'read-only': { type: 'boolean' },
      watch: { type: 'boolean' },
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      transport: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'log-level': { type: 'string' },
      'time-scale': { type: 'string' },
      scenario: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${SERVER_NAME} ${SERVER_VERSION}\n`);
    return 0;
  }
  const flags: Record<string, unknown> = {};
  if (values['read-only']) flags.readOnly = true;
  if (values['data-dir']) flags.dataDir = values['data-dir'];
  if (values['log-level']) flags.logLevel = values['log-level'];
  if (values.transport) flags.transport = values.transport;
  if (values.host || values.port) flags.http = { host: values.host, port: num('port', values.port) };
  if (values.sandbox)
    flags.sandbox = {
      enabled: true,
      timeScale: num('time-scale', values['time-scale']),
      scenarios: values.scenario,
    };
  if (values.watch) flags.watch = { enabled: true, ...(watchMode ? { mode: watchMode } : {}) };
  const config = loadConfig({ file: values.config, flags });
  if (!hasGatewayAccess(config)) throw new ConfigError(MISSING_CREDENTIALS_MESSAGE);
  if (config.transport === 'http' && !config.http.token && config.http.tokens.length === 0) {
    throw new ConfigError(
      'http transport needs a bearer token: set INCIDENT_HTTP_TOKEN (at least 16 characters)',
    );
  }

  const logger = createLogger(config.logLevel);
  const app = await startApp(config, logger);
  try {
    await checkKeysAtStart(app, logger);
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
  logApprovalPage(app, config, logger);
  // In the background: a slow gateway must not delay the host's handshake. Callers for the same agent
  // wait on the per-agent lock and then see the finished incident.
  void app.ops.resumeInterrupted().then(
    (resumed) => {
      if (resumed.length)
        logger.warn({ incidents: resumed.map((r) => r.incident_id) }, 'finished interrupted containments');
    },
    (e: unknown) => logger.error({ err: (e as Error).message }, 'could not resume interrupted containments'),
  );
  const watcher = app.config.watch.enabled ? await startWatcher(app.ops) : null;
  if (watcher) await logWatching(app.ops, watcher.webhookUrl, logger);

  let closeTransport: () => Promise<void>;
  if (app.config.transport === 'http') {
    const http = await startHttpServer({
      ops: app.ops,
      logger,
      host: app.config.http.host,
      port: app.config.http.port,
      tokens: [...(app.config.http.token ? [app.config.http.token] : []), ...app.config.http.tokens],
      allowedOrigins: app.config.http.allowedOrigins,
      maxSessions: app.config.http.maxSessions,
      sessionIdleMs: app.config.http.sessionIdleMs,
      bodyTimeoutMs: app.config.http.bodyTimeoutMs,
    });
    logger.info({ url: http.url }, 'MCP over Streamable HTTP');
    closeTransport = http.close;
  } else {
    const { server } = createServer({ ops: app.ops, logger });
    const transport = new GuardedStdioTransport(process.stdin, process.stdout, {
      onReject: (reason) => logger.debug({ reason }, 'malformed message answered with a JSON-RPC error'),
    });
    await server.connect(transport);
    closeTransport = () => server.close();
    logger.info({ sandbox: Boolean(app.sandbox), read_only: app.config.readOnly }, 'MCP over stdio');
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await watcher?.stop();
      await closeTransport().catch(() => undefined);
      await app.close().catch(() => undefined);
      logger.flush?.();
      resolve(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (app.config.transport === 'stdio') process.stdin.once('end', stop);
  });
}

/** One line at start, so an operator sees what `--watch` covers before its first finding. */
async function logWatching(ops: Ops, webhookUrl: string | null, logger: Logger): Promise<void> {
  const { mode, intervalMs } = ops.config.watch;
  const agents = await ops.fleet().then(
    (ids) => ids.length,
    () => null,
  );
  // The watcher's first tick is scheduled at once (setTimeout 0).
  const firstTick = new Date().toISOString();
  logger.info(
    { mode, agents, interval_ms: intervalMs, first_tick_at: firstTick, webhook_url: webhookUrl },
    `watcher started: ${agents ?? 'unknown (fleet not listable yet)'} agents, ${mode} mode, every ${intervalMs / 1000} s, first tick at ${firstTick} (now)${webhookUrl ? `, webhooks at ${webhookUrl}` : ''}`,
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const io = { stdout: (s: string) => process.stdout.write(s), stderr: writeErr };
  try {
    if (command === 'sandbox') return await runSandboxCommand(rest, io);
    if (command === 'config')
      return runDesktopConfigCommand(rest, io, {
        execPath: process.execPath,
        cliPath: realpathSync(process.argv[1] as string),
        nodeVersion: process.version,
      });
    // Before anything starts (--version and --help need no store): a driver built for another Node would
    // otherwise fail deep inside the store.
    const informational = argv.some((a) => a === '--version' || a === '--help' || a === '-h');
    const problem = informational ? null : nativeStoreProblem();
    if (problem) {
      writeErr(problem);
      return 2;
    }
    if (command === 'demo') return await runDemo(rest, io);
    if (command === 'verify-audit') return runVerifyAudit(rest, io);
    return await serve(argv);
  } catch (e) {
    if (e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      writeErr(
        e instanceof ConfigError && e.message.startsWith('agent-incident-mcp:')
          ? e.message
          : `agent-incident-mcp: ${(e as Error).message}`,
      );
      if (!(e instanceof ConfigError)) writeErr(USAGE);
      return 2;
    }
    writeErr(`agent-incident-mcp: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Open sockets (keep-alive pools, a closing sandbox) must not keep a finished process alive.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (e) => {
    writeErr(String(e));
    process.exit(1);
  },
);
