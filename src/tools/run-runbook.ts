import { z } from 'zod';
import { agentId, dryRun, plannedCall, stepSchema } from './schemas.js';
import { defineTool } from './types.js';

export const runRunbook = defineTool({
  name: 'run_runbook',
  title: 'Run a runbook',
  toolset: 'runbooks',
  description:
    'Execute one of the five runbooks on the given agents. dry_run (do it first) returns the plan: every gateway call ' +
    'it would make, and changes nothing. A real run returns per-step results and the incident id. runaway_spending: ' +
    'full containment, stops and pages "manual intervention required" if the freeze fails. escrow_exploitation: ' +
    'params.payee required; freezes payer and payee, cancels only escrows to that payee, reads and flags the payee, ' +
    'params.open_dispute=true opens a dispute on the held escrows. identity_compromise: preserves identity and claim ' +
    'chains first, then full containment and a security event. service_degradation: no freeze, halves the daily ' +
    'budget. cascade_failure: contains every listed agent at once and names the root-cause agent. More agents than the ' +
    'blast radius allows (default 3 per call and per 10 min) need an operator approval: the call then returns ' +
    'approval_pending with a digest; call again with the same arguments for the decision.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    runbook: z.enum([
      'runaway_spending',
      'escrow_exploitation',
      'identity_compromise',
      'service_degradation',
      'cascade_failure',
    ]),
    agent_ids: z.array(agentId).min(1).max(1000),
    params: z
      .object({
        payee: agentId.optional().describe('escrow_exploitation: the suspect payee'),
        open_dispute: z
          .boolean()
          .optional()
          .describe('escrow_exploitation: open a dispute on escrows to the payee'),
        reason: z.string().max(500).optional(),
      })
      .strict()
      .default({}),
    dry_run: dryRun,
  }),
  output: z.object({
    runbook: z.string(),
    dry_run: z.boolean(),
    incident_id: z.string().nullable(),
    status: z.string(),
    root_cause_agent: z.string().nullable(),
    steps: z.array(stepSchema.extend({ agent_id: z.string().optional() })),
    planned_calls: z.array(plannedCall),
    page: z.string().nullable().describe('The page sent to on-call, if any'),
    follow_up: z.array(z.string()),
  }),
  targets: (args) => args.agent_ids,
  actionParams: (args) => ({
    runbook: args.runbook,
    payee: args.params.payee,
    open_dispute: args.params.open_dispute,
  }),
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const r = await ctx.ops.runRunbook(args, {
      signal: ctx.signal,
      onProgress: (done, total, message) => void ctx.progress(done, total, message),
    });
    const text = r.dry_run
      ? `Dry run of ${r.runbook}: ${r.planned_calls.length} planned gateway calls; nothing changed.`
      : `${r.runbook}: ${r.status}${r.incident_id ? ` (incident ${r.incident_id})` : ''}. ${r.steps.filter((s) => !s.success).length} failed steps.`;
    return { structured: r, text };
  },
});
