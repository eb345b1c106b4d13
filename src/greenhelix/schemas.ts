/**
 * Response shapes of the REST routes (CONTRACT.md §6–7), validated with zod so malformed data is an
 * error, never a zero. Money becomes integer cents; caps (sent as numbers) become cents too.
 */
import { z } from 'zod';
import { parseCents } from './money.js';

/** A money field: "500.00", "150.0" or a number, to exact cents. */
export const money = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseCents(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
const cap = z.union([money, z.null()]).default(null);
const ts = z.union([z.string(), z.number()]).nullable().optional();

export const BalanceSchema = z.looseObject({ balance: money, currency: z.string().optional() });
export const BudgetStatusSchema = z.looseObject({
  agent_id: z.string(),
  daily_spend: money,
  daily_cap: cap,
  daily_pct: z.number(),
  monthly_spend: money,
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
export const UsageSchema = z.looseObject({
  total_calls: z.number().int(),
  total_cost: z.number(),
  total_tokens: z.number().int().optional(),
});
export const TransactionSchema = z.looseObject({
  id: z.union([z.string(), z.number()]),
  amount: money,
  tx_type: z.string().optional(),
  description: z.string().nullable().optional(),
  created_at: ts,
});
export const TransactionsSchema = z.looseObject({ transactions: z.array(TransactionSchema) });

export const EscrowSchema = z.looseObject({
  id: z.string(),
  payer: z.string(),
  payee: z.string(),
  amount: money,
  status: z.string(),
  description: z.string().nullable().optional(),
  created_at: ts,
  updated_at: ts,
  timeout_at: z.number().nullable().optional(),
});
export type Escrow = z.infer<typeof EscrowSchema>;
export const EscrowListSchema = z.looseObject({ escrows: z.array(EscrowSchema), count: z.number().int() });
export const EscrowTransitionSchema = z.looseObject({ id: z.string(), status: z.string(), amount: money });
export const EscrowCreatedSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  amount: money,
  currency: z.string().optional(),
});

export const IdentitySchema = z.looseObject({
  agent_id: z.string(),
  public_key: z.string().nullable(),
  created_at: ts,
  found: z.boolean().optional(),
});
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
  claims: z.array(z.looseObject({ agent_id: z.string(), metric_name: z.string() })),
});
export const ClaimChainsSchema = z.looseObject({
  chains: z.array(
    z.looseObject({ id: z.union([z.number(), z.string()]), merkle_root: z.string(), created_at: ts }),
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
export const DisputeSchema = z.looseObject({ id: z.string(), escrow_id: z.string(), status: z.string() });
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
export type BatchResult = z.infer<typeof BatchSchema>['results'][number];
