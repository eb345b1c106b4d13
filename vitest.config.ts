import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The real-gateway suite needs root and a chroot: `npm run test:gateway` (vitest.gateway.config.ts).
    exclude: ['test/gateway/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // A throwaway PostgreSQL cluster for the store's tests on the PostgreSQL engine (test/helpers/postgres.ts).
    globalSetup: ['test/global-setup.ts'],
    // Under CI a JSON report is written too, so .ci/run can print one plain "N passed, N failed" line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: '.ci/results.json' } : undefined,
  },
});
