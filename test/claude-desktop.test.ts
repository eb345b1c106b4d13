import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { claudeDesktopConfig, runDesktopConfigCommand } from '../src/claude-desktop.js';

const RUNTIME = {
  execPath: '/opt/node-22/bin/node',
  cliPath: '/srv/aim/dist/src/cli.js',
  nodeVersion: 'v22.23.5',
};

function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = runDesktopConfigCommand(
    argv,
    { stdout: (s) => out.push(s), stderr: (s) => err.push(s) },
    RUNTIME,
  );
  return { code, stdout: out.join(''), stderr: err.join('\n') };
}

describe('config claude-desktop', () => {
  it('prints a block with the absolute Node and cli.js, and no gateway variables for the sandbox', () => {
    const r = run(['claude-desktop', '--sandbox', '--scenario', 'runaway_spending:agent-07']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      mcpServers: {
        'agent-incident': {
          command: '/opt/node-22/bin/node',
          args: ['/srv/aim/dist/src/cli.js', '--sandbox', '--scenario', 'runaway_spending:agent-07'],
        },
      },
    });
    // The how-to-rebuild note goes to stderr, so stdout is the JSON alone.
    expect(r.stderr).toContain('npm rebuild better-sqlite3');
    expect(r.stderr).toContain('/srv/aim');
  });

  it('lists the gateway variables to fill in for a real fleet, and passes --read-only on', () => {
    const block = claudeDesktopConfig(RUNTIME, { readOnly: true });
    const server = block.mcpServers['agent-incident']!;
    expect(server.args).toEqual(['/srv/aim/dist/src/cli.js', '--read-only']);
    expect(Object.keys(server.env ?? {})).toEqual([
      'GREENHELIX_BASE_URL',
      'GREENHELIX_MONITOR_KEY',
      'GREENHELIX_CONTAINMENT_KEY',
      'INCIDENT_FLEET',
      'INCIDENT_SHARED_WALLETS',
    ]);
  });

  it('refuses an unknown target and a scenario without the sandbox with exit 2', () => {
    expect(run(['vscode']).code).toBe(2);
    const r = run(['claude-desktop', '--scenario', 'runaway_spending:agent-07']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--scenario needs --sandbox');
  });
});

describe('README, Claude Desktop', () => {
  it('shows exactly the blocks the command prints (with example paths)', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Claude Desktop'), readme.indexOf('## HTTP mode'));
    const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] as string));
    const example = { execPath: '/usr/bin/node', cliPath: '/home/you/agent-incident-mcp/dist/src/cli.js' };
    expect(blocks).toEqual([
      claudeDesktopConfig(example, { sandbox: true, scenarios: ['runaway_spending:agent-07'] }),
      claudeDesktopConfig(example),
    ]);
  });
});
