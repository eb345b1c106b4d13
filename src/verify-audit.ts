/**
 * `agent-incident-mcp verify-audit [--store FILE | --database-url URL] [--config FILE] [--data-dir DIR]`:
 * walks the audit log's hash chain in an incident store, read-only, and names each altered or removed
 * record. The store is a SQLite file (--store, or incidents.sqlite in the data dir) or, with --database-url
 * or INCIDENT_DATABASE_URL in the configuration, a PostgreSQL database (the URL's password is never printed).
 *
 * Exit codes: 0 intact, 1 broken, 2 no such store or no audit log in it (or bad usage).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { ConfigError, DEFAULT_DATA_DIR, loadConfig, redactedDatabaseUrl } from './config.js';
import { type AuditRecord, auditLastAssigned, auditRecords, verifyAudit } from './incidents/index.js';
import { PgDatabase } from './incidents/pg.js';

export interface VerifyAuditIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const VERIFY_AUDIT_USAGE =
  'usage: agent-incident-mcp verify-audit [--store FILE | --database-url URL] [--config FILE] [--data-dir DIR]';

/** How many problems are listed one per line before the rest are counted. */
const LISTED = 20;

export function runVerifyAudit(argv: string[], io: VerifyAuditIo): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      store: { type: 'string' },
      'database-url': { type: 'string' },
      config: { type: 'string' },
      'data-dir': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.store && values['database-url'])
    throw new ConfigError('verify-audit: give --store or --database-url, not both');
  // Without --store or --database-url: the store the server would open with the same configuration.
  let url = values['database-url'];
  let path = values.store;
  if (!url && !path) {
    const config = loadConfig({
      file: values.config,
      flags: values['data-dir'] ? { dataDir: values['data-dir'] } : {},
    });
    url = config.databaseUrl;
    path = join(config.dataDir ?? DEFAULT_DATA_DIR, 'incidents.sqlite');
  }
  if (url) return verifyPostgres(url, io);
  return verifySqlite(path as string, io);
}

function verifySqlite(path: string, io: VerifyAuditIo): number {
  if (!existsSync(path)) throw new ConfigError(`verify-audit: no incident store at ${path}`);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const hasLog = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'")
      .get();
    if (!hasLog)
      throw new ConfigError(
        `verify-audit: ${path} has no audit log yet (schema version ${String(db.pragma('user_version', { simple: true }))}); the server adds it when it next opens the store`,
      );
    const lastAssigned =
      (
        db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").get() as
          | { seq: number }
          | undefined
      )?.seq ?? 0;
    const records = db
      .prepare('SELECT seq, at, kind, data, prev_hash, hash FROM audit_log ORDER BY seq')
      .iterate() as IterableIterator<AuditRecord>;
    return report(records, lastAssigned, path, io);
  } finally {
    db.close();
  }
}

/** The same walk over a PostgreSQL store, in one read-only transaction (one consistent snapshot). */
function verifyPostgres(url: string, io: VerifyAuditIo): number {
  const where = redactedDatabaseUrl(url);
  let db: PgDatabase;
  try {
    db = new PgDatabase(url);
  } catch (e) {
    throw new ConfigError(
      `verify-audit: cannot open the incident store at ${where}: ${(e as Error).message}`,
    );
  }
  try {
    db.exec('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const hasLog = db.prepare("SELECT to_regclass('audit_log') IS NOT NULL AS present").get() as {
      present: boolean;
    };
    if (!hasLog.present)
      throw new ConfigError(
        `verify-audit: ${where} has no audit log yet; the server adds it when it next opens the store`,
      );
    return report(auditRecords(db), auditLastAssigned(db), where, io);
  } finally {
    db.close();
  }
}

function report(
  records: Iterable<AuditRecord>,
  lastAssigned: number,
  path: string,
  io: VerifyAuditIo,
): number {
  const v = verifyAudit(records, lastAssigned);
  const open = v.open_writes.length
    ? `; ${v.open_writes.length} gateway write(s) without a recorded outcome (in flight when a process stopped): record ${v.open_writes.slice(0, 10).join(', ')}${v.open_writes.length > 10 ? ', …' : ''}`
    : '';
  if (v.ok) {
    io.stdout(
      `audit log intact: ${v.records} records in ${path}, head sha256 ${v.head ?? '(empty)'}${open}\n`,
    );
    return 0;
  }
  for (const p of v.problems.slice(0, LISTED)) io.stdout(`record ${p.seq}: ${p.problem}: ${p.detail}\n`);
  if (v.problems.length > LISTED) io.stdout(`… and ${v.problems.length - LISTED} more\n`);
  io.stdout(`audit log broken: ${v.problems.length} problem(s) in ${v.records} records in ${path}${open}\n`);
  return 1;
}
