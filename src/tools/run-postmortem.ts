import { z } from 'zod';
import { anyObject, incidentId } from './schemas.js';
import { defineTool } from './types.js';

/** The body goes into the text whole up to here (a host may pass only text to the model); past it, cut. */
const TEXT_BODY_MAX = 12_000;

export const runPostmortem = defineTool({
  name: 'run_postmortem',
  title: 'Write the post-mortem',
  toolset: 'learn',
  description:
    "An incident's post-mortem from recorded facts: timeline, 60 s SLA verdict, money recovered, lost and still " +
    'locked, audit trail, recommendations. Stores it (incident://{id}/postmortem), publishes incident_post_mortem ' +
    "once per content; a containment over 60 s tightens that agent's detection once. Read-only mode: returns it only.",
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  readOnlyModeAnnotations: {
    readOnlyHint: true,
    destructiveHint: false,
    idempotentHint: true,
    openWorldHint: true,
  },
  input: z.strictObject({ incident_id: incidentId }),
  output: z.object({
    incident_id: z.string(),
    report: anyObject(),
    markdown_uri: z.string().nullable().describe('null in read-only mode'),
    thresholds_tightened: z.boolean(),
    event_published: z.boolean(),
  }),
  async handler(ctx, args) {
    // The event goes out with the containment key, so only when that key passes the separation guard.
    const publish = !ctx.ops.config.readOnly && (await ctx.ops.checkActingKey()).ok;
    const r = await ctx.ops.postmortem(args.incident_id, ctx.signal, { publish });
    const body =
      r.markdown.length <= TEXT_BODY_MAX
        ? r.markdown
        : `${r.markdown.slice(0, TEXT_BODY_MAX)}\n…[cut at ${TEXT_BODY_MAX} of ${r.markdown.length} chars; full report: ${r.markdown_uri ?? 'structuredContent.report'}]`;
    const head = [
      r.markdown_uri
        ? `Post-mortem stored: ${r.markdown_uri}.`
        : 'Post-mortem built (read-only mode: not stored).',
      r.thresholds_tightened ? 'Containment missed 60 s: detection tightened for this agent.' : '',
    ]
      .filter(Boolean)
      .join(' ');
    const { markdown: _markdown, ...structured } = r;
    return { structured, text: `${head}\n\n${body}` };
  },
});
