import { z } from 'zod';
import { untrustedText } from '../guards/index.js';
import type { IncidentView } from '../runbooks/ops.js';
import { anyObject, incidentId, incidentSummary } from './schemas.js';
import { defineTool, ToolError } from './types.js';

export const getIncident = defineTool({
  name: 'get_incident',
  title: 'Get an incident',
  toolset: 'learn',
  description:
    'One incident from the durable store: summary, every recorded action with its time and result, pre-incident ' +
    'caps, recovery stages and gates, money-path totals. Local records only (no gateway call).',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: z.strictObject({ incident_id: incidentId }),
  output: z.object({
    incident: incidentSummary.extend({ detail: anyObject() }),
    untrusted_text: z.string(),
    actions: z.array(anyObject()),
    pre_incident: z.array(anyObject()),
    recovery_stages: z.array(anyObject()),
    gates: z.array(anyObject()),
    has_postmortem: z.boolean(),
  }),
  async handler(ctx, args) {
    const view = ctx.ops.incidentView(args.incident_id);
    if (!view)
      throw new ToolError(
        'incident_not_found',
        `No incident ${args.incident_id}.`,
        false,
        'Call list_incidents to find the id.',
      );
    return { structured: view, text: incidentText(view) };
  },
});

/** The record's decision-relevant facts in a few lines; gateway error texts stay marked. */
function incidentText(view: IncidentView): string {
  const i = view.incident;
  const d = i.detail;
  const failed = view.actions.filter((a) => a.success === false);
  const stage = view.recovery_stages.reduce((n, st) => Math.max(n, Number(st.stage) || 0), 0);
  const next =
    i.status === 'resolved'
      ? 'none (resolved)'
      : i.status === 'containing' || i.status === 'containment_partial' || i.status === 'containment_failed'
        ? `contain_agent ${i.agent_id} to resume`
        : `recover_agent once the root cause is fixed${view.has_postmortem ? '' : '; run_postmortem'}`;
  return [
    `${i.incident_id} ${i.kind}: ${i.status}. Agents: ${i.agent_ids.join(', ')}.`,
    `Signal ${i.signal ?? 'not recorded'}, priority ${i.priority ?? 'not recorded'}; detected ${i.detected_at ?? 'not recorded'}, contained ${i.contained_at ?? 'not yet'}; SLA 60 s ${i.met_sla === null ? 'not known' : i.met_sla ? 'met' : 'MISSED'}.`,
    `Money: ${i.amount_unlocked.amount} ${i.amount_unlocked.currency} unlocked; ${d.escrows_cancelled ?? 0} escrows cancelled, ${d.escrows_failed ?? 0} failed.`,
    ...pathsLine(d.money_paths),
    ...(typeof d.suspect_payee === 'string' ? [`Suspect payee: ${d.suspect_payee}.`] : []),
    ...(d.widened_to ? [`Widened to: ${String(d.widened_to)}.`] : []),
    `Reason: ${untrustedText(i.reason, 300)}`,
    `${view.actions.length} actions recorded, ${failed.length} failed${failed.length ? ':' : '.'}`,
    ...failed
      .slice(0, 8)
      .map((a) =>
        `- ${String(a.action)}${a.target ? ` (${String(a.target)})` : ''}: ${String(a.error_code ?? 'failed')} ${a.error_message ?? ''}`.trimEnd(),
      ),
    ...(failed.length ? [view.untrusted_text] : []),
    `Recovery: ${stage ? `stage ${stage} of 3` : 'not started'}. Post-mortem: ${view.has_postmortem ? `incident://${i.incident_id}/postmortem` : 'not written'}.`,
    `Next: ${next}.`,
  ].join('\n');
}

/** Intents and subscriptions our containment and recovery stopped, and confirmed claw-backs, from the ledger. */
function pathsLine(v: unknown): string[] {
  const p = v as Record<string, number | undefined> | undefined;
  if (!p) return [];
  const clawback = (p.intents_clawed_back ?? 0) + (p.clawbacks_failed ?? 0) + (p.clawbacks_unknown ?? 0);
  const amount = (v as { amount_clawed_back?: { amount: string; currency: string } }).amount_clawed_back;
  return [
    `Intents: ${p.intents_voided ?? 0} voided, ${p.intents_failed ?? 0} not confirmed. Subscriptions: ${p.subscriptions_cancelled ?? 0} cancelled (final; re-create to restore), ${p.subscriptions_failed ?? 0} not confirmed.`,
    ...(clawback > 0
      ? [
          `Claw-back: ${p.intents_clawed_back ?? 0} settled intents refunded once each (${amount?.amount ?? '0.00'} ${amount?.currency ?? 'CREDITS'}), ${p.clawbacks_failed ?? 0} refused (nothing moved), ${p.clawbacks_unknown ?? 0} unknown (check by hand; never re-sent).`,
        ]
      : []),
  ];
}
