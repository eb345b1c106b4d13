/**
 * The incident store on PostgreSQL, so several replicas share one store: a `SqlDatabase` (sql.ts) whose
 * every statement runs synchronously. A worker thread owns one `pg.Client`; the main thread posts a
 * request on a MessageChannel, blocks in `Atomics.wait` on a shared counter the worker bumps when it has
 * answered, and takes the answer with `receiveMessageOnPort` (synckit's technique).
 *
 * Why synchronous: one store code path for both engines (the store and its ~140 callers stay as they are,
 * written against better-sqlite3's API), and a transaction's statements cannot interleave with any other
 * event-loop work, which is what makes `claimContainment`, the ledgers' write-once claims and the audit
 * chain's appends atomic within a process, exactly as on SQLite. Across processes, every explicit
 * transaction (deferred or immediate) takes one transaction-scoped advisory lock right after BEGIN: one
 * writer transaction at a time across every replica, SQLite's own guarantee. Statements outside a
 * transaction are single upserts or updates, atomic on their own in PostgreSQL.
 *
 * The cost: each statement holds the event loop for one loopback round trip to the server plus two thread
 * hops (four wake-ups: worker, server, worker, main thread). Measured with bench/store-statement.ts on
 * the 2-core development machine, shared with other work (PostgreSQL 15 on 127.0.0.1, fsync on), over
 * several runs: a primary-key read 0.3–0.8 ms (SQLite: 0.01–0.02 ms); an autocommitted upsert 0.4–0.8 ms
 * (SQLite, WAL and synchronous = FULL: 0.3–0.4 ms; both fsync); a transaction adds two round trips
 * (BEGIN with the lock, COMMIT): claimContainment on an agent already claimed, 0.5–1.6 ms (SQLite:
 * 0.04 ms). Fine for the store's tens of statements per containment step; a loop of thousands of
 * statements would block the event loop for about a second, which is why a detection pass reads and saves
 * its agents in multi-row statements (1,000 agents: a load 24–33 ms, a save 15–19 ms; bench/replicas.ts). (Spinning briefly before Atomics.wait cut a read by a fifth
 * but slowed fsyncing writes on two shared cores, so the main thread just sleeps.)
 *
 * A statement that gets no answer within `statementTimeoutMs` (default 30 s; the server is told the same
 * `statement_timeout`, so it normally answers with its own error first) throws instead of hanging the
 * process; the connection is then dropped (the server rolls back whatever it held, lock included) and a
 * new one is opened for the next statement outside a transaction. A late answer is never mistaken for
 * another request's: answers carry their request's id.
 */
import { createRequire } from 'node:module';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { SqlArgs, SqlDatabase, SqlFunction, SqlRunResult, SqlStatement, SqlTransaction } from './sql.js';

/** The advisory lock every explicit transaction takes: 'AIMS' (agent-incident-mcp store) as an integer. */
export const STORE_LOCK_KEY = 0x41494d53;

export interface PgOptions {
  /** A statement (or a wait for the store's lock) that takes longer throws. Default 30 s. */
  statementTimeoutMs?: number;
  /** How long connecting may take. Default 10 s. */
  connectTimeoutMs?: number;
}

/** An error from PostgreSQL (or from the connection), with its SQLSTATE when the server gave one. */
export class PgError extends Error {
  override readonly name = 'PgError';
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly detail?: string,
  ) {
    super(message);
  }
}

type Mode = 'run' | 'rows' | 'exec';

interface Answer {
  id: number;
  rows?: Record<string, unknown>[];
  changes?: number;
  error?: { message: string; code?: string; detail?: string; fatal?: boolean };
}

/**
 * The worker: CommonJS, run with `eval: true` so it needs no file of its own (the same code works from
 * the TypeScript sources under vitest and from dist/). pg comes from the absolute path the main thread
 * resolved, so it is the project's own copy whatever the worker's working directory.
 */
const WORKER_SOURCE = `
'use strict';
const { workerData } = require('node:worker_threads');
const { port, signal, pgPath, config } = workerData;
const pg = require(pgPath);
// Timestamps are ms since the epoch and sums are cents: both fit a double exactly.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));
const client = new pg.Client(config);
let broken = null;
client.on('error', (e) => { broken = e; });
const names = new Map();
function answer(msg) {
  port.postMessage(msg);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}
function failure(e, fatal) {
  return { message: String(e && e.message ? e.message : e), code: e && e.code, detail: e && e.detail, fatal };
}
async function handle(m) {
  if (m.op === 'connect') { await client.connect(); return {}; }
  if (m.op === 'end') { await client.end(); return {}; }
  if (broken) throw Object.assign(new Error('connection lost: ' + broken.message), { fatal: true });
  if (m.mode === 'exec') { await client.query(m.sql); return {}; }
  let name = names.get(m.sql);
  if (name === undefined) { name = 's' + names.size; names.set(m.sql, name); }
  const r = await client.query({ name, text: m.sql, values: m.params });
  return m.mode === 'run' ? { changes: r.rowCount || 0, rows: r.rows } : { rows: r.rows };
}
let queue = Promise.resolve();
port.on('message', (m) => {
  queue = queue.then(async () => {
    try {
      answer({ id: m.id, ...(await handle(m)) });
    } catch (e) {
      // No SQLSTATE (the client's own "Connection terminated…"), a connection exception (08…) or an
      // operator intervention (57P…: the backend was terminated): this connection is done.
      const code = e && e.code;
      const lost = typeof code !== 'string' || /^(08|57P)/.test(code);
      answer({ id: m.id, error: failure(e, Boolean(broken) || Boolean(e && e.fatal) || lost || m.op === 'connect') });
    }
  });
});
`;

/**
 * `?` placeholders to `$1…$n`, skipping quoted strings, quoted identifiers and comments. Dollar-quoted
 * bodies are not parsed: the store's parameterised statements have none (DDL goes through `exec`).
 */
export function toPgPlaceholders(sql: string): string {
  let out = '';
  let n = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i] as string;
    if (c === "'" || c === '"') {
      const end = closing(sql, i, c);
      out += sql.slice(i, end);
      i = end - 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      const end = nl === -1 ? sql.length : nl;
      out += sql.slice(i, end);
      i = end - 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      const end = close === -1 ? sql.length : close + 2;
      out += sql.slice(i, end);
      i = end - 1;
    } else if (c === '?') {
      n += 1;
      out += `$${n}`;
    } else out += c;
  }
  return out;
}

/** The index just past a quoted run starting at `start` (a doubled quote stays inside). */
function closing(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else i += 1;
  }
  return sql.length;
}

/** The first words of a statement, for error messages. */
function head(sql: string): string {
  const s = sql.replace(/\s+/g, ' ').trim();
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

const localRequire = createRequire(import.meta.url);

interface Connection {
  worker: Worker;
  port: MessagePort;
  signal: Int32Array;
}

export class PgDatabase implements SqlDatabase {
  readonly engine = 'postgres' as const;
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  #conn: Connection | null = null;
  #open = true;
  #nextId = 0;
  /** Nesting of transactions: 0 outside, 1 in BEGIN … COMMIT, more in savepoints. */
  #depth = 0;
  /** The connection was dropped inside the current transaction: its statements must not go on elsewhere. */
  #lostTransaction = false;
  readonly #placeholders = new Map<string, string>();

  constructor(url: string, opts: PgOptions = {}) {
    this.#url = url;
    this.#timeoutMs = opts.statementTimeoutMs ?? 30_000;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.#connect();
  }

  get open(): boolean {
    return this.#open;
  }

  prepare(sql: string): SqlStatement {
    let text = this.#placeholders.get(sql);
    if (text === undefined) {
      text = toPgPlaceholders(sql);
      this.#placeholders.set(sql, text);
    }
    const pgSql = text;
    const rows = (params: unknown[]) =>
      this.#request({ op: 'query', mode: 'rows', sql: pgSql, params }, sql).rows ?? [];
    return {
      run: (...params: unknown[]): SqlRunResult => ({
        changes: this.#request({ op: 'query', mode: 'run', sql: pgSql, params }, sql).changes ?? 0,
      }),
      get: (...params: unknown[]) => rows(params)[0],
      all: (...params: unknown[]) => rows(params),
      // Every row at once: the worker answers a statement in one message.
      iterate: (...params: unknown[]) => rows(params)[Symbol.iterator](),
    };
  }

  exec(sql: string): this {
    this.#request({ op: 'query', mode: 'exec', sql }, sql);
    return this;
  }

  transaction<F extends SqlFunction>(fn: F): SqlTransaction<F> {
    const run = (...args: SqlArgs<F>): ReturnType<F> => {
      if (this.#depth === 0) return this.#outermost(fn, args);
      const savepoint = `aim_sp${this.#depth}`;
      this.exec(`SAVEPOINT ${savepoint}`);
      this.#depth += 1;
      try {
        const result = settled(fn(...args));
        this.exec(`RELEASE SAVEPOINT ${savepoint}`);
        return result as ReturnType<F>;
      } catch (e) {
        this.#rollbackQuietly(`ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`);
        throw e;
      } finally {
        this.#depth -= 1;
      }
    };
    return Object.assign(run, { immediate: run, deferred: run, exclusive: run, default: run });
  }

  close(): this {
    if (!this.#open) return this;
    this.#open = false;
    const conn = this.#conn;
    this.#conn = null;
    if (conn) {
      try {
        this.#send(conn, { op: 'end' }, 'close', Math.min(this.#timeoutMs, 5_000));
      } catch {
        // Terminating the worker drops the connection anyway.
      }
      void conn.worker.terminate();
      conn.port.close();
    }
    return this;
  }

  #outermost<F extends SqlFunction>(fn: F, args: SqlArgs<F>): ReturnType<F> {
    // One round trip: BEGIN and the store's lock (see the top of this file).
    try {
      this.exec(`BEGIN; SELECT pg_advisory_xact_lock(${STORE_LOCK_KEY})`);
    } catch (e) {
      // The lock not had in time (statement_timeout) leaves BEGIN's transaction aborted: end it.
      this.#rollbackQuietly('ROLLBACK');
      throw e;
    }
    this.#depth = 1;
    try {
      const result = settled(fn(...args));
      this.exec('COMMIT');
      return result as ReturnType<F>;
    } catch (e) {
      this.#rollbackQuietly('ROLLBACK');
      throw e;
    } finally {
      this.#depth = 0;
      this.#lostTransaction = false;
    }
  }

  /** Rolls back on the live connection, if there still is one; the error that caused it is the one thrown. */
  #rollbackQuietly(sql: string): void {
    if (this.#lostTransaction || !this.#conn) return;
    try {
      this.exec(sql);
    } catch {
      // A failed rollback leaves the original error the one worth reporting.
    }
  }

  #connect(): void {
    const { port1, port2 } = new MessageChannel();
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        port: port2,
        signal,
        pgPath: localRequire.resolve('pg'),
        config: {
          connectionString: this.#url,
          statement_timeout: this.#timeoutMs,
          // A replica stopped inside a transaction (a paused VM) must not hold the store's lock forever.
          idle_in_transaction_session_timeout: this.#timeoutMs,
          connectionTimeoutMillis: this.#connectTimeoutMs,
          application_name: 'agent-incident-mcp',
        },
      },
      transferList: [port2],
    });
    // Never the reason the process stays alive; close() ends it when the store is closed.
    worker.unref();
    port1.unref();
    const conn = { worker, port: port1, signal };
    try {
      this.#send(conn, { op: 'connect' }, 'connect', this.#connectTimeoutMs + 1_000);
    } catch (e) {
      void worker.terminate();
      port1.close();
      throw e;
    }
    this.#conn = conn;
  }

  #request(req: { op: 'query'; mode: Mode; sql: string; params?: unknown[] }, sql: string): Answer {
    if (!this.#open) throw new PgError('the database connection is not open', undefined);
    if (this.#lostTransaction)
      throw new PgError(
        'the connection was lost inside this transaction; it was rolled back by the server',
        '08006',
      );
    if (!this.#conn) {
      if (this.#depth > 0) {
        this.#lostTransaction = true;
        throw new PgError('the connection was lost inside this transaction', '08006');
      }
      this.#connect();
    }
    return this.#send(this.#conn as Connection, req, sql, this.#timeoutMs + 1_000);
  }

  /** Posts one request and blocks until its answer, or throws at the deadline. */
  #send(conn: Connection, req: object, sql: string, timeoutMs: number): Answer {
    const id = ++this.#nextId;
    conn.port.postMessage({ id, ...req });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Read the counter before draining: an answer posted after the drain bumps it, so the wait ends.
      const seen = Atomics.load(conn.signal, 0);
      for (let m = receiveMessageOnPort(conn.port); m; m = receiveMessageOnPort(conn.port)) {
        const a = m.message as Answer;
        if (a.id !== id) continue; // the late answer to a request that timed out
        if (a.error) {
          if (a.error.fatal) this.#drop(conn);
          throw new PgError(`${a.error.message} (in: ${head(sql)})`, a.error.code, a.error.detail);
        }
        return a;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.#drop(conn);
        throw new PgError(`no answer from PostgreSQL within ${timeoutMs} ms (in: ${head(sql)})`, '57014');
      }
      Atomics.wait(conn.signal, 0, seen, left);
    }
  }

  /** Forgets a connection that cannot be trusted any more; the server rolls back what it held. */
  #drop(conn: Connection): void {
    if (this.#conn === conn) this.#conn = null;
    if (this.#depth > 0) this.#lostTransaction = true;
    void conn.worker.terminate();
    conn.port.close();
  }
}

/** better-sqlite3 refuses a transaction function that returns a promise; so does this engine. */
function settled(result: unknown): unknown {
  if (result && typeof (result as { then?: unknown }).then === 'function')
    throw new TypeError('Transaction function cannot return a promise');
  return result;
}
