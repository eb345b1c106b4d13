import { z } from 'zod';
import { formatCents, moneyOf } from '../greenhelix/money.js';
import { clawbackSummary, MAX_CLAWBACK_IDS } from '../runbooks/clawback.js';
import { dryRun, incidentId, int, moneySchema, stepSchema } from './schemas.js';
import { defineTool } from './types.js';

export const recoverAgent = defineTool({
  name: 'recover_agent',
  title: 'Recover a contained agent',
  toolset: 'recover',
  description:
    'Bring a contained agent back in stages behind three gates: root cause fixed (a person confirmed), identity ' +
    'and reputation intact, pre-incident caps on record (later stages: the wait passed, no anomaly). Stage 1 = ' +
    '50 % of the caps and unfreeze; 2 = 75 % after 6 h; 3 = 100 % after 24 h. Without `stage`: the next one. A ' +
    'failing gate says why and changes nothing. clawback_intent_ids: refund settled intents a person confirmed, ' +
    'once each, with or after stage 1. Undo: contain_agent.',
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  input: z.strictObject({
    incident_id: incidentId,
    root_cause_fixed: z.boolean().describe('True only when a person confirmed the fix'),
    confirmed_by: z.string().trim().min(1).max(200).optional().describe('Who confirmed the fix'),
    note: z.string().max(2000).optional().describe('What was fixed'),
    stage: z.number().int().min(1).max(3).optional(),
    restore_daily_cap: z
      .string()
      .regex(/^\d+(\.\d{1,2})?$/, 'a decimal amount of CREDITS with at most 2 decimals, e.g. "500.00"')
      .optional()
      .describe('Daily cap (CREDITS) to restore if the agent had none before'),
    clawback_intent_ids: z
      .array(z.string().regex(/^[\w-]{1,128}$/))
      .max(MAX_CLAWBACK_IDS)
      .optional()
      .describe('From contain_agent clawback_ids; any other id refuses the call'),
    dry_run: dryRun.describe('Preview only; change nothing'),
  }),
  output: z.object({
    incident_id: z.string(),
    agent_id: z.string(),
    dry_run: z.boolean(),
    applied: z.boolean().describe('Stage applied by this call'),
    stage: int(),
    percent: z.number(),
    gates: z.array(z.object({ gate: z.string(), passed: z.boolean(), reason: z.string() })),
    daily_cap: moneySchema.nullable(),
    monthly_cap: moneySchema.nullable(),
    unfrozen: z.boolean(),
    status: z.string(),
    next_stage: int().nullable(),
    next_stage_not_before: z.string().nullable().describe('ISO time the next stage may be applied'),
    monitoring_interval_s: z.number(),
    steps: z.array(stepSchema),
    clawback: z
      .array(
        z.object({
          id: z.string(),
          amount: z.string(),
          outcome: z.enum(['refunded', 'already_refunded', 'would_refund', 'not_sent', 'failed', 'unknown']),
          note: z.string().optional(),
        }),
      )
      .optional(),
  }),
  // The agent the incident is about: recoveries count in the blast radius like containments.
  targets: (args, ops) => {
    const incident = ops.store.getIncident(args.incident_id);
    return incident ? [incident.primary_agent_id] : [];
  },
  actionParams: (args) => ({
    incident_id: args.incident_id,
    stage: args.stage ?? null,
    clawback_intent_ids: args.clawback_intent_ids?.join(',') ?? null,
  }),
  isDryRun: (args) => args.dry_run,
  async handler(ctx, args) {
    const r = await ctx.ops.recover(args, ctx.signal);
    const cap = (v: string | null) => (v === null ? 'none' : `${v} CREDITS`);
    const caps = `daily ${cap(r.daily_cap)}, monthly ${cap(r.monthly_cap)} (${r.percent} % of pre-incident)`;
    const failed = r.gates.filter((g) => !g.passed);
    const lines = r.applied
      ? [
          `Stage ${r.stage} applied to ${r.agent_id} (incident ${r.incident_id}): caps ${caps}; wallet ${r.unfrozen ? 'UNFROZEN, spending possible again' : 'still frozen'}; status ${r.status}.`,
          `Watch: monitoring every ${r.monitoring_interval_s} s.`,
          r.next_stage
            ? `Next: stage ${r.next_stage} not before ${r.next_stage_not_before}, if no anomaly meanwhile.`
            : 'Next: none; recovery complete.',
        ]
      : failed.length
        ? [
            `Not applied to ${r.agent_id} (incident ${r.incident_id}); nothing changed.`,
            ...failed.map((g) => `Gate ${g.gate} failed: ${g.reason}`),
          ]
        : [`Dry run: stage ${r.stage} on ${r.agent_id} would set caps ${caps}; nothing changed.`];
    const { cancelled_subscriptions: subs, clawback, ...rest } = r;
    if (clawback) {
      const moved = clawback.some((c) => c.outcome === 'refunded' || c.outcome === 'unknown');
      // "nothing changed" above is about the stage; the claw-back says for itself what it moved.
      if (moved && !r.applied) lines[0] = lines[0]!.replace('; nothing changed.', '.');
      lines.push(
        `Claw-back of ${clawback.length} settled intents: ${clawbackSummary(clawback)}.`,
        ...clawback.map(
          (c) =>
            `- ${c.id} → ${c.payee}, ${formatCents(c.amount_cents)} CREDITS: ${c.outcome}${c.note ? ` (${c.note})` : ''}`,
        ),
      );
    }
    if (subs.length > 0)
      lines.push(
        `Subscriptions cancelled at containment (${subs.length}; the gateway cannot reactivate them): re-create any ` +
          `still wanted with the agent's own key: ${subs
            .slice(0, 10)
            .map((x) => `${x.id} → ${x.payee}, ${formatCents(x.amount_cents)} CREDITS ${x.interval}`)
            .join('; ')}${subs.length > 10 ? '; …' : ''}.`,
      );
    const toMoney = (v: string | null) => (v === null ? null : moneyOf(v));
    return {
      structured: {
        ...rest,
        daily_cap: toMoney(r.daily_cap),
        monthly_cap: toMoney(r.monthly_cap),
        ...(clawback && {
          clawback: clawback.map((c) => ({
            id: c.id,
            amount: formatCents(c.amount_cents),
            outcome: c.outcome,
            note: c.note,
          })),
        }),
      },
      text: lines.join('\n'),
    };
  },
});
