/**
 * The interface as a host sees it: exact tool lists per configuration, every tool's hints and schemas
 * (snapshotted, so an interface change is a deliberate diff), and the README table generated from them.
 */
import { readFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../../src/logger.js';
import type { Ops } from '../../src/runbooks/ops.js';
import { guardedHandler } from '../../src/server.js';
import { TOOLS } from '../../src/tools/index.js';
import { renderReadme } from '../../src/tools/readme.js';
import { defineTool } from '../../src/tools/types.js';
import { errorOf, type Fixture, startFixture } from '../helpers/fixture.js';

const ALL = [
  'detect_anomalies',
  'contain_agent',
  'recover_agent',
  'run_postmortem',
  'list_incidents',
  'get_incident',
  'fleet_shutdown',
  'list_runbooks',
  'run_runbook',
  'check_readiness',
];

describe('tool list', () => {
  let f: Fixture;
  let ro: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 2 });
    ro = await startFixture({ sandbox: f.sandbox, config: (c) => ({ ...c, readOnly: true }) });
  });
  afterAll(async () => {
    await ro?.close();
    await f?.close();
  });

  it('default configuration lists every tool, each with all four hints and an output schema', async () => {
    const { tools } = await f.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(ALL);
    for (const t of tools) {
      expect(Object.keys(t.annotations ?? {}).sort()).toEqual([
        'destructiveHint',
        'idempotentHint',
        'openWorldHint',
        'readOnlyHint',
      ]);
      expect(t.title?.length).toBeGreaterThan(5);
      expect(t.outputSchema?.type).toBe('object');
      expect(t.description?.length).toBeGreaterThan(80);
    }
  });

  it('read-only mode lists only detection and post-mortem (read) tools', async () => {
    const { tools } = await ro.client.listTools();
    expect(tools.map((t) => t.name)).toEqual([
      'detect_anomalies',
      'run_postmortem',
      'list_incidents',
      'get_incident',
      'list_runbooks',
      'check_readiness',
    ]);
    expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true);
  });

  it('schemas are snapshotted', async () => {
    const { tools } = await f.client.listTools();
    expect(
      tools.map((t) => ({
        name: t.name,
        inputSchema: t.inputSchema,
        outputSchema: t.outputSchema,
        annotations: t.annotations,
      })),
    ).toMatchSnapshot();
  });

  it('bad input gets an error naming the field, not a crash', async () => {
    const r = await f.client.callTool({
      name: 'contain_agent',
      arguments: { agent_id: 'bad id!', reason: 'x' },
    });
    expect(r.isError).toBe(true);
    expect(JSON.stringify(r.content)).toMatch(/agent_id/);
    const again = await f.client.callTool({ name: 'list_incidents', arguments: {} });
    expect(again.isError).toBeFalsy();
  });
});

describe('the seam sends what the output schema advertises', () => {
  const probe = (structured: unknown) =>
    defineTool({
      name: 'probe_tool',
      title: 'Probe',
      toolset: 'detect',
      description: 'test only',
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      input: z.object({}),
      output: z.object({ count: z.number().int() }),
      handler: async () => ({ structured: structured as { count: number }, text: 'counted 3' }),
    });
  const run = (structured: unknown) =>
    guardedHandler(
      new McpServer({ name: 't', version: '1' }),
      probe(structured),
      {} as Ops,
      silentLogger(),
      {},
      {
        signal: new AbortController().signal,
        sendNotification: async () => undefined,
      },
    );

  it('fields the schema does not name are left out, since clients reject additional properties', async () => {
    const r = await run({ count: 3, internal: [1, 2, 3] });
    expect(r.isError).toBeFalsy();
    expect(r.structuredContent).toEqual({ count: 3 });
  });

  it('a result that breaks its schema is an error that still says what the tool reported', async () => {
    const r = await run({ count: 'three' });
    const err = errorOf(r);
    expect(err.code).toBe('invalid_tool_output');
    expect(err.message).toMatch(/count/);
    expect(err.message).toContain('counted 3');
    expect(err.fix).toMatch(/get_incident/);
  });
});

describe('README', () => {
  it('tool and environment tables are generated from the code (run `npm run docs`)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(renderReadme(readme, TOOLS)).toBe(readme);
    expect(readme.startsWith('# agent-incident-mcp')).toBe(true);
    expect(readme.slice(0, 800)).toContain('npm ci');
    expect(readme.slice(0, 800)).toContain('npm test');
  });
});
