/**
 * Global setup of `npm run test:gateway`: decides once whether the real-gateway suite can run here (one
 * loud line when it cannot: not root, or no gateway source), and builds (or finds cached) the gateway's
 * root file system before any test file starts. A failed build fails the run; it is never a skip.
 */
import type { TestProject } from 'vitest/node';
import { buildRootfs, gatewaySource, skipReason } from './harness.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Why the suite is skipped here, or null when it runs. */
    gatewaySkip: string | null;
    /** The built root file system (empty when skipped). */
    gatewayRootfs: string;
  }
}

export default function setup(project: TestProject): void {
  const reason = skipReason();
  if (reason) {
    process.stderr.write(`\nSKIPPED real-gateway suite: ${reason}\n\n`);
    project.provide('gatewaySkip', reason);
    project.provide('gatewayRootfs', '');
    return;
  }
  process.stderr.write(`[gateway] source ${gatewaySource()}\n`);
  project.provide('gatewaySkip', null);
  project.provide('gatewayRootfs', buildRootfs());
}
