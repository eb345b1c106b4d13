import { z } from 'zod';
import { agentId, incidentSummary, int } from './schemas.js';
import { defineTool } from './types.js';

export const listIncidents = defineTool({
  name: 'list_incidents',
  title: 'List incidents',
  toolset: 'learn',
  description:
    'List incidents from the durable store, newest first, optionally by status or agent. Local records only (no ' +
    'gateway call). One in full: get_incident.',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: z.strictObject({
    status: z
      .enum([
        'detected',
        'containing',
        'contained',
        'containment_partial',
        'containment_failed',
        'recovering',
        'resolved',
      ])
      .optional(),
    agent_id: agentId.optional(),
    limit: z.number().int().min(1).max(200).default(50),
    offset: z.number().int().min(0).default(0),
  }),
  output: z.object({ incidents: z.array(incidentSummary), count: int() }),
  async handler(ctx, args) {
    const incidents = ctx.ops.listIncidentSummaries(args);
    return {
      structured: { incidents, count: incidents.length },
      text: incidents.length
        ? incidents
            .map(
              (i) =>
                `${i.incident_id} ${i.agent_id} ${i.kind} ${i.status} signal=${i.signal ?? '–'} priority=${i.priority ?? '–'} ` +
                `detected=${i.detected_at ?? '–'} unlocked=${i.amount_unlocked.amount} ${i.amount_unlocked.currency}`,
            )
            .join('\n')
        : 'No incidents match.',
    };
  },
});
