/**
 * The durable incident store: SQLite (better-sqlite3) in WAL mode with `synchronous = FULL`, so every
 * committed row survives a `kill -9` or power loss; or PostgreSQL (pg.ts), shared by several replicas,
 * when a database URL is given. Actions are written ahead (begun before the gateway call, finished after),
 * so a restarted server sees exactly which calls may or may not have happened.
 *
 * Both engines are synchronous (sql.ts): each statement is one short transaction on the event loop, which
 * is what makes `claimContainment` atomic within a process; BEGIN IMMEDIATE (SQLite) or the store's
 * advisory lock (PostgreSQL) makes it atomic across processes sharing the store.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, systemClock } from '../util/clock.js';
import { AuditLog } from './audit.js';
import { EscrowLedger, Leases } from './escrow-ledger.js';
import { migrate, schemaVersion } from './migrate.js';
import { MoneyPathLedger } from './money-path-ledger.js';
import { PgDatabase, type PgOptions } from './pg.js';
import { Replicas } from './replicas.js';
import { isSqlite, openSqlite, type SqlDatabase, type SqlStatement } from './sql.js';

export type IncidentStatus =
  | 'detected'
  | 'containing'
  | 'contained'
  | 'containment_partial'
  | 'containment_failed'
  | 'recovering'
  | 'resolved';

/** Allowed transitions. `containing → containing` records progress; a crash resumes from `containing`. */
const TRANSITIONS: Record<IncidentStatus, readonly IncidentStatus[]> = {
  detected: ['containing', 'resolved'],
  containing: ['containing', 'contained', 'containment_partial', 'containment_failed'],
  contained: ['containing', 'recovering', 'resolved'],
  containment_partial: ['containing', 'recovering', 'resolved'],
  containment_failed: ['containing', 'resolved'],
  recovering: ['recovering', 'containing', 'resolved'],
  resolved: [],
};

export interface Incident {
  id: string;
  kind: string;
  status: IncidentStatus;
  primary_agent_id: string;
  agent_ids: string[];
  reason: string;
  signal: string | null;
  severity: string | null;
  priority: string | null;
  runbook: string | null;
  suspect_payee: string | null;
  parent_incident_id: string | null;
  created_at: number;
  detected_at: number | null;
  containment_started_at: number | null;
  frozen_at: number | null;
  contained_at: number | null;
  recovery_started_at: number | null;
  resolved_at: number | null;
  time_to_freeze_ms: number | null;
  containment_elapsed_ms: number | null;
  met_sla: boolean | null;
  escrows_cancelled: number | null;
  escrows_failed: number | null;
  amount_unlocked_cents: number | null;
  widened_to: string | null;
  root_cause_agent: string | null;
  /** 1, then 2 after a re-containment during recovery, and so on. */
  containment_round: number;
}

export interface NewIncident {
  agent_ids: string[];
  primary_agent_id: string;
  reason: string;
  kind: string;
  signal?: string | null | undefined;
  severity?: string | null | undefined;
  priority?: string | null | undefined;
  runbook?: string | null | undefined;
  suspect_payee?: string | null | undefined;
  parent_incident_id?: string | null | undefined;
  detected_at?: number | null | undefined;
}

export type IncidentPatch = Partial<Omit<Incident, 'id' | 'kind' | 'status' | 'agent_ids' | 'created_at'>>;

export interface ActionRecord {
  id: number;
  incident_id: string;
  agent_id: string;
  phase: string;
  action: string;
  target: string | null;
  params: unknown;
  started_at: number;
  finished_at: number | null;
  duration_ms: number | null;
  success: boolean | null;
  error_code: string | null;
  error_message: string | null;
  result: unknown;
}

export interface PreIncidentState {
  incident_id: string;
  agent_id: string;
  /** Caps in cents; null = no cap. */
  daily_cap: number | null;
  monthly_cap: number | null;
  alert_threshold: number | null;
  balance_cents: number | null;
  frozen_before: boolean | null;
  recorded_at: number;
}

export interface RecoveryStage {
  incident_id: string;
  agent_id: string;
  round: number;
  stage: number;
  percent: number;
  daily_cap: number;
  monthly_cap: number;
  gates: unknown;
  at: number;
}

export interface GateRecord {
  incident_id: string;
  gate: string;
  passed: boolean;
  reason: string;
  at: number;
  by: string | null;
}

export interface AlertRecord {
  id?: number;
  incident_id: string | null;
  agent_id: string;
  signal: string;
  severity: string;
  priority: string;
  tier: string;
  actions: string[];
  sinks: string[];
  at: number;
}

const ACTIVE = "status NOT IN ('resolved')";
const INCIDENT_COLUMNS = [
  'signal',
  'severity',
  'priority',
  'runbook',
  'suspect_payee',
  'parent_incident_id',
  'detected_at',
  'containment_started_at',
  'frozen_at',
  'contained_at',
  'recovery_started_at',
  'resolved_at',
  'time_to_freeze_ms',
  'containment_elapsed_ms',
  'met_sla',
  'escrows_cancelled',
  'escrows_failed',
  'amount_unlocked_cents',
  'widened_to',
  'root_cause_agent',
  'primary_agent_id',
  'reason',
] as const;

function newIncidentId(now: number): string {
  return `inc_${now.toString(36).padStart(9, '0')}${randomBytes(5).toString('hex')}`;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
const parse = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : (v ?? null));
const bool = (v: unknown) => (v === null || v === undefined ? null : Boolean(v));

type Row = Record<string, unknown>;

function toIncident(r: Row): Incident {
  return {
    ...(r as unknown as Incident),
    agent_ids: parse(r.agent_ids) as string[],
    met_sla: bool(r.met_sla),
  };
}

function toAction(r: Row): ActionRecord {
  return {
    ...(r as unknown as ActionRecord),
    params: parse(r.params),
    result: parse(r.result),
    success: bool(r.success),
  };
}

/** An agent's detection inputs from the store (see loadDetection). */
export interface DetectionRecord {
  /** The detectors' state, undefined for an agent never seen. */
  state: unknown;
  /** The pinned public key, null when none. */
  pin: string | null;
  /** The newest threshold override, undefined when none. */
  thresholds: Record<string, number> | undefined;
  /** Whether our containment or a claw-back ever acted on the agent's escrows, intents or subscriptions. */
  acted_on: boolean;
}

/**
 * Splits `items` into chunks whose sizes are powers of two up to 256: statements with a variable number of
 * rows are prepared once per size, so a pass of any size uses at most nine of each.
 */
function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; ) {
    let size = 256;
    while (size > items.length - i) size >>= 1;
    out.push(items.slice(i, i + size));
    i += size;
  }
  return out;
}

/** `(?, ?, ?), (?, ?, ?)…`: `rows` rows of `columns` placeholders. */
function rowsOf(rows: number, columns: number): string {
  const one = `(${Array.from({ length: columns }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => one).join(', ');
}

/** One decision the watcher made in shadow mode: what it would have done, and why. */
export interface ShadowDecision {
  id: number;
  at: number;
  agent_id: string;
  signal: string;
  severity: string;
  priority: string;
  tier: string;
  /** `contain` (a runbook would have run), `alert` (a person would have been told), `fleet_shutdown`. */
  action: 'contain' | 'alert' | 'fleet_shutdown';
  runbook: string | null;
  summary: string;
}

export class IncidentStore {
  readonly db: SqlDatabase;
  private readonly clock: Clock;
  /** Every escrow our containment has tried to cancel (see escrow-ledger.ts). */
  readonly escrows: EscrowLedger;
  /** Every intent and subscription our containment or a claw-back has acted on (see money-path-ledger.ts). */
  readonly moneyPaths: MoneyPathLedger;
  /** Prepared statements by SQL text: the watcher runs the same few queries for every agent every tick. */
  private readonly statements = new Map<string, SqlStatement>();
  /** Per-agent containment leases shared by every process on this store. */
  readonly leases: Leases;
  /** Guard decisions and gateway writes, hash-chained (see audit.ts). */
  readonly audit: AuditLog;
  /** Watcher replicas' heartbeats and cross-replica wake-ups (see replicas.ts). */
  readonly replicas: Replicas;

  constructor(db: SqlDatabase, clock: Clock) {
    this.db = db;
    this.clock = clock;
    if (isSqlite(db)) {
      db.pragma('journal_mode = WAL');
      // FULL: a committed incident row or action must survive kill -9 and power loss; the cost is an fsync
      // per transaction, which is why containment writes one action per batch of cancels, not per escrow.
      // (PostgreSQL: fsync and synchronous_commit are on by default, and foreign keys always apply.)
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
    }
    migrate(db);
    this.escrows = new EscrowLedger(this.db, clock);
    this.moneyPaths = new MoneyPathLedger(this.db, clock);
    // Leases expire in real time even when the store runs on a drill's scaled clock: processes share them.
    this.leases = new Leases(this.db, systemClock);
    this.audit = new AuditLog(this.db);
    this.replicas = new Replicas(this.db);
  }

  /** Escrow ids whose refunds are our containment's doing: detection must never read them as the agent's. */
  escrowIdsCancelledByUs(agentId: string): Set<string> {
    return this.escrows.idsCancelledByUs(agentId);
  }

  /** The prepared statement for `sql`, prepared once per store. */
  private q(sql: string): SqlStatement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  // Incidents

  createIncident(init: NewIncident): Incident {
    const now = this.clock.now();
    const id = newIncidentId(now);
    this.q(
      `INSERT INTO incidents (id, kind, status, primary_agent_id, agent_ids, reason, signal, severity, priority, runbook,
          suspect_payee, parent_incident_id, created_at, detected_at)
         VALUES (?, ?, 'detected', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      id,
      init.kind,
      init.primary_agent_id,
      JSON.stringify(init.agent_ids),
      init.reason,
      init.signal ?? null,
      init.severity ?? null,
      init.priority ?? null,
      init.runbook ?? null,
      init.suspect_payee ?? null,
      init.parent_incident_id ?? null,
      now,
      init.detected_at ?? now,
    );
    const inc = this.q('INSERT INTO incident_agents (incident_id, agent_id) VALUES (?, ?)');
    for (const a of new Set([init.primary_agent_id, ...init.agent_ids])) inc.run(id, a);
    return this.getIncident(id) as Incident;
  }

  getIncident(id: string): Incident | undefined {
    const r = this.q('SELECT * FROM incidents WHERE id = ?').get(id) as Row | undefined;
    return r ? toIncident(r) : undefined;
  }

  listIncidents(
    f: { status?: string | undefined; agent_id?: string | undefined; limit?: number; offset?: number } = {},
  ): Incident[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.status) {
      where.push('status = ?');
      args.push(f.status);
    }
    if (f.agent_id) {
      where.push('id IN (SELECT incident_id FROM incident_agents WHERE agent_id = ?)');
      args.push(f.agent_id);
    }
    const sql = `SELECT * FROM incidents ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    return (this.q(sql).all(...args, f.limit ?? 50, f.offset ?? 0) as Row[]).map(toIncident);
  }

  /** The open per-agent incident (containment or degradation), if any; cascade/fleet parents are not per-agent. */
  findActiveIncident(agentId: string): Incident | undefined {
    const r = this.q(
      `SELECT * FROM incidents WHERE primary_agent_id = ? AND ${ACTIVE} AND kind NOT IN ('cascade', 'fleet_shutdown') ORDER BY created_at DESC LIMIT 1`,
    ).get(agentId) as Row | undefined;
    return r ? toIncident(r) : undefined;
  }

  /**
   * One containment incident per agent: returns the active one (created: false) or creates it, atomically.
   * An active degradation incident is escalated to a containment (its kind changes) rather than blocking it.
   */
  claimContainment(agentId: string, init: NewIncident): { incident: Incident; created: boolean } {
    const tx = this.db.transaction(() => {
      const active = this.findActiveIncident(agentId);
      if (active && !(active.kind === 'service_degradation' && init.kind !== 'service_degradation'))
        return { incident: active, created: false };
      if (active) {
        this.q(
          "UPDATE incidents SET kind = ?, status = 'containing', reason = reason || ' → ' || ? WHERE id = ?",
        ).run(init.kind, init.reason, active.id);
        return { incident: this.getIncident(active.id) as Incident, created: true };
      }
      return { incident: this.createIncident(init), created: true };
    });
    return tx.immediate();
  }

  transition(id: string, to: string, patch: IncidentPatch = {}): Incident {
    const tx = this.db.transaction(() => {
      const cur = this.getIncident(id);
      if (!cur) throw new Error(`incident ${id} not found`);
      const allowed = TRANSITIONS[cur.status] ?? [];
      if (!allowed.includes(to as IncidentStatus))
        throw new Error(`incident ${id}: cannot go from ${cur.status} to ${to}`);
      const sets = ['status = ?'];
      const args: unknown[] = [to];
      for (const col of INCIDENT_COLUMNS) {
        if (!(col in patch)) continue;
        const v = (patch as Record<string, unknown>)[col];
        sets.push(`${col} = ?`);
        args.push(typeof v === 'boolean' ? Number(v) : (v ?? null));
      }
      this.q(`UPDATE incidents SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
      return this.getIncident(id) as Incident;
    });
    return tx.immediate();
  }

  // Actions (write-ahead)

  beginAction(a: {
    incident_id: string;
    agent_id: string;
    phase: string;
    action: string;
    target?: string | undefined;
    params?: unknown;
  }): number {
    const r = this.q(
      'INSERT INTO actions (incident_id, agent_id, phase, action, target, params, started_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
    ).get(
      a.incident_id,
      a.agent_id,
      a.phase,
      a.action,
      a.target ?? null,
      json(a.params),
      this.clock.now(),
    ) as {
      id: number;
    };
    return Number(r.id);
  }

  finishAction(
    id: number,
    outcome: {
      success: boolean;
      error_code?: string | undefined;
      error_message?: string | undefined;
      result?: unknown;
    },
  ): void {
    const now = this.clock.now();
    this.q(
      'UPDATE actions SET finished_at = ?, duration_ms = ? - started_at, success = ?, error_code = ?, error_message = ?, result = ? WHERE id = ?',
    ).run(
      now,
      now,
      outcome.success ? 1 : 0,
      outcome.error_code ?? null,
      outcome.error_message ?? null,
      json(outcome.result),
      id,
    );
  }

  listActions(incidentId: string): ActionRecord[] {
    return (
      this.q('SELECT * FROM actions WHERE incident_id = ? ORDER BY started_at, id').all(incidentId) as Row[]
    ).map(toAction);
  }

  /** Begun and never finished: what a restarted server must re-check on the gateway. */
  pendingActions(incidentId: string): ActionRecord[] {
    return (
      this.q('SELECT * FROM actions WHERE incident_id = ? AND finished_at IS NULL ORDER BY id').all(
        incidentId,
      ) as Row[]
    ).map(toAction);
  }

  // Pre-incident state (write-once)

  recordPreIncidentState(
    incidentId: string,
    agentId: string,
    s: {
      daily_cap: number | null;
      monthly_cap: number | null;
      alert_threshold: number | null;
      balance_cents?: number | null;
      frozen_before: boolean | null;
    },
  ): PreIncidentState {
    this.q(
      `INSERT INTO pre_incident_state (incident_id, agent_id, daily_cap, monthly_cap, alert_threshold, balance_cents, frozen_before, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, agent_id) DO NOTHING`,
    ).run(
      incidentId,
      agentId,
      s.daily_cap,
      s.monthly_cap,
      s.alert_threshold,
      s.balance_cents ?? null,
      s.frozen_before === null ? null : Number(s.frozen_before),
      this.clock.now(),
    );
    return this.getPreIncidentState(incidentId, agentId) as PreIncidentState;
  }

  getPreIncidentState(incidentId: string, agentId: string): PreIncidentState | undefined {
    const r = this.q('SELECT * FROM pre_incident_state WHERE incident_id = ? AND agent_id = ?').get(
      incidentId,
      agentId,
    ) as Row | undefined;
    return r ? ({ ...r, frozen_before: bool(r.frozen_before) } as unknown as PreIncidentState) : undefined;
  }

  /** The newest non-zero caps on record for an agent (a cap of 0 is what containment set, not a budget). */
  latestKnownCaps(agentId: string): PreIncidentState | undefined {
    const r = this.q(
      'SELECT * FROM pre_incident_state WHERE agent_id = ? AND (daily_cap > 0 OR monthly_cap > 0) ORDER BY recorded_at DESC LIMIT 1',
    ).get(agentId) as Row | undefined;
    return r ? ({ ...r, frozen_before: bool(r.frozen_before) } as unknown as PreIncidentState) : undefined;
  }

  // Agent state: frozen belief, pins, detection state, thresholds

  setFrozenBelief(agentId: string, frozen: boolean, incidentId: string | null): void {
    this.q(
      'INSERT INTO agent_state (agent_id, frozen, frozen_incident_id, frozen_at) VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET frozen = excluded.frozen, frozen_incident_id = excluded.frozen_incident_id, frozen_at = excluded.frozen_at',
    ).run(agentId, Number(frozen), incidentId, this.clock.now());
  }

  getFrozenBelief(agentId: string): boolean | null {
    const r = this.q('SELECT frozen FROM agent_state WHERE agent_id = ?').get(agentId) as
      | { frozen: number | null }
      | undefined;
    return r?.frozen === undefined || r.frozen === null ? null : Boolean(r.frozen);
  }

  /** Pins on first sight; a later different key is not silently accepted (use `repin`). */
  pinKey(agentId: string, publicKey: string, source: string): void {
    this.q(
      'INSERT INTO key_pins (agent_id, public_key, source, pinned_at) VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO NOTHING',
    ).run(agentId, publicKey, source, this.clock.now());
  }

  repin(agentId: string, publicKey: string, reason: string): void {
    this.q(
      'INSERT INTO key_pins (agent_id, public_key, source, pinned_at) VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET public_key = excluded.public_key, source = excluded.source, pinned_at = excluded.pinned_at',
    ).run(agentId, publicKey, `repin: ${reason}`, this.clock.now());
  }

  getPin(agentId: string): { public_key: string; source: string; pinned_at: number } | undefined {
    return this.q('SELECT public_key, source, pinned_at FROM key_pins WHERE agent_id = ?').get(
      agentId,
    ) as never;
  }

  getDetectionState(agentId: string): unknown {
    const r = this.q('SELECT state FROM detection_state WHERE agent_id = ?').get(agentId) as
      | { state: string }
      | undefined;
    return r ? JSON.parse(r.state) : undefined;
  }

  putDetectionState(agentId: string, state: unknown): void {
    this.q(
      'INSERT INTO detection_state (agent_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
    ).run(agentId, JSON.stringify(state), this.clock.now());
  }

  /**
   * A detection pass's per-agent state and first-sighting key pins, in one transaction: one fsync per
   * pass instead of one per agent (a 1,000-agent pass would otherwise spend its time in fsync).
   */
  saveDetection(
    rows: readonly { agentId: string; state: unknown; pinKey?: string | undefined }[],
    source: string,
  ): void {
    if (rows.length === 0) return;
    // Multi-row statements: on PostgreSQL each statement is a round trip, so a 1,000-agent pass is a few
    // statements, not 1,000. One row per agent (an upsert may not touch a row twice): the last one wins.
    const latest = [...new Map(rows.map((r) => [r.agentId, r])).values()];
    const now = this.clock.now();
    const states = latest.map((r) => [r.agentId, JSON.stringify(r.state), now]);
    const pins = latest.flatMap((r) => (r.pinKey ? [[r.agentId, r.pinKey, source, now]] : []));
    this.db.transaction(() => {
      for (const c of chunks(states))
        this.q(
          `INSERT INTO detection_state (agent_id, state, updated_at) VALUES ${rowsOf(c.length, 3)}
             ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
        ).run(...c.flat());
      for (const c of chunks(pins))
        this.q(
          `INSERT INTO key_pins (agent_id, public_key, source, pinned_at) VALUES ${rowsOf(c.length, 4)}
             ON CONFLICT (agent_id) DO NOTHING`,
        ).run(...c.flat());
    })();
  }

  /**
   * What a detection pass needs to know of each agent (its detector state, pinned key, newest threshold
   * override), read for all of them in a few statements rather than three per agent.
   */
  loadDetection(agentIds: readonly string[]): Map<string, DetectionRecord> {
    const out = new Map<string, DetectionRecord>(
      agentIds.map((a) => [a, { state: undefined, pin: null, thresholds: undefined, acted_on: false }]),
    );
    const ids = [...out.keys()];
    const record = (r: Row) => out.get(String(r.agent_id)) as DetectionRecord;
    for (const r of this.allIn(
      ids,
      (list) => `SELECT agent_id, state FROM detection_state WHERE agent_id IN ${list}`,
    ))
      record(r).state = JSON.parse(String(r.state));
    for (const r of this.allIn(
      ids,
      (list) => `SELECT agent_id, public_key FROM key_pins WHERE agent_id IN ${list}`,
    ))
      record(r).pin = String(r.public_key);
    // Oldest first: the newest override of an agent is the one left in the map.
    for (const r of this.allIn(
      ids,
      (list) => `SELECT agent_id, thresholds FROM threshold_overrides WHERE agent_id IN ${list} ORDER BY id`,
    ))
      record(r).thresholds = JSON.parse(String(r.thresholds));
    for (const r of this.allIn(
      ids,
      (list) =>
        `SELECT agent_id FROM escrow_cancels WHERE agent_id IN ${list}
           UNION SELECT agent_id FROM money_path_actions WHERE agent_id IN ${list}`,
      2,
    ))
      record(r).acted_on = true;
    return out;
  }

  /** Of `agentIds`, those named in any incident, open or resolved (a few statements for any number). */
  agentsWithIncidents(agentIds: readonly string[]): Set<string> {
    const rows = this.allIn(
      [...new Set(agentIds)],
      (list) => `SELECT DISTINCT agent_id FROM incident_agents WHERE agent_id IN ${list}`,
    );
    return new Set(rows.map((r) => String(r.agent_id)));
  }

  /**
   * The rows of `sql` for every id, in chunks (see `chunks`): `sql` is given the chunk's `(?, ?, …)` list,
   * which it uses `lists` times (each bound to the chunk's ids).
   */
  private allIn(ids: readonly string[], sql: (list: string) => string, lists = 1): Row[] {
    const out: Row[] = [];
    for (const c of chunks(ids)) {
      const args = Array.from({ length: lists }, () => c).flat();
      out.push(...(this.q(sql(rowsOf(1, c.length))).all(...args) as Row[]));
    }
    return out;
  }

  getThresholdOverride(agentId: string): Record<string, number> | undefined {
    const r = this.q(
      'SELECT thresholds FROM threshold_overrides WHERE agent_id = ? ORDER BY id DESC LIMIT 1',
    ).get(agentId) as { thresholds: string } | undefined;
    return r ? JSON.parse(r.thresholds) : undefined;
  }

  /** Appends (history is kept); the newest row is in force. */
  setThresholdOverride(agentId: string, thresholds: unknown, reason: string): void {
    this.q('INSERT INTO threshold_overrides (agent_id, thresholds, reason, at) VALUES (?, ?, ?, ?)').run(
      agentId,
      JSON.stringify(thresholds),
      reason,
      this.clock.now(),
    );
  }

  thresholdHistory(agentId: string): { thresholds: unknown; reason: string; at: number }[] {
    return (
      this.q('SELECT thresholds, reason, at FROM threshold_overrides WHERE agent_id = ? ORDER BY id').all(
        agentId,
      ) as Row[]
    ).map((r) => ({ thresholds: parse(r.thresholds), reason: String(r.reason), at: Number(r.at) }));
  }

  // Recovery

  /** Records a stage in the incident's current containment round (write-once per round and stage). */
  recordRecoveryStage(
    incidentId: string,
    agentId: string,
    s: { stage: number; percent: number; daily_cap: number; monthly_cap: number; gates: unknown; at: number },
  ): void {
    this.q(
      `INSERT INTO recovery_stages (incident_id, agent_id, round, stage, percent, daily_cap, monthly_cap, gates, at)
         SELECT ?, ?, containment_round, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), ?,
           CAST(? AS BIGINT) FROM incidents WHERE id = ?
         ON CONFLICT (incident_id, agent_id, round, stage) DO NOTHING`,
    ).run(
      incidentId,
      agentId,
      s.stage,
      s.percent,
      s.daily_cap,
      s.monthly_cap,
      json(s.gates),
      s.at,
      incidentId,
    );
  }

  /** Stages of the current containment round (or of every round with `allRounds`). */
  listRecoveryStages(incidentId: string, opts: { allRounds?: boolean } = {}): RecoveryStage[] {
    const sql = opts.allRounds
      ? 'SELECT * FROM recovery_stages WHERE incident_id = ? ORDER BY round, stage'
      : 'SELECT r.* FROM recovery_stages r JOIN incidents i ON i.id = r.incident_id WHERE r.incident_id = ? AND r.round = i.containment_round ORDER BY r.stage';
    return (this.q(sql).all(incidentId) as Row[]).map((r) => ({
      ...(r as unknown as RecoveryStage),
      gates: parse(r.gates),
    }));
  }

  /** Starts a new containment round: the agent is contained again while it was recovering. */
  startContainmentRound(incidentId: string): void {
    this.q('UPDATE incidents SET containment_round = containment_round + 1 WHERE id = ?').run(incidentId);
  }

  recordGate(
    incidentId: string,
    g: { gate: string; passed: boolean; reason: string; at: number; by: string | null },
  ): void {
    this.q('INSERT INTO gates (incident_id, gate, passed, reason, at, by) VALUES (?, ?, ?, ?, ?, ?)').run(
      incidentId,
      g.gate,
      Number(g.passed),
      g.reason,
      g.at,
      g.by,
    );
  }

  listGates(incidentId: string): GateRecord[] {
    return (
      this.q(
        'SELECT incident_id, gate, passed, reason, at, by FROM gates WHERE incident_id = ? ORDER BY at, id',
      ).all(incidentId) as Row[]
    ).map((r) => ({ ...(r as unknown as GateRecord), passed: Boolean(r.passed) }));
  }

  // Post-mortems

  savePostmortem(incidentId: string, pm: { json: unknown; markdown: string }): void {
    this.q(
      'INSERT INTO postmortems (incident_id, report, markdown, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET report = excluded.report, markdown = excluded.markdown, created_at = excluded.created_at',
    ).run(incidentId, JSON.stringify(pm.json), pm.markdown, this.clock.now());
  }

  getPostmortem(incidentId: string): { json: unknown; markdown: string; created_at: number } | undefined {
    const r = this.q('SELECT report, markdown, created_at FROM postmortems WHERE incident_id = ?').get(
      incidentId,
    ) as Row | undefined;
    return r
      ? { json: parse(r.report), markdown: String(r.markdown), created_at: Number(r.created_at) }
      : undefined;
  }

  // Cursors, de-duplication, alerts

  /** Records what the watcher would have done in shadow mode (shadow_decisions, migration 4). */
  recordShadowDecision(d: Omit<ShadowDecision, 'id'>): void {
    this.q(
      'INSERT INTO shadow_decisions (at, agent_id, signal, severity, priority, tier, action, runbook, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(d.at, d.agent_id, d.signal, d.severity, d.priority, d.tier, d.action, d.runbook, d.summary);
  }

  listShadowDecisions(f: { since?: number; limit?: number } = {}): ShadowDecision[] {
    return this.q('SELECT * FROM shadow_decisions WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?').all(
      f.since ?? 0,
      f.limit ?? 10_000,
    ) as ShadowDecision[];
  }

  getCursor(name: string): string | undefined {
    return (this.q('SELECT value FROM cursors WHERE name = ?').get(name) as { value: string } | undefined)
      ?.value;
  }

  setCursor(name: string, value: string): void {
    this.q(
      'INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
    ).run(name, value);
  }

  /** True when the key is new (and is now remembered); false for a replay. Entries older than a week are pruned. */
  markSeen(namespace: string, key: string, at: number): boolean {
    this.q('DELETE FROM seen WHERE at < ?').run(at - 7 * 24 * 3_600_000);
    return (
      this.q('INSERT INTO seen (namespace, key, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(
        namespace,
        key,
        at,
      ).changes === 1
    );
  }

  /**
   * True for the first caller in each `windowMs` per key, across every process on the store: an alert-only
   * notice repeats at most once a window whichever replica raises it.
   */
  claimWindow(namespace: string, key: string, at: number, windowMs: number): boolean {
    return (
      this.q(
        `INSERT INTO seen (namespace, key, at) VALUES (?, ?, ?)
           ON CONFLICT (namespace, key) DO UPDATE SET at = excluded.at WHERE seen.at <= ?`,
      ).run(namespace, key, at, at - windowMs).changes === 1
    );
  }

  recordAlert(a: AlertRecord): void {
    this.q(
      'INSERT INTO alerts (incident_id, agent_id, signal, severity, priority, tier, actions, sinks, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
      a.incident_id,
      a.agent_id,
      a.signal,
      a.severity,
      a.priority,
      a.tier,
      JSON.stringify(a.actions),
      JSON.stringify(a.sinks),
      a.at,
    );
  }

  listAlerts(f: { since?: number; agent_id?: string; limit?: number } = {}): AlertRecord[] {
    const rows = this.q(
      `SELECT * FROM alerts WHERE at >= ? ${f.agent_id ? 'AND agent_id = ?' : ''} ORDER BY at DESC, id DESC LIMIT ?`,
    ).all(...[f.since ?? 0, ...(f.agent_id ? [f.agent_id] : []), f.limit ?? 500]) as Row[];
    return rows.map((r) => ({
      ...(r as unknown as AlertRecord),
      actions: parse(r.actions) as string[],
      sinks: parse(r.sinks) as string[],
    }));
  }

  close(): void {
    if (!this.db.open) return;
    this.audit.flush();
    this.db.close();
  }
}

/**
 * Opens (creating and migrating) the store: on PostgreSQL at `databaseUrl` when one is given, otherwise on
 * SQLite in `dataDir/incidents.sqlite`, or at `path` (':memory:' allowed).
 */
export function openStore(opts: {
  databaseUrl?: string | undefined;
  dataDir?: string | undefined;
  path?: string | undefined;
  clock: Clock;
  postgres?: PgOptions;
}): IncidentStore {
  if (opts.databaseUrl) {
    const db = new PgDatabase(opts.databaseUrl, opts.postgres);
    try {
      return new IncidentStore(db, opts.clock);
    } catch (e) {
      db.close();
      throw e;
    }
  }
  let path = opts.path;
  if (!path) {
    if (!opts.dataDir) throw new Error('openStore needs dataDir or path');
    mkdirSync(opts.dataDir, { recursive: true });
    path = join(opts.dataDir, 'incidents.sqlite');
  }
  return new IncidentStore(openSqlite(path), opts.clock);
}
