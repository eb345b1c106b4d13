/**
 * Replica membership and cross-replica wake-ups, in the store every replica shares.
 *
 * Times are wall-clock milliseconds (`Date.now()` of each process): replicas on different hosts compare
 * heartbeats, so the hosts' clocks must agree to well within the heartbeat TTL (NTP gives milliseconds).
 */
import type { SqlDatabase } from './sql.js';

export interface ReplicaRecord {
  id: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  /** The replica's own TTL: it counts as dead once `heartbeat_at + ttl_ms` has passed. */
  ttl_ms: number;
  /** 1 while the process runs a watcher (and so takes a share of the fleet), else 0. */
  watching: number;
  left_at: number | null;
}

export interface WakeRecord {
  id: number;
  agent_id: string;
  reason: string;
  at: number;
}

/** Wakes older than this are pruned: an agent named that long ago has been polled on its schedule since. */
const WAKE_RETENTION_MS = 10 * 60_000;

export class Replicas {
  constructor(private readonly db: SqlDatabase) {}

  /** Records that `id` is alive at `now` (inserting it on its first beat). A replica that left stays gone. */
  beat(
    r: { id: string; host: string; pid: number; started_at: number; ttl_ms: number; watching: boolean },
    now: number,
  ): void {
    this.db
      .prepare(
        `INSERT INTO replicas (id, host, pid, started_at, heartbeat_at, ttl_ms, watching) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, ttl_ms = excluded.ttl_ms,
           watching = excluded.watching`,
      )
      .run(r.id, r.host, r.pid, r.started_at, now, r.ttl_ms, Number(r.watching));
  }

  /** Marks `id` as gone at once (a clean shutdown): the others take its agents at their next tick. */
  leave(id: string, now: number): void {
    this.db.prepare('UPDATE replicas SET left_at = ? WHERE id = ?').run(now, id);
  }

  /** Replicas alive at `now` (each within its own TTL) that have not left, by id; `watching` ones only. */
  live(now: number, opts: { watching?: boolean } = {}): ReplicaRecord[] {
    return this.db
      .prepare(
        `SELECT * FROM replicas WHERE heartbeat_at + ttl_ms > ? AND left_at IS NULL ${opts.watching ? 'AND watching = 1' : ''} ORDER BY id`,
      )
      .all(now) as ReplicaRecord[];
  }

  /** True when `id` is a replica that left or whose heartbeat is older than its TTL; false if unknown. */
  isDead(id: string, now: number): boolean {
    const r = this.get(id);
    return r !== undefined && (r.left_at !== null || r.heartbeat_at + r.ttl_ms <= now);
  }

  get(id: string): ReplicaRecord | undefined {
    return this.db.prepare('SELECT * FROM replicas WHERE id = ?').get(id) as ReplicaRecord | undefined;
  }

  /** Removes replicas silent for longer than `olderThanMs` (their history is of no use to anyone). */
  prune(now: number, olderThanMs: number): void {
    this.db.prepare('DELETE FROM replicas WHERE heartbeat_at < ?').run(now - olderThanMs);
  }

  /** Asks whichever replica owns each agent to poll it at its next tick. */
  wake(agentIds: readonly string[], reason: string, now: number): void {
    if (agentIds.length === 0) return;
    const insert = this.db.prepare('INSERT INTO wakes (agent_id, reason, at) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const a of agentIds) insert.run(a, reason, now);
      this.db.prepare('DELETE FROM wakes WHERE at < ?').run(now - WAKE_RETENTION_MS);
    })();
  }

  /** Wakes after `afterId`, oldest first. */
  wakesAfter(afterId: number, limit = 10_000): WakeRecord[] {
    return this.db
      .prepare('SELECT * FROM wakes WHERE id > ? ORDER BY id LIMIT ?')
      .all(afterId, limit) as WakeRecord[];
  }

  /** The newest wake's id (0 for none): a replica starts reading after it. */
  lastWakeId(): number {
    const r = this.db.prepare('SELECT MAX(id) AS id FROM wakes').get() as { id: number | null } | undefined;
    return Number(r?.id ?? 0);
  }
}
