/**
 * The two engines behind the store (sql.ts): transactions and their rollbacks behave alike, two stores
 * racing on one place (two processes on a SQLite file, two replicas on a PostgreSQL database) still get
 * exactly one incident per agent, and the PostgreSQL engine's own edges: placeholders, types, errors and
 * the statement timeout.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { PgDatabase, PgError, type SqlDatabase } from '../../src/incidents/index.js';
import { toPostgresDdl } from '../../src/incidents/migrate.js';
import { STORE_LOCK_KEY, toPgPlaceholders } from '../../src/incidents/pg.js';
import { cleanupStores, ENGINES, type Engine, newStorePlace } from '../helpers/stores.js';

afterEach(cleanupStores);

const clock = () => ({ now: () => 1_700_000_000_000 });
// The worker is TypeScript: tsx's loader is registered in the worker before it is imported.
const WORKER = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('../helpers/claim-race-worker.ts', import.meta.url).href)}); })`;

describe.each(ENGINES)('transactions (%s)', (engine: Engine) => {
  const setup = (): SqlDatabase => {
    const store = newStorePlace(engine).open(clock());
    store.db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT NOT NULL)');
    return store.db;
  };
  const ids = (db: SqlDatabase) =>
    (db.prepare('SELECT id FROM t ORDER BY id').all() as { id: string }[]).map((r) => r.id);

  it('a failed statement inside a transaction rolls the whole transaction back, and the error says why', () => {
    const db = setup();
    const insert = db.prepare('INSERT INTO t (id, n) VALUES (?, ?)');
    insert.run('a', 1);
    const tx = db.transaction(() => {
      insert.run('b', 2);
      insert.run('a', 3); // primary key violation
    });
    let error: unknown;
    try {
      tx.immediate();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    if (engine === 'postgres') {
      expect(error).toBeInstanceOf(PgError);
      expect((error as PgError).code).toBe('23505');
      expect((error as Error).message).toMatch(/duplicate key value.*\(in: INSERT INTO t \(id, n\)/);
    } else expect((error as { code: string }).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(ids(db)).toEqual(['a']);
    // The connection is usable afterwards, inside and outside transactions.
    db.transaction(() => insert.run('c', 4))();
    expect(ids(db)).toEqual(['a', 'c']);
  });

  it('an exception thrown by the function rolls back; a nested transaction is a savepoint', () => {
    const db = setup();
    const insert = db.prepare('INSERT INTO t (id, n) VALUES (?, ?)');
    expect(() =>
      db.transaction(() => {
        insert.run('x', 1);
        throw new Error('boom');
      })(),
    ).toThrow('boom');
    expect(ids(db)).toEqual([]);
    const inner = db.transaction((id: string) => {
      insert.run(id, 1);
      throw new Error('inner fails');
    });
    const outer = db.transaction(() => {
      insert.run('kept', 1);
      expect(() => inner('undone')).toThrow('inner fails');
      db.transaction(() => insert.run('nested', 2))();
      return 'done';
    });
    expect(outer.immediate()).toBe('done');
    expect(ids(db)).toEqual(['kept', 'nested']);
  });

  it('changes counts the rows a statement changed; numbers come back as numbers', () => {
    const db = setup();
    const insert = db.prepare('INSERT INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING');
    expect(insert.run('a', 1_700_000_000_123).changes).toBe(1);
    expect(insert.run('a', 2).changes).toBe(0);
    insert.run('b', 5);
    expect(db.prepare('UPDATE t SET n = n + 1 WHERE n < ?').run(100).changes).toBe(1);
    expect(db.prepare("SELECT n, 'it''s ?' AS q FROM t WHERE id = ?").get('a')).toEqual({
      n: 1_700_000_000_123,
      q: "it's ?",
    });
    expect(db.prepare('SELECT COUNT(*) AS c, SUM(n) AS s FROM t').get()).toEqual({
      c: 2,
      s: 1_700_000_000_129,
    });
    expect([...db.prepare('SELECT id FROM t ORDER BY id').iterate()]).toEqual([{ id: 'a' }, { id: 'b' }]);
    expect(db.prepare('SELECT id FROM t WHERE id = ?').get('zz')).toBeUndefined();
  });

  it('two stores opening a new store at once, then racing claimContainment for one agent in a tight loop, create exactly one incident', async () => {
    // A new, empty place: the two sides also race to create the schema (one migration under the lock).
    const place = newStorePlace(engine);
    const sides = 2;
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const workers = Array.from(
      { length: sides },
      () =>
        new Worker(WORKER, {
          eval: true,
          workerData: {
            databaseUrl: place.url,
            dataDir: place.dir,
            agent: 'agent-race',
            rounds: 150,
            gate,
            sides,
          },
        }),
    );
    const created = (
      await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0] as string[]))
    ).flat();
    expect(created).toHaveLength(1);
    const store = place.open(clock());
    expect(
      store.db.prepare("SELECT COUNT(*) AS n FROM incidents WHERE primary_agent_id = 'agent-race'").get(),
    ).toEqual({ n: 1 });
  }, 60_000);
});

describe('the PostgreSQL engine', () => {
  it('translates ? placeholders outside quotes and comments', () => {
    expect(toPgPlaceholders(`SELECT ?, '?', "a?" , 'it''s ?' -- ?\n, ? /* ? */ FROM t WHERE x = ?`)).toBe(
      `SELECT $1, '?', "a?" , 'it''s ?' -- ?\n, $2 /* ? */ FROM t WHERE x = $3`,
    );
  });

  it('translates SQLite DDL, an AUTOINCREMENT key keeping its high-water mark like sqlite_sequence', () => {
    const ddl = toPostgresDdl(
      'CREATE TABLE probes (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, seen_at INTEGER, load REAL);\nCREATE INDEX probes_seen ON probes (seen_at);\nINSERT INTO probes (name) SELECT CAST(1 AS TEXT) WHERE 1 = 0;',
    );
    expect(ddl).toContain('id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY');
    expect(ddl).toContain('name TEXT COLLATE "C" NOT NULL, seen_at BIGINT, load DOUBLE PRECISION');
    expect(ddl).toContain('CAST(1 AS TEXT)');
    expect(ddl).toContain(
      "CREATE TRIGGER probes_autoincrement AFTER INSERT ON probes FOR EACH ROW EXECUTE FUNCTION autoincrement_seq_bump('id');",
    );
    // A migration's kind of DDL, applied for real (a table the store does not have).
    const store = newStorePlace('postgres').open(clock());
    store.db.exec(ddl);
    store.db.prepare('INSERT INTO probes (name, seen_at, load) VALUES (?, ?, ?)').run('r1', 1, 0.5);
    store.db.prepare('INSERT INTO probes (id, name) VALUES (?, ?)').run(7, 'r2');
    store.db.prepare('DELETE FROM probes WHERE id = ?').run(7);
    expect(store.db.prepare("SELECT seq FROM autoincrement_seq WHERE name = 'probes'").get()).toEqual({
      seq: 7,
    });
    expect(store.db.prepare('SELECT * FROM probes').all()).toEqual([
      { id: 1, name: 'r1', seen_at: 1, load: 0.5 },
    ]);
  });

  it('a statement past its timeout throws (the server cancels it) and the connection goes on', () => {
    const db = new PgDatabase(inject('pgUrl'), { statementTimeoutMs: 300 });
    try {
      const started = Date.now();
      expect(() => db.prepare('SELECT pg_sleep(5)').get()).toThrow(/statement timeout/);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(db.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
      // A session stopped inside a transaction gives the store's lock back after as long.
      expect(db.prepare('SHOW idle_in_transaction_session_timeout').get()).toEqual({
        idle_in_transaction_session_timeout: '300ms',
      });
    } finally {
      db.close();
    }
  });

  it('a statement that never answers throws at the deadline; the next one runs on a new connection', () => {
    const db = new PgDatabase(inject('pgUrl'), { statementTimeoutMs: 300 });
    try {
      // The server's own timeout off: only the client's deadline (timeout + 1 s) can end this wait.
      db.exec('SET statement_timeout = 0');
      const pid = (db.prepare('SELECT pg_backend_pid() AS pid').get() as { pid: number }).pid;
      const started = Date.now();
      expect(() => db.prepare('SELECT pg_sleep(10)').get()).toThrow(/no answer from PostgreSQL within/);
      expect(Date.now() - started).toBeLessThan(5_000);
      const next = db.prepare('SELECT pg_backend_pid() AS pid').get() as { pid: number };
      expect(next.pid).not.toBe(pid);
      // Inside a transaction the lost connection is not silently replaced.
      const tx = db.transaction(() => {
        db.exec('SET LOCAL statement_timeout = 0');
        db.prepare('SELECT pg_sleep(10)').get();
      });
      expect(() => tx()).toThrow(/no answer/);
      expect(db.prepare('SELECT 2 AS two').get()).toEqual({ two: 2 });
    } finally {
      db.close();
    }
  });

  it("a transaction that cannot get the store's lock in time throws, and the connection goes on", () => {
    const place = newStorePlace('postgres');
    const holder = new PgDatabase(place.url as string);
    const db = new PgDatabase(place.url as string, { statementTimeoutMs: 300 });
    try {
      holder.exec(`BEGIN; SELECT pg_advisory_xact_lock(${STORE_LOCK_KEY})`);
      expect(() => db.transaction(() => db.prepare('SELECT 1 AS one').get())()).toThrow(/statement timeout/);
      holder.exec('ROLLBACK');
      expect(db.transaction(() => db.prepare('SELECT 1 AS one').get())()).toEqual({ one: 1 });
    } finally {
      db.close();
      holder.close();
    }
  });

  it('a connection the server dropped fails one statement; the next runs on a new connection', () => {
    const db = new PgDatabase(inject('pgUrl'));
    const admin = new PgDatabase(inject('pgUrl'));
    try {
      const pid = (db.prepare('SELECT pg_backend_pid() AS pid').get() as { pid: number }).pid;
      admin.prepare('SELECT pg_terminate_backend(CAST(? AS INTEGER))').get(pid);
      expect(() => db.prepare('SELECT 1 AS one').get()).toThrow(PgError);
      expect(db.prepare('SELECT pg_backend_pid() AS pid').get()).not.toEqual({ pid });
    } finally {
      db.close();
      admin.close();
    }
  });

  it('says which statement failed and keeps the SQLSTATE', () => {
    const db = new PgDatabase(inject('pgUrl'));
    try {
      expect(() => db.prepare('SELECT * FROM no_such_table WHERE x = ?').all(1)).toThrow(
        /relation "no_such_table" does not exist \(in: SELECT \* FROM no_such_table WHERE x = \?\)/,
      );
      try {
        db.exec('SELEC 1');
      } catch (e) {
        expect((e as PgError).code).toBe('42601');
      }
    } finally {
      db.close();
    }
  });
});
