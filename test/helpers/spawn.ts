/**
 * The built CLI in child processes, as an operator runs it: a sandbox gateway in its own process (so it
 * outlives a killed server, as the real gateway would) and MCP servers over stdio driven by raw JSON-RPC.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;

export interface SandboxInfo {
  url: string;
  control_token: string;
  keys: { monitor: string; containment: string; agents: Record<string, string> };
  fleet: string[];
}

export interface SpawnedSandbox {
  info: SandboxInfo;
  child: ChildProcess;
  control(path: string, init?: RequestInit): Promise<Record<string, unknown>>;
  /** Runs a runaway loop ($150 at 30 a minute) on `agent` for `minutes` of sandbox time, then stops it. */
  runaway(agent: string, minutes: number): Promise<void>;
}

export async function spawnSandbox(args: string[], children: ChildProcess[]): Promise<SpawnedSandbox> {
  const child = spawn(process.execPath, [CLI, 'sandbox', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  drainStderr(child);
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const info = JSON.parse(line) as SandboxInfo;
  const control = (path: string, init: RequestInit = {}) =>
    fetch(`${info.url}/_sandbox${path}`, {
      ...init,
      headers: { authorization: `Bearer ${info.control_token}`, 'content-type': 'application/json' },
    }).then((r) => r.json() as Promise<Record<string, unknown>>);
  const runaway = async (agent: string, minutes: number) => {
    const s = await control('/scenarios', {
      method: 'POST',
      body: JSON.stringify({ scenario: 'runaway_spending', agent_id: agent, rate_per_min: 30, amount: 150 }),
    });
    await control('/clock/advance', { method: 'POST', body: JSON.stringify({ ms: minutes * 60_000 }) });
    await control(`/scenarios/${s.id as string}`, { method: 'DELETE' });
  };
  return { info, child, control, runaway };
}

/**
 * Reads a child's stderr as it comes. A pipe nobody reads fills (64 KiB) and then blocks the child on its
 * next log line: a server that logs enough warnings would hang mid-call.
 */
function drainStderr(child: ChildProcess): () => string {
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-8_000);
  });
  return () => tail;
}

export interface SpawnedServer {
  child: ChildProcess;
  /** Rejects after `timeoutMs` (default 60 s) with the server's recent stderr, so a hang names itself. */
  rpc(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  ready: Promise<void>;
  /** The last 8 KB the server wrote to stderr. */
  stderr(): string;
  /** Writes one raw line to the server's stdin (a newline is added). */
  raw(line: string): void;
  /** Every message the server has written to stdout, parsed (a line that is not JSON fails the test run). */
  messages: Record<string, unknown>[];
}

export function spawnServer(
  info: SandboxInfo,
  dataDir: string,
  children: ChildProcess[],
  env: Record<string, string> = {},
  args: string[] = [],
): SpawnedServer {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      PATH: process.env.PATH,
      GREENHELIX_BASE_URL: info.url,
      GREENHELIX_MONITOR_KEY: info.keys.monitor,
      GREENHELIX_CONTAINMENT_KEY: info.keys.containment,
      INCIDENT_FLEET: info.fleet.join(','),
      INCIDENT_DATA_DIR: dataDir,
      INCIDENT_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  const stderr = drainStderr(child);
  const waiters = new Map<number, (m: Record<string, unknown>) => void>();
  const messages: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    messages.push(msg);
    if (typeof msg.id === 'number') waiters.get(msg.id)?.(msg);
  });
  child.on('exit', (code, signal) => {
    for (const [n, w] of [...waiters]) w({ id: n, exited: { code, signal }, stderr: stderr() });
  });
  let id = 0;
  const rpc = (method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const n = ++id;
      const timer = setTimeout(() => {
        waiters.delete(n);
        reject(
          new Error(
            `${method} #${n} (pid ${child.pid}) got no answer in ${timeoutMs} ms; stderr:\n${stderr()}`,
          ),
        );
      }, timeoutMs);
      waiters.set(n, (m) => {
        clearTimeout(timer);
        waiters.delete(n);
        resolve(m);
      });
      child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', id: n, method, params })}\n`);
    });
  const ready = rpc('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 't', version: '1' },
  }).then(() => {
    child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  });
  const raw = (line: string) => void child.stdin!.write(`${line}\n`);
  return { child, rpc, ready, stderr, raw, messages };
}
