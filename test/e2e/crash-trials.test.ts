/**
 * kill -9 at random points of a containment, then a restart on the same data dir, twenty times: the
 * restarted server finishes the incident, its record equals the sandbox's books exactly (each refund
 * counted once across both runs, none made twice), and no action the killed run had begun stays open.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/incidents/index.js';
import { prng } from '../../src/sandbox/world.js';
import { systemClock } from '../../src/util/clock.js';
import { spawnSandbox, spawnServer } from '../helpers/spawn.js';

const TRIALS = 20;
const children: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'aim-kill-'));
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('kill -9 at random points', () => {
  it(`${TRIALS} trials: records exact, no begun action left unreconciled`, async () => {
    const sb = await spawnSandbox(
      ['--agents', String(TRIALS), '--latency-ms', '25', '--time-scale', '0', '--seed', '3'],
      children,
    );
    const random = prng(20261202);
    const killedAt: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const agent = sb.info.fleet[trial] as string;
      await sb.runaway(agent, 3);
      // The agent's own traffic may have refunded escrows before: only what happens from here is ours.
      const before = await sb.control(`/agents/${agent}`);

      const first = spawnServer(sb.info, dataDir, children);
      await first.ready;
      void first.rpc('tools/call', {
        name: 'contain_agent',
        arguments: { agent_id: agent, reason: 'kill trial' },
      });
      // Anywhere from before the incident exists to after containment finished.
      const delay = Math.floor(random() * 700);
      killedAt.push(delay);
      await new Promise((r) => setTimeout(r, delay));
      first.child.kill('SIGKILL');
      await once(first.child, 'exit');

      const second = spawnServer(sb.info, dataDir, children);
      await second.ready;
      const again = (await second.rpc('tools/call', {
        name: 'contain_agent',
        arguments: { agent_id: agent, reason: 'after restart' },
      })) as { result: { structuredContent: Record<string, unknown> } };
      const r = again.result.structuredContent;
      second.child.stdin!.end();
      await once(second.child, 'exit');

      const truth = await sb.control(`/agents/${agent}`);
      const context = `trial ${trial}, killed after ${delay} ms`;
      expect(r.status, context).toBe('contained');
      expect(truth, context).toMatchObject({
        frozen: true,
        held_escrows: 0,
        daily_cap: 0,
        double_refunds: 0,
      });
      const refunded = (truth.escrows_refunded as number) - (before.escrows_refunded as number);
      const cents = (x: Record<string, unknown>) => Math.round(Number(x.refunded_amount) * 100);
      expect(r.escrows_cancelled, context).toBe(refunded);
      const unlocked = r.amount_unlocked as { amount: string; currency: string };
      expect(unlocked.currency, context).toBe('CREDITS');
      expect(Math.round(Number(unlocked.amount) * 100), context).toBe(cents(truth) - cents(before));
      const store = openStore({ dataDir, clock: systemClock });
      const incident = store.getIncident(r.incident_id as string);
      expect(incident?.escrows_cancelled, context).toBe(refunded);
      const open = store
        .pendingActions(r.incident_id as string)
        .filter((a) => !a.action.startsWith('publish_'));
      expect(open, context).toEqual([]);
      store.close();
    }
    // The trials spread over the whole containment, not one phase of it.
    expect(Math.min(...killedAt)).toBeLessThan(150);
    expect(Math.max(...killedAt)).toBeGreaterThan(500);
    sb.child.kill('SIGTERM');
  }, 240_000);
});
