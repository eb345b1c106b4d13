/** Zod pieces shared by several tools' input and output schemas. */
import { z } from 'zod';

export const agentId = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/,
    'an agent id: letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters',
  )
  .describe('GreenHelix agent id, e.g. "agent-07"');

export const incidentId = z
  .string()
  .regex(
    /^inc_[A-Za-z0-9_-]{4,64}$/,
    'an incident id as returned by contain_agent or list_incidents, e.g. "inc_01J…"',
  )
  .describe('Incident id, e.g. "inc_01JX…" (from contain_agent or list_incidents)');

export const reason = z
  .string()
  .trim()
  .min(3, 'say in a few words why (kept in the incident record)')
  .max(500)
  .describe('Why: kept in the incident record and the post-mortem');

export const dryRun = z
  .boolean()
  .default(false)
  .describe('When true, change nothing: return the gateway calls that would be made');

export const stepSchema = z.object({
  action: z.string(),
  target: z.string().optional(),
  success: z.boolean(),
  skipped: z.boolean().optional(),
  pending: z
    .boolean()
    .optional()
    .describe('Begun, outcome not recorded yet (in flight, or left by a stopped process)'),
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }).optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
  started_at: z.number().describe('ms since epoch'),
  duration_ms: z.number(),
});

export const plannedCall = z.object({
  step: z.string(),
  tool: z.string().describe('GreenHelix tool'),
  method: z.string(),
  path: z.string(),
  key: z.enum(['monitor', 'containment']).describe('Which credential would make the call'),
  params: z.record(z.string(), z.unknown()).optional(),
  count: z.number().int().optional().describe('How many such calls (one per escrow, for example)'),
});

export const anomalySchema = z.object({
  agent_id: z.string(),
  signal: z.string(),
  severity: z.string(),
  priority: z.string(),
  summary: z.string(),
  details: z.record(z.string(), z.unknown()),
});

export const incidentSummary = z.object({
  incident_id: z.string(),
  agent_id: z.string(),
  agent_ids: z.array(z.string()),
  status: z.string(),
  kind: z.string(),
  reason: z.string(),
  signal: z.string().nullable(),
  priority: z.string().nullable(),
  detected_at: z.string().nullable(),
  contained_at: z.string().nullable(),
  resolved_at: z.string().nullable(),
  met_sla: z.boolean().nullable(),
  amount_unlocked: z.string(),
});
