import { defineConfig } from 'vitest/config';

/**
 * `npm run test:gateway`: the suite against the real GreenHelix gateway (test/gateway), never part of
 * `npm test`. Each file starts its own gateway; the first run also builds its root file system.
 */
export default defineConfig({
  test: {
    include: ['test/gateway/**/*.test.ts'],
    globalSetup: ['test/gateway/setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // Under CI a JSON report is written too; .ci/run adds it to the default suite's in its closing line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: '.ci/results-gateway.json' } : undefined,
  },
});
