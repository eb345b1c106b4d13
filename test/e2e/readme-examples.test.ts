/**
 * The README's examples as a user runs them. The HTTP example on the sandbox, run as written by bash (only the port is swapped for a free
 * one, so the test never collides with a server already on 3333): the server starts, answers an
 * authenticated initialize, and is stopped by the block's own `kill %1`.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

it("the README's sandbox HTTP block answers initialize when pasted into a shell", async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((b) => b.includes('--sandbox --transport http'));
  expect(block, 'the README has a sandbox HTTP example').toBeDefined();
  const port = await freePort();
  const script = block!.replaceAll('3333', String(port));
  const out = await new Promise<string>((resolve, reject) =>
    execFile('bash', ['-c', `set -m\n${script}`], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr.slice(-2000)}`)) : resolve(stdout),
    ),
  );
  expect(out).toContain('"serverInfo":{"name":"agent-incident-mcp"');
}, 90_000);

it('the Claude Desktop entry `config claude-desktop` prints launches a server a host can use, as the host would', async () => {
  // What the README tells a user to run; the host then runs `command` with `args` and `env` exactly.
  const printed = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ['dist/src/cli.js', 'config', 'claude-desktop', '--sandbox', '--scenario', 'runaway_spending:agent-07'],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    ),
  );
  const entry = (
    JSON.parse(printed) as {
      mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }>;
    }
  ).mcpServers['agent-incident']!;
  expect(entry.command).toBe(process.execPath);
  // A host starts it from its own directory, with its own small environment.
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args,
    env: { PATH: '/usr/bin:/bin', HOME: tmpdir(), ...(entry.env ?? {}) },
    cwd: tmpdir(),
    stderr: 'ignore',
  });
  const client = new Client({ name: 'claude-desktop-like', version: '1' });
  await client.connect(transport);
  try {
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('contain_agent');
    const detect = await client.callTool({
      name: 'detect_anomalies',
      arguments: { agent_ids: ['agent-07'] },
    });
    expect(detect.isError).toBeFalsy();
  } finally {
    await client.close();
  }
}, 90_000);
