import { z } from 'zod';
import { moneyOf, moneyText, parseCents, sumCents } from '../greenhelix/money.js';
import { agentId, dryRun, int, moneySchema, plannedCall, reason } from './schemas.js';
import { defineTool } from './types.js';

export const fleetShutdown = defineTool({
  name: 'fleet_shutdown',
  title: 'Contain the whole fleet',
  toolset: 'contain',
  description:
    'Contain every fleet agent at once (or the listed ones): freeze, caps to 0, cancel held escrows, identity ' +
    'check, per agent. Always needs a person to confirm. If the host supports elicitation the person is asked ' +
    'directly, with the agent count and ids. Otherwise the first call returns status "confirmation_required" with a ' +
    'request_id, and a one-time code is sent to the operator out of band (server log / alert channel; never in this ' +
    'result): call again with request_id and the code the operator gives you. The code expires, works once and only ' +
    'for the same agents. Never invent or guess a code. Undo per agent with recover_agent.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    reason,
    agent_ids: z
      .array(agentId)
      .min(1)
      .max(10_000)
      .optional()
      .describe('Subset of the fleet; omit for every fleet agent'),
    request_id: z.string().max(100).optional().describe('From the earlier confirmation_required result'),
    confirmation_code: z
      .string()
      .max(32)
      .optional()
      .describe('The one-time code the operator read out of band'),
    dry_run: dryRun,
  }),
  output: z.object({
    status: z.enum(['confirmation_required', 'declined', 'executed', 'planned']),
    request_id: z.string().nullable(),
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
      elicit: ctx.elicit,
      onProgress: (done, total, message) => void ctx.progress(done, total, message),
    });
    const contained = r.results.filter((x) => x.status === 'contained').length;
    const notContained = r.results.filter((x) => x.status !== 'contained');
    const unlocked = sumCents(r.results.map((x) => parseCents(x.amount_unlocked)));
    const agents = `${r.agent_ids.slice(0, 20).join(', ')}${r.agent_ids.length > 20 ? `, … (${r.agent_ids.length} in all)` : ''}`;
    const text =
      r.status === 'confirmation_required'
        ? `Confirmation required to contain ${r.agent_count} agents (${agents}). ${r.how_to_confirm}`
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
          : r.status === 'declined'
            ? 'Fleet shutdown declined or not confirmed; nothing changed.'
            : `Dry run: would contain ${r.agent_count} agents (${agents}); nothing changed.`;
    const results = r.results.map((x) => ({ ...x, amount_unlocked: moneyOf(x.amount_unlocked) }));
    return { structured: { ...r, results }, text };
  },
});
