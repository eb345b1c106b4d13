/**
 * The audit log: every guard decision and every gateway write, as a hash chain in the incident store.
 *
 * Each record holds the SHA-256 of the record before it, and its own hash covers its number, time, kind,
 * data and that link, so changing or removing one record breaks the chain at a place `verifyAudit` names.
 * A gateway write is two records: its intent, durable before the request is sent, and its outcome after.
 * A crash between the two leaves an intent without an outcome: a write that may or may not have happened.
 *
 * Why a table in the store and not a JSONL file beside it: an append is one SQLite transaction under the
 * store's own durability (WAL, synchronous = FULL), so a crash never leaves a torn last line that would
 * read as tampering; and BEGIN IMMEDIATE serialises processes sharing the store (leases allow that), so
 * two of them never link a record to the same predecessor, which concurrent appends to a file would.
 *
 * Cost: a commit is an fsync, and better-sqlite3 makes it on the event loop. Appends made in the same turn
 * of the event loop (a containment starts its escrow cancels together) share one transaction: an intent
 * resolves once its batch has committed. An outcome waits for the next commit (at most OUTCOME_DELAY_MS):
 * nothing waits on it, and a crash before then leaves its write open, which is what the log can know.
 * Guard decisions are written at once, synchronously, so a decision that cannot be recorded fails the call.
 *
 * Times are wall-clock (like leases), whatever clock the incidents run on: the trail states when things
 * really happened. The chain proves order and integrity, not authorship: whoever can write the file can
 * rebuild a whole chain; ship the head hash elsewhere (`verify-audit` prints it) to anchor it.
 */
import { createHash } from 'node:crypto';
import type { SqlDatabase, SqlStatement, SqlTransaction } from './sql.js';

export type AuditKind = 'guard' | 'gateway_write' | 'gateway_outcome';

/** One decision of a guard: what was asked, for whom, and whether it may go ahead. */
export interface GuardDecision {
  /** `containment_key`, `blast_radius`, `fleet_shutdown_confirmation`, … */
  guard: string;
  allowed: boolean;
  /** The MCP tool (or engine path: `watcher`) the decision was made for. */
  tool: string;
  agent_ids: readonly string[];
  /** The refusal code and message, or what let it through. */
  reason: string;
}

/** A state-changing gateway request, recorded before it is sent. */
export interface GatewayWriteIntent {
  tool: string;
  method: string;
  /** The request path, ids filled in. */
  route: string;
  agent_id: string | null;
  /** The object acted on when it is not the agent (an escrow). */
  target: string | null;
  idempotency_key: string | null;
  /** First 8 hex characters of SHA3-256 of the acting key, as the gateway lists keys. */
  key: string;
}

export interface GatewayWriteOutcome {
  /** The intent's record number. */
  intent: number;
  /** The last HTTP status seen; 0 when no answer came (network error, deadline, abort). */
  status: number;
  /** The error code, null on success. */
  code: string | null;
  attempts: number;
  /** A cancel whose 409 was read back as refunded by our own unseen attempt (see the client). */
  confirmed_by_read?: boolean;
}

export interface AuditRecord {
  seq: number;
  at: number;
  kind: AuditKind;
  /** The record's data exactly as stored (and hashed): JSON. */
  data: string;
  prev_hash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/**
 * The highest record number ever given (a removed last record must stay a visible gap): SQLite's
 * sqlite_sequence, and on PostgreSQL its equivalent, kept in the same transaction by a trigger (migrate.ts).
 */
const LAST_ASSIGNED_SQL = {
  sqlite: "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'",
  postgres: "SELECT seq FROM autoincrement_seq WHERE name = 'audit_log'",
} as const;

/** The highest audit record number ever given in this store (0 before the first). */
export function auditLastAssigned(db: SqlDatabase): number {
  return (db.prepare(LAST_ASSIGNED_SQL[db.engine]).get() as { seq: number } | undefined)?.seq ?? 0;
}

/** Records per page when PostgreSQL reads the log (each statement's rows arrive in one message). */
const PAGE = 5_000;

/**
 * Every audit record in order, one at a time: SQLite steps through one statement; PostgreSQL reads pages
 * by record number, so a long log is never held in memory on either engine.
 */
export function* auditRecords(db: SqlDatabase, pageSize = PAGE): IterableIterator<AuditRecord> {
  if (db.engine === 'sqlite') {
    yield* db
      .prepare('SELECT seq, at, kind, data, prev_hash, hash FROM audit_log ORDER BY seq')
      .iterate() as IterableIterator<AuditRecord>;
    return;
  }
  const page = db.prepare(
    'SELECT seq, at, kind, data, prev_hash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?',
  );
  for (let after = Number.MIN_SAFE_INTEGER; ; ) {
    const rows = page.all(after, pageSize) as AuditRecord[];
    yield* rows;
    if (rows.length < pageSize) return;
    after = (rows[rows.length - 1] as AuditRecord).seq;
  }
}

/** How long an outcome may wait for an intent or a decision to share its commit. */
const OUTCOME_DELAY_MS = 100;

/** The hash a record must carry: over everything it holds, its link included. */
export function auditHash(r: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(`${r.seq}\n${r.at}\n${r.kind}\n${r.data}\n${r.prev_hash}`).digest('hex');
}

interface Pending {
  kind: AuditKind;
  data: string;
  at: number;
  done?: { resolve: (seq: number) => void; reject: (e: unknown) => void };
}

export class AuditLog {
  #pending: Pending[] = [];
  #scheduled = false;
  #outcomeTimer: NodeJS.Timeout | undefined;
  readonly #tail: SqlStatement;
  readonly #lastAssigned: SqlStatement;
  readonly #insert: SqlStatement;
  readonly #append: SqlTransaction<(batch: Pending[]) => number[]>;
  /**
   * Told when a queued batch could not be written: its intents are rejected (their requests are not sent),
   * but an outcome in it is lost, and only this hook hears of it. The composition root points it at the log.
   */
  onError: (e: unknown) => void = () => undefined;

  constructor(private readonly db: SqlDatabase) {
    this.#tail = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
    this.#lastAssigned = db.prepare(LAST_ASSIGNED_SQL[db.engine]);
    this.#insert = db.prepare(
      'INSERT INTO audit_log (seq, at, kind, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.#append = db.transaction((batch: Pending[]) => {
      const tail = this.#tail.get() as { seq: number; hash: string } | undefined;
      const assigned = (this.#lastAssigned.get() as { seq: number } | undefined)?.seq ?? 0;
      // Past the highest number ever given, so a removed last record stays a visible gap.
      let seq = Math.max(tail?.seq ?? 0, assigned);
      let prev = tail?.hash ?? GENESIS_HASH;
      return batch.map((p) => {
        seq += 1;
        const hash = auditHash({ seq, at: p.at, kind: p.kind, data: p.data, prev_hash: prev });
        this.#insert.run(seq, p.at, p.kind, p.data, prev, hash);
        prev = hash;
        return seq;
      });
    });
  }

  /** Records a guard decision now, with anything queued before it; throws when it cannot be written. */
  guard(d: GuardDecision): number {
    const seqs = this.#commit([...this.#take(), this.#record('guard', { ...d })]);
    return seqs[seqs.length - 1] as number;
  }

  /** Resolves with the intent's record number once it is durable; rejects if it cannot be written. */
  writeIntent(w: GatewayWriteIntent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#enqueue({ ...this.#record('gateway_write', { ...w }), done: { resolve, reject } });
    });
  }

  /** Queues the outcome of a write; it is committed with the next batch, or within OUTCOME_DELAY_MS. */
  writeOutcome(o: GatewayWriteOutcome): void {
    this.#pending.push(this.#record('gateway_outcome', { ...o }));
    if (this.#scheduled || this.#outcomeTimer) return;
    this.#outcomeTimer = setTimeout(() => this.flush(), OUTCOME_DELAY_MS);
    // A process may end before it fires: close() flushes.
    this.#outcomeTimer.unref();
  }

  /** Commits whatever is queued, now (the store calls this before it closes). */
  flush(): void {
    const batch = this.#take();
    if (batch.length === 0) return;
    try {
      this.#commit(batch);
    } catch (e) {
      this.onError(e);
    }
  }

  /** Every record in order, one at a time (a long log is never held in memory). */
  records(): IterableIterator<AuditRecord> {
    return auditRecords(this.db);
  }

  #record(kind: AuditKind, data: Record<string, unknown>): Pending {
    return { kind, data: JSON.stringify(data), at: Date.now() };
  }

  #enqueue(p: Pending): void {
    this.#pending.push(p);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: requests whose answers arrive in the same poll phase start their
    // next writes there, and all of them share one commit.
    setImmediate(() => this.flush());
  }

  #take(): Pending[] {
    this.#scheduled = false;
    clearTimeout(this.#outcomeTimer);
    this.#outcomeTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    return batch;
  }

  #commit(batch: Pending[]): number[] {
    let seqs: number[];
    try {
      seqs = this.#append.immediate(batch);
    } catch (e) {
      for (const p of batch) p.done?.reject(e);
      throw e;
    }
    batch.forEach((p, i) => {
      p.done?.resolve(seqs[i] as number);
    });
    return seqs;
  }
}

export interface AuditProblem {
  /** The record concerned (for a removal, the missing number). */
  seq: number;
  problem: 'altered' | 'removed';
  detail: string;
}

export interface AuditVerdict {
  ok: boolean;
  records: number;
  /** The last record's hash: keep it elsewhere to notice a rebuilt chain. */
  head: string | null;
  problems: AuditProblem[];
  /** Gateway writes whose intent has no outcome: sent (or about to be) when the process stopped. */
  open_writes: number[];
}

/**
 * Walks the chain. A record whose hash does not match its contents was altered; a record whose contents
 * and hash were both rewritten shows in the next record's link; a missing number was removed, the last
 * one included (`lastAssigned`: the highest number ever given, from sqlite_sequence).
 */
export function verifyAudit(records: Iterable<AuditRecord>, lastAssigned: number): AuditVerdict {
  const problems: AuditProblem[] = [];
  const open = new Set<number>();
  let expected = 1;
  let prev: { seq: number; hash: string; intact: boolean } = { seq: 0, hash: GENESIS_HASH, intact: true };
  let count = 0;
  const removed = (from: number, to: number) => {
    for (let s = from; s <= to; s++)
      problems.push({ seq: s, problem: 'removed', detail: `record ${s} is missing from the chain` });
  };
  for (const r of records) {
    count += 1;
    const gap = r.seq > expected;
    if (gap) removed(expected, r.seq - 1);
    const intact = auditHash(r) === r.hash;
    if (!intact)
      problems.push({ seq: r.seq, problem: 'altered', detail: 'its contents no longer match its hash' });
    else if (!gap && prev.intact && r.prev_hash !== prev.hash)
      problems.push({
        seq: prev.seq,
        problem: 'altered',
        detail: `its hash no longer matches the link held by record ${r.seq}`,
      });
    trackOpenWrites(open, r);
    prev = { seq: r.seq, hash: r.hash, intact };
    expected = r.seq + 1;
  }
  if (lastAssigned >= expected) removed(expected, lastAssigned);
  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok: problems.length === 0,
    records: count,
    head: count ? prev.hash : null,
    problems,
    open_writes: [...open],
  };
}

function trackOpenWrites(open: Set<number>, r: AuditRecord): void {
  if (r.kind === 'gateway_write') open.add(r.seq);
  else if (r.kind === 'gateway_outcome') {
    try {
      open.delete(Number((JSON.parse(r.data) as { intent?: unknown }).intent));
    } catch {
      // An altered record is reported by the chain check; its data need not parse.
    }
  }
}
