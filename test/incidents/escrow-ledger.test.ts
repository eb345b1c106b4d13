/** The escrow ledger and the leases, on both engines (two stores on one place: two processes or replicas). */
import { afterEach, describe, expect, it } from 'vitest';
import { Leases } from '../../src/incidents/index.js';
import { cleanupStores, ENGINES, type Engine, newStorePlace, type StorePlace } from '../helpers/stores.js';

afterEach(cleanupStores);
const clock = (t = { now: 1_700_000_000_000 }) => ({ now: () => t.now, t });
const open = (place: StorePlace, c = clock()) => {
  const store = place.open(c);
  const { incident } = store.claimContainment('agent-1', {
    agent_ids: ['agent-1'],
    primary_agent_id: 'agent-1',
    reason: 'test',
    kind: 'containment',
  });
  return { store, incident, c };
};
const esc = (id: string, amount = 15_000) => ({ id, payee: 'vendor', amount });

describe.each(ENGINES)('%s', (engine: Engine) => {
  const tmp = () => newStorePlace(engine);
  describe('escrow ledger', () => {
    it('claims each id once, however often and in whatever order the list repeats it', () => {
      const { store, incident } = open(tmp());
      const first = store.escrows.claim(incident.id, 'agent-1', [esc('e1'), esc('e2'), esc('e1')]);
      expect(first).toEqual(['e1', 'e2']);
      // The next page repeats e2 (the list shifted while the agent created e3).
      expect(store.escrows.claim(incident.id, 'agent-1', [esc('e2'), esc('e3')])).toEqual(['e3']);
      store.escrows.settle([
        { escrow_id: 'e1', state: 'cancelled' },
        { escrow_id: 'e2', state: 'cancelled' },
        { escrow_id: 'e3', state: 'gone' },
      ]);
      expect(store.escrows.claim(incident.id, 'agent-1', [esc('e1'), esc('e2'), esc('e3')])).toEqual([]);
      expect(store.escrows.totals(incident.id)).toEqual({
        cancelled: 2,
        cancelled_cents: 30_000,
        open: 0,
        open_cents: 0,
        gone: 1,
      });
    });

    it('retries only attempts known to have changed nothing; unknown ones wait for a re-read', () => {
      const { store, incident } = open(tmp());
      store.escrows.claim(incident.id, 'agent-1', [esc('e1'), esc('e2')]);
      store.escrows.settle([
        { escrow_id: 'e1', state: 'retry', error: 'rate_limited' },
        { escrow_id: 'e2', state: 'unknown', error: 'timeout' },
      ]);
      expect(store.escrows.claim(incident.id, 'agent-1', [esc('e1'), esc('e2')])).toEqual(['e1']);
      expect(store.escrows.unresolved(incident.id).map((r) => [r.escrow_id, r.state])).toEqual([
        ['e1', 'sending'],
        ['e2', 'unknown'],
      ]);
      expect(store.escrows.totals(incident.id)).toMatchObject({ cancelled: 0, open: 2, open_cents: 30_000 });
    });

    it('survives a reopen: rows left sending by a crash are unresolved, and refunds stay ours', () => {
      const dir = tmp();
      const a = open(dir);
      a.store.escrows.claim(a.incident.id, 'agent-1', [esc('e1'), esc('e2')]);
      a.store.escrows.settle([{ escrow_id: 'e1', state: 'cancelled' }]);
      a.store.close();
      const b = dir.open(clock());
      expect(b.escrows.unresolved(a.incident.id).map((r) => r.escrow_id)).toEqual(['e2']);
      expect([...b.escrowIdsCancelledByUs('agent-1')].sort()).toEqual(['e1', 'e2']);
      expect(b.escrowIdsCancelledByUs('agent-2').size).toBe(0);
      b.close();
    });

    it('a later incident may retry what an earlier one left retryable, but never takes an in-flight or counted one', () => {
      const { store, incident } = open(tmp());
      store.escrows.claim(incident.id, 'agent-1', [esc('e1'), esc('e2'), esc('e3')]);
      store.escrows.settle([
        { escrow_id: 'e1', state: 'retry' },
        { escrow_id: 'e2', state: 'cancelled' },
      ]);
      const other = store.createIncident({
        agent_ids: ['agent-1'],
        primary_agent_id: 'agent-1',
        reason: 'x',
        kind: 'containment',
      });
      expect(store.escrows.claim(other.id, 'agent-1', [esc('e1'), esc('e2'), esc('e3')])).toEqual(['e1']);
      expect(store.escrows.totals(other.id)).toMatchObject({ open: 1, cancelled: 0 });
      expect(store.escrows.totals(incident.id)).toMatchObject({ open: 1, cancelled: 1 });
    });
  });

  describe('leases', () => {
    it('one owner at a time; expiry and release let the next in; renew fails once lost', () => {
      const dir = tmp();
      const c = clock();
      const sa = dir.open(c);
      const sb = dir.open(c);
      // The store's leases run on real time; the same class on a test clock shows expiry.
      const a = { leases: new Leases(sa.db, c), close: () => sa.close() };
      const b = { leases: new Leases(sb.db, c), close: () => sb.close() };
      expect(a.leases.acquire('contain:agent-1', 'A', 10_000)).toBe(true);
      expect(b.leases.acquire('contain:agent-1', 'B', 10_000)).toBe(false);
      expect(a.leases.acquire('contain:agent-1', 'A', 10_000)).toBe(true);
      c.t.now += 10_001;
      expect(b.leases.acquire('contain:agent-1', 'B', 10_000)).toBe(true);
      expect(a.leases.renew('contain:agent-1', 'A', 10_000)).toBe(false);
      expect(b.leases.renew('contain:agent-1', 'B', 10_000)).toBe(true);
      a.leases.release('contain:agent-1', 'A');
      expect(b.leases.get('contain:agent-1')?.owner).toBe('B');
      b.leases.release('contain:agent-1', 'B');
      expect(a.leases.acquire('contain:agent-1', 'A', 10_000)).toBe(true);
      expect(b.leases.takeOver('contain:agent-1', 'X', 'B', 10_000)).toBe(false);
      expect(b.leases.takeOver('contain:agent-1', 'A', 'B', 10_000)).toBe(true);
      a.close();
      b.close();
    });
  });
});
