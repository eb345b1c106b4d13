/**
 * Integration fixture: the embedded sandbox on port 0 (time under test control), the real engine talking
 * HTTP to it, and the MCP SDK client linked to our server in memory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { expect } from 'vitest';
import { startApp } from '../../src/app.js';
import { type Config, type ConfigInput, loadConfig } from '../../src/config.js';
import type { ApprovalPage } from '../../src/guards/index.js';
import { silentLogger } from '../../src/logger.js';
import type { Ops } from '../../src/runbooks/ops.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { createServer } from '../../src/server.js';

export interface ToolErrorBody {
  code: string;
  message: string;
  retryable: boolean;
  fix?: string;
}

/** The `{error}` JSON an isError result carries in its second text block (see errorResult in src/server.ts). */
export function errorOf(r: CallToolResult): ToolErrorBody {
  if (!r.isError)
    throw new Error(`expected an error result, got: ${JSON.stringify(r.content).slice(0, 300)}`);
  expect(r.structuredContent).toBeUndefined();
  const block = r.content[1];
  if (block?.type !== 'text') throw new Error('an error result has its JSON in a second text block');
  return (JSON.parse(block.text) as { error: ToolErrorBody }).error;
}

/** 02:47 UTC, the night of the incident this product exists for. */
export const FIXTURE_START = Date.UTC(2026, 10, 24, 2, 47, 13);

export interface Fixture {
  sandbox: Sandbox;
  ops: Ops;
  config: Config;
  client: Client;
  dataDir: string;
  /** The approval page, when `operatorSecret` was given. */
  approvalPage: ApprovalPage | null;
  call(
    name: string,
    args: Record<string, unknown>,
  ): Promise<CallToolResult & { structuredContent: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  agents?: number;
  latencyMs?: number;
  autoStartTraffic?: boolean;
  /** Overrides applied on top of the sandbox-derived config (keys, fleet…). */
  config?: (base: ConfigInput) => ConfigInput;
  clientCapabilities?: Record<string, unknown>;
  sandbox?: Sandbox;
  /** Serves the approval page on 127.0.0.1 (port 0) behind this operator secret. */
  operatorSecret?: string;
}

export async function startFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const sandbox =
    opts.sandbox ??
    (await startSandbox({
      agents: opts.agents ?? 8,
      seed: 7,
      timeScale: 0,
      // A fixed origin: with the seed, every run sees the same times on the detectors' 5-minute grid.
      startAt: FIXTURE_START,
      latencyMs: opts.latencyMs ?? 0,
      autoStartTraffic: opts.autoStartTraffic ?? false,
    }));
  const dataDir = mkdtempSync(join(tmpdir(), 'aim-test-'));
  const base: ConfigInput = {
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
    ...(opts.operatorSecret ? { approval: { port: 0, operatorSecret: opts.operatorSecret } } : {}),
  };
  const config = loadConfig({
    env: {},
    flags: (opts.config ? opts.config(base) : base) as Record<string, unknown>,
  });
  const app = await startApp(config, silentLogger(), { clock: sandbox.clock });
  const { server } = createServer({ ops: app.ops, logger: silentLogger() });
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'test', version: '1' }, { capabilities: opts.clientCapabilities ?? {} });
  await Promise.all([server.connect(b), client.connect(a)]);
  // As a host does: list the tools first, so the SDK client checks every structuredContent against the
  // output schema the server advertised (it validates only tools it has listed).
  await client.listTools();
  return {
    sandbox,
    ops: app.ops,
    config,
    client,
    dataDir,
    approvalPage: app.approvalPage,
    call: async (name, args) => (await client.callTool({ name, arguments: args })) as never,
    close: async () => {
      await client.close().catch(() => undefined);
      await app.close();
      if (!opts.sandbox) await sandbox.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
