import { z } from 'zod';
import { moneyOf, moneyText, parseCents, sumCents } from '../greenhelix/money.js';
import { agentId, dryRun, int, moneySchema, plannedCall, reason } from './schemas.js';
import { defineTool } from './types.js';

export const fleetShutdown = defineTool({
  name: 'fleet_shutdown',
  title: 'Contain the whole fleet',
  toolset: 'contain',
  description:
    'Contain every fleet agent (or the listed ones), each as contain_agent does. Always needs an operator to ' +
    "approve it on this server's approval page (127.0.0.1, operator secret): you cannot, and there is no code to " +
    'pass on. The first call returns "approval_pending" with the action digest and the money at risk. Call again ' +
    'with the same arguments for the decision: "executed" once approved (an approval works once), "rejected" or ' +
    '"expired". Undo per agent: recover_agent.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    reason,
    agent_ids: z.array(agentId).min(1).max(10_000).optional().describe('Omit for every fleet agent'),
    dry_run: dryRun,
  }),
  output: z.object({
    status: z.enum(['approval_pending', 'rejected', 'expired', 'executed', 'planned']),
    digest: z.string().nullable().describe('Of the exact action the operator approves or rejects'),
    at_risk: moneySchema.nullable().describe('Held in escrow by these agents when approval was asked'),
    agent_count: int(),
    agent_ids: z.array(z.string()),
    expires_at: z.string().nullable(),
    how_to_confirm: z.string().nullable(),
    incident_id: z.string().nullable(),
    results: z.array(
      z.object({
        agent_id: z.string(),
        incident_id: z.string().nullable(),
        status: z.string(),
        escrows_cancelled: int(),
        escrows_failed: int(),
        amount_unlocked: moneySchema,
        error: z.string().optional(),
      }),
    ),
    elapsed_ms: z.number(),
    planned_calls: z.array(plannedCall).optional(),
  }),
  blastRadius: 'fleet_only',
  targets: (args) => args.agent_ids ?? [],
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const r = await ctx.ops.fleetShutdown(args, {
      signal: ctx.signal,
      requester: ctx.requester,
      announce: ctx.announceApproval,
      formElicit: ctx.elicit,
      onProgress: (done, total, message) => void ctx.progress(done, total, message),
    });
    const contained = r.results.filter((x) => x.status === 'contained').length;
    const notContained = r.results.filter((x) => x.status !== 'contained');
    const unlocked = sumCents(r.results.map((x) => parseCents(x.amount_unlocked)));
    const agents = `${r.agent_ids.slice(0, 20).join(', ')}${r.agent_ids.length > 20 ? `, … (${r.agent_ids.length} in all)` : ''}`;
    const text =
      r.status === 'approval_pending'
        ? `Approval pending: containing ${r.agent_count} agents (${agents}; ${r.at_risk} at risk) needs an operator's approval, digest ${r.digest}, expires ${r.expires_at}. ${r.how_to_confirm}`
        : r.status === 'executed'
          ? [
              `Fleet shutdown: ${contained}/${r.agent_count} contained in ${r.elapsed_ms} ms (incident ${r.incident_id}).`,
              `Money: ${r.results.reduce((n, x) => n + x.escrows_cancelled, 0)} escrows cancelled, ${moneyText(unlocked)} unlocked.`,
              notContained.length
                ? `NOT contained: ${notContained
                    .slice(0, 10)
                    .map((x) => `${x.agent_id} ${x.status}`)
                    .join(', ')}. Next: contain_agent on each to resume.`
                : 'Next: run_postmortem; recover_agent per agent once the cause is fixed.',
            ].join('\n')
          : r.status === 'planned'
            ? `Dry run: would contain ${r.agent_count} agents (${agents}); nothing changed.`
            : `Fleet shutdown ${r.status} (digest ${r.digest}); nothing changed. ${r.how_to_confirm}`;
    const results = r.results.map((x) => ({ ...x, amount_unlocked: moneyOf(x.amount_unlocked) }));
    const atRisk = /^(\d+\.\d{2}) /.exec(r.at_risk ?? '')?.[1];
    return { structured: { ...r, at_risk: atRisk ? moneyOf(atRisk) : null, results }, text };
  },
});
