/**
 * kill -9 mid-containment, then restart: the incident completes (the open refund window is closed again)
 * and the pre-incident caps are still restorable. The sandbox runs in its own process so it outlives
 * the server, as the real gateway would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/incidents/index.js';
import { systemClock } from '../../src/util/clock.js';

const CLI = new URL('../../dist/src/cli.js', import.meta.url).pathname;
const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'aim-crash-'));

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

interface SandboxInfo {
  url: string;
  control_token: string;
  keys: { monitor: string; containment: string; agents: Record<string, string> };
  fleet: string[];
}

function startServer(info: SandboxInfo) {
  const child = spawn(process.execPath, [CLI], {
    env: {
      PATH: process.env.PATH,
      GREENHELIX_BASE_URL: info.url,
      GREENHELIX_MONITOR_KEY: info.keys.monitor,
      GREENHELIX_CONTAINMENT_KEY: info.keys.containment,
      INCIDENT_FLEET: info.fleet.join(','),
      INCIDENT_DATA_DIR: dataDir,
      INCIDENT_LOG_LEVEL: 'warn',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  const waiters = new Map<number, (m: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (typeof msg.id === 'number') waiters.get(msg.id)?.(msg);
  });
  let id = 0;
  const rpc = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const n = ++id;
      waiters.set(n, resolve);
      child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', id: n, method, params })}\n`);
    });
  const ready = rpc('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 't', version: '1' },
  }).then(() =>
    child.stdin!.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`),
  );
  return { child, rpc, ready };
}

describe('crash mid-containment', () => {
  it('a restarted server finishes the containment and the pre-incident caps stay restorable', async () => {
    const sb = spawn(
      process.execPath,
      [
        CLI,
        'sandbox',
        '--port',
        '0',
        '--agents',
        '3',
        '--latency-ms',
        '60',
        '--time-scale',
        '0',
        '--seed',
        '5',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(sb);
    const [line] = (await once(createInterface({ input: sb.stdout! }), 'line')) as [string];
    const info = JSON.parse(line) as SandboxInfo;
    const control = (path: string, init: RequestInit = {}) =>
      fetch(`${info.url}/_sandbox${path}`, {
        ...init,
        headers: { authorization: `Bearer ${info.control_token}`, 'content-type': 'application/json' },
      }).then((r) => r.json() as Promise<Record<string, unknown>>);
    const agent = info.fleet[1]!;
    const before = await control(`/agents/${agent}`);
    await control('/scenarios', {
      method: 'POST',
      body: JSON.stringify({ scenario: 'runaway_spending', agent_id: agent, rate_per_min: 30, amount: 150 }),
    });
    await control('/clock/advance', { method: 'POST', body: JSON.stringify({ ms: 8 * 60_000 }) });
    const loaded = await control(`/agents/${agent}`);
    expect(loaded.held_escrows as number).toBeGreaterThan(100);

    const first = startServer(info);
    await first.ready;
    void first.rpc('tools/call', {
      name: 'contain_agent',
      arguments: { agent_id: agent, reason: 'crash test' },
    });

    // Kill as soon as the escrow cancellations are under way: the refund window is open.
    const store = openStore({ dataDir, clock: systemClock });
    let incidentId: string | undefined;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const incident = store.findActiveIncident(agent);
      if (incident && store.listActions(incident.id).some((a) => a.action === 'cancel_held_escrows')) {
        incidentId = incident.id;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    expect(incidentId).toBeDefined();
    expect(store.getIncident(incidentId!)?.status).toBe('containing');
    expect(store.pendingActions(incidentId!).length).toBeGreaterThan(0);
    expect(store.getPreIncidentState(incidentId!, agent)?.daily_cap).toBe(
      before.daily_cap === null ? null : Math.round((before.daily_cap as number) * 100),
    );
    store.close();

    const second = startServer(info);
    await second.ready;
    // The restarted server resumes the incident in the background; a caller for the same agent waits
    // on the per-agent lock and gets the one, finished incident (never a second containment).
    const again = (await second.rpc('tools/call', {
      name: 'contain_agent',
      arguments: { agent_id: agent, reason: 'after restart' },
    })) as {
      result: { structuredContent: { incident_id: string; status: string } };
    };
    expect(again.result.structuredContent.incident_id).toBe(incidentId);
    expect(again.result.structuredContent.status).toBe('contained');
    const view = (await second.rpc('tools/call', {
      name: 'get_incident',
      arguments: { incident_id: incidentId },
    })) as {
      result: { structuredContent: { incident: { status: string }; actions: { action: string }[] } };
    };
    expect(view.result.structuredContent.incident.status).toBe('contained');
    expect(
      view.result.structuredContent.actions.filter((a) => a.action === 'close_refund_window').length,
    ).toBeGreaterThanOrEqual(1);
    const after = await control(`/agents/${agent}`);
    expect(after.frozen).toBe(true);
    expect(after.daily_cap).toBe(0);
    expect(after.held_escrows).toBe(0);

    await control('/scenarios', { method: 'GET' });
    const recovered = (await second.rpc('tools/call', {
      name: 'recover_agent',
      arguments: { incident_id: incidentId, root_cause_fixed: true, confirmed_by: 'test' },
    })) as { result: { structuredContent: { applied: boolean } } };
    expect(recovered.result.structuredContent.applied).toBe(true);
    const restored = await control(`/agents/${agent}`);
    expect(restored.daily_cap).toBe((before.daily_cap as number) / 2);
    second.child.stdin!.end();
    await once(second.child, 'exit');
    sb.kill('SIGTERM');
  }, 60_000);
});
