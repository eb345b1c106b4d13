/**
 * One throwaway PostgreSQL cluster per vitest run (test/helpers/postgres.ts), stopped and removed when the
 * run ends; tests reach it through `inject('pgUrl')` and make their own databases in it (helpers/stores.ts).
 */
import type { TestProject } from 'vitest/node';
import { startCluster } from './helpers/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL to the run's cluster (its `postgres` database). */
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startCluster();
  project.provide('pgUrl', cluster.url);
  return () => cluster.stop();
}
