/**
 * The sandbox in a process of its own, driven over its `/_sandbox/` control API: a bench that measures
 * the watcher's wall time must not also pay for the gateway's work on the same event loop (a real gateway
 * runs elsewhere). Time stands still between `advance` calls (timeScale 0), so the clock handed to the
 * app reads the sandbox time the last call returned.
 *
 *   const sb = await spawnSandbox({ agents: 1000, seed: 31, startAt, timeScale: 0 });
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SandboxOptions } from '../../src/sandbox/index.js';
import type { Clock } from '../../src/util/clock.js';

export interface RemoteSandbox {
  readonly url: string;
  readonly keys: { monitor: string; containment: string; agents: Record<string, string> };
  readonly fleet: string[];
  readonly sharedWallet: string | null;
  readonly clock: Clock;
  readonly pid: number;
  advance(ms: number): Promise<void>;
  setFaults(f: { latencyMs?: number; jitterMs?: number }): Promise<void>;
  /** Request-log entries after `seq` (the gateway's own record of every call it served). */
  requestLog(seq?: number): Promise<{ seq: number; tool?: string | null }[]>;
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./sandbox-process.ts', import.meta.url));

export async function spawnSandbox(opts: SandboxOptions): Promise<RemoteSandbox> {
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, CHILD, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`sandbox process exited ${code} before it started`)));
  });
  const info = JSON.parse(first) as {
    url: string;
    control_token: string;
    keys: RemoteSandbox['keys'];
    fleet: string[];
    shared_wallet: string | null;
    now: number;
  };
  let now = info.now;
  const control = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${info.url}/_sandbox${path}`, {
      method,
      headers: { authorization: `Bearer ${info.control_token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`sandbox control ${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  return {
    url: info.url,
    keys: info.keys,
    fleet: info.fleet,
    sharedWallet: info.shared_wallet,
    clock: { now: () => now },
    pid: child.pid!,
    advance: async (ms) => {
      now = Number((await control('POST', '/clock/advance', { ms })).now);
    },
    setFaults: async (f) => {
      await control('POST', '/faults', {
        ...(f.latencyMs === undefined ? {} : { latency_ms: f.latencyMs }),
        ...(f.jitterMs === undefined ? {} : { jitter_ms: f.jitterMs }),
      });
    },
    requestLog: async (seq = 0) =>
      (await control('GET', `/requests?since=${seq}`)).requests as { seq: number; tool?: string | null }[],
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
