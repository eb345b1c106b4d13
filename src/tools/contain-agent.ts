import { z } from 'zod';
import { agentId, dryRun, plannedCall, reason, stepSchema } from './schemas.js';
import { defineTool } from './types.js';

export const containAgent = defineTool({
  name: 'contain_agent',
  title: 'Contain an agent',
  toolset: 'contain',
  description:
    "Stop an agent's spending and unlock its money, reversibly: records its budget caps, freezes its wallet and sets " +
    'its caps to 0 in the first round trips, then cancels every held escrow it pays (in a short, measured refund ' +
    'window, since the gateway refuses refunds into a frozen wallet), then checks its identity against the pinned ' +
    'key. With suspect_payee (escrow exploitation) only escrows to that payee are cancelled and the payee is frozen ' +
    'too, so it cannot release them to itself. Each step is reported separately; a failed step is reported as ' +
    'failed; anything still exposed (wallet not frozen, escrows still held) is named in `exposure` and paged. ' +
    'Idempotent: on an agent already contained it returns the existing incident and does nothing; on a partial or ' +
    'failed containment it resumes, retrying only what is left (no escrow is ever cancelled twice). Does not ' +
    'revoke keys or stop the process. Undo with recover_agent. Use dry_run first to see the planned calls. Acting on ' +
    'more agents than the blast radius allows (default 3 within 10 min) needs an operator approval: the call then ' +
    'returns approval_pending with a digest; call again with the same arguments for the decision.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    agent_id: agentId,
    reason,
    suspect_payee: agentId.optional().describe('Escrow exploitation: the payee farming this agent'),
    dry_run: dryRun,
  }),
  output: z.object({
    dry_run: z.boolean(),
    incident_id: z.string().nullable(),
    agent_id: z.string(),
    existing: z
      .boolean()
      .describe('True when nothing was done now: already contained, or being contained by another process'),
    status: z
      .string()
      .describe(
        'contained (frozen, caps 0, nothing held) | containment_partial (frozen, something still exposed) | ' +
          'containment_failed (wallet not frozen) | containing (another process is on it) | planned',
      ),
    steps: z.array(stepSchema),
    escrows_cancelled: z.number().int(),
    escrows_failed: z.number().int(),
    escrows_skipped: z.number().int().describe('Escrows that left "held" on their own meanwhile'),
    amount_unlocked: z.string().describe('CREDITS returned to the payer, exact, e.g. "46800.00"'),
    time_to_freeze_ms: z.number().nullable(),
    refund_window_ms: z.number().nullable().describe('How long the wallet was unfrozen to receive refunds'),
    elapsed_ms: z.number(),
    met_sla: z.boolean().describe('Detection to containment complete within 60 s'),
    identity_compromised: z.boolean(),
    exposure: z
      .object({
        wallet_frozen: z.boolean().describe('The last wallet call was a successful freeze'),
        caps_zero: z.boolean(),
        held_escrows: z.number().int().nullable().describe('Still held at the end; null when unreadable'),
        held_amount: z.string().nullable(),
      })
      .optional()
      .describe('What is still exposed at the end: nothing for "contained"'),
    planned_calls: z.array(plannedCall).optional(),
  }),
  // The suspect payee is usually a counterparty outside the fleet; freezing it is the one deliberate
  // exception to "acts only on fleet agents", named in the description and reported as its own step.
  targets: (args) => [args.agent_id],
  actionParams: (args) => ({ suspect_payee: args.suspect_payee }),
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const req = { agent_id: args.agent_id, reason: args.reason, suspect_payee: args.suspect_payee };
    if (args.dry_run) {
      const plan = await ctx.ops.planContainment(req, ctx.signal);
      return {
        structured: plan,
        text: `Dry run: ${plan.planned_calls?.length ?? 0} kinds of call planned; nothing changed.`,
      };
    }
    const r = await ctx.ops.contain(req, {
      signal: ctx.signal,
      onProgress: (done, total, message) => void ctx.progress(done, total, message),
    });
    const { amount_unlocked_cents: _cents, ...rest } = r;
    const e = r.exposure;
    const exposed =
      r.status === 'contained'
        ? ''
        : ` STILL EXPOSED: ${[
            e.wallet_frozen ? '' : 'wallet NOT frozen',
            e.caps_zero ? '' : 'caps not 0',
            e.held_escrows === null
              ? 'held escrows unknown'
              : e.held_escrows > 0
                ? `${e.held_escrows} escrows held (${e.held_amount})`
                : '',
          ]
            .filter(Boolean)
            .join(', ')}. Call contain_agent again to resume.`;
    const text = r.existing
      ? r.status === 'containing'
        ? `${r.agent_id} is being contained by another process (incident ${r.incident_id}); nothing done here. Check get_incident shortly.`
        : `${r.agent_id} is already contained (incident ${r.incident_id}, ${r.status}); nothing done.`
      : `${r.agent_id}: ${r.status} in ${r.elapsed_ms} ms (freeze ${r.time_to_freeze_ms ?? 'FAILED'} ms). ` +
        `${r.escrows_cancelled} escrows cancelled, ${r.escrows_failed} still held, ${r.amount_unlocked} unlocked. ` +
        `Incident ${r.incident_id}.${r.identity_compromised ? ' Identity COMPROMISED: incident widened.' : ''}${exposed}`;
    return { structured: { dry_run: false, ...rest }, text };
  },
});
