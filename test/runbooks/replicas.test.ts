/**
 * Replicas on one store: the fleet split by rendezvous hashing over the live set, a dead replica's agents
 * taken over once its heartbeat is stale, wakes routed to the owner, alert notices de-duplicated across them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { ownerIsDead } from '../../src/runbooks/lease.js';
import { ownerOf, ReplicaSet, replicaTiming } from '../../src/runbooks/replicas.js';
import { systemClock } from '../../src/util/clock.js';
import { cleanupStores, ENGINES, newStorePlace, type StorePlace } from '../helpers/stores.js';

const sets: ReplicaSet[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const s of sets.splice(0)) s.stop();
  cleanupStores();
});
/** One replica: its own store connection on the shared place, as a separate process would have. */
const replica = (place: StorePlace, ttlMs = 3_000) => {
  const store = place.open(systemClock);
  const set = new ReplicaSet(store, silentLogger(), replicaTiming(30_000, ttlMs));
  sets.push(set);
  set.start();
  set.setWatching(true);
  return { store, set };
};
const fleet = Array.from({ length: 3_000 }, (_, i) => `agent-${i}`);

describe('rendezvous ownership', () => {
  it('splits a fleet evenly and moves only the agents of a replica that goes', () => {
    const ids = ['host-a:1:aa', 'host-b:2:bb', 'host-c:3:cc'];
    const owners = new Map(fleet.map((a) => [a, ownerOf(a, ids)]));
    const counts = ids.map((r) => [...owners.values()].filter((o) => o === r).length);
    for (const c of counts) expect(c).toBeGreaterThan(900);
    for (const c of counts) expect(c).toBeLessThan(1_100);
    // host-b dies: its agents spread over a and c; nobody else's agent moves.
    const survivors = [ids[0] as string, ids[2] as string];
    for (const a of fleet) {
      const before = owners.get(a);
      const after = ownerOf(a, survivors);
      if (before !== ids[1]) expect(after).toBe(before);
      else expect(survivors).toContain(after);
    }
    // The order the live set is listed in does not matter.
    for (const a of fleet.slice(0, 200)) expect(ownerOf(a, [...ids].reverse())).toBe(owners.get(a));
  });
});

describe.each(ENGINES)('replica set on one %s store', (engine) => {
  const tmp = () => newStorePlace(engine);
  it('three replicas own disjoint shares that cover the fleet', () => {
    const dir = tmp();
    const rs = [replica(dir), replica(dir), replica(dir)];
    for (const r of rs) r.set.refresh();
    const shares = rs.map((r) => r.set.mine(fleet));
    expect(shares.reduce((n, s) => n + s.length, 0)).toBe(fleet.length);
    expect(new Set(shares.flat()).size).toBe(fleet.length);
    for (const s of shares) expect(s.length).toBeGreaterThan(800);
  });

  it('a replica that stops beating loses its agents once its TTL passes; one that leaves, at once', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const dir = tmp();
    const [a, b, c] = [replica(dir), replica(dir), replica(dir)];
    for (const r of [a, b, c]) r.set.refresh();
    const bShare = b.set.mine(fleet);
    // b is killed: no more beats. Within the TTL the others still leave its agents alone.
    b.set.stop = () => undefined;
    (b.set as unknown as { left: boolean }).left = true;
    vi.advanceTimersByTime(2_000);
    for (const r of [a, c]) r.set.refresh();
    expect(a.set.mine(fleet).length + c.set.mine(fleet).length).toBe(fleet.length - bShare.length);
    expect(ownerIsDead(b.set.id, a.store)).toBe(false);
    vi.advanceTimersByTime(1_500);
    for (const r of [a, c]) r.set.refresh();
    const taken = [...a.set.mine(fleet), ...c.set.mine(fleet)];
    expect(new Set(taken).size).toBe(fleet.length);
    expect(taken.length).toBe(fleet.length);
    expect(ownerIsDead(b.set.id, a.store)).toBe(true);
    // c stops cleanly: a owns everything at its next refresh, without waiting for a TTL.
    c.set.stop();
    a.set.refresh();
    expect(a.set.mine(fleet).length).toBe(fleet.length);
  });

  it('a server that does not watch takes no share, yet its leases are taken over once it is silent', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const dir = tmp();
    const [a, b] = [replica(dir), replica(dir)];
    b.set.setWatching(false);
    a.set.refresh();
    expect(a.set.mine(fleet)).toHaveLength(fleet.length);
    expect(b.set.mine(fleet)).toHaveLength(0);
    expect(b.set.owns('agent-1')).toBe(false);
    expect(b.store.leases.acquire('contain:agent-1', b.set.id, 60_000)).toBe(true);
    expect(ownerIsDead(b.set.id, a.store)).toBe(false);
    (b.set as unknown as { left: boolean }).left = true;
    vi.advanceTimersByTime(3_001);
    expect(ownerIsDead(b.set.id, a.store)).toBe(true);
    expect(a.store.leases.takeOver('contain:agent-1', b.set.id, a.set.id, 60_000)).toBe(true);
  });

  it('a server starting forgets replicas silent for a day (every restart adds a row)', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const dir = tmp();
    const old = replica(dir);
    old.set.stop();
    vi.advanceTimersByTime(24 * 3_600_000 + 1);
    const fresh = replica(dir);
    expect(fresh.store.replicas.get(old.set.id)).toBeUndefined();
    expect(fresh.store.replicas.get(fresh.set.id)).toBeDefined();
  });

  it('a wake for another replica reaches that replica, once', () => {
    const dir = tmp();
    const [a, b] = [replica(dir), replica(dir)];
    for (const r of [a, b]) r.set.refresh();
    const ofB = b.set.mine(fleet).slice(0, 3);
    const ofA = a.set.mine(fleet).slice(0, 2);
    expect(a.set.wake([...ofB, ...ofA], 'event_bus')).toEqual(ofA);
    expect(b.set.takeWakes()).toEqual(ofB);
    expect(b.set.takeWakes()).toEqual([]);
    expect(a.set.takeWakes()).toEqual([]);
  });

  it('an alert notice is claimed once per window across replicas', () => {
    const dir = tmp();
    const [a, b] = [replica(dir), replica(dir)];
    const t = 1_700_000_000_000;
    expect(a.store.claimWindow('alert', 'agent-1:spend:P2', t, 60_000)).toBe(true);
    expect(b.store.claimWindow('alert', 'agent-1:spend:P2', t + 1_000, 60_000)).toBe(false);
    expect(b.store.claimWindow('alert', 'agent-2:spend:P2', t + 1_000, 60_000)).toBe(true);
    expect(b.store.claimWindow('alert', 'agent-1:spend:P2', t + 60_000, 60_000)).toBe(true);
  });
});
