/**
 * The built CLI and the Node it runs on: the Claude Desktop block it prints names this Node, and a Node of
 * another ABI (INCIDENT_TEST_OTHER_NODE, which .ci/run sets from .ci/node-line) exits 2 with one line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/spawn.js';

const OTHER_NODE = process.env.INCIDENT_TEST_OTHER_NODE;

describe('the CLI on the Node that runs it', () => {
  it('config claude-desktop prints absolute paths to this Node and to the built cli.js', () => {
    const r = spawnSync(process.execPath, [CLI, 'config', 'claude-desktop', '--sandbox'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const server = JSON.parse(r.stdout).mcpServers['agent-incident'];
    expect(server.command).toBe(process.execPath);
    expect(server.args[0]).toBe(CLI);
    expect(existsSync(server.args[0])).toBe(true);
  });

  it.runIf(OTHER_NODE)('exits 2 with one line naming both Nodes under a Node of another ABI', () => {
    const other = OTHER_NODE as string;
    const otherAbi = spawnSync(other, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout.trim();
    expect(otherAbi, 'INCIDENT_TEST_OTHER_NODE must have another ABI than this Node').not.toBe(
      process.versions.modules,
    );
    const r = spawnSync(other, [CLI, '--sandbox'], { encoding: 'utf8', input: '', timeout: 30_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`NODE_MODULE_VERSION ${process.versions.modules}`);
    expect(lines[0]).toContain(`NODE_MODULE_VERSION ${otherAbi}) at ${other}`);
    expect(lines[0]).toContain('npm rebuild better-sqlite3');
    // Nothing started before the check: no sandbox log line on stderr, nothing on stdout.
    expect(r.stdout).toBe('');
  });
});
