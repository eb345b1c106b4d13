/**
 * Incident stores on either engine, for tests that run once per engine (`describe.each(ENGINES)`).
 *
 * A place is where a store lives: a fresh directory (SQLite) or a fresh database on the run's cluster
 * (PostgreSQL, see global-setup.ts). Two stores opened on one place are two processes sharing a store:
 * two connections to one SQLite file, or two replicas on one PostgreSQL database. `cleanupStores()`
 * (afterEach) closes every store opened here and removes the places.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { type IncidentStore, openStore } from '../../src/incidents/index.js';
import { PgDatabase } from '../../src/incidents/pg.js';
import type { Clock } from '../../src/util/clock.js';

export const ENGINES = ['sqlite', 'postgres'] as const;
export type Engine = (typeof ENGINES)[number];

export interface StorePlace {
  engine: Engine;
  /** SQLite: the store's directory (incidents.sqlite in it). */
  dir?: string;
  /** PostgreSQL: the database's URL. */
  url?: string;
  open(clock: Clock): IncidentStore;
}

let admin: PgDatabase | undefined;
const databases: string[] = [];
const dirs: string[] = [];
const stores: IncidentStore[] = [];

function adminDb(): PgDatabase {
  admin ??= new PgDatabase(inject('pgUrl'));
  return admin;
}

/** A new, empty place for a store on `engine`. */
export function newStorePlace(engine: Engine): StorePlace {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'aim-store-'));
    dirs.push(dir);
    return { engine, dir, open: (clock) => track(openStore({ dataDir: dir, clock })) };
  }
  const name = `aim_${randomBytes(6).toString('hex')}`;
  adminDb().exec(`CREATE DATABASE ${name}`);
  databases.push(name);
  const u = new URL(inject('pgUrl'));
  u.pathname = `/${name}`;
  const url = u.toString();
  return { engine, url, open: (clock) => track(openStore({ databaseUrl: url, clock })) };
}

/** A store on `engine`, in a new place unless one is given. */
export function openTestStore(engine: Engine, opts: { clock: Clock; place?: StorePlace }): IncidentStore {
  return (opts.place ?? newStorePlace(engine)).open(opts.clock);
}

function track(s: IncidentStore): IncidentStore {
  stores.push(s);
  return s;
}

/** Closes every store opened here and removes their directories and databases. */
export function cleanupStores(): void {
  for (const s of stores.splice(0)) {
    try {
      s.close();
    } catch {
      // A store whose connection a test broke: its database is dropped below all the same.
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const name of databases.splice(0)) adminDb().exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
