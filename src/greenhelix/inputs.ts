/**
 * What each tool accepts, checked before anything is sent: the catalog's input_schema with the
 * route-level corrections of CONTRACT.md (§7, §11). Params are flat, as the catalog names them
 * (path, query and body fields together); the client splits them by ROUTES.
 *
 * Stricter than the gateway on purpose where the gateway would accept a mistake silently:
 * - set_budget_cap needs both caps: PUT replaces both, so a missing one would be cleared (§8);
 *   pass null to clear a cap on purpose. The `daily`/`monthly` aliases are refused: batch ignores them.
 * - unknown fields are refused by name (the gateway answers 422, or ignores them through batch);
 * - ids that would make a bad path (a "/" or more than 128 characters) are refused here, not by a 400.
 */
import { z } from 'zod';
import type { ToolName } from './routes.js';

const AGENT_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;
const DECIMAL = /^\d+(?:\.(\d+))?$/;

/** Metric names the gateway accepts in submit_metrics and ingest (CONTRACT §7). */
export const METRIC_NAMES = [
  'sharpe_30d',
  'max_drawdown_30d',
  'pnl_30d',
  'signal_accuracy_30d',
  'win_rate_30d',
  'total_trades_30d',
  'aum',
  'p99_latency_ms',
  'p95_latency_ms',
  'p50_latency_ms',
  'latency_ms',
  'throughput_rps',
  'requests_per_second',
  'accuracy',
  'precision',
  'recall',
  'f1_score',
  'loss',
  'error_rate',
  'uptime',
  'success_rate',
  'task_completion_rate',
  'response_time_ms',
] as const;

export const CURRENCIES = ['CREDITS', 'USD', 'EUR', 'GBP', 'BTC', 'ETH'] as const;

const agentId = z
  .string()
  .regex(
    AGENT_ID,
    'expected an agent id: 1–128 letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

/** An id that becomes one path segment. */
const pathId = z
  .string()
  .min(1, 'expected a non-empty id')
  .max(128, 'expected at most 128 characters (the gateway refuses longer path segments)')
  .refine((s) => !/[/\\]/.test(s), 'must not contain "/" or "\\"');

const nonEmpty = z.string().min(1, 'expected a non-empty string');
const limit = z.number().int().min(1, 'expected an integer ≥ 1');
const offset = z.number().int().min(0, 'expected an integer ≥ 0');
/** Unix seconds; a value in milliseconds is a common slip that would silently select nothing. */
const unixSeconds = z
  .number()
  .min(0, 'expected unix seconds ≥ 0')
  .max(1e11, 'expected unix seconds (this looks like milliseconds)');

function decimalText(v: string | number): string | undefined {
  const text = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : v.trim();
  return DECIMAL.test(text) ? text : undefined;
}

/** A positive decimal amount, number or string, at most 1e9 (CONTRACT §6). */
const amount = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  const text = decimalText(v);
  if (text === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a decimal amount such as 150 or "150.00"' });
  } else if (Number(text) <= 0) {
    ctx.addIssue({ code: 'custom', message: 'expected an amount > 0' });
  } else if (Number(text) > 1e9) {
    ctx.addIssue({ code: 'custom', message: 'expected an amount ≤ 1000000000' });
  }
});

/**
 * A budget cap in CREDITS, or null for "no cap". Sent as a JSON number with at most 2 decimals, as the
 * catalog types it; negative caps are refused (the gateway accepts them, but they mean nothing).
 */
const cap = z.union([z.string(), z.number(), z.null()]).transform((v, ctx): number | null => {
  if (v === null) return null;
  const text = decimalText(v);
  const fraction = text === undefined ? undefined : (DECIMAL.exec(text)?.[1] ?? '');
  if (text === undefined || fraction === undefined || fraction.replace(/0+$/, '').length > 2) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected a cap ≥ 0 in CREDITS with at most 2 decimals, or null',
    });
    return z.NEVER;
  }
  return Number(text);
});

const metrics = z.record(z.string(), z.number().finite()).superRefine((m, ctx) => {
  const unknown = Object.keys(m).filter((k) => !(METRIC_NAMES as readonly string[]).includes(k));
  if (unknown.length)
    ctx.addIssue({
      code: 'custom',
      message: `unknown metric ${unknown.map((k) => `"${k}"`).join(', ')}; accepted: ${METRIC_NAMES.join(', ')}`,
    });
  if (Object.keys(m).length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one metric' });
});

const agentOnly = z.strictObject({ agent_id: agentId });
const escrowOnly = z.strictObject({ escrow_id: pathId });
const webhookOnly = z.strictObject({ webhook_id: pathId });

const createEscrow = z
  .strictObject({
    payer: agentId,
    payee: agentId,
    amount,
    description: z.string().optional(),
    currency: z.enum(CURRENCIES).optional(),
    timeout_hours: z.number().int().min(1, 'expected whole hours ≥ 1').optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    /** Never sent in the REST body (422 there, CONTRACT §5): the client moves it to the Idempotency-Key header. */
    idempotency_key: z.string().min(1).max(255).optional(),
  })
  .superRefine((p, ctx) => {
    const text = decimalText(p.amount);
    const fraction = text === undefined ? '' : (DECIMAL.exec(text)?.[1] ?? '');
    if ((p.currency ?? 'CREDITS') === 'CREDITS' && fraction.replace(/0+$/, '').length > 2)
      ctx.addIssue({ code: 'custom', path: ['amount'], message: 'CREDITS amounts have at most 2 decimals' });
    if (p.payer === p.payee)
      ctx.addIssue({ code: 'custom', path: ['payee'], message: 'payee must differ from payer' });
  });

/** CREDITS amounts have at most 2 decimals (the request models' currency validator). */
function creditsCents(
  p: { amount: string | number; currency?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  const text = decimalText(p.amount);
  const fraction = text === undefined ? '' : (DECIMAL.exec(text)?.[1] ?? '');
  if ((p.currency ?? 'CREDITS') === 'CREDITS' && fraction.replace(/0+$/, '').length > 2)
    ctx.addIssue({ code: 'custom', path: ['amount'], message: 'CREDITS amounts have at most 2 decimals' });
}

const intentOnly = z.strictObject({ intent_id: pathId });
const subscriptionOnly = z.strictObject({ subscription_id: pathId });

/** The Idempotency-Key travels as the header (options.idempotencyKey), never in the body. */
const createIntent = z
  .strictObject({
    payer: agentId,
    payee: agentId,
    amount,
    description: z.string().max(2000).optional(),
    currency: z.enum(CURRENCIES).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((p, ctx) => {
    creditsCents(p, ctx);
    if (p.payer === p.payee)
      ctx.addIssue({ code: 'custom', path: ['payee'], message: 'payee must differ from payer' });
  });

const createSplitIntent = z
  .strictObject({
    payer: agentId,
    amount,
    splits: z
      .array(z.strictObject({ payee: agentId, percentage: z.number().finite() }))
      .min(1, 'expected at least one split'),
    description: z.string().max(2000).optional(),
    currency: z.enum(CURRENCIES).optional(),
  })
  .superRefine((p, ctx) => {
    creditsCents(p, ctx);
    const total = p.splits.reduce((n, s) => n + s.percentage, 0);
    if (Math.abs(total - 100) > 0.01)
      ctx.addIssue({
        code: 'custom',
        path: ['splits'],
        message: `percentages must sum to 100, got ${total}`,
      });
  });

const SUBSCRIPTION_STATUSES = ['active', 'cancelled', 'suspended'] as const;

const createSubscription = z
  .strictObject({
    payer: agentId,
    payee: agentId,
    amount,
    interval: z.enum(['hourly', 'daily', 'weekly', 'monthly']),
    description: z.string().max(2000).optional(),
    currency: z.enum(CURRENCIES).optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((p, ctx) => {
    creditsCents(p, ctx);
    if (p.payer === p.payee)
      ctx.addIssue({ code: 'custom', path: ['payee'], message: 'payee must differ from payer' });
  });

/** Input schema per tool, flat params as the catalog names them. */
export const TOOL_INPUTS = {
  // Billing
  get_balance: z.strictObject({ agent_id: agentId, currency: z.enum(CURRENCIES).optional() }),
  get_usage_summary: z.strictObject({ agent_id: agentId, since: unixSeconds.optional() }),
  get_transactions: z.strictObject({ agent_id: agentId, limit: limit.optional(), offset: offset.optional() }),
  get_service_analytics: z.strictObject({ agent_id: agentId, since: unixSeconds.optional() }),
  get_metrics_timeseries: z.strictObject({
    agent_id: agentId,
    interval: z.enum(['hour', 'day']),
    since: unixSeconds.optional(),
    limit: limit.optional(),
  }),
  set_budget_cap: z.strictObject({
    agent_id: agentId,
    daily_cap: cap,
    monthly_cap: cap,
    alert_threshold: z.number().min(0).max(1, 'expected a fraction between 0 and 1').optional(),
  }),
  get_budget_status: agentOnly,
  freeze_wallet: agentOnly,
  unfreeze_wallet: agentOnly,
  withdraw: z
    .strictObject({
      agent_id: agentId,
      amount,
      currency: z.enum(CURRENCIES).optional(),
      description: z.string().max(2000).optional(),
    })
    .superRefine(creditsCents),
  convert_currency: z.strictObject({
    agent_id: agentId,
    amount,
    from_currency: z.enum(CURRENCIES),
    to_currency: z.enum(CURRENCIES),
  }),

  // Payments
  create_escrow: createEscrow,
  get_escrow: escrowOnly,
  list_escrows: z.strictObject({
    agent_id: agentId,
    // The catalog's enum leaves out "settled", the status a release actually sets (§8).
    status: z.enum(['held', 'settled', 'released', 'refunded', 'expired']).optional(),
    limit: limit.optional(),
    offset: offset.optional(),
  }),
  release_escrow: escrowOnly,
  cancel_escrow: escrowOnly,
  list_intents: z.strictObject({
    agent_id: agentId,
    status: z.enum(['pending', 'captured', 'settled', 'voided', 'refunded']).optional(),
    limit: limit.optional(),
    offset: offset.optional(),
  }),
  refund_intent: intentOnly,
  create_intent: createIntent,
  create_split_intent: createSplitIntent,
  get_intent: intentOnly,
  capture_intent: intentOnly,
  partial_capture: z.strictObject({ intent_id: pathId, amount }).superRefine(creditsCents),
  create_subscription: createSubscription,
  list_subscriptions: z.strictObject({
    agent_id: agentId,
    status: z.enum(SUBSCRIPTION_STATUSES).optional(),
    limit: limit.optional(),
    offset: offset.optional(),
  }),
  get_subscription: subscriptionOnly,
  cancel_subscription: subscriptionOnly,
  reactivate_subscription: subscriptionOnly,
  process_due_subscriptions: z.strictObject({}),
  get_payment_history: z.strictObject({
    agent_id: agentId,
    limit: limit.optional(),
    offset: offset.optional(),
  }),

  // Infra
  publish_event: z.strictObject({
    event_type: nonEmpty,
    source: nonEmpty,
    payload: z.record(z.string(), z.unknown()).optional(),
  }),
  get_events: z.strictObject({
    event_type: nonEmpty.optional(),
    since_id: offset.optional(),
    limit: limit.optional(),
  }),
  register_webhook: z.strictObject({
    url: z.url({ message: 'expected an absolute URL (the gateway also requires https to a public host)' }),
    event_types: z.array(nonEmpty).min(1, 'expected at least one event type'),
    secret: nonEmpty,
    filter_agent_ids: z.array(agentId).optional(),
  }),
  list_webhooks: z.strictObject({}),
  delete_webhook: webhookOnly,
  get_webhook_deliveries: z.strictObject({
    webhook_id: pathId,
    limit: limit.optional(),
    offset: offset.optional(),
  }),
  test_webhook: webhookOnly,
  list_api_keys: z.strictObject({ agent_id: agentId.optional() }),
  revoke_api_key: z.strictObject({
    key_hash_prefix: z.string().regex(/^[0-9a-f]{8}$/, 'expected 8 lowercase hex characters'),
  }),
  rotate_key: z.strictObject({ current_key: nonEmpty }),
  get_global_audit_log: z.strictObject({ since: unixSeconds.optional(), limit: limit.optional() }),

  // Identity, trust, marketplace, disputes
  register_agent: z.strictObject({
    agent_id: agentId,
    public_key: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'expected a raw Ed25519 public key as 64 hex characters (no prefix)')
      .optional(),
    name: z.string().optional(),
    capabilities: z.array(z.string()).optional(),
  }),
  verify_agent: z.strictObject({
    agent_id: agentId,
    message: z.string(),
    signature: z.string().regex(/^[0-9a-fA-F]+$/, 'expected the Ed25519 signature as hex'),
  }),
  submit_metrics: z.strictObject({
    agent_id: agentId,
    metrics,
    data_source: z.enum(['self_reported', 'exchange_api', 'platform_verified']).optional(),
  }),
  get_agent_identity: agentOnly,
  get_verified_claims: agentOnly,
  get_agent_reputation: agentOnly,
  build_claim_chain: agentOnly,
  get_claim_chains: z.strictObject({ agent_id: agentId, limit: limit.optional() }),
  query_metrics: z.strictObject({
    agent_id: agentId,
    metric_name: nonEmpty,
    since: unixSeconds.optional(),
    limit: limit.optional(),
  }),
  get_metric_deltas: z.strictObject({ agent_id: agentId, metric_name: nonEmpty.optional() }),
  ingest_metrics: z.strictObject({
    agent_id: agentId,
    metrics,
    data_source: z.string().optional(),
    signature: z.string().optional(),
    nonce: z.string().optional(),
  }),
  get_trust_score: z.strictObject({
    server_id: pathId,
    window: z.enum(['24h', '7d', '30d']).optional(),
    recompute: z.boolean().optional(),
  }),
  rate_service: z.strictObject({
    service_id: pathId,
    rating: z.number().int().min(1, 'expected an integer 1–5').max(5, 'expected an integer 1–5'),
    review: z.string().optional(),
  }),
  open_dispute: z.strictObject({ escrow_id: nonEmpty, opener: agentId, reason: z.string().optional() }),
} as const satisfies Record<ToolName, z.ZodType>;

/** The params a tool accepts, as a caller writes them. */
export type ToolParams<T extends ToolName> = z.input<(typeof TOOL_INPUTS)[T]>;

/** The params after validation and normalisation (caps as numbers), as they are sent. */
export type ToolInput<T extends ToolName> = z.output<(typeof TOOL_INPUTS)[T]>;

/**
 * Validates params for `tool`. Returns the normalised params, or one line naming every bad field and
 * what it accepts.
 */
export function validateParams(
  tool: ToolName,
  params: unknown,
): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  const schema: z.ZodType = TOOL_INPUTS[tool];
  const r = schema.safeParse(params ?? {});
  if (r.success) return { ok: true, value: r.data as Record<string, unknown> };
  return { ok: false, message: describeIssues(r.error.issues, acceptedFields(tool), params) };
}

/** The params a tool accepts, by name. */
export function acceptedFields(tool: ToolName): string[] {
  const schema = TOOL_INPUTS[tool] as unknown as { shape?: Record<string, unknown> };
  return Object.keys(schema.shape ?? {});
}

/**
 * Zod issues as one line, unknown fields first: `unknown parameter "x" (accepted: …); parameter
 * "amount": expected …`. A field absent from `input` is reported as required, whatever zod says.
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  accepted: string[],
  input?: unknown,
): string {
  const given = input && typeof input === 'object' ? (input as Record<string, unknown>) : {};
  const unknownFirst = [...issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  return unknownFirst
    .slice(0, 6)
    .map((i) => {
      if (i.code === 'unrecognized_keys')
        return `unknown parameter${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')} (accepted: ${accepted.join(', ') || 'none'})`;
      const field = i.path.map(String).join('.');
      if (!field) return i.message;
      const missing = i.path.length === 1 && given[String(i.path[0])] === undefined;
      return `parameter "${field}": ${missing ? 'is required' : i.message}`;
    })
    .join('; ');
}
