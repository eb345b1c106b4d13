/**
 * One process acts on an agent at a time: containment runs under a lease in the store, which every process
 * (replica, restarted server, second MCP host on the same data dir) shares. In-process callers are already
 * serialized by a mutex; the lease is what stops two processes from freezing, unfreezing and cancelling
 * around each other.
 *
 * A holder renews every third of the TTL. One that dies stops renewing and its lease expires; a restarted
 * server on the same host sees that the holder's pid is gone and takes over at once instead of waiting.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { IncidentStore } from '../incidents/index.js';
import type { Logger } from '../logger.js';

const owners = new WeakMap<IncidentStore, string>();

/** This process's owner name on a store: host, pid and a nonce (two stores in one process are two owners). */
export function leaseOwner(store: IncidentStore): string {
  let owner = owners.get(store);
  if (!owner) {
    owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    owners.set(store, owner);
  }
  return owner;
}

/**
 * True when the owner is a watcher replica that left or stopped heartbeating (replicas.ts), or ran on this
 * host under a pid that no longer exists.
 */
export function ownerIsDead(owner: string, store?: IncidentStore): boolean {
  if (store?.replicas.isDead(owner, Date.now())) return true;
  const [host, pidText] = owner.split(':');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export const containmentLease = (agentId: string) => `contain:${agentId}`;

export interface HeldLease {
  /** False once another owner took the lease (this one expired): stop acting. */
  readonly held: () => boolean;
  release(): void;
}

/**
 * Takes the agent's containment lease, or returns undefined when a live owner holds it. The lease is
 * renewed in the background until released.
 */
export function takeContainmentLease(
  deps: { store: IncidentStore; logger: Logger; config: { containment: { leaseTtlMs: number } } },
  agentId: string,
): HeldLease | undefined {
  const { store, logger } = deps;
  const ttl = deps.config.containment.leaseTtlMs;
  const name = containmentLease(agentId);
  const owner = leaseOwner(store);
  let ok = store.leases.acquire(name, owner, ttl);
  if (!ok) {
    const holder = store.leases.get(name);
    if (holder && ownerIsDead(holder.owner, store)) {
      ok = store.leases.takeOver(name, holder.owner, owner, ttl);
      if (ok) logger.warn({ agent_id: agentId, dead_owner: holder.owner }, 'took over a dead process lease');
    }
  }
  if (!ok) return undefined;
  let held = true;
  const timer = setInterval(
    () => {
      if (!held) return;
      try {
        held = store.leases.renew(name, owner, ttl);
      } catch {
        held = false;
      }
      if (!held) logger.error({ agent_id: agentId }, 'containment lease lost: another process may act now');
    },
    Math.max(250, Math.floor(ttl / 3)),
  );
  timer.unref();
  return {
    held: () => held,
    release() {
      clearInterval(timer);
      if (held) store.leases.release(name, owner);
      held = false;
    },
  };
}
