/**
 * The per-domain REST routes of the GreenHelix gateway (CONTRACT.md §7), one row per catalog tool.
 *
 * This table is the single source of truth for both sides: the client builds requests from it and
 * the sandbox routes requests with it. `/v1/execute` is dead (410) and never appears here.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';
export type Tier = 'free' | 'starter' | 'pro' | 'enterprise';

/**
 * How a call may be retried by the client.
 * - `read`: no side effect, always safe.
 * - `idempotent`: a state transition whose replay is harmless (freeze, caps, cancel of a refunded escrow).
 * - `keyed`: a create that is safe to retry only with an Idempotency-Key.
 * - `unsafe`: never retried automatically.
 */
export type RetryClass = 'read' | 'idempotent' | 'keyed' | 'unsafe';

/** Ownership rule for non-admin callers (CONTRACT.md §2). */
export type Ownership = 'own' | 'any' | 'none';

export interface RouteSpec {
  readonly tool: string;
  readonly method: HttpMethod;
  /** Path template; `{name}` segments are taken from params of that name. */
  readonly path: string;
  readonly pathParams: readonly string[];
  readonly query: readonly string[];
  /** Query params the route declares without a default: a request without one is a 422 `query.x: Field required`. */
  readonly requiredQuery?: readonly string[];
  /** Body fields the REST model accepts; anything else is a 422. */
  readonly body: readonly string[];
  /** Body fields that are accepted under another name (`daily` → `daily_cap`). */
  readonly bodyAliases?: Readonly<Record<string, string>>;
  readonly requiredBody?: readonly string[];
  readonly successStatus: 200 | 201;
  readonly adminOnly: boolean;
  readonly tier: Tier;
  readonly ownership: Ownership;
  readonly retry: RetryClass;
  /** Infra admin routes answer `forbidden_admin_only` instead of `admin_only`. */
  readonly adminCode?: 'admin_only' | 'forbidden_admin_only';
}

const W = '/v1/billing/wallets/{agent_id}';
const E = '/v1/payments/escrows';
const A = '/v1/identity/agents/{agent_id}';
const I = '/v1/payments/intents';
const S = '/v1/payments/subscriptions';

function route(spec: Omit<RouteSpec, 'pathParams'> & { pathParams?: readonly string[] }): RouteSpec {
  const fromPath = [...spec.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
  return { ...spec, pathParams: spec.pathParams ?? fromPath };
}

const base = { query: [], body: [], successStatus: 200, adminOnly: false, tier: 'free' } as const;

export const ROUTES = {
  // Billing
  get_balance: route({
    ...base,
    tool: 'get_balance',
    method: 'GET',
    path: `${W}/balance`,
    query: ['currency'],
    ownership: 'own',
    retry: 'read',
  }),
  get_usage_summary: route({
    ...base,
    tool: 'get_usage_summary',
    method: 'GET',
    path: `${W}/usage`,
    query: ['since'],
    ownership: 'own',
    retry: 'read',
  }),
  get_transactions: route({
    ...base,
    tool: 'get_transactions',
    method: 'GET',
    path: `${W}/transactions`,
    query: ['limit', 'offset'],
    ownership: 'own',
    retry: 'read',
  }),
  get_service_analytics: route({
    ...base,
    tool: 'get_service_analytics',
    method: 'GET',
    path: `${W}/analytics`,
    query: ['since'],
    ownership: 'own',
    retry: 'read',
  }),
  get_metrics_timeseries: route({
    ...base,
    tool: 'get_metrics_timeseries',
    method: 'GET',
    path: `${W}/timeseries`,
    query: ['interval', 'since', 'limit'],
    ownership: 'own',
    retry: 'read',
  }),
  set_budget_cap: route({
    ...base,
    tool: 'set_budget_cap',
    method: 'PUT',
    path: `${W}/budget`,
    body: ['daily_cap', 'monthly_cap', 'alert_threshold'],
    bodyAliases: { daily: 'daily_cap', monthly: 'monthly_cap' },
    ownership: 'own',
    retry: 'idempotent',
  }),
  get_budget_status: route({
    ...base,
    tool: 'get_budget_status',
    method: 'GET',
    path: `${W}/budget`,
    ownership: 'own',
    retry: 'read',
  }),
  freeze_wallet: route({
    ...base,
    tool: 'freeze_wallet',
    method: 'POST',
    path: `${W}/freeze`,
    adminOnly: true,
    tier: 'pro',
    ownership: 'own',
    retry: 'idempotent',
  }),
  unfreeze_wallet: route({
    ...base,
    tool: 'unfreeze_wallet',
    method: 'POST',
    path: `${W}/unfreeze`,
    adminOnly: true,
    tier: 'pro',
    ownership: 'own',
    retry: 'idempotent',
  }),
  withdraw: route({
    ...base,
    tool: 'withdraw',
    method: 'POST',
    path: `${W}/withdraw`,
    body: ['amount', 'currency', 'description'],
    requiredBody: ['amount'],
    ownership: 'own',
    retry: 'unsafe',
  }),
  convert_currency: route({
    ...base,
    tool: 'convert_currency',
    method: 'POST',
    path: `${W}/convert`,
    body: ['amount', 'from_currency', 'to_currency'],
    requiredBody: ['amount', 'from_currency', 'to_currency'],
    ownership: 'own',
    retry: 'unsafe',
  }),

  // Payments
  create_escrow: route({
    ...base,
    tool: 'create_escrow',
    method: 'POST',
    path: E,
    body: ['payer', 'payee', 'amount', 'description', 'currency', 'timeout_hours', 'metadata'],
    requiredBody: ['payer', 'payee', 'amount'],
    successStatus: 201,
    tier: 'pro',
    ownership: 'own',
    retry: 'keyed',
  }),
  get_escrow: route({
    ...base,
    tool: 'get_escrow',
    method: 'GET',
    path: `${E}/{escrow_id}`,
    ownership: 'none',
    retry: 'read',
  }),
  list_escrows: route({
    ...base,
    tool: 'list_escrows',
    method: 'GET',
    path: E,
    query: ['agent_id', 'status', 'limit', 'offset'],
    requiredQuery: ['agent_id'],
    ownership: 'own',
    retry: 'read',
  }),
  release_escrow: route({
    ...base,
    tool: 'release_escrow',
    method: 'POST',
    path: `${E}/{escrow_id}/release`,
    tier: 'pro',
    ownership: 'none',
    retry: 'keyed',
  }),
  cancel_escrow: route({
    ...base,
    tool: 'cancel_escrow',
    method: 'POST',
    path: `${E}/{escrow_id}/cancel`,
    ownership: 'none',
    retry: 'idempotent',
  }),
  list_intents: route({
    ...base,
    tool: 'list_intents',
    method: 'GET',
    path: '/v1/payments/intents',
    query: ['agent_id', 'status', 'limit', 'offset'],
    requiredQuery: ['agent_id'],
    ownership: 'own',
    retry: 'read',
  }),
  /** Voids a pending intent; refunds a settled one, which the gateway allows again and again (§8). */
  refund_intent: route({
    ...base,
    tool: 'refund_intent',
    method: 'POST',
    path: `${I}/{intent_id}/refund`,
    ownership: 'none',
    retry: 'unsafe',
  }),
  create_intent: route({
    ...base,
    tool: 'create_intent',
    method: 'POST',
    path: I,
    body: ['payer', 'payee', 'amount', 'description', 'currency', 'metadata', 'idempotency_key'],
    requiredBody: ['payer', 'payee', 'amount'],
    successStatus: 201,
    ownership: 'own',
    retry: 'keyed',
  }),
  create_split_intent: route({
    ...base,
    tool: 'create_split_intent',
    method: 'POST',
    path: `${I}/split`,
    body: ['payer', 'amount', 'splits', 'description', 'currency'],
    requiredBody: ['payer', 'amount', 'splits'],
    successStatus: 201,
    tier: 'pro',
    ownership: 'own',
    retry: 'unsafe',
  }),
  get_intent: route({
    ...base,
    tool: 'get_intent',
    method: 'GET',
    path: `${I}/{intent_id}`,
    ownership: 'none',
    retry: 'read',
  }),
  capture_intent: route({
    ...base,
    tool: 'capture_intent',
    method: 'POST',
    path: `${I}/{intent_id}/capture`,
    ownership: 'none',
    retry: 'unsafe',
  }),
  partial_capture: route({
    ...base,
    tool: 'partial_capture',
    method: 'POST',
    path: `${I}/{intent_id}/partial-capture`,
    body: ['amount'],
    requiredBody: ['amount'],
    tier: 'pro',
    ownership: 'none',
    retry: 'unsafe',
  }),
  create_subscription: route({
    ...base,
    tool: 'create_subscription',
    method: 'POST',
    path: S,
    body: ['payer', 'payee', 'amount', 'interval', 'description', 'currency', 'metadata'],
    requiredBody: ['payer', 'payee', 'amount', 'interval'],
    successStatus: 201,
    tier: 'starter',
    ownership: 'own',
    retry: 'unsafe',
  }),
  /** Without agent_id the gateway lists every agent's subscriptions (no ownership field to check). */
  list_subscriptions: route({
    ...base,
    tool: 'list_subscriptions',
    method: 'GET',
    path: S,
    query: ['agent_id', 'status', 'limit', 'offset'],
    tier: 'starter',
    ownership: 'own',
    retry: 'read',
  }),
  get_subscription: route({
    ...base,
    tool: 'get_subscription',
    method: 'GET',
    path: `${S}/{subscription_id}`,
    tier: 'starter',
    ownership: 'none',
    retry: 'read',
  }),
  /** Final: the gateway reactivates only `suspended` subscriptions, never `cancelled` ones. */
  cancel_subscription: route({
    ...base,
    tool: 'cancel_subscription',
    method: 'POST',
    path: `${S}/{subscription_id}/cancel`,
    tier: 'starter',
    ownership: 'none',
    retry: 'unsafe',
  }),
  reactivate_subscription: route({
    ...base,
    tool: 'reactivate_subscription',
    method: 'POST',
    path: `${S}/{subscription_id}/reactivate`,
    tier: 'starter',
    ownership: 'none',
    retry: 'unsafe',
  }),
  process_due_subscriptions: route({
    ...base,
    tool: 'process_due_subscriptions',
    method: 'POST',
    path: `${S}/process-due`,
    tier: 'pro',
    ownership: 'none',
    retry: 'unsafe',
  }),
  get_payment_history: route({
    ...base,
    tool: 'get_payment_history',
    method: 'GET',
    path: '/v1/payments/history',
    query: ['agent_id', 'limit', 'offset'],
    requiredQuery: ['agent_id'],
    ownership: 'own',
    retry: 'read',
  }),

  // Infra
  publish_event: route({
    ...base,
    tool: 'publish_event',
    method: 'POST',
    path: '/v1/infra/events',
    body: ['event_type', 'source', 'payload'],
    requiredBody: ['event_type', 'source'],
    ownership: 'none',
    retry: 'unsafe',
  }),
  get_events: route({
    ...base,
    tool: 'get_events',
    method: 'GET',
    path: '/v1/infra/events',
    query: ['event_type', 'since_id', 'limit'],
    ownership: 'none',
    retry: 'read',
  }),
  register_webhook: route({
    ...base,
    tool: 'register_webhook',
    method: 'POST',
    path: '/v1/infra/webhooks',
    body: ['url', 'event_types', 'secret', 'filter_agent_ids'],
    bodyAliases: { events: 'event_types' },
    requiredBody: ['url', 'event_types', 'secret'],
    successStatus: 201,
    tier: 'pro',
    ownership: 'none',
    retry: 'unsafe',
  }),
  list_webhooks: route({
    ...base,
    tool: 'list_webhooks',
    method: 'GET',
    path: '/v1/infra/webhooks',
    tier: 'pro',
    ownership: 'none',
    retry: 'read',
  }),
  delete_webhook: route({
    ...base,
    tool: 'delete_webhook',
    method: 'DELETE',
    path: '/v1/infra/webhooks/{webhook_id}',
    tier: 'pro',
    ownership: 'none',
    retry: 'idempotent',
  }),
  get_webhook_deliveries: route({
    ...base,
    tool: 'get_webhook_deliveries',
    method: 'GET',
    path: '/v1/infra/webhooks/{webhook_id}/deliveries',
    query: ['limit', 'offset'],
    tier: 'pro',
    ownership: 'none',
    retry: 'read',
  }),
  test_webhook: route({
    ...base,
    tool: 'test_webhook',
    method: 'POST',
    path: '/v1/infra/webhooks/{webhook_id}/test',
    ownership: 'none',
    retry: 'unsafe',
  }),
  list_api_keys: route({
    ...base,
    tool: 'list_api_keys',
    method: 'GET',
    path: '/v1/infra/keys',
    query: ['agent_id'],
    adminOnly: true,
    adminCode: 'forbidden_admin_only',
    ownership: 'none',
    retry: 'read',
  }),
  revoke_api_key: route({
    ...base,
    tool: 'revoke_api_key',
    method: 'POST',
    path: '/v1/infra/keys/revoke',
    body: ['key_hash_prefix'],
    requiredBody: ['key_hash_prefix'],
    adminOnly: true,
    adminCode: 'forbidden_admin_only',
    ownership: 'none',
    retry: 'idempotent',
  }),
  rotate_key: route({
    ...base,
    tool: 'rotate_key',
    method: 'POST',
    path: '/v1/infra/keys/rotate',
    body: ['current_key'],
    requiredBody: ['current_key'],
    adminOnly: true,
    adminCode: 'forbidden_admin_only',
    ownership: 'none',
    retry: 'unsafe',
  }),
  get_global_audit_log: route({
    ...base,
    tool: 'get_global_audit_log',
    method: 'GET',
    path: '/v1/infra/audit-log',
    query: ['since', 'limit'],
    adminOnly: true,
    adminCode: 'forbidden_admin_only',
    tier: 'pro',
    ownership: 'none',
    retry: 'read',
  }),

  // Identity, trust, marketplace, disputes
  register_agent: route({
    ...base,
    tool: 'register_agent',
    method: 'POST',
    path: '/v1/identity/agents',
    body: ['agent_id', 'public_key', 'name', 'capabilities'],
    requiredBody: ['agent_id'],
    successStatus: 201,
    ownership: 'own',
    retry: 'unsafe',
  }),
  verify_agent: route({
    ...base,
    tool: 'verify_agent',
    method: 'POST',
    path: `${A}/verify`,
    body: ['message', 'signature'],
    requiredBody: ['message', 'signature'],
    ownership: 'any',
    retry: 'read',
  }),
  submit_metrics: route({
    ...base,
    tool: 'submit_metrics',
    method: 'POST',
    path: `${A}/metrics`,
    body: ['metrics', 'data_source'],
    requiredBody: ['metrics'],
    tier: 'pro',
    ownership: 'own',
    retry: 'unsafe',
  }),
  get_agent_identity: route({
    ...base,
    tool: 'get_agent_identity',
    method: 'GET',
    path: A,
    ownership: 'any',
    retry: 'read',
  }),
  get_verified_claims: route({
    ...base,
    tool: 'get_verified_claims',
    method: 'GET',
    path: `${A}/claims`,
    ownership: 'any',
    retry: 'read',
  }),
  get_agent_reputation: route({
    ...base,
    tool: 'get_agent_reputation',
    method: 'GET',
    path: `${A}/reputation`,
    ownership: 'any',
    retry: 'read',
  }),
  build_claim_chain: route({
    ...base,
    tool: 'build_claim_chain',
    method: 'POST',
    path: `${A}/claim-chains`,
    tier: 'pro',
    ownership: 'own',
    retry: 'unsafe',
  }),
  get_claim_chains: route({
    ...base,
    tool: 'get_claim_chains',
    method: 'GET',
    path: `${A}/claim-chains`,
    query: ['limit'],
    tier: 'pro',
    ownership: 'any',
    retry: 'read',
  }),
  query_metrics: route({
    ...base,
    tool: 'query_metrics',
    method: 'GET',
    path: '/v1/identity/metrics',
    query: ['agent_id', 'metric_name', 'since', 'limit'],
    requiredQuery: ['agent_id', 'metric_name'],
    ownership: 'any',
    retry: 'read',
  }),
  get_metric_deltas: route({
    ...base,
    tool: 'get_metric_deltas',
    method: 'GET',
    path: '/v1/identity/metrics/deltas',
    query: ['agent_id', 'metric_name'],
    requiredQuery: ['agent_id'],
    ownership: 'any',
    retry: 'read',
  }),
  ingest_metrics: route({
    ...base,
    tool: 'ingest_metrics',
    method: 'POST',
    path: '/v1/identity/metrics/ingest',
    body: ['agent_id', 'metrics', 'data_source', 'signature', 'nonce'],
    requiredBody: ['agent_id', 'metrics'],
    ownership: 'own',
    retry: 'unsafe',
  }),
  get_trust_score: route({
    ...base,
    tool: 'get_trust_score',
    method: 'GET',
    path: '/v1/trust/servers/{server_id}/score',
    query: ['window', 'recompute'],
    ownership: 'any',
    retry: 'read',
  }),
  rate_service: route({
    ...base,
    tool: 'rate_service',
    method: 'POST',
    path: '/v1/marketplace/services/{service_id}/ratings',
    body: ['rating', 'review'],
    requiredBody: ['rating'],
    ownership: 'none',
    retry: 'idempotent',
  }),
  open_dispute: route({
    ...base,
    tool: 'open_dispute',
    method: 'POST',
    path: '/v1/disputes',
    body: ['escrow_id', 'opener', 'reason'],
    requiredBody: ['escrow_id', 'opener'],
    successStatus: 201,
    tier: 'pro',
    ownership: 'own',
    retry: 'unsafe',
  }),
} as const satisfies Record<string, RouteSpec>;

export type ToolName = keyof typeof ROUTES;

/** Fields checked for ownership by non-admin callers (CONTRACT.md §2). */
export const OWNERSHIP_FIELDS = ['agent_id', 'payer', 'opener', 'sender', 'initiator'] as const;

/** `read` scope covers these name prefixes; everything else needs `write` (CONTRACT.md §2). */
const READ_PREFIXES = ['get_', 'list_', 'search_', 'verify_', 'check_', 'estimate_'];

export function requiredScope(tool: string): 'read' | 'write' {
  return READ_PREFIXES.some((p) => tool.startsWith(p)) ? 'read' : 'write';
}

/** Fills `{name}` segments of a route's path from params, URL-encoding each segment. */
export function buildPath(spec: RouteSpec, params: Record<string, unknown>): string {
  return spec.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined || value === null || value === '') {
      throw new TypeError(`${spec.tool}: path parameter "${name}" is required`);
    }
    return encodeURIComponent(String(value));
  });
}
