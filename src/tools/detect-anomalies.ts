import { z } from 'zod';
import { centsToMoney } from '../greenhelix/money.js';
import { untrustedInline, untrustedText } from '../guards/index.js';
import type { DetectionPass } from '../runbooks/detect.js';
import { agentId, anomalySchema, int } from './schemas.js';
import { defineTool } from './types.js';

export const detectAnomalies = defineTool({
  name: 'detect_anomalies',
  title: 'Detect anomalies',
  toolset: 'detect',
  description:
    'One detection pass over the given agents (or the whole fleet): each anomaly with its evidence, priority, tier ' +
    'and detected_at. A failed check is a detection_failure, never "all clear". Reads only (updates this server\'s ' +
    'baselines and key pins). Call first; then contain_agent or run_runbook with the anomaly.',
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  input: z.strictObject({
    agent_ids: z
      .array(agentId)
      .min(1)
      .max(1000)
      .optional()
      .describe('Agents to check; omit for the whole fleet'),
  }),
  output: z.object({
    checked_at: z.string().describe('ISO time of the pass'),
    agents_checked: int(),
    anomalies: z.array(
      anomalySchema.extend({
        detected_at: z.string(),
        tier: z.string().describe('alert_human | auto_contain | fleet_shutdown'),
      }),
    ),
    blind_checks: z.number().int(),
    duration_ms: z.number(),
  }),
  async handler(ctx, args) {
    const pass = await ctx.ops.detect({ agent_ids: args.agent_ids, signal: ctx.signal });
    const anomalies = pass.anomalies.map((a) => ({
      ...a,
      // A blind check's message is the gateway's problem detail.
      details: centsToMoney(
        typeof a.details.message === 'string'
          ? { ...a.details, message: untrustedInline(a.details.message, 300) }
          : a.details,
      ) as Record<string, unknown>,
    }));
    return { structured: { ...pass, anomalies }, text: detectText(pass) };
  },
});

const SHOWN = 10;

/** One line per anomaly with what acting on it needs (signal, priority, tier, time, payee), worst first. */
function detectText(pass: DetectionPass): string {
  if (pass.anomalies.length === 0)
    return `Checked ${pass.agents_checked} agents at ${pass.checked_at}: no anomalies, all checks answered.`;
  const rank = (p: string) => Number(p.slice(1)) || 9;
  const sorted = [...pass.anomalies].sort((x, y) => rank(x.priority) - rank(y.priority));
  const p0 = sorted.filter((a) => a.priority === 'P0').length;
  return [
    `Checked ${pass.agents_checked} agents at ${pass.checked_at}: ${sorted.length} anomalies (${p0} P0), ${pass.blind_checks} blind checks.`,
    ...sorted.slice(0, SHOWN).map((a) => {
      const payee =
        typeof a.details.suspect_payee === 'string' ? ` suspect_payee=${a.details.suspect_payee}` : '';
      return `- ${a.agent_id} ${a.signal} ${a.priority} tier=${a.tier} detected_at=${a.detected_at}${payee}: ${untrustedText(a.summary, 240)}`;
    }),
    ...(sorted.length > SHOWN ? [`- … ${sorted.length - SHOWN} more in structuredContent.anomalies`] : []),
    'Next: contain_agent (or run_runbook, dry_run first) with anomaly {signal, priority, detected_at}.',
  ].join('\n');
}
