/**
 * `agent-incident-mcp verify-audit [--store FILE] [--config FILE] [--data-dir DIR]`: walks the audit log's
 * hash chain in an incident store, read-only, and names each altered or removed record.
 *
 * Exit codes: 0 intact, 1 broken, 2 no such store or no audit log in it (or bad usage).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { ConfigError, DEFAULT_DATA_DIR, loadConfig } from './config.js';
import { type AuditRecord, verifyAudit } from './incidents/index.js';

export interface VerifyAuditIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const VERIFY_AUDIT_USAGE =
  'usage: agent-incident-mcp verify-audit [--store FILE] [--config FILE] [--data-dir DIR]';

/** How many problems are listed one per line before the rest are counted. */
const LISTED = 20;

export function runVerifyAudit(argv: string[], io: VerifyAuditIo): number {
  const { values } = parseArgs({
    args: argv,
    options: { store: { type: 'string' }, config: { type: 'string' }, 'data-dir': { type: 'string' } },
    strict: true,
    allowPositionals: false,
  });
  // Without --store: the store the server would open with the same configuration.
  const path =
    values.store ??
    join(
      loadConfig({ file: values.config, flags: values['data-dir'] ? { dataDir: values['data-dir'] } : {} })
        .dataDir ?? DEFAULT_DATA_DIR,
      'incidents.sqlite',
    );
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
    io.stdout(
      `audit log broken: ${v.problems.length} problem(s) in ${v.records} records in ${path}${open}\n`,
    );
    return 1;
  } finally {
    db.close();
  }
}
