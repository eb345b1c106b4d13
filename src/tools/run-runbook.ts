import { z } from 'zod';
import { moneyText, sumCents } from '../greenhelix/money.js';
import type { RunbookResult } from '../runbooks/playbooks.js';
import {
  agentId,
  anomalyRef,
  answeredAnomaly,
  dryRun,
  markStepErrors,
  plannedCall,
  stepSchema,
} from './schemas.js';
import { defineTool } from './types.js';

export const runRunbook = defineTool({
  name: 'run_runbook',
  title: 'Run a runbook',
  toolset: 'runbooks',
  description:
    'Run one of the five runbooks on the given agents (dry_run first: the calls it would make). ' +
    'runaway_spending: full containment; pages if the freeze fails. escrow_exploitation: needs params.payee; ' +
    'freezes payer and payee, cancels only escrows to it (params.open_dispute disputes them). ' +
    'identity_compromise: preserves evidence, then contains. service_degradation: halves the daily budget, no ' +
    'freeze. cascade_failure: contains every listed agent, names the root cause. Pass `anomaly` to record it. ' +
    'Over the blast radius (default 3 agents/10 min): approval_pending, an operator decides; call again alike.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
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
        payee: agentId.optional(),
        open_dispute: z.boolean().optional(),
        reason: z.string().max(500).optional(),
      })
      .strict()
      .default({}),
    anomaly: anomalyRef,
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
    const answered = answeredAnomaly(args.anomaly, ctx.ops.clock.now());
    const { anomaly: _anomaly, ...req } = args;
    const r = await ctx.ops.runRunbook(
      { ...req, ...answered },
      {
        signal: ctx.signal,
        onProgress: (done, total, message) => void ctx.progress(done, total, message),
      },
    );
    return { structured: { ...r, steps: markStepErrors(r.steps) }, text: runbookText(r, args.params.payee) };
  },
});

/** Decision, agents, money, suspect payee, failures and what people still have to do, in a few lines. */
function runbookText(r: RunbookResult, payee: string | undefined): string {
  if (r.dry_run)
    return [
      `Dry run of ${r.runbook}: ${r.planned_calls.length} planned gateway calls; nothing changed.`,
      ...(payee ? [`Suspect payee: ${payee}.`] : []),
      'Next: run_runbook again without dry_run.',
    ].join('\n');
  const failed = r.steps.filter((s) => !s.success && !s.pending);
  const cancelled = r.contained.reduce((n, c) => n + c.escrows_cancelled, 0);
  const unlocked = sumCents(r.contained.map((c) => c.amount_unlocked_cents));
  return [
    `${r.runbook}: ${r.status}${r.incident_id ? ` (incident ${r.incident_id})` : ''}.`,
    ...(r.contained.length
      ? [
          `Agents: ${r.contained.map((c) => `${c.agent_id} ${c.status}${c.existing ? ' (already)' : ''}`).join(', ')}.`,
        ]
      : []),
    ...(r.root_cause_agent ? [`Root cause: ${r.root_cause_agent}.`] : []),
    ...(payee ? [`Suspect payee: ${payee}.`] : []),
    ...(r.contained.length
      ? [`Money: ${cancelled} escrows cancelled, ${moneyText(unlocked)} unlocked.`]
      : []),
    failed.length
      ? `Failed steps: ${failed
          .slice(0, 6)
          .map((s) => `${s.action}${s.agent_id ? ` (${s.agent_id})` : ''}: ${s.error?.code ?? 'failed'}`)
          .join('; ')}${failed.length > 6 ? `; ${failed.length - 6} more` : ''}.`
      : 'Failed steps: none.',
    ...(r.page ? [`Paged: ${r.page}`] : []),
    `Follow-up for people: ${r.follow_up.join('; ')}.`,
  ].join('\n');
}
