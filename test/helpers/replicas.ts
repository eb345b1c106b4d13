/**
 * Replicas as an operator runs them: N server processes (the built CLI, `--watch`) on one store, watching a
 * sandbox fleet in a process of its own; and what the sandbox's request log says about who polled whom.
 * The e2e test and bench/replicas.ts share this.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { IncidentStore } from '../../src/incidents/index.js';
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

type Rpc = SpawnedServer;

/** What `callers` concurrent contain_agent calls for one agent, spread over the replicas, did. */
export interface ManyCallers {
  callers: number;
  /** Calls answered with an error. */
  errors: number;
  /** Distinct incident ids in the answers (1 when they all got the same incident). */
  incidents: number;
  /** Escrows the agent held before the calls. */
  held_before: number;
  cancels: number;
  /** The most cancel requests one escrow got (1: none cancelled twice). */
  most_cancels_per_escrow: number;
  freezes: number;
  unfreezes: number;
  /** The sandbox's books afterwards. */
  truth: Record<string, unknown>;
  first_error: string | null;
}

/** Runs a runaway on `agent` for `minutes`, then `callers` contain_agent calls at once, round-robin. */
export async function containFromMany(
  sb: SpawnedSandbox,
  replicas: readonly Rpc[],
  agent: string,
  o: { callers: number; minutes: number },
): Promise<ManyCallers> {
  await sb.runaway(agent, o.minutes);
  const held = (await sb.control(`/agents/${agent}`)).held_escrows as number;
  const since = (await requestLog(sb)).at(-1)?.seq ?? 0;
  const answers = (await Promise.all(
    Array.from({ length: o.callers }, (_, i) =>
      (replicas[i % replicas.length] as Rpc).rpc(
        'tools/call',
        { name: 'contain_agent', arguments: { agent_id: agent, reason: `caller ${i}` } },
        120_000,
      ),
    ),
  )) as { result?: { isError?: boolean; structuredContent?: { incident_id?: string } } }[];
  const failed = answers.filter((a) => !a.result || a.result.isError);
  const writes = (await requestLog(sb, since)).filter(
    (r) => (r.method === 'POST' && r.path.includes(agent)) || /\/escrows\/[^/]+\/cancel$/.test(r.path),
  );
  const cancels = writes.filter((r) => r.path.endsWith('/cancel'));
  const perEscrow = new Map<string, number>();
  for (const c of cancels) perEscrow.set(c.path, (perEscrow.get(c.path) ?? 0) + 1);
  return {
    callers: o.callers,
    errors: failed.length,
    incidents: new Set(answers.map((a) => a.result?.structuredContent?.incident_id)).size,
    held_before: held,
    cancels: cancels.length,
    most_cancels_per_escrow: Math.max(0, ...perEscrow.values()),
    freezes: writes.filter((r) => r.path.endsWith(`/${agent}/freeze`)).length,
    unfreezes: writes.filter((r) => r.path.endsWith(`/${agent}/unfreeze`)).length,
    truth: await sb.control(`/agents/${agent}`),
    first_error: failed[0] ? JSON.stringify(failed[0]).slice(0, 2_000) : null,
  };
}

/** A containment one replica began, that replica killed mid-way, and how another finished it. */
export interface KilledMidway {
  incident_id: string | null;
  killed_at: number;
  /** The incident's status when the replica was killed, and at the end. */
  status_at_kill: string | null;
  status: string | null;
  /** From the kill until the incident left `containing`, ms. */
  finished_after_ms: number | null;
  escrows_cancelled: number | null;
  amount_unlocked_cents: number | null;
  /** The sandbox's books: the refunds the gateway made for the agent. */
  truth: Record<string, unknown>;
  /** The incident's totals equal the gateway's refunds, and nothing was refunded twice or left held. */
  exact: boolean;
}

/**
 * Runs a runaway on `agent`, has `server` (a replica) contain it, kills that replica with SIGKILL as soon
 * as its escrow cancellations are under way (read from the store), and waits up to `waitMs` for another
 * replica to finish the incident.
 */
export async function killMidContainment(
  sb: SpawnedSandbox,
  server: Rpc,
  store: IncidentStore,
  agent: string,
  o: { minutes: number; waitMs: number },
): Promise<KilledMidway> {
  await sb.runaway(agent, o.minutes);
  void server
    .rpc(
      'tools/call',
      { name: 'contain_agent', arguments: { agent_id: agent, reason: 'kill test' } },
      o.waitMs,
    )
    .catch(() => undefined);
  let incidentId: string | null = null;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !incidentId) {
    const incident = store.findActiveIncident(agent);
    if (incident && store.listActions(incident.id).some((a) => a.action === 'cancel_held_escrows'))
      incidentId = incident.id;
    else await sleep(5);
  }
  const killedAt = Date.now();
  server.child.kill('SIGKILL');
  await once(server.child, 'exit');
  const statusAtKill = incidentId ? (store.getIncident(incidentId)?.status ?? null) : null;
  let finished = incidentId ? store.getIncident(incidentId) : undefined;
  let finishedAt: number | null = null;
  const until = Date.now() + o.waitMs;
  while (finished && Date.now() < until) {
    if (finished.status !== 'containing') {
      finishedAt = Date.now();
      break;
    }
    await sleep(100);
    finished = store.getIncident(finished.id);
  }
  const truth = await sb.control(`/agents/${agent}`);
  const exact =
    finished?.status === 'contained' &&
    truth.frozen === true &&
    truth.held_escrows === 0 &&
    truth.double_refunds === 0 &&
    finished.escrows_cancelled === truth.escrows_refunded &&
    (finished.amount_unlocked_cents ?? 0) === Math.round(Number(truth.refunded_amount) * 100);
  return {
    incident_id: incidentId,
    killed_at: killedAt,
    status_at_kill: statusAtKill,
    status: finished?.status ?? null,
    finished_after_ms: finishedAt === null ? null : finishedAt - killedAt,
    escrows_cancelled: finished?.escrows_cancelled ?? null,
    amount_unlocked_cents: finished?.amount_unlocked_cents ?? null,
    truth,
    exact,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
