/**
 * The part of better-sqlite3's `Database` API the incident store uses, as an interface two engines
 * implement: better-sqlite3 itself (SQLite, unchanged: no layer between the store and the driver) and
 * `PgDatabase` (pg.ts: PostgreSQL, statement by statement on a worker thread, just as synchronous).
 *
 * The semantics are better-sqlite3's: `run` answers how many rows changed, `get` the first row or
 * undefined, `all` every row; `transaction(fn)` wraps fn in BEGIN … COMMIT (ROLLBACK and rethrow on an
 * exception), a transaction called inside another becomes a savepoint, and `.immediate()` takes the write
 * lock at BEGIN. SQL is written once for both engines: `?` placeholders, and nothing either dialect lacks
 * (an untyped parameter in a SELECT list is written `CAST(? AS BIGINT)`, which both accept).
 */
import Database from 'better-sqlite3';

export type SqlEngine = 'sqlite' | 'postgres';

export interface SqlRunResult {
  changes: number;
}

export interface SqlStatement {
  run(...params: unknown[]): SqlRunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
}

// biome-ignore lint/suspicious/noExplicitAny: better-sqlite3's own constraint, which this must accept
export type SqlFunction = (...args: any[]) => unknown;

/** A function's parameters, spelt as better-sqlite3 spells them (so its transactions are assignable). */
export type SqlArgs<F extends SqlFunction> = F extends (...args: infer A) => unknown ? A : never;

export interface SqlTransaction<F extends SqlFunction> {
  (...args: SqlArgs<F>): ReturnType<F>;
  /** BEGIN IMMEDIATE on SQLite; on PostgreSQL every transaction already takes the store's write lock. */
  immediate(...args: SqlArgs<F>): ReturnType<F>;
}

export interface SqlDatabase {
  readonly engine: SqlEngine;
  readonly open: boolean;
  prepare(sql: string): SqlStatement;
  transaction<F extends SqlFunction>(fn: F): SqlTransaction<F>;
  /** Runs one or more statements without parameters (DDL, migrations). */
  exec(sql: string): unknown;
  close(): unknown;
}

/** better-sqlite3's Database, tagged with its engine: it is a `SqlDatabase` as it is. */
export type SqliteDatabase = Database.Database & { readonly engine: 'sqlite' };

export function openSqlite(path: string): SqliteDatabase {
  const db = new Database(path);
  Object.defineProperty(db, 'engine', { value: 'sqlite', enumerable: true });
  return db as SqliteDatabase;
}

export function isSqlite(db: SqlDatabase): db is SqliteDatabase {
  return db.engine === 'sqlite';
}

// A compile-time check that better-sqlite3's Database satisfies the interface.
const _sqliteIsSql = (db: SqliteDatabase): SqlDatabase => db;
void _sqliteIsSql;
