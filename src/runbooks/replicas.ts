/**
 * Several watcher processes on one store split the fleet between them: each heartbeats a row in the store
 * (`replicas`), and each agent belongs to exactly one live replica, chosen by rendezvous hashing (the
 * replica with the highest hash of replica id and agent id). Every replica computes the same owner from the
 * same live set, with no coordinator; when a replica joins or dies, only the agents it gains or held move.
 *
 * A replica is live while its heartbeat is younger than the TTL. One killed with -9 stops beating: at the
 * others' first tick after the TTL its agents are theirs, and being new to them they are due at once, so a
 * dead replica's agents are polled again within the TTL plus one tick (well within two poll intervals at
 * the defaults). A replica stopped cleanly leaves at once.
 *
 * What the split does not guard: acting. Containment runs under a per-agent lease in the store (lease.ts),
 * whichever replica (watcher or tool call) asks, so two replicas that briefly both think they own an agent
 * (a join seen by one before the other, a replica paused longer than the TTL) at worst poll it twice.
 */
import { hostname } from 'node:os';
import type { IncidentStore } from '../incidents/index.js';
import type { Logger } from '../logger.js';
import { leaseOwner } from './lease.js';

export interface ReplicaTiming {
  /** How often a replica records that it is alive. */
  heartbeatMs: number;
  /** A replica silent this long is dead: its agents go to the others. */
  ttlMs: number;
}

/**
 * Heartbeat and TTL from the poll interval, unless set: a tenth of the interval (0.5–5 s) and three beats,
 * so takeover (TTL plus one tick of at most 5 s) stays under two intervals for any interval of 10 s or more.
 */
export function replicaTiming(intervalMs: number, ttlMs?: number): ReplicaTiming {
  const heartbeatMs = ttlMs
    ? Math.max(250, Math.floor(ttlMs / 3))
    : Math.min(5_000, Math.max(500, Math.floor(intervalMs / 10)));
  return { heartbeatMs, ttlMs: ttlMs ?? heartbeatMs * 3 };
}

/** 32-bit FNV-1a of `s`, finished with murmur3's mixer so nearby ids spread evenly. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The replica that owns `agentId` among `replicaIds` (rendezvous hashing; ties go to the smaller id). */
export function ownerOf(agentId: string, replicaIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestHash = -1;
  for (const r of replicaIds) {
    const h = hash32(`${r}\u0000${agentId}`);
    if (h > bestHash || (h === bestHash && best !== undefined && r < best)) {
      best = r;
      bestHash = h;
    }
  }
  return best;
}

export interface ReplicaView {
  /** This replica's id (also its lease owner name). */
  self: string;
  /** Live replicas, by id, this one included. */
  live: string[];
  at: number;
}

export class ReplicaSet {
  readonly id: string;
  readonly timing: ReplicaTiming;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private view: ReplicaView;
  private lastWake = 0;
  private left = false;
  private watching = false;
  #started = false;

  constructor(
    private readonly store: IncidentStore,
    private readonly logger: Logger,
    timing: ReplicaTiming,
  ) {
    this.id = leaseOwner(store);
    this.timing = timing;
    this.view = { self: this.id, live: [this.id], at: 0 };
  }

  /**
   * Joins: the first heartbeat, the wake cursor at the newest wake, and a heartbeat timer. Every server
   * process joins, so a containment lease held by one that dies is taken over once its heartbeat is stale;
   * only watching ones take a share of the fleet (`setWatching`).
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    // Rows of processes silent for a day are of no use to anyone; every restart adds one.
    this.store.replicas.prune(Date.now(), 24 * 3_600_000);
    this.lastWake = this.store.replicas.lastWakeId();
    this.refresh();
    this.timer = setInterval(() => {
      try {
        this.beat();
      } catch (e) {
        this.logger.warn({ err: (e as Error).message }, 'replica heartbeat failed');
      }
    }, this.timing.heartbeatMs);
    this.timer.unref();
  }

  private beat(): void {
    if (this.left) return;
    this.store.replicas.beat(
      {
        id: this.id,
        host: hostname(),
        pid: process.pid,
        started_at: this.startedAt,
        ttl_ms: this.timing.ttlMs,
        watching: this.watching,
      },
      Date.now(),
    );
  }

  /** Beats and re-reads the live set (each tick does, so the split is never older than one tick). */
  refresh(): ReplicaView {
    this.beat();
    const now = Date.now();
    const live = this.store.replicas.live(now, { watching: true }).map((r) => r.id);
    if (this.watching && !live.includes(this.id)) live.push(this.id);
    live.sort();
    const before = this.view.live;
    if (before.join('\n') !== live.join('\n') && this.view.at !== 0)
      this.logger.warn(
        {
          replicas: live.length,
          joined: live.filter((r) => !before.includes(r)),
          gone: before.filter((r) => !live.includes(r)),
        },
        'replica set changed: the fleet is split again',
      );
    this.view = { self: this.id, live, at: now };
    return this.view;
  }

  /** True once `start` ran (a stopped set stays started: it does not join again). */
  get started(): boolean {
    return this.#started;
  }

  /** A watcher started (true) or stopped (false) in this process: it takes, or gives up, a share of the fleet. */
  setWatching(watching: boolean): void {
    this.watching = watching;
    if (!this.left) this.refresh();
  }

  /** The agents of `fleet` this replica owns in the current view. */
  mine(fleet: readonly string[]): string[] {
    return fleet.filter((a) => this.owns(a));
  }

  owns(agentId: string): boolean {
    const { live } = this.view;
    return (live.length === 1 && live[0] === this.id) || ownerOf(agentId, live) === this.id;
  }

  /** Asks the owners of `agents` (possibly this replica) to poll them at their next tick. */
  wake(agents: readonly string[], reason: string): string[] {
    const others = agents.filter((a) => !this.owns(a));
    if (others.length) this.store.replicas.wake(others, reason, Date.now());
    return agents.filter((a) => this.owns(a));
  }

  /** Agents other replicas asked this one to poll since the last call. */
  takeWakes(): string[] {
    const rows = this.store.replicas.wakesAfter(this.lastWake);
    const last = rows[rows.length - 1];
    if (last) this.lastWake = last.id;
    return rows.map((r) => r.agent_id).filter((a) => this.owns(a));
  }

  /** Leaves the set (a clean stop): the others take this replica's agents at their next tick. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.left) return;
    this.left = true;
    try {
      this.store.replicas.leave(this.id, Date.now());
    } catch {
      // The store may already be closed; the heartbeat then simply goes stale.
    }
  }
}
