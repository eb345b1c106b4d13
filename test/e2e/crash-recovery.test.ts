/**
 * kill -9 mid-containment, then restart: the incident completes (the open refund window is closed again)
 * and the pre-incident caps are still restorable. The sandbox runs in its own process so it outlives
 * the server, as the real gateway would.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/incidents/index.js';
import { systemClock } from '../../src/util/clock.js';
import { spawnSandbox, spawnServer } from '../helpers/spawn.js';

const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'aim-crash-'));

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('crash mid-containment', () => {
  it('a restarted server finishes the containment and the pre-incident caps stay restorable', async () => {
    const {
      info,
      child: sb,
      control,
    } = await spawnSandbox(
      ['--agents', '3', '--latency-ms', '60', '--time-scale', '0', '--seed', '5'],
      children,
    );
    const agent = info.fleet[1]!;
    const before = await control(`/agents/${agent}`);
    await control('/scenarios', {
      method: 'POST',
      body: JSON.stringify({ scenario: 'runaway_spending', agent_id: agent, rate_per_min: 30, amount: 150 }),
    });
    await control('/clock/advance', { method: 'POST', body: JSON.stringify({ ms: 8 * 60_000 }) });
    const loaded = await control(`/agents/${agent}`);
    expect(loaded.held_escrows as number).toBeGreaterThan(100);

    const first = spawnServer(info, dataDir, children);
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

    const second = spawnServer(info, dataDir, children);
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
