/**
 * `agent-incident-mcp config claude-desktop`: prints the `mcpServers` block for claude_desktop_config.json
 * with absolute paths, ready to paste. The Node path matters: better-sqlite3 is built for one Node ABI,
 * and a bare `"command": "node"` runs whichever Node comes first on the host's PATH.
 */
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

export interface DesktopConfigIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface DesktopConfigRuntime {
  /** The Node running this command (`process.execPath`): the one this install's native driver loads in. */
  execPath: string;
  /** The absolute path of the built cli.js. */
  cliPath: string;
  /** `process.version`. */
  nodeVersion: string;
}

/** Placeholders for a real fleet: the operator fills them in (see README, Configuration). */
const GATEWAY_ENV = {
  GREENHELIX_BASE_URL: 'https://api.greenhelix.net',
  GREENHELIX_MONITOR_KEY: 'a2a_enterprise_…  (admin-scoped, used only to read)',
  GREENHELIX_CONTAINMENT_KEY: 'a2a_enterprise_…  (a different admin-scoped key, used only to act)',
  INCIDENT_FLEET: 'agent-01,agent-02,agent-03',
  INCIDENT_SHARED_WALLETS: 'fleet-treasury',
};

export const DESKTOP_CONFIG_USAGE =
  'usage: agent-incident-mcp config claude-desktop [--sandbox [--scenario NAME:AGENT]...] [--read-only] [--name NAME]';

/** The block itself: absolute node, absolute cli.js, and the gateway variables unless it is the sandbox. */
export function claudeDesktopConfig(
  runtime: Pick<DesktopConfigRuntime, 'execPath' | 'cliPath'>,
  o: { sandbox?: boolean; scenarios?: string[]; readOnly?: boolean; name?: string } = {},
): { mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }> } {
  const args = [runtime.cliPath];
  if (o.sandbox) {
    args.push('--sandbox');
    for (const s of o.scenarios ?? []) args.push('--scenario', s);
  }
  if (o.readOnly) args.push('--read-only');
  return {
    mcpServers: {
      [o.name ?? 'agent-incident']: {
        command: runtime.execPath,
        args,
        ...(o.sandbox ? {} : { env: { ...GATEWAY_ENV } }),
      },
    },
  };
}

export function runDesktopConfigCommand(
  argv: string[],
  io: DesktopConfigIo,
  runtime: DesktopConfigRuntime,
): number {
  const [target, ...rest] = argv;
  if (target !== 'claude-desktop') {
    io.stderr(`agent-incident-mcp: config: unknown target ${JSON.stringify(target ?? '')}`);
    io.stderr(DESKTOP_CONFIG_USAGE);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      sandbox: { type: 'boolean' },
      scenario: { type: 'string', multiple: true },
      'read-only': { type: 'boolean' },
      name: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.scenario?.length && !values.sandbox) {
    io.stderr('agent-incident-mcp: config: --scenario needs --sandbox');
    return 2;
  }
  const block = claudeDesktopConfig(runtime, {
    sandbox: values.sandbox,
    scenarios: values.scenario,
    readOnly: values['read-only'],
    name: values.name,
  });
  io.stdout(`${JSON.stringify(block, null, 2)}\n`);
  // stderr, so `> file` or a pipe gets the JSON alone.
  io.stderr(
    `Node ${runtime.nodeVersion} at ${runtime.execPath} runs this server: its SQLite driver is built for this Node. ` +
      `After changing or upgrading Node, run \`npm rebuild better-sqlite3\` in ${packageRoot(runtime.cliPath)} with the new Node first on PATH, then print this block again.`,
  );
  return 0;
}

/** The install's root: cli.js lives in <root>/dist/src/. */
function packageRoot(cliPath: string): string {
  return dirname(dirname(dirname(cliPath)));
}
