/**
 * Response shapes of the REST routes (CONTRACT.md §6–7), validated with zod so malformed data is an
 * error (`invalid_response`), never a zero. Objects are loose: a field the gateway adds later passes
 * through untouched; a field we rely on that is missing or mistyped fails the call.
 *
 * Money: fields the gateway sends as decimal strings (`balance`, `amount`, `cost`, `fee`…) become exact
 * integer cents through parseCents, which refuses sub-cent digits rather than rounding them away.
 * Fields that are the gateway's own float arithmetic (`*_spend`, `*_cap`, `total_cost`, CONTRACT §6
 * says they stay numbers) are rounded to the nearest cent: a sum of fees may carry float noise or a
 * fraction of a cent, and refusing it would blind the detector on that agent.
 */
import { z } from 'zod';
import { type Cents, parseCents } from './money.js';
import type { ToolName } from './routes.js';

/** A money field: "500.00", "150.0" or a number, to exact cents. */
export const money = z.union([z.string(), z.number()]).transform((v, ctx): Cents => {
  try {
    return parseCents(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** A number the gateway computed in floating point (spend, caps), to the nearest cent. */
export const approxMoney = z.union([
  z
    .number()
    .finite()
    .transform((v): Cents => Math.round(v * 100) as Cents),
  money,
]);

/** A cap: cents, or null for "no cap". */
const cap = z.union([approxMoney, z.null()]).default(null);
/** A timestamp: ISO-8601 on REST, a unix float through batch or in the fields §6 leaves alone. */
const ts = z.union([z.string(), z.number()]).nullable().optional();
const id = z.union([z.string(), z.number()]);

export const BalanceSchema = z.looseObject({ balance: money, currency: z.string().optional() });

const usageFields = {
  total_calls: z.number().int(),
  /** CREDITS as the gateway sends it (a float); `total_cost_cents` is the same in cents. */
  total_cost: z.number(),
  total_tokens: z.number().int().optional(),
};
const withCostCents = <T extends { total_cost: number }>(u: T) => ({
  ...u,
  total_cost_cents: Math.round(u.total_cost * 100) as Cents,
});
export const UsageSchema = z.looseObject(usageFields).transform(withCostCents);
export const AnalyticsSchema = z
  .looseObject({ agent_id: z.string().optional(), ...usageFields })
  .transform(withCostCents);

/**
 * A transaction's amount, rounded to cents: rows in another currency (a conversion's leg) carry up to 8
 * decimals, and one such row must not make the whole list unreadable.
 */
const roundedMoney = z.union([z.string(), z.number()]).transform((v, ctx): Cents => {
  const n = typeof v === 'number' ? v : /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n) || !Number.isSafeInteger(Math.round(n * 100))) {
    ctx.addIssue({ code: 'custom', message: `not a decimal amount: ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return Math.round(n * 100) as Cents;
});
export const TransactionSchema = z.looseObject({
  id,
  agent_id: z.string().optional(),
  amount: roundedMoney,
  currency: z.string().optional(),
  tx_type: z.string().optional(),
  description: z.string().nullable().optional(),
  created_at: ts,
  idempotency_key: z.string().nullable().optional(),
});
export const TransactionsSchema = z.looseObject({ transactions: z.array(TransactionSchema) });
/** No gateway call costs more than this: the catalog's largest fee is create_escrow's cap of 10 CREDITS. */
export const MAX_FEE_PER_CALL_CENTS = 1_000;
/** The billing store's atomic units per CREDIT, which get_metrics_timeseries forgets to divide by. */
export const TIMESERIES_COST_BUG_SCALE = 100_000_000;

/**
 * A usage bucket. Gateway 1.4.8 reports `cost` 1e8 times too large: tools/billing.py sums the stored
 * atomic units (1e8 per CREDIT) and serializes the sum as CREDITS. A bucket's true cost can never exceed
 * `calls` × the largest fee, and the inflated one always does (by ~1e8, unless a bucket holds 100 000
 * calls), so such a cost is scaled back to cents here and the bucket says so (`cost_corrected`, with
 * `cost_as_reported`). `cost` is therefore always real cents, on the buggy gateway and on a fixed one.
 */
const TimeseriesBucketSchema = z
  .looseObject({ timestamp: z.union([z.string(), z.number()]), calls: z.number().int(), cost: money })
  .transform((b) => {
    const inflated = b.cost > Math.max(1, b.calls) * MAX_FEE_PER_CALL_CENTS;
    return {
      ...b,
      cost: (inflated ? Math.round(b.cost / TIMESERIES_COST_BUG_SCALE) : b.cost) as Cents,
      cost_as_reported: b.cost,
      cost_corrected: inflated,
    };
  });
export const TimeseriesSchema = z.looseObject({ buckets: z.array(TimeseriesBucketSchema) });

export const BudgetStatusSchema = z.looseObject({
  agent_id: z.string(),
  daily_spend: approxMoney,
  daily_cap: cap,
  daily_pct: z.number(),
  monthly_spend: approxMoney,
  monthly_cap: cap,
  monthly_pct: z.number(),
  alert_triggered: z.boolean(),
  cap_exceeded: z.boolean(),
});
export const BudgetCapSchema = z.looseObject({
  agent_id: z.string(),
  daily_cap: cap,
  monthly_cap: cap,
  alert_threshold: z.number().nullable().optional(),
});
export const FreezeSchema = z.looseObject({ agent_id: z.string(), frozen: z.boolean() });

export const EscrowSchema = z.looseObject({
  id: z.string(),
  payer: z.string(),
  payee: z.string(),
  amount: money,
  status: z.string(),
  description: z.string().nullable().optional(),
  idempotency_key: z.string().nullable().optional(),
  settlement_id: z.string().nullable().optional(),
  created_at: ts,
  updated_at: ts,
  timeout_at: z.number().nullable().optional(),
});
export type Escrow = z.infer<typeof EscrowSchema>;
export const EscrowListSchema = z.looseObject({ escrows: z.array(EscrowSchema), count: z.number().int() });
export const EscrowTransitionSchema = z.looseObject({ id: z.string(), status: z.string(), amount: money });
export type EscrowTransition = z.infer<typeof EscrowTransitionSchema>;
export const EscrowCreatedSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  currency: z.string().optional(),
});
/** A stored intent as list_intents returns it (the whole row; `amount` is str(Decimal), what is left). */
export const IntentSchema = z.looseObject({
  id: z.string(),
  payer: z.string(),
  payee: z.string(),
  amount: money,
  status: z.string(),
  description: z.string().nullable().optional(),
  settlement_id: z.string().nullable().optional(),
  created_at: ts,
  updated_at: ts,
});
export type Intent = z.infer<typeof IntentSchema>;
export const IntentListSchema = z.looseObject({ intents: z.array(IntentSchema), count: z.number().int() });
export const IntentCreatedSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  currency: z.string().optional(),
  gateway_fee: money.optional(),
});
/** capture and partial capture answer the settlement: its id, not the intent's. */
export const IntentCapturedSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  /** partial_capture only: the gateway's float of what is left, a number (§6 leaves it alone). */
  remaining_amount: approxMoney.optional(),
});
/** A split moves money at once and stores nothing: no id, nothing to void. */
export const SplitIntentSchema = z.looseObject({
  status: z.string(),
  payer: z.string(),
  total_amount: approxMoney,
  currency: z.string().optional(),
  settlements: z.array(z.looseObject({ payee: z.string(), amount: money, percentage: z.number() })),
});
export const SubscriptionSchema = z.looseObject({
  id: z.string(),
  payer: z.string(),
  payee: z.string(),
  amount: money,
  interval: z.string(),
  status: z.string(),
  description: z.string().nullable().optional(),
  /** Unix seconds (§6 leaves `next_charge_at` a float). */
  next_charge_at: z.number().nullable().optional(),
  charge_count: z.number().int().optional(),
  created_at: ts,
});
export type Subscription = z.infer<typeof SubscriptionSchema>;
export const SubscriptionListSchema = z.looseObject({ subscriptions: z.array(SubscriptionSchema) });
export const SubscriptionCreatedSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  interval: z.string(),
  next_charge_at: z.number().nullable().optional(),
  currency: z.string().optional(),
});
export const SubscriptionTransitionSchema = z.looseObject({ id: z.string(), status: z.string() });
export const DueSubscriptionsSchema = z.looseObject({
  processed: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  suspended: z.number().int(),
  expired_escrows: z.number().int(),
});
export const WithdrawnSchema = z.looseObject({ new_balance: money });
/** Conversion amounts are high-precision decimal strings (18 places possible), kept as text. */
export const ConvertedSchema = z.looseObject({
  from_amount: z.union([z.string(), z.number()]),
  to_amount: z.union([z.string(), z.number()]),
  from_currency: z.string(),
  to_currency: z.string(),
});
export const IntentRefundSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  gateway_fee: money.optional(),
  fee_refunded: z.boolean().optional(),
  fee_retained: money.optional(),
});
/** CONTRACT §7: `{history: [...]}`, not the bare array the catalog shows. */
export const PaymentHistorySchema = z.looseObject({
  history: z.array(
    z.looseObject({
      type: z.string(),
      id: z.string(),
      payer: z.string(),
      payee: z.string(),
      amount: money,
      status: z.string(),
      created_at: ts,
    }),
  ),
});

export const EventSchema = z.looseObject({
  id: z.number().int(),
  event_type: z.string(),
  source: z.string(),
  payload: z.unknown(),
  created_at: z.string(),
});
export const EventsSchema = z.looseObject({ events: z.array(EventSchema) });
export const PublishedSchema = z.looseObject({ event_id: z.number().int() });
export const WebhookSchema = z.looseObject({
  id: z.string(),
  agent_id: z.string(),
  url: z.string(),
  event_types: z.array(z.string()),
  created_at: ts,
  active: z.union([z.boolean(), z.number()]),
  filter_agent_ids: z.array(z.string()).nullable().optional(),
});
export const WebhooksSchema = z.looseObject({ webhooks: z.array(WebhookSchema) });
export const WebhookDeletedSchema = z.looseObject({ deleted: z.boolean() });
export const DeliveriesSchema = z.looseObject({
  deliveries: z.array(
    z.looseObject({
      id,
      webhook_id: z.string(),
      event_type: z.string(),
      status: z.string(),
      attempts: z.number().int(),
      response_code: z.number().int().nullable().optional(),
    }),
  ),
});
export const WebhookTestSchema = z.looseObject({
  delivery_id: id,
  status: z.string(),
  response_code: z.number().int().nullable(),
});
export const KeysSchema = z.looseObject({
  keys: z.array(
    z.looseObject({
      key_hash_prefix: z.string(),
      agent_id: z.string(),
      tier: z.string(),
      scopes: z.array(z.string()),
      revoked: z.union([z.boolean(), z.number()]),
    }),
  ),
});
export const KeyRevokedSchema = z.looseObject({ revoked: z.boolean(), key_hash_prefix: z.string() });
export const KeyRotatedSchema = z.looseObject({
  new_key: z.string(),
  tier: z.string(),
  agent_id: z.string(),
  revoked: z.boolean(),
  grace_period_seconds: z.number().optional(),
  grace_expires_at: z.number().optional(),
});
export const AuditLogSchema = z.looseObject({
  entries: z.array(z.looseObject({ id, agent_id: z.string().nullable().optional(), cost: money.optional() })),
});

export const IdentitySchema = z.looseObject({
  agent_id: z.string(),
  public_key: z.string().nullable(),
  created_at: ts,
  org_id: z.string().nullable().optional(),
  found: z.boolean().optional(),
});
export const AgentRegisteredSchema = z.looseObject({
  agent_id: z.string(),
  public_key: z.string().nullable(),
  created_at: ts,
});
export const VerifiedSchema = z.looseObject({ valid: z.boolean() });
export const MetricsSubmittedSchema = z.looseObject({
  agent_id: z.string(),
  commitment_hashes: z.array(z.string()),
  verified_at: ts,
  valid_until: z.number(),
  data_source: z.string(),
});
/** The catalog lists `dispute_rate`, which the gateway never sends (CONTRACT §7). */
export const ReputationSchema = z.looseObject({
  agent_id: z.string(),
  payment_reliability: z.number(),
  data_source_quality: z.number().optional(),
  transaction_volume_score: z.number(),
  composite_score: z.number(),
  confidence: z.number(),
  found: z.boolean(),
});
export const ClaimsSchema = z.looseObject({
  claims: z.array(
    z.looseObject({
      agent_id: z.string(),
      metric_name: z.string(),
      claim_type: z.string().optional(),
      bound_value: z.number().optional(),
      valid_until: z.number().optional(),
    }),
  ),
});
export const ClaimChainBuiltSchema = z.looseObject({
  merkle_root: z.string(),
  leaf_count: z.number().int(),
  period_start: z.number(),
  period_end: z.number(),
  chain_id: id,
});
export const ClaimChainsSchema = z.looseObject({
  chains: z.array(z.looseObject({ id, merkle_root: z.string(), created_at: ts })),
});
export const MetricsSchema = z.looseObject({
  data: z.array(
    z.looseObject({ agent_id: z.string(), metric_name: z.string(), value: z.number(), timestamp: ts }),
  ),
});
export const MetricDeltasSchema = z.looseObject({
  deltas: z.record(
    z.string(),
    z.looseObject({
      current: z.number(),
      previous: z.number(),
      absolute_delta: z.number(),
      /** Percent; null when the previous value was 0. */
      relative_delta: z.number().nullable(),
    }),
  ),
});
export const IngestedSchema = z.looseObject({ accepted: z.number().int(), rejected: z.number().int() });
export const TrustScoreSchema = z.looseObject({
  server_id: z.string(),
  composite_score: z.number(),
  reliability_score: z.number(),
  security_score: z.number(),
  confidence: z.number(),
  window: z.string().optional(),
});
export const RatingSchema = z.looseObject({
  service_id: z.string(),
  agent_id: z.string(),
  rating: z.number().int(),
  review: z.string().optional(),
});
export const DisputeSchema = z.looseObject({
  id: z.string(),
  escrow_id: z.string(),
  status: z.string(),
  opener: z.string().optional(),
  deadline_at: z.number().optional(),
});

/** Output schema per tool. */
export const TOOL_OUTPUTS = {
  get_balance: BalanceSchema,
  get_usage_summary: UsageSchema,
  get_transactions: TransactionsSchema,
  get_service_analytics: AnalyticsSchema,
  get_metrics_timeseries: TimeseriesSchema,
  set_budget_cap: BudgetCapSchema,
  get_budget_status: BudgetStatusSchema,
  freeze_wallet: FreezeSchema,
  unfreeze_wallet: FreezeSchema,
  withdraw: WithdrawnSchema,
  convert_currency: ConvertedSchema,
  create_escrow: EscrowCreatedSchema,
  get_escrow: EscrowSchema,
  list_escrows: EscrowListSchema,
  release_escrow: EscrowTransitionSchema,
  cancel_escrow: EscrowTransitionSchema,
  list_intents: IntentListSchema,
  refund_intent: IntentRefundSchema,
  create_intent: IntentCreatedSchema,
  create_split_intent: SplitIntentSchema,
  get_intent: IntentSchema,
  capture_intent: IntentCapturedSchema,
  partial_capture: IntentCapturedSchema,
  create_subscription: SubscriptionCreatedSchema,
  list_subscriptions: SubscriptionListSchema,
  get_subscription: SubscriptionSchema,
  cancel_subscription: SubscriptionTransitionSchema,
  reactivate_subscription: SubscriptionTransitionSchema,
  process_due_subscriptions: DueSubscriptionsSchema,
  get_payment_history: PaymentHistorySchema,
  publish_event: PublishedSchema,
  get_events: EventsSchema,
  register_webhook: WebhookSchema,
  list_webhooks: WebhooksSchema,
  delete_webhook: WebhookDeletedSchema,
  get_webhook_deliveries: DeliveriesSchema,
  test_webhook: WebhookTestSchema,
  list_api_keys: KeysSchema,
  revoke_api_key: KeyRevokedSchema,
  rotate_key: KeyRotatedSchema,
  get_global_audit_log: AuditLogSchema,
  register_agent: AgentRegisteredSchema,
  verify_agent: VerifiedSchema,
  submit_metrics: MetricsSubmittedSchema,
  get_agent_identity: IdentitySchema,
  get_verified_claims: ClaimsSchema,
  get_agent_reputation: ReputationSchema,
  build_claim_chain: ClaimChainBuiltSchema,
  get_claim_chains: ClaimChainsSchema,
  query_metrics: MetricsSchema,
  get_metric_deltas: MetricDeltasSchema,
  ingest_metrics: IngestedSchema,
  get_trust_score: TrustScoreSchema,
  rate_service: RatingSchema,
  open_dispute: DisputeSchema,
} as const satisfies Record<ToolName, z.ZodType>;

/** What a tool returns once validated (money in cents). */
export type ToolResult<T extends ToolName> = z.output<(typeof TOOL_OUTPUTS)[T]>;

/**
 * One call's outcome inside POST /v1/batch. Results are raw (numbers, unix floats: CONTRACT §1, §6),
 * so `result` is left unparsed.
 */
export type BatchResult =
  | { success: true; result: unknown }
  | { success: false; error: { code: string; message: string } };

export const BatchSchema = z.looseObject({
  results: z.array(
    z.union([
      z.looseObject({ success: z.literal(true), result: z.unknown() }),
      z.looseObject({
        success: z.literal(false),
        error: z.looseObject({ code: z.string(), message: z.string() }),
      }),
    ]),
  ),
});
