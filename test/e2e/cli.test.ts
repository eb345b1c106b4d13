/**
 * The built CLI as a host runs it: stdio with --sandbox (every stdout line is JSON-RPC, and an SDK client that
 * validates results runs an incident end to end), the missing-
 * credentials exit, the sandbox subcommand's one JSON line, and HTTP mode's token and Origin checks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;
const children: ChildProcess[] = [];
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'aim-cli-'));
  dirs.push(d);
  return d;
}

/** Environment without any gateway settings from the developer's shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  return { ...env, ...extra };
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('stdio', () => {
  it('serves MCP over stdio with --sandbox; stdout carries JSON-RPC only', async () => {
    // 600× time: the scenario's loop runs 10 simulated minutes per real second.
    const child = spawn(
      process.execPath,
      [CLI, '--sandbox', '--time-scale', '600', '--scenario', 'runaway_spending:agent-07'],
      {
        env: cleanEnv({ INCIDENT_DATA_DIR: tempDir(), INCIDENT_LOG_LEVEL: 'info' }),
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    const lines: string[] = [];
    const pending = new Map<number, (msg: Record<string, unknown>) => void>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (typeof msg.id === 'number') pending.get(msg.id)?.(msg);
    });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    let nextId = 1;
    const rpc = (method: string, params: Record<string, unknown> = {}) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      });
    const init = await rpc('initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 't', version: '1' },
    });
    expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe('agent-incident-mcp');
    child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    const list = await rpc('tools/list');
    expect((list.result as { tools: unknown[] }).tools.length).toBe(10);
    await new Promise((r) => setTimeout(r, 300));
    const detect = (await rpc('tools/call', {
      name: 'detect_anomalies',
      arguments: { agent_ids: ['agent-07', 'agent-08'] },
    })) as {
      result: { isError?: boolean; structuredContent: { anomalies: { agent_id: string; signal: string }[] } };
    };
    expect(detect.result.isError).toBeFalsy();
    expect(
      detect.result.structuredContent.anomalies.filter((a) => a.agent_id === 'agent-07').map((a) => a.signal),
    ).toContain('escrow_burst');
    const contain = (await rpc('tools/call', {
      name: 'contain_agent',
      arguments: { agent_id: 'agent-07', reason: 'stdio e2e' },
    })) as {
      result: { structuredContent: { status: string; escrows_cancelled: number; escrows_failed: number } };
    };
    expect(contain.result.structuredContent.status).toBe('contained');
    expect(contain.result.structuredContent.escrows_cancelled).toBeGreaterThan(0);
    expect(contain.result.structuredContent.escrows_failed).toBe(0);
    child.stdin!.end();
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(JSON.parse(line).jsonrpc).toBe('2.0');
    // Logs went to stderr, as JSON lines, with no key in clear.
    expect(stderr).toContain('MCP over stdio');
    expect(stderr).not.toMatch(/a2a_(free|starter|pro|enterprise)_[0-9a-f]{24}/);
  });

  it('an SDK client (validating every result against the listed output schemas) runs an incident end to end', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, '--sandbox', '--time-scale', '600', '--scenario', 'runaway_spending:agent-07'],
      env: cleanEnv({ INCIDENT_DATA_DIR: tempDir() }) as Record<string, string>,
      stderr: 'ignore',
    });
    const client = new Client({ name: 'host', version: '1' });
    await client.connect(transport);
    try {
      await client.listTools();
      await new Promise((r) => setTimeout(r, 300));
      const detect = await client.callTool({
        name: 'detect_anomalies',
        arguments: { agent_ids: ['agent-07'] },
      });
      const anomalies = (detect.structuredContent as { anomalies: { signal: string }[] }).anomalies;
      expect(anomalies.map((a) => a.signal)).toContain('escrow_burst');
      const contain = await client.callTool({
        name: 'contain_agent',
        arguments: { agent_id: 'agent-07', reason: 'sdk stdio e2e' },
      });
      const contained = contain.structuredContent as { incident_id: string; status: string };
      expect(contained.status).toBe('contained');
      const pm = await client.callTool({
        name: 'run_postmortem',
        arguments: { incident_id: contained.incident_id },
      });
      expect(pm.isError).toBeFalsy();
      const md = await client.readResource({ uri: `incident://${contained.incident_id}/postmortem` });
      expect(JSON.stringify(md.contents)).toContain(contained.incident_id);
      const gated = await client.callTool({
        name: 'recover_agent',
        arguments: { incident_id: contained.incident_id, root_cause_fixed: false },
      });
      expect((gated.structuredContent as { applied: boolean }).applied).toBe(false);
      // A refusal reaches the caller as an isError result it can read, not as a protocol error.
      const refused = await client.callTool({
        name: 'contain_agent',
        arguments: { agent_id: 'merchant-shady', reason: 'not a fleet agent' },
      });
      expect(refused.isError).toBe(true);
      const blocks = refused.content as { type: string; text: string }[];
      expect(blocks[0]!.text).toMatch(/^agent_not_in_fleet: /);
      expect(JSON.parse(blocks[1]!.text).error).toMatchObject({
        code: 'agent_not_in_fleet',
        retryable: false,
      });
    } finally {
      await client.close();
    }
  });

  it('exits 2 with one line when there are no credentials and no --sandbox', async () => {
    const child = spawn(process.execPath, [CLI], {
      env: cleanEnv({ INCIDENT_DATA_DIR: tempDir() }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const [code] = await once(child, 'exit');
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/GREENHELIX_MONITOR_KEY.*--sandbox/);
  });
});

describe('sandbox subcommand', () => {
  it('prints one JSON line with url, token, keys, fleet and shared wallet, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'sandbox', '--port', '0', '--agents', '5', '--seed', '9'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    const info = JSON.parse(line) as {
      url: string;
      control_token: string;
      keys: { monitor: string; containment: string; agents: Record<string, string> };
      fleet: string[];
      shared_wallet: string | null;
    };
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.keys.monitor).not.toBe(info.keys.containment);
    expect(Object.keys(info.keys.agents).sort()).toEqual([...info.fleet].sort());
    expect(info.fleet).toHaveLength(5);
    const health = await fetch(`${info.url}/v1/health`);
    expect(health.status).toBe(200);
    const truth = await fetch(`${info.url}/_sandbox/agents/${info.fleet[0]}`, {
      headers: { authorization: `Bearer ${info.control_token}` },
    });
    expect(((await truth.json()) as { frozen: boolean }).frozen).toBe(false);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});

describe('http transport', () => {
  it('requires the bearer token, rejects foreign origins, and serves MCP to a client', async () => {
    const token = 'test-token-0123456789abcdef';
    const child = spawn(
      process.execPath,
      [CLI, '--sandbox', '--time-scale', '0', '--transport', 'http', '--port', '0'],
      {
        env: cleanEnv({ INCIDENT_DATA_DIR: tempDir(), INCIDENT_HTTP_TOKEN: token }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    let url = '';
    for await (const line of createInterface({ input: child.stderr! })) {
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+\/mcp)"/.exec(line);
      if (m) {
        url = m[1]!;
        break;
      }
    }
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    });
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    expect((await fetch(url, { method: 'POST', headers, body })).status).toBe(401);
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { ...headers, authorization: 'Bearer wrong-token-wrong-token' },
          body,
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { ...headers, authorization: `Bearer ${token}`, origin: 'https://evil.example' },
          body,
        })
      ).status,
    ).toBe(403);
    // A browser tricked by DNS rebinding sends the attacker's Host: refused on a loopback server.
    const rebound = await new Promise<number>((resolve) => {
      const u = new URL(url);
      const r = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { ...headers, host: 'evil.example', authorization: `Bearer ${token}` },
        },
        (res) => resolve(res.statusCode ?? 0),
      );
      r.end(body);
    });
    expect(rebound).toBe(403);

    const client = new Client({ name: 'supervisor', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('contain_agent');
    await client.close();
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
