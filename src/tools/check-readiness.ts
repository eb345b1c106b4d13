import { z } from 'zod';
import { defineTool } from './types.js';

export const checkReadiness = defineTool({
  name: 'check_readiness',
  title: 'Check production readiness',
  toolset: 'runbooks',
  description:
    'Production readiness against the live configuration and gateway: key separation and permissions, fleet, ' +
    'pinned identities, thresholds, pre-incident budgets, monitoring, event bus, forensics data, containment ' +
    'timing; each failing item with its fix. Reads only.',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({}),
  output: z.object({
    ready: z.boolean(),
    items: z.array(
      z.object({ item: z.string(), passed: z.boolean(), detail: z.string(), fix: z.string().nullable() }),
    ),
  }),
  async handler(ctx) {
    const r = await ctx.ops.checkReadiness(ctx.signal);
    const failed = r.items.filter((i) => !i.passed);
    return {
      structured: r,
      text: r.ready
        ? `Ready: all ${r.items.length} checks pass.`
        : [
            `Not ready: ${failed.length} of ${r.items.length} checks fail.`,
            ...failed.map((i) => `- ${i.item}: ${i.detail}${i.fix ? ` Fix: ${i.fix}` : ''}`),
          ].join('\n'),
    };
  },
});
