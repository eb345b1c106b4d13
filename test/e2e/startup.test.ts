/**
 * Start-up as an operator meets it (issue 9, findings 5 and 12): a containment key that could never act
 * safely is refused at start with exit 2 and one line (not at the first tool call, not with a stack), an
 * unknown threshold name is refused the same way, `--version` answers, `--watch` says what it watches,
 * and a `--sandbox` run leaves no store behind unless a store path was given.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type SpawnedSandbox, spawnSandbox } from '../helpers/spawn.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
let sandbox: SpawnedSandbox;

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'aim-start-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  sandbox = await spawnSandbox(['--agents', '4', '--time-scale', '0'], children);
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The environment of a server against the spawned sandbox, with `extra` on top (undefined removes). */
function gatewayEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const { info } = sandbox;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: tempDir(),
    GREENHELIX_BASE_URL: info.url,
    GREENHELIX_MONITOR_KEY: info.keys.monitor,
    GREENHELIX_CONTAINMENT_KEY: info.keys.containment,
    INCIDENT_FLEET: info.fleet.join(','),
    INCIDENT_DATA_DIR: tempDir(),
    INCIDENT_LOG_LEVEL: 'info',
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI until it exits (stdin closed at once), or kills it after `ms`. */
async function run(args: string[], env: NodeJS.ProcessEnv, ms = 20_000): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Expects exit 2 with exactly one stderr line, no stack trace, matching `pattern`. */
function expectRefused(r: Run, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(lines[0]).toMatch(/^agent-incident-mcp: /);
  expect(lines[0]).toMatch(pattern);
}

/** Starts the CLI, waits for its answer to initialize, and returns it with stderr so far; then stops it. */
async function startAndInit(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  child.stdin!.write(
    `${JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    })}\n`,
  );
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  // stdout and stderr are two pipes: a line the server wrote to stderr before answering may reach us
  // after the answer, so a check on stderr waits for its line rather than reading it once.
  const stderrLine = async (text: string, ms = 5_000): Promise<string | undefined> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = stderr.split('\n').find((l) => l.includes(text));
      if (found || Date.now() > deadline) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, init: JSON.parse(line) as Record<string, unknown>, stderr: () => stderr, stderrLine };
}

describe('start-up key checks (exit 2, one line)', () => {
  it('a containment key equal to the monitor key', async () => {
    const r = await run([], gatewayEnv({ GREENHELIX_CONTAINMENT_KEY: sandbox.info.keys.monitor }));
    expectRefused(r, /containment key .*same as the monitor key/);
    expect(r.stderr).not.toContain(sandbox.info.keys.monitor);
  });

  it("a containment key equal to a fleet agent's key, proved by the gateway's key list", async () => {
    const agent = sandbox.info.fleet[1]!;
    const r = await run([], gatewayEnv({ GREENHELIX_CONTAINMENT_KEY: sandbox.info.keys.agents[agent] }));
    expectRefused(r, new RegExp(`belongs to agent ${agent}`));
  });

  it('a containment key equal to a configured agent key, without asking the gateway (it is down)', async () => {
    const agent = sandbox.info.fleet[2]!;
    const file = join(tempDir(), 'config.json');
    writeFileSync(file, JSON.stringify({ greenhelix: { agentKeys: sandbox.info.keys.agents } }));
    const r = await run(
      ['--config', file],
      gatewayEnv({
        GREENHELIX_BASE_URL: 'http://127.0.0.1:9',
        GREENHELIX_CONTAINMENT_KEY: sandbox.info.keys.agents[agent],
      }),
    );
    expectRefused(r, new RegExp(`belongs to agent ${agent}`));
  });

  it('a key with surrounding spaces', async () => {
    const r = await run([], gatewayEnv({ GREENHELIX_CONTAINMENT_KEY: ` ${sandbox.info.keys.containment} ` }));
    expectRefused(r, /GREENHELIX_CONTAINMENT_KEY.*(space|whitespace)/);
    const m = await run([], gatewayEnv({ GREENHELIX_MONITOR_KEY: `${sandbox.info.keys.monitor}\t` }));
    expectRefused(m, /GREENHELIX_MONITOR_KEY.*(space|whitespace)/);
  });

  it('a non-admin key of an agent outside the fleet (it could never freeze a wallet)', async () => {
    const [a, b, outside] = sandbox.info.fleet as [string, string, string];
    const r = await run(
      [],
      gatewayEnv({
        INCIDENT_FLEET: `${a},${b}`,
        GREENHELIX_CONTAINMENT_KEY: sandbox.info.keys.agents[outside],
      }),
    );
    expectRefused(r, /containment key .*admin scope/);
  });

  it('a gateway that cannot be reached does not stop the start: a warning, and tools check again', async () => {
    const s = await startAndInit([], gatewayEnv({ GREENHELIX_BASE_URL: 'http://127.0.0.1:9' }));
    expect(s.init.result).toBeTruthy();
    expect(await s.stderrLine('could not check the containment key at start'), s.stderr()).toBeTruthy();
    s.child.kill('SIGKILL');
  });

  it('the right keys start', async () => {
    const s = await startAndInit([], gatewayEnv());
    expect(s.init.result).toBeTruthy();
    s.child.kill('SIGKILL');
  });
});

describe('start-up settings and flags', () => {
  it('an unknown threshold name exits 2 naming it and listing the accepted ones', async () => {
    const r = await run([], gatewayEnv({ INCIDENT_THRESHOLDS: '{"k_sigma": 2.5, "k_sigmaa": 3}' }));
    expectRefused(r, /thresholds: unknown name "k_sigmaa" \(did you mean "k_sigma"\?\).*accepted: .*k_sigma/);
  });

  it('--version prints the version and exits 0', async () => {
    const r = await run(['--version'], { PATH: process.env.PATH });
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`agent-incident-mcp ${pkg.version}`);
  });

  it('--watch says at start what it watches and when the first tick is', async () => {
    const s = await startAndInit(['--watch=shadow'], gatewayEnv({ INCIDENT_WATCH_INTERVAL_MS: '20000' }));
    const line = await s.stderrLine('watcher started');
    expect(line, s.stderr()).toBeTruthy();
    const log = JSON.parse(line!) as Record<string, unknown>;
    expect(log).toMatchObject({ mode: 'shadow', agents: 4, interval_ms: 20_000 });
    expect(typeof log.first_tick_at).toBe('string');
    expect(log.msg).toMatch(/watcher started: 4 agents, shadow mode, every 20 s, first tick/);
    s.child.kill('SIGKILL');
  });

  it('a --sandbox run leaves no store behind, unless a store path was given', async () => {
    const home = tempDir();
    const tmp = tempDir();
    const env = { PATH: process.env.PATH, HOME: home, TMPDIR: tmp, INCIDENT_LOG_LEVEL: 'warn' };
    const s = await startAndInit(['--sandbox', '--time-scale', '0'], env);
    expect(s.init.result).toBeTruthy();
    expect(readdirSync(tmp).length).toBeGreaterThan(0);
    s.child.stdin!.end();
    const [code] = await once(s.child, 'exit');
    expect(code).toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
    expect(existsSync(join(home, '.agent-incident-mcp'))).toBe(false);

    const kept = tempDir();
    const k = await startAndInit(['--sandbox', '--time-scale', '0', '--data-dir', kept], env);
    k.child.stdin!.end();
    await once(k.child, 'exit');
    const runs = readdirSync(join(kept, 'sandbox'));
    expect(runs).toHaveLength(1);
    expect(readdirSync(join(kept, 'sandbox', runs[0]!))).toContain('incidents.sqlite');
  });
});
