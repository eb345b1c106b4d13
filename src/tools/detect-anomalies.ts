import { z } from 'zod';
import { agentId, anomalySchema } from './schemas.js';
import { defineTool } from './types.js';

export const detectAnomalies = defineTool({
  name: 'detect_anomalies',
  title: 'Detect anomalies',
  toolset: 'detect',
  description:
    'Run one detection pass over the given agents (or the whole fleet) against the live gateway and return every ' +
    'anomaly with its evidence: cost_anomaly, escrow_burst, escrow_exploitation, budget_warning, budget_exhaustion, ' +
    'reputation_drift, identity_compromise, cascade and detection_failure. A check that could not reach or parse the ' +
    'gateway is reported as detection_failure, never as "all clear". Reads only (monitor key); it updates the ' +
    "server's own baselines and pins each agent's public key on first sight. Call this first; then contain_agent " +
    'or run_runbook for what it finds. Each anomaly also says the escalation tier the rules give it.',
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
    agents_checked: z.number().int(),
    anomalies: z.array(
      anomalySchema.extend({ tier: z.string().describe('alert_human | auto_contain | fleet_shutdown') }),
    ),
    blind_checks: z
      .number()
      .int()
      .describe('How many checks could not be made (see detection_failure anomalies)'),
    duration_ms: z.number(),
  }),
  async handler(ctx, args) {
    const pass = await ctx.ops.detect({ agent_ids: args.agent_ids, signal: ctx.signal });
    const worst = pass.anomalies.filter((a) => a.priority === 'P0').length;
    const text =
      pass.anomalies.length === 0
        ? `Checked ${pass.agents_checked} agents: no anomalies, all checks answered.`
        : `Checked ${pass.agents_checked} agents: ${pass.anomalies.length} anomalies (${worst} P0, ${pass.blind_checks} blind checks). ` +
          pass.anomalies
            .slice(0, 8)
            .map((a) => `${a.agent_id} ${a.signal} ${a.priority}`)
            .join('; ');
    return { structured: pass, text };
  },
});
