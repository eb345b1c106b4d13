import { z } from 'zod';
import { dryRun, incidentId, stepSchema } from './schemas.js';
import { defineTool } from './types.js';

export const recoverAgent = defineTool({
  name: 'recover_agent',
  title: 'Recover a contained agent',
  toolset: 'recover',
  description:
    'Bring a contained agent back in safe steps, behind three gates checked in order: (1) root cause confirmed fixed ' +
    '(you state it; it is recorded), (2) identity matches the pinned key and reputation has not collapsed, (3) budget ' +
    'restorable at a safe level (pre-incident caps on record, and for later stages the waiting time passed with no ' +
    'anomaly). Stages: 1 = 50 % of the pre-incident caps and unfreeze (30 s monitoring), 2 = 75 % after 6 h, ' +
    '3 = 100 % after 24 h (incident resolved; standard 5 min monitoring after 48 h). Without `stage` it applies the ' +
    'next one. A gate that fails says which and why and nothing changes. Never call it while the cause may be live. ' +
    'Undo: contain_agent again.',
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    incident_id: incidentId,
    root_cause_fixed: z
      .boolean()
      .describe('True only when a person or the supervising agent has confirmed the root cause is fixed'),
    confirmed_by: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .optional()
      .describe('Who confirmed the fix (kept in the record)'),
    note: z.string().max(2000).optional().describe('What was fixed'),
    stage: z
      .number()
      .int()
      .min(1)
      .max(3)
      .optional()
      .describe('Stage to apply (1, 2 or 3); default: the next one'),
    restore_daily_cap: z
      .string()
      .regex(/^\d+(\.\d{1,2})?$/, 'a decimal amount of CREDITS with at most 2 decimals, e.g. "500.00"')
      .optional()
      .describe(
        'Only when the agent had no daily cap before the incident: the daily cap (CREDITS) to restore in steps',
      ),
    dry_run: dryRun,
  }),
  output: z.object({
    incident_id: z.string(),
    agent_id: z.string(),
    dry_run: z.boolean(),
    applied: z.boolean().describe('True when the stage was applied now'),
    stage: z.number().int(),
    percent: z.number(),
    gates: z.array(z.object({ gate: z.string(), passed: z.boolean(), reason: z.string() })),
    daily_cap: z.string().nullable(),
    monthly_cap: z.string().nullable(),
    unfrozen: z.boolean(),
    status: z.string(),
    next_stage: z.number().int().nullable(),
    next_stage_not_before: z.string().nullable().describe('ISO time the next stage may be applied'),
    monitoring_interval_s: z.number(),
    steps: z.array(stepSchema),
  }),
  // The agent the incident is about: recoveries count in the blast radius like containments.
  targets: (args, ops) => {
    const incident = ops.store.getIncident(args.incident_id);
    return incident ? [incident.primary_agent_id] : [];
  },
  actionParams: (args) => ({ incident_id: args.incident_id, stage: args.stage ?? null }),
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const r = await ctx.ops.recover(args, ctx.signal);
    const failed = r.gates.find((g) => !g.passed);
    const text = r.applied
      ? `Stage ${r.stage} applied to ${r.agent_id}: caps ${r.daily_cap}/${r.monthly_cap} (${r.percent} %), status ${r.status}.` +
        (r.next_stage ? ` Next: stage ${r.next_stage} not before ${r.next_stage_not_before}.` : '')
      : failed
        ? `Not applied: gate "${failed.gate}" failed: ${failed.reason}`
        : `Dry run: stage ${r.stage} would set caps ${r.daily_cap}/${r.monthly_cap}.`;
    return { structured: r, text };
  },
});
