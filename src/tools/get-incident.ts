import { z } from 'zod';
import { incidentId, incidentSummary } from './schemas.js';
import { defineTool, ToolError } from './types.js';

export const getIncident = defineTool({
  name: 'get_incident',
  title: 'Get an incident',
  toolset: 'learn',
  description:
    'Return one incident from the durable store: its summary, every recorded action with its time and result, ' +
    'pre-incident caps, recovery stages and gates. Reads only local records (no gateway call).',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: z.strictObject({ incident_id: incidentId }),
  output: z.object({
    incident: incidentSummary.extend({ detail: z.record(z.string(), z.unknown()) }),
    actions: z.array(z.record(z.string(), z.unknown())),
    pre_incident: z.array(z.record(z.string(), z.unknown())),
    recovery_stages: z.array(z.record(z.string(), z.unknown())),
    gates: z.array(z.record(z.string(), z.unknown())),
    has_postmortem: z.boolean(),
  }),
  async handler(ctx, args) {
    const view = ctx.ops.incidentView(args.incident_id);
    if (!view)
      throw new ToolError(
        'incident_not_found',
        `No incident ${args.incident_id}.`,
        false,
        'Call list_incidents to find the id.',
      );
    return {
      structured: view,
      text: `${view.incident.incident_id} ${view.incident.agent_id} ${view.incident.status}: ${view.actions.length} actions recorded.`,
    };
  },
});
