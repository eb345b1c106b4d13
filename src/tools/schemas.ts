/** Zod pieces shared by several tools' input and output schemas. */
import { z } from 'zod';
import { SIGNALS } from '../detection/index.js';
import { CURRENCY } from '../greenhelix/money.js';
import { untrustedInline } from '../guards/index.js';
import { ToolError } from '../util/errors.js';

/** Money as every tool reports it: the exact decimal string and the currency, never cents or "$". */
export const moneySchema = z.object({ amount: z.string(), currency: z.literal(CURRENCY) });

/**
 * An integer as tools/list shows it: plain `{"type":"integer"}`. zod adds ±(2^53−1) bounds to every
 * integer (some 80 characters each, read by the model on every turn); validation still checks a safe integer.
 */
export const int = () => z.number().int().meta({ minimum: undefined, maximum: undefined });

/** A JSON object of any keys, advertised as `{"type":"object","additionalProperties":{}}`. */
export const anyObject = () => z.record(z.string(), z.unknown()).meta({ propertyNames: undefined });

export const agentId = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/,
    'an agent id: letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128 characters',
  );

export const incidentId = z
  .string()
  .regex(
    /^inc_[A-Za-z0-9_-]{4,64}$/,
    'an incident id as returned by contain_agent or list_incidents, e.g. "inc_01J…"',
  )
  .describe('From contain_agent or list_incidents');

export const reason = z
  .string()
  .trim()
  .min(3, 'say in a few words why (kept in the incident record)')
  .max(500)
  .describe('Why; kept in the record');

export const dryRun = z.boolean().default(false).describe('Plan only: change nothing, return the calls');

export const stepSchema = z.object({
  action: z.string(),
  target: z.string().optional(),
  success: z.boolean(),
  skipped: z.boolean().optional(),
  pending: z.boolean().optional(),
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }).optional(),
  detail: anyObject().optional(),
  started_at: z.number(),
  duration_ms: z.number(),
});

export const plannedCall = z.object({
  step: z.string(),
  tool: z.string(),
  method: z.string(),
  path: z.string(),
  key: z.enum(['monitor', 'containment']),
  params: anyObject().optional(),
  count: int().optional(),
});

export const anomalySchema = z.object({
  agent_id: z.string(),
  signal: z.string(),
  severity: z.string(),
  priority: z.string(),
  summary: z.string(),
  details: anyObject(),
});

export const incidentSummary = z.object({
  incident_id: z.string(),
  agent_id: z.string(),
  agent_ids: z.array(z.string()),
  status: z.string(),
  kind: z.string(),
  reason: z.string(),
  signal: z.string().nullable(),
  priority: z.string().nullable(),
  detected_at: z.string().nullable(),
  contained_at: z.string().nullable(),
  resolved_at: z.string().nullable(),
  met_sla: z.boolean().nullable(),
  amount_unlocked: moneySchema,
});

/** How far back a detection may be to count for the SLA: older is a mistake, not an anomaly being answered. */
export const MAX_DETECTION_AGE_MS = 24 * 60 * 60_000;

export const anomalyRef = z
  .object({
    signal: z.enum(SIGNALS as [string, ...string[]]),
    priority: z.enum(['P0', 'P1', 'P2', 'P3']).optional(),
    // Advertised as format date-time: zod's own 430-character pattern would go out twice per tools/list.
    detected_at: z.iso
      .datetime({ offset: true })
      .meta({ pattern: undefined })
      .optional()
      .describe('The SLA runs from here'),
  })
  .strict()
  .optional()
  .describe('The detect_anomalies finding this answers');

/**
 * The anomaly a call answers, checked against the server clock: a detection time in the future, or more
 * than 24 h old, is refused (it would make the SLA figure meaningless) rather than silently replaced.
 */
export function answeredAnomaly(
  anomaly: z.infer<typeof anomalyRef>,
  now: number,
): { signal?: string; priority?: string; detected_at?: number } {
  if (!anomaly) return {};
  const out: { signal?: string; priority?: string; detected_at?: number } = { signal: anomaly.signal };
  if (anomaly.priority) out.priority = anomaly.priority;
  if (anomaly.detected_at) {
    const at = Date.parse(anomaly.detected_at);
    if (at > now)
      throw new ToolError(
        'invalid_detected_at',
        `anomaly.detected_at ${anomaly.detected_at} is in the future (server time ${new Date(now).toISOString()}).`,
        false,
        'Pass the detected_at that detect_anomalies reported for this anomaly, or omit it.',
      );
    if (now - at > MAX_DETECTION_AGE_MS)
      throw new ToolError(
        'invalid_detected_at',
        `anomaly.detected_at ${anomaly.detected_at} is more than 24 h old.`,
        false,
        'Run detect_anomalies again and pass the fresh detected_at, or omit it.',
      );
    out.detected_at = at;
  }
  return out;
}

/** Step errors carry the gateway's problem detail: marked as untrusted data before a model reads them. */
export function markStepErrors<S extends { error?: { message: string } | undefined }>(steps: S[]): S[] {
  return steps.map((s) =>
    s.error ? { ...s, error: { ...s.error, message: untrustedInline(s.error.message, 300) } } : s,
  );
}
