import { z } from 'zod';
import { defineTool } from './types.js';

export const checkReadiness = defineTool({
  name: 'check_readiness',
  title: 'Check production readiness',
  toolset: 'runbooks',
  description:
    'Check the readiness list against the live configuration and gateway: separate containment key with the ' +
    'permissions it needs, fleet reachable, identities pinned, thresholds set, pre-incident budgets on record, ' +
    'monitoring interval, webhooks/event bus, forensics data present, and containment timed against the gateway ' +
    '(a dry-run plan costed at the measured round trip). Each item passes or fails with the fix. Reads only.',
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
        : `Not ready: ${failed.map((i) => i.item).join(', ')}.`,
    };
  },
});
