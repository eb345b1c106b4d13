import { z } from 'zod';
import { CURRENCY, money, moneyOf, moneyText } from '../greenhelix/money.js';
import type { ContainResult } from '../runbooks/contain.js';
import {
  agentId,
  anomalyRef,
  answeredAnomaly,
  dryRun,
  int,
  markStepErrors,
  moneySchema,
  plannedCall,
  reason,
  stepSchema,
} from './schemas.js';
import { defineTool } from './types.js';

export const containAgent = defineTool({
  name: 'contain_agent',
  title: 'Contain an agent',
  toolset: 'contain',
  description:
    "Stop an agent's spending, reversibly: freeze its wallet, caps to 0 (old ones recorded), void pending intents, " +
    'cancel active subscriptions and (in short measured refund windows) held escrows it pays, check identity. ' +
    'Settled intents: in clawback_ids, not refunded (recover_agent can, once). suspect_payee: only what goes to ' +
    'it (frozen too). Still exposed: `exposure`, paged. Idempotent; a partial one resumes. Pass `anomaly` so the ' +
    'SLA runs from detection. dry_run first; undo: recover_agent. Over the blast radius (default 3 agents/10 min): ' +
    'approval_pending, an operator decides; call again alike.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    agent_id: agentId,
    reason,
    suspect_payee: agentId.optional().describe('Escrow exploitation: the payee'),
    anomaly: anomalyRef,
    dry_run: dryRun,
  }),
  output: z.object({
    dry_run: z.boolean(),
    incident_id: z.string().nullable(),
    agent_id: z.string(),
    existing: z.boolean().describe('Nothing done now (already contained, or another process is on it)'),
    status: z
      .string()
      .describe('contained | containment_partial | containment_failed | containing | planned'),
    steps: z.array(stepSchema),
    escrows_cancelled: int(),
    escrows_failed: int(),
    escrows_skipped: int(),
    amount_unlocked: moneySchema,
    time_to_freeze_ms: z.number().nullable(),
    refund_window_ms: z.number().nullable(),
    elapsed_ms: z.number(),
    met_sla: z.boolean().describe('Contained within 60 s of detection'),
    identity_compromised: z.boolean(),
    intents_voided: int().optional(),
    subscriptions_cancelled: z.array(z.string()).optional(),
    clawback_ids: z.array(z.string()).optional(),
    clawback_total: z.string().nullable().optional(),
    exposure: z
      .object({
        wallet_frozen: z.boolean(),
        caps_zero: z.boolean(),
        held_escrows: int().nullable().describe('null: unreadable'),
        held_amount: moneySchema.nullable(),
        pending_intents: int().nullable(),
        active_subscriptions: int().nullable(),
      })
      .optional(),
    planned_calls: z.array(plannedCall).optional(),
  }),
  // The suspect payee is usually a counterparty outside the fleet; freezing it is the one deliberate
  // exception to "acts only on fleet agents", named in the description and reported as its own step.
  targets: (args) => [args.agent_id],
  actionParams: (args) => ({ suspect_payee: args.suspect_payee }),
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const answered = answeredAnomaly(args.anomaly, ctx.ops.clock.now());
    const req = { agent_id: args.agent_id, reason: args.reason, suspect_payee: args.suspect_payee };
    if (args.dry_run) {
      const plan = await ctx.ops.planContainment(req, ctx.signal);
      const calls = plan.planned_calls.length;
      return {
        structured: { ...plan, amount_unlocked: moneyOf(plan.amount_unlocked) },
        text: [
          `Dry run for ${plan.agent_id}: nothing changed.`,
          `Would freeze the wallet, set caps to 0, void ${plan.pending_intents ?? 'an unknown number of'} pending intents, ` +
            `cancel ${plan.active_subscriptions ?? 'an unknown number of'} active subscriptions and cancel ${plan.held_escrows} held escrows` +
            `${args.suspect_payee ? ` to ${args.suspect_payee} (and freeze ${args.suspect_payee})` : ''}; ${calls} kinds of gateway call.`,
          'Next: contain_agent without dry_run.',
        ].join('\n'),
      };
    }
    const r = await ctx.ops.contain(
      { ...req, ...answered },
      {
        signal: ctx.signal,
        onProgress: (done, total, message) => void ctx.progress(done, total, message),
      },
    );
    const { amount_unlocked_cents, paths, ...rest } = r;
    const { pending_intents_amount: _, ...e } = r.exposure;
    const structured = {
      dry_run: false,
      ...rest,
      steps: markStepErrors(r.steps),
      amount_unlocked: money(amount_unlocked_cents),
      intents_voided: paths.intents.voided,
      subscriptions_cancelled: paths.subscriptions.cancelled_list.map((c) => c.id),
      clawback_ids: paths.clawback.intent_ids,
      clawback_total: paths.clawback.total,
      exposure: { ...e, held_amount: e.held_amount === null ? null : moneyOf(e.held_amount) },
    };
    return { structured, text: containText(r, args.suspect_payee) };
  },
});

/** The facts a model needs to decide what comes next, in a few lines. */
function containText(r: ContainResult, suspectPayee: string | undefined): string {
  const e = r.exposure;
  if (r.existing && r.status === 'containing')
    return `${r.agent_id} is being contained by another process (incident ${r.incident_id}); nothing done here.\nNext: get_incident ${r.incident_id} shortly.`;
  const exposed = [
    e.wallet_frozen ? '' : 'wallet NOT frozen',
    e.caps_zero ? '' : 'caps not 0',
    e.held_escrows === null
      ? 'held escrows unknown'
      : e.held_escrows > 0
        ? `${e.held_escrows} escrows held (${e.held_amount} ${CURRENCY})`
        : '',
    e.pending_intents === null
      ? 'pending intents unknown'
      : e.pending_intents > 0
        ? `${e.pending_intents} intents pending (${e.pending_intents_amount} ${CURRENCY})`
        : '',
    e.active_subscriptions === null
      ? 'active subscriptions unknown'
      : e.active_subscriptions > 0
        ? `${e.active_subscriptions} subscriptions active`
        : '',
  ].filter(Boolean);
  const p = r.paths;
  return [
    r.existing
      ? `${r.agent_id}: already ${r.status} (incident ${r.incident_id}); nothing done now.`
      : `${r.agent_id}: ${r.status} (incident ${r.incident_id}) in ${r.elapsed_ms} ms; freeze ${r.time_to_freeze_ms === null ? 'FAILED' : `after ${r.time_to_freeze_ms} ms`}; SLA 60 s ${r.met_sla ? 'met' : 'MISSED'}.`,
    `Money: ${r.escrows_cancelled} escrows cancelled, ${moneyText(r.amount_unlocked_cents)} unlocked; ${r.escrows_failed} failed.`,
    `Intents: ${p.intents.voided} pending voided (${p.intents.amount_voided} ${CURRENCY}), ${p.intents.failed} failed` +
      `${p.intents.refunded_instead ? `, ${p.intents.refunded_instead} settled first and refunded once` : ''}. ` +
      `Subscriptions: ${p.subscriptions.cancelled} cancelled (re-create them to restore: cancelled is final), ${p.subscriptions.failed} failed.`,
    p.clawback.intents === null
      ? 'Claw-back: settled intents unreadable.'
      : `Claw-back possible: ${p.clawback.intents} settled intents, ${p.clawback.total} ${CURRENCY} (not refunded; each can be refunded once, by a person).`,
    ...(suspectPayee ? [`Suspect payee: ${suspectPayee} (frozen; only its escrows cancelled).`] : []),
    ...(r.identity_compromised ? ['Identity COMPROMISED: incident widened; rotate keys.'] : []),
    exposed.length
      ? `STILL EXPOSED: ${exposed.join(', ')}.`
      : 'Exposure: none (wallet frozen, caps 0, nothing held, pending or active).',
    exposed.length
      ? 'Next: call contain_agent again to resume.'
      : `Next: run_postmortem ${r.incident_id}; recover_agent once the root cause is fixed.`,
  ].join('\n');
}
