/**
 * The product as the e2e tests drive it (test/helpers/fixture.ts), pointed at the real gateway: config
 * from the same environment variables a deployment sets (GREENHELIX_BASE_URL, the monitor and
 * containment keys, INCIDENT_FLEET), startApp on the real clock, and the MCP SDK client linked to
 * createServer in memory.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import type { Ops } from '../../src/runbooks/ops.js';
import { createServer } from '../../src/server.js';
import type { Fleet } from './fleet.js';

export interface Product {
  ops: Ops;
  config: Config;
  client: Client;
  call(
    name: string,
    args: Record<string, unknown>,
  ): Promise<CallToolResult & { structuredContent: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startProduct(gatewayUrl: string, fleet: Fleet): Promise<Product> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aim-gateway-product-'));
  // The harness removes it after a run killed outright, as it does its own (see removeOrphanedWorkDirs).
  writeFileSync(join(dataDir, 'owner.pid'), String(process.pid));
  const config = loadConfig({
    env: {
      GREENHELIX_BASE_URL: gatewayUrl,
      GREENHELIX_MONITOR_KEY: fleet.monitorKey,
      GREENHELIX_CONTAINMENT_KEY: fleet.containmentKey,
      INCIDENT_FLEET: fleet.ids.join(','),
      // Five agents: 10 % of the fleet would allow one agent per 10 min without an operator; the suite
      // contains three (quiet, under load, directly keyed), so the count limit (3) applies instead.
      INCIDENT_MAX_FLEET_SHARE: '1',
      INCIDENT_DATA_DIR: dataDir,
      INCIDENT_LOG_LEVEL: 'silent',
    },
  });
  const app = await startApp(config, silentLogger());
  const { server } = createServer({ ops: app.ops, logger: silentLogger() });
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'gateway-test', version: '1' }, { capabilities: {} });
  await Promise.all([server.connect(b), client.connect(a)]);
  // As a host does: list first, so the SDK client checks each structuredContent against its output schema.
  await client.listTools();
  return {
    ops: app.ops,
    config,
    client,
    call: async (name, args) => (await client.callTool({ name, arguments: args })) as never,
    close: async () => {
      await client.close().catch(() => undefined);
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
