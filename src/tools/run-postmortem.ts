import { z } from 'zod';
import { incidentId } from './schemas.js';
import { defineTool } from './types.js';

export const runPostmortem = defineTool({
  name: 'run_postmortem',
  title: 'Write the post-mortem',
  toolset: 'learn',
  description:
    'Build the post-mortem of an incident from recorded facts: audit trail (identity record, claim chains and ' +
    'verified claims in the window), financial impact (escrows still locked, cancelled = recovered, released = ' +
    'lost; balance and usage), the timeline from recorded action times with phase durations and whether containment ' +
    'met 60 s, and recommendations. If containment missed 60 s, detection for that agent is tightened and kept. ' +
    'Stores the report (JSON and Markdown, readable as incident://{id}/postmortem) and publishes an ' +
    'incident_post_mortem event unless in read-only mode. Safe to call again: it rebuilds the report.',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({ incident_id: incidentId }),
  output: z.object({
    incident_id: z.string(),
    report: z.record(z.string(), z.unknown()).describe('The structured post-mortem'),
    markdown_uri: z.string(),
    thresholds_tightened: z.boolean(),
    event_published: z.boolean(),
  }),
  async handler(ctx, args) {
    const r = await ctx.ops.postmortem(args.incident_id, ctx.signal);
    return {
      structured: r,
      text: `Post-mortem for ${args.incident_id} stored (${r.markdown_uri}).${r.thresholds_tightened ? ' Containment missed 60 s: detection tightened for this agent.' : ''}`,
    };
  },
});
