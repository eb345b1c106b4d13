/**
 * What one store statement costs on each engine: a primary-key read (getIncident), an autocommitted
 * upsert (setCursor: one fsync on either engine), and a write transaction (claimContainment on an agent
 * with an open incident: on PostgreSQL BEGIN + the advisory lock, one read, COMMIT). PostgreSQL is a
 * throwaway local cluster (test/helpers/postgres.ts; Debian's postgresql package), fsync on. The figures
 * are quoted at the top of src/incidents/pg.ts.
 *
 *   npx tsx bench/store-statement.ts [--reads 2000] [--writes 300]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type IncidentStore, openStore, PgDatabase } from '../src/incidents/index.js';
import { startCluster } from '../test/helpers/postgres.js';

const { values } = parseArgs({ options: { reads: { type: 'string' }, writes: { type: 'string' } } });
const reads = Number(values.reads ?? 2000);
const writes = Number(values.writes ?? 300);
const clock = { now: () => Date.now() };
const init = { agent_ids: ['a'], primary_agent_id: 'a', reason: 'bench', kind: 'containment' };

function perOp(n: number, f: (i: number) => void): string {
  const started = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return `${(((performance.now() - started) * 1000) / n).toFixed(0)} µs`;
}

function measure(name: string, s: IncidentStore): void {
  const { incident } = s.claimContainment('a', init);
  for (let i = 0; i < 50; i++) s.getIncident(incident.id); // warm: statements prepared
  console.log(
    `${name.padEnd(10)} read ${perOp(reads, () => s.getIncident(incident.id)).padStart(8)}` +
      `   autocommit upsert ${perOp(writes, (i) => s.setCursor(`c${i % 10}`, String(i))).padStart(8)}` +
      `   transaction ${perOp(writes, () => s.claimContainment('a', init)).padStart(8)}`,
  );
}

const dir = mkdtempSync(join(tmpdir(), 'aim-bench-store-'));
const cluster = await startCluster();
try {
  const sqlite = openStore({ dataDir: dir, clock });
  measure('sqlite', sqlite);
  sqlite.close();
  const admin = new PgDatabase(cluster.url);
  admin.exec('CREATE DATABASE bench');
  admin.close();
  const pg = openStore({ databaseUrl: cluster.url.replace(/\/postgres$/, '/bench'), clock });
  measure('postgres', pg);
  pg.close();
} finally {
  cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
