/**
 * Replicas as an operator runs them: N server processes (the built CLI, `--watch`) on one store, watching a
 * sandbox fleet in a process of its own; and what the sandbox's request log says about who polled whom.
 * The e2e test and bench/replicas.ts share this.
 */
import type { ChildProcess } from 'node:child_process';
import { type SpawnedSandbox, type SpawnedServer, spawnServer } from './spawn.js';

export interface LoggedRequest {
  seq: number;
  method: string;
  path: string;
  tool: string | null;
  client: string | null;
  status: number;
  received_at: number;
}

/** One poll of one agent: its budget read, which every poll makes (detect.ts observeAgent). */
export interface Poll {
  agent: string;
  /** The replica's id, from the User-Agent it sends (`agent-incident-mcp (host:pid:nonce)`). */
  replica: string;
  at: number;
}

export interface StartReplicasOptions {
  count: number;
  /** `{ INCIDENT_DATABASE_URL }` for PostgreSQL; for SQLite the data dir is shared instead. */
  env: Record<string, string>;
  dataDir: string;
  intervalMs: number;
}

/** Starts `count` watching replicas on one store; resolves once each has answered `initialize`. */
export async function startReplicas(
  sb: SpawnedSandbox,
  children: ChildProcess[],
  o: StartReplicasOptions,
): Promise<SpawnedServer[]> {
  const env = {
    INCIDENT_LOG_LEVEL: 'warn',
    INCIDENT_WATCH_INTERVAL_MS: String(o.intervalMs),
    // The blast radius is not what these runs are about: one runaway agent is contained, nothing else.
    INCIDENT_MAX_AGENTS_PER_CALL: '20',
    ...o.env,
  };
  const servers = Array.from({ length: o.count }, () =>
    spawnServer(sb.info, o.dataDir, children, env, ['--watch']),
  );
  await Promise.all(servers.map((s) => s.ready));
  return servers;
}

export async function requestLog(sb: SpawnedSandbox, since = 0): Promise<LoggedRequest[]> {
  return (await sb.control(`/requests?since=${since}`)).requests as LoggedRequest[];
}

const REPLICA = /^agent-incident-mcp \((.+)\)$/;

/** Every poll in `log`: a get_budget_status for a fleet agent, attributed to the replica that sent it. */
export function pollsIn(log: readonly LoggedRequest[], fleet: ReadonlySet<string>): Poll[] {
  const out: Poll[] = [];
  for (const r of log) {
    if (r.tool !== 'get_budget_status' || r.method !== 'GET') continue;
    const replica = REPLICA.exec(r.client ?? '')?.[1];
    const agent = r.path.split('/').find((s) => fleet.has(decodeURIComponent(s)));
    if (replica && agent) out.push({ agent: decodeURIComponent(agent), replica, at: r.received_at });
  }
  return out;
}

/** The pid inside a replica id (`host:pid:nonce`). */
export const pidOf = (replica: string) => Number(replica.split(':').at(-2));

export interface PollStats {
  agents: number;
  /** Agents no replica polled in the window. */
  unpolled: number;
  /** Agents more than one replica polled in the window. */
  shared: number;
  /**
   * Polls per agent per interval: intervals between an agent's first and last poll in the window ÷ the
   * polls between them (1.0 is one poll an interval), min and max over agents polled at least twice.
   */
  per_interval_min: number;
  per_interval_max: number;
  /**
   * The most polls one agent had within any one interval (1: never polled twice in an interval). A poll's
   * request leaves some tens of ms after the tick that scheduled it, so windows are 0.9 of an interval.
   */
  most_in_one_interval: number;
  /** The longest gap between two polls of one agent, in intervals. */
  longest_gap_intervals: number;
  /** Agents per replica. */
  per_replica: Record<string, number>;
}

/** What the polls in [from, to) say: who polled each agent, how often, and the gaps. */
export function pollStats(
  polls: readonly Poll[],
  fleet: readonly string[],
  from: number,
  to: number,
  intervalMs: number,
): PollStats {
  const byAgent = new Map<string, Poll[]>();
  for (const p of polls) {
    if (p.at < from || p.at >= to) continue;
    const list = byAgent.get(p.agent) ?? [];
    list.push(p);
    byAgent.set(p.agent, list);
  }
  const intervals = (to - from) / intervalMs;
  let unpolled = 0;
  let shared = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let most = 0;
  let gap = 0;
  const perReplica: Record<string, number> = {};
  for (const agent of fleet) {
    const list = (byAgent.get(agent) ?? []).sort((a, b) => a.at - b.at);
    if (list.length === 0) {
      unpolled++;
      min = 0;
      gap = Math.max(gap, intervals);
      continue;
    }
    const replicas = new Set(list.map((p) => p.replica));
    if (replicas.size > 1) shared++;
    for (const r of replicas) perReplica[r] = (perReplica[r] ?? 0) + 1;
    if (list.length >= 2) {
      const span = (list[list.length - 1] as Poll).at - (list[0] as Poll).at;
      const rate = span > 0 ? ((list.length - 1) * intervalMs) / span : Number.POSITIVE_INFINITY;
      min = Math.min(min, rate);
      max = Math.max(max, rate);
    }
    // Gaps, counting the edges of the window: an agent last polled long before `to` was left alone.
    const times = [from, ...list.map((p) => p.at), to];
    for (let i = 1; i < times.length; i++)
      gap = Math.max(gap, ((times[i] as number) - (times[i - 1] as number)) / intervalMs);
    let j = 0;
    for (let i = 0; i < list.length; i++) {
      while ((list[i] as Poll).at - (list[j] as Poll).at >= 0.9 * intervalMs) j++;
      most = Math.max(most, i - j + 1);
    }
  }
  return {
    agents: fleet.length,
    unpolled,
    shared,
    per_interval_min: Number.isFinite(min) ? min : 0,
    per_interval_max: max,
    most_in_one_interval: most,
    longest_gap_intervals: gap,
    per_replica: perReplica,
  };
}

/**
 * After `killedAt`, how long until every agent `dead` had polled was polled by someone else: the
 * takeover time, ms (null when some agent was never polled again in the log).
 */
export function takeoverMs(polls: readonly Poll[], dead: string, killedAt: number): number | null {
  const orphans = new Set(polls.filter((p) => p.replica === dead).map((p) => p.agent));
  const firstAfter = new Map<string, number>();
  for (const p of polls) {
    if (p.at < killedAt || p.replica === dead || !orphans.has(p.agent)) continue;
    if (!firstAfter.has(p.agent)) firstAfter.set(p.agent, p.at);
  }
  if (firstAfter.size < orphans.size) return null;
  return Math.max(...firstAfter.values()) - killedAt;
}
