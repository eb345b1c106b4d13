/**
 * The gateway's rules in one place: `dispatch(caller, tool, params, via)` runs the REST check order
 * (CONTRACT.md §2), the batch differences (§1) and each tool's semantics (§7–9). The HTTP layer, batch
 * and the scenario agents all call it, so a scenario agent obeys freezes, caps and balances exactly as
 * an HTTP caller does.
 */
import { createHmac, createPublicKey, randomBytes, verify } from 'node:crypto';
import { ROUTES, type RouteSpec, requiredScope, type ToolName } from '../greenhelix/routes.js';
import { GatewayError } from './gateway-error.js';
import { intentFee, MoneyPaths } from './money-paths.js';
import { decimalString, type EscrowRec, type KeyRec, pyJson, sha3, type Tier, type World } from './world.js';

export { GatewayError };

export interface Caller {
  key: KeyRec;
  agentId: string;
  tier: Tier;
  /** Admin scope counts only on REST; batch callers are never admin. */
  admin: boolean;
  scopes: string[];
}

export interface DispatchContext {
  via: 'rest' | 'batch' | 'internal';
  requestId: string;
  /** Batch checks the rate limit once, on its first call; every call is still recorded. */
  skipRateCheck?: boolean | undefined;
  idempotencyKey?: string | undefined;
  rotateConfirmation?: string | undefined;
}

export interface DispatchResult {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TIER_RANK: Record<Tier, number> = { free: 0, starter: 1, pro: 2, enterprise: 3 };
const LIMITS: Record<Tier, { hour: number; burst: number }> = {
  free: { hour: 100, burst: 10 },
  starter: { hour: 1_000, burst: 25 },
  pro: { hour: 10_000, burst: 100 },
  enterprise: { hour: 100_000, burst: 1_000 },
};
const CROSS_AGENT_OK = new Set([
  'get_trust_score',
  'get_agent_identity',
  'get_agent_reputation',
  'get_verified_claims',
  'verify_agent',
  'get_claim_chains',
  'query_metrics',
  'get_metric_deltas',
]);
const AGENT_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;
const METRIC_NAMES = new Set([
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
]);
const CURRENCIES = new Set(['CREDITS', 'USD', 'EUR', 'GBP', 'BTC', 'ETH']);

type FieldType = 'string' | 'decimal' | 'int' | 'number' | 'bool' | 'object' | 'array' | 'nullable_decimal';
/** Types of body fields and query params, for the 422 validation step. */
const FIELDS: Partial<Record<ToolName, Record<string, FieldType>>> = {
  set_budget_cap: {
    daily_cap: 'nullable_decimal',
    monthly_cap: 'nullable_decimal',
    daily: 'nullable_decimal',
    monthly: 'nullable_decimal',
    alert_threshold: 'number',
  },
  create_escrow: {
    payer: 'string',
    payee: 'string',
    amount: 'decimal',
    description: 'string',
    currency: 'string',
    timeout_hours: 'int',
    metadata: 'object',
  },
  publish_event: { event_type: 'string', source: 'string', payload: 'object' },
  register_webhook: {
    url: 'string',
    event_types: 'array',
    events: 'array',
    secret: 'string',
    filter_agent_ids: 'array',
  },
  revoke_api_key: { key_hash_prefix: 'string' },
  rotate_key: { current_key: 'string' },
  register_agent: { agent_id: 'string', public_key: 'string', name: 'string', capabilities: 'array' },
  verify_agent: { message: 'string', signature: 'string' },
  submit_metrics: { metrics: 'object', data_source: 'string' },
  ingest_metrics: {
    agent_id: 'string',
    metrics: 'object',
    data_source: 'string',
    signature: 'string',
    nonce: 'string',
  },
  rate_service: { rating: 'int', review: 'string' },
  open_dispute: { escrow_id: 'string', opener: 'string', reason: 'string' },
  get_usage_summary: { since: 'number' },
  get_service_analytics: { since: 'number' },
  get_metrics_timeseries: { interval: 'string', since: 'number', limit: 'int' },
  get_transactions: { limit: 'int', offset: 'int' },
  list_escrows: { agent_id: 'string', status: 'string', limit: 'int', offset: 'int' },
  list_intents: { agent_id: 'string', status: 'string', limit: 'int', offset: 'int' },
  create_intent: {
    payer: 'string',
    payee: 'string',
    amount: 'decimal',
    description: 'string',
    currency: 'string',
    metadata: 'object',
    idempotency_key: 'string',
  },
  create_split_intent: {
    payer: 'string',
    amount: 'decimal',
    splits: 'array',
    description: 'string',
    currency: 'string',
  },
  partial_capture: { amount: 'decimal' },
  create_subscription: {
    payer: 'string',
    payee: 'string',
    amount: 'decimal',
    interval: 'string',
    description: 'string',
    currency: 'string',
    metadata: 'object',
  },
  list_subscriptions: { agent_id: 'string', status: 'string', limit: 'int', offset: 'int' },
  withdraw: { amount: 'decimal', currency: 'string', description: 'string' },
  convert_currency: { amount: 'decimal', from_currency: 'string', to_currency: 'string' },
  get_payment_history: { agent_id: 'string', limit: 'int', offset: 'int' },
  get_events: { event_type: 'string', since_id: 'int', limit: 'int' },
  get_webhook_deliveries: { limit: 'int', offset: 'int' },
  get_claim_chains: { limit: 'int' },
  query_metrics: { agent_id: 'string', metric_name: 'string', since: 'number', limit: 'int' },
  get_metric_deltas: { agent_id: 'string', metric_name: 'string' },
  get_global_audit_log: { since: 'number', limit: 'int' },
  get_trust_score: { window: 'string', recompute: 'bool' },
  list_api_keys: { agent_id: 'string' },
  get_balance: { currency: 'string' },
};

type ToolOutcome = { result: unknown; charged?: boolean };

interface Admitted {
  caller: Caller;
  tool: ToolName;
  spec: RouteSpec;
  ctx: DispatchContext;
  p: Record<string, unknown>;
  fee: number;
  headers: Record<string, string>;
}

/**
 * Routes whose handler does not catch product exceptions (gateway/src/routes/v1/*.py: no
 * handle_product_exception around the tool call). Their errors, such as get_balance's 404
 * wallet_not_found, are answered by the app's catch-all handler with no X-Request-ID header.
 */
const ROUTES_WITHOUT_HANDLER = new Set<ToolName>([
  'get_balance',
  'get_transactions',
  'get_usage_summary',
  'get_service_analytics',
  'get_metrics_timeseries',
  'set_budget_cap',
  'get_budget_status',
  'list_escrows',
  'list_intents',
  'get_payment_history',
  'get_claim_chains',
  'query_metrics',
  'get_metric_deltas',
  'list_webhooks',
]);

export interface EngineOptions {
  allowLoopbackWebhooks: boolean;
  deliverBusEvents: boolean;
}

export class Engine {
  readonly options: EngineOptions = { allowLoopbackWebhooks: false, deliverBusEvents: false };
  private readonly money: MoneyPaths;

  constructor(readonly world: World) {
    this.money = new MoneyPaths(world, toCents);
  }

  /** Resolves an API key to its caller (401 when missing, unknown, expired, or revoked past the grace). */
  authenticate(key: string | undefined, via: 'rest' | 'batch'): Caller {
    if (!key)
      throw new GatewayError(401, 'missing_key', 'No API key: send Authorization: Bearer <key> or X-API-Key');
    const rec = this.world.keys.get(sha3(key));
    const now = this.world.clock.now();
    const bad = via === 'rest' ? 'authentication_error' : 'invalid_key';
    if (!rec) throw new GatewayError(401, bad, 'Invalid API key');
    if (rec.expiresAt !== null && rec.expiresAt < now)
      throw new GatewayError(401, via === 'rest' ? bad : 'expired_key', 'API key expired');
    if (rec.revokedAt !== null && now - rec.revokedAt > 300_000)
      throw new GatewayError(401, bad, 'API key revoked');
    const admin = via === 'rest' && rec.scopes.includes('admin');
    return { key: rec, agentId: rec.agentId, tier: rec.tier, admin, scopes: rec.scopes };
  }

  /**
   * Runs one tool call, atomically (scenario agents and the synchronous paths). REST order: scope →
   * admin-only → tier → rate limit → balance ≥ fee → budget → validation → ownership → the tool. Batch
   * (the gateway's routes/batch.py): required params → ownership → admin-only → tier → the tool, whose
   * errors all come back as `execution_error`; no scope, budget or admin promotion.
   */
  dispatch(
    caller: Caller,
    tool: ToolName,
    params: Record<string, unknown>,
    ctx: DispatchContext,
  ): DispatchResult {
    const call = this.admit(caller, tool, params, ctx);
    return this.complete(
      call,
      this.toolPhase(call, () => this.run(caller, tool, call.p, ctx)),
    );
  }

  /**
   * dispatch for HTTP callers (REST and batch): the same checks, but cancel_escrow runs as the gateway's
   * refund does, not atomically. products/payments/src/engine.py `refund_escrow` reads the escrow, checks
   * it is held, awaits the deposit to the payer and only then updates the status, with no lock; two
   * concurrent cancels of one held escrow both pass the check and the payer is refunded twice.
   * `refundWindow` is that await (the sandbox's latency); sequential cancels still get 409 invalid_state.
   */
  async dispatchAsync(
    caller: Caller,
    tool: ToolName,
    params: Record<string, unknown>,
    ctx: DispatchContext,
    refundWindow: () => Promise<void>,
  ): Promise<DispatchResult> {
    const call = this.admit(caller, tool, params, ctx);
    if (tool !== 'cancel_escrow')
      return this.complete(
        call,
        this.toolPhase(call, () => this.run(caller, tool, call.p, ctx)),
      );
    let outcome: ToolOutcome;
    try {
      outcome = await this.cancelEscrow(caller, call.p, ctx, refundWindow);
    } catch (e) {
      throw this.toolError(call, e);
    }
    return this.complete(call, outcome);
  }

  private admit(
    caller: Caller,
    tool: ToolName,
    params: Record<string, unknown>,
    ctx: DispatchContext,
  ): Admitted {
    const spec: RouteSpec = ROUTES[tool];
    const headers: Record<string, string> = {};
    if (ctx.via === 'batch') {
      const p = checkRequired(spec, params);
      // Ownership before the admin-only check, and batch callers are never admin: an admin key asking
      // to freeze another agent's wallet gets `forbidden`, on its own wallet `admin_only`.
      this.checkOwnership(caller, tool, p, false);
      if (spec.adminOnly)
        throw new GatewayError(403, 'admin_only', `Tool '${tool}' requires admin privileges`);
      if (TIER_RANK[caller.tier] < TIER_RANK[spec.tier as Tier])
        throw new GatewayError(403, 'insufficient_tier', `Tier '${caller.tier}' cannot access '${tool}'`);
      return { caller, tool, spec, ctx, p, fee: feeFor(tool, p), headers };
    }
    if (!caller.admin && !caller.scopes.includes(requiredScope(tool)) && !caller.scopes.includes('admin')) {
      throw new GatewayError(
        403,
        'scope_violation',
        `Key scopes ${JSON.stringify(caller.scopes)} do not allow ${tool} (needs ${requiredScope(tool)})`,
      );
    }
    if (spec.adminOnly && !caller.admin) {
      throw new GatewayError(403, spec.adminCode ?? 'admin_only', `${tool} requires an admin-scoped key`);
    }
    if (!caller.admin && TIER_RANK[caller.tier] < TIER_RANK[spec.tier as Tier]) {
      throw new GatewayError(
        403,
        'insufficient_tier',
        `${tool} requires tier ${spec.tier}; key tier is ${caller.tier}`,
      );
    }
    if (ctx.via !== 'internal' || !caller.admin) this.rateLimit(caller, headers, true, !ctx.skipRateCheck);
    const fee = feeFor(tool, params);
    const wallet = this.world.wallets.get(caller.agentId);
    if (!caller.admin && fee > 0 && (!wallet || wallet.balance < fee))
      throw new GatewayError(402, 'insufficient_balance', `Balance below the fee of ${fmt(fee)}`);
    // deps/tool_context.py: a free call is checked against the caps too when its body carries a truthy
    // `amount` (withdraw, create_subscription…), so with spend already over a cap of 0 it is refused.
    if (!caller.admin && wallet && (fee > 0 || (spec.body.includes('amount') && pyTruthy(params.amount)))) {
      for (const [cap, window, label] of [
        [wallet.dailyCap, DAY, 'daily'],
        [wallet.monthlyCap, 30 * DAY, 'monthly'],
      ] as const) {
        if (cap !== null && this.world.spend(caller.agentId, window) + fee > cap) {
          throw new GatewayError(
            402,
            'budget_exceeded',
            `${label} budget cap ${fmt(cap)} would be exceeded by a fee of ${fmt(fee)}`,
          );
        }
      }
    }
    const p = validate(tool, spec, params);
    this.checkOwnership(caller, tool, p, true);
    return { caller, tool, spec, ctx, p, fee, headers };
  }

  private toolPhase(call: Admitted, fn: () => ToolOutcome): ToolOutcome {
    try {
      return fn();
    } catch (e) {
      throw this.toolError(call, e);
    }
  }

  /**
   * An error raised by the tool itself. Batch reports every one as `execution_error` with the message.
   * On REST, routes that do not catch product errors (ROUTES_WITHOUT_HANDLER) let them reach the app's
   * catch-all handler, which answers outside the correlation middleware: no X-Request-ID header.
   */
  private toolError(call: Admitted, e: unknown): unknown {
    if (!(e instanceof GatewayError)) return e;
    if (call.ctx.via === 'batch') {
      this.recordBatchCall(call);
      return new GatewayError(e.status, 'execution_error', e.detail);
    }
    if (ROUTES_WITHOUT_HANDLER.has(call.tool)) e.bare = true;
    return e;
  }

  private complete(call: Admitted, body: ToolOutcome): DispatchResult {
    const { caller, tool, fee, ctx, headers } = call;
    const charged = fee > 0 && body.charged ? fee : 0;
    if (ctx.via === 'batch') this.recordBatchCall(call, charged);
    else this.recordCall(caller, tool, charged, ctx);
    if (ctx.via !== 'batch') headers['x-charged'] = charged ? fmt(fee) : '0.00';
    return { status: call.spec.successStatus, body: body.result, headers };
  }

  /** Batch records a call (rate event and usage row) only once its tool has run, failed or not. */
  private recordBatchCall(call: Admitted, fee = 0): void {
    const list = this.world.calls.get(call.caller.agentId) ?? [];
    list.push(this.world.clock.now());
    this.world.calls.set(call.caller.agentId, list);
    this.recordCall(call.caller, call.tool, fee, call.ctx);
  }

  /**
   * X-RateLimit-* as the batch route sends them: the key's own tier (batch never promotes an admin),
   * the agent's calls in the last hour after the batch ran.
   */
  rateHeaders(caller: Caller): Record<string, string> {
    const now = this.world.clock.now();
    const count = (this.world.calls.get(caller.agentId) ?? []).filter((t) => t > now - HOUR).length;
    const lim = LIMITS[caller.tier].hour;
    return {
      'x-ratelimit-limit': String(lim),
      'x-ratelimit-remaining': String(Math.max(0, lim - count)),
      'x-ratelimit-reset': String(Math.ceil((HOUR - (now % HOUR)) / 1000)),
    };
  }

  private rateLimit(caller: Caller, headers: Record<string, string>, rest: boolean, check: boolean): void {
    const now = this.world.clock.now();
    const list = this.world.calls.get(caller.agentId) ?? [];
    while (list.length && list[0]! <= now - HOUR) list.shift();
    list.push(now);
    this.world.calls.set(caller.agentId, list);
    if (caller.admin || !check) return;
    const lim = LIMITS[caller.tier];
    let lastMinute = 0;
    for (let i = list.length - 1; i >= 0 && list[i]! > now - 60_000; i--) lastMinute++;
    if (list.length >= lim.hour && lastMinute >= Math.floor(lim.hour / 60) + lim.burst) {
      // The authenticated 429 carries no Retry-After and no rate headers.
      throw new GatewayError(429, 'rate_limit_exceeded', 'Rate limit exceeded; back off');
    }
    if (rest) {
      headers['x-ratelimit-limit'] = String(lim.hour);
      headers['x-ratelimit-remaining'] = String(Math.max(0, lim.hour - list.length));
      headers['x-ratelimit-reset'] = String(Math.ceil((HOUR - (now % HOUR)) / 1000));
    }
  }

  /**
   * GET /v1/billing/keys: the caller's own keys. The route is metered as `create_api_key` (its
   * require_tool anchor), so it needs the write scope, counts against the rate limit and carries the
   * X-RateLimit-* headers (into `headers`) for non-admin callers.
   */
  ownKeys(caller: Caller, headers: Record<string, string>): { keys: unknown[] } {
    if (!caller.admin && !caller.scopes.includes('write'))
      throw new GatewayError(
        403,
        'scope_violation',
        `Key scopes ${JSON.stringify(caller.scopes)} do not allow create_api_key (needs write)`,
      );
    this.rateLimit(caller, headers, true, true);
    const rows = [...this.world.keys.values()].filter((k) => k.agentId === caller.agentId);
    return {
      keys: rows.map((k) => ({
        key_hash_prefix: k.prefix,
        agent_id: k.agentId,
        tier: k.tier,
        scopes: k.scopes,
        created_at: k.createdAt / 1000,
        revoked: k.revokedAt !== null,
      })),
    };
  }

  /** Throws the authenticated 429 if the caller is over its limit now, without recording a call. */
  checkRate(caller: Caller): void {
    if (caller.admin) return;
    const now = this.world.clock.now();
    const list = (this.world.calls.get(caller.agentId) ?? []).filter((t) => t > now - HOUR);
    const lim = LIMITS[caller.tier];
    const lastMinute = list.filter((t) => t > now - 60_000).length;
    if (list.length + 1 >= lim.hour && lastMinute + 1 >= Math.floor(lim.hour / 60) + lim.burst) {
      throw new GatewayError(429, 'rate_limit_exceeded', 'Rate limit exceeded; back off');
    }
  }

  private recordCall(caller: Caller, tool: string, fee: number, ctx: DispatchContext): void {
    const dedupe = ctx.idempotencyKey ?? `${ctx.requestId}:${tool}`;
    if (this.world.usageKeys.has(dedupe)) return;
    this.world.usageKeys.add(dedupe);
    this.world.recordUsage({ agentId: caller.agentId, tool, cost: fee, at: this.world.clock.now(), dedupe });
    if (fee > 0) this.world.debit(caller.agentId, fee, 'charge', `gateway:${tool}`);
  }

  private checkOwnership(caller: Caller, tool: string, p: Record<string, unknown>, rest: boolean): void {
    if (caller.admin && rest) return;
    if (CROSS_AGENT_OK.has(tool)) return;
    for (const f of ['agent_id', 'payer', 'opener', 'sender', 'initiator']) {
      const v = p[f];
      if (typeof v === 'string' && v !== caller.agentId)
        throw new GatewayError(403, 'forbidden', `${f} must be the caller (${caller.agentId})`);
    }
  }

  // The tools

  private run(caller: Caller, tool: ToolName, p: Record<string, unknown>, ctx: DispatchContext): ToolOutcome {
    const out =
      this.billingTool(caller, tool, p, ctx) ??
      this.paymentsTool(caller, tool, p, ctx) ??
      this.money.run(
        { agentId: caller.agentId, asAdmin: caller.admin && ctx.via !== 'batch' },
        tool,
        p,
        ctx,
      ) ??
      this.infraTool(caller, tool, p, ctx) ??
      this.identityTool(caller, tool, p, ctx);
    if (!out) throw new GatewayError(501, 'not_implemented', `${tool} is not implemented by the sandbox`);
    return out;
  }

  /** Wallets, budgets, freezes, usage. */
  private billingTool(
    _caller: Caller,
    tool: ToolName,
    p: Record<string, unknown>,
    ctx: DispatchContext,
  ): ToolOutcome | undefined {
    const w = this.world;
    const now = w.clock.now();
    switch (tool) {
      case 'get_balance': {
        const wallet = this.wallet(String(p.agent_id));
        const currency = String(p.currency ?? 'CREDITS');
        // tools/billing.py `_get_balance` names the currency only when it is not CREDITS.
        return {
          result:
            currency === 'CREDITS'
              ? { balance: wallet.balance / 100 }
              : { balance: wallet.balance / 100, currency },
        };
      }
      case 'get_usage_summary':
      case 'get_service_analytics': {
        const since = typeof p.since === 'number' ? p.since * 1000 : 0;
        const rows = w.usage.filter((u) => u.agentId === p.agent_id && u.at >= since);
        const summary = {
          total_calls: rows.length,
          total_cost: rows.reduce((n, u) => n + u.cost, 0) / 100,
          total_tokens: 0,
        };
        return { result: tool === 'get_usage_summary' ? summary : { agent_id: p.agent_id, ...summary } };
      }
      case 'get_transactions': {
        this.wallet(String(p.agent_id));
        // Newest first, read from the end: a busy wallet holds tens of thousands of rows.
        const all = w.transactionsOf(String(p.agent_id));
        const offset = Math.max(0, num(p.offset, 0));
        const page: (typeof all)[number][] = [];
        for (let i = all.length - 1 - offset; i >= 0 && page.length < num(p.limit, 100); i--)
          page.push(all[i] as (typeof all)[number]);
        return {
          result: {
            transactions: page.map((t) => ({
              id: t.id,
              agent_id: t.agentId,
              amount: t.amount / 100,
              tx_type: t.txType,
              type: t.txType,
              description: t.description,
              currency: t.currency,
              created_at: t.createdAt / 1000,
              timestamp: t.createdAt / 1000,
              idempotency_key: t.idempotencyKey,
              result_snapshot: null,
            })),
          },
        };
      }
      case 'get_metrics_timeseries': {
        const interval = p.interval === 'day' ? DAY : HOUR;
        const since = typeof p.since === 'number' ? p.since * 1000 : now - interval * num(p.limit, 24);
        const buckets = new Map<number, { calls: number; cost: number }>();
        for (const u of w.usage) {
          if (u.agentId !== p.agent_id || u.at < since) continue;
          const b = Math.floor(u.at / interval) * interval;
          const cur = buckets.get(b) ?? { calls: 0, cost: 0 };
          cur.calls++;
          cur.cost += u.cost;
          buckets.set(b, cur);
        }
        const rows = [...buckets.entries()].sort((a, b) => a[0] - b[0]).slice(-num(p.limit, 24));
        // The gateway's bug, reproduced: tools/billing.py sums usage_records.cost, which is stored in atomic
        // units (1e8 per CREDIT), and never scales it back, so every bucket's cost is 1e8 times too large.
        return {
          result: {
            buckets: rows.map(([t, v]) => ({
              timestamp: t / 1000,
              calls: v.calls,
              cost: (v.cost / 100) * TIMESERIES_COST_SCALE,
            })),
          },
        };
      }
      case 'set_budget_cap': {
        const wallet = this.wallet(String(p.agent_id));
        // Batch ignores the `daily`/`monthly` aliases (both caps end up null); PUT replaces both caps.
        const daily = ctx.via === 'batch' ? p.daily_cap : (p.daily_cap ?? p.daily);
        const monthly = ctx.via === 'batch' ? p.monthly_cap : (p.monthly_cap ?? p.monthly);
        wallet.dailyCap = daily === undefined || daily === null ? null : toCents(daily);
        wallet.monthlyCap = monthly === undefined || monthly === null ? null : toCents(monthly);
        if (typeof p.alert_threshold === 'number') wallet.alertThreshold = p.alert_threshold;
        return {
          result: {
            agent_id: wallet.agentId,
            daily_cap: capOut(wallet.dailyCap),
            monthly_cap: capOut(wallet.monthlyCap),
            alert_threshold: wallet.alertThreshold,
          },
        };
      }
      case 'get_budget_status': {
        const wallet = this.wallet(String(p.agent_id));
        const daily = w.spend(wallet.agentId, DAY);
        const monthly = w.spend(wallet.agentId, 30 * DAY);
        // A cap of 0 is reported as "no cap" here, even though it blocks every fee-bearing call.
        const pct = (spend: number, cap: number | null) =>
          cap ? Math.round((spend / cap) * 10_000) / 100 : 0;
        const dailyPct = pct(daily, wallet.dailyCap);
        return {
          result: {
            agent_id: wallet.agentId,
            daily_spend: daily / 100,
            daily_cap: capOut(wallet.dailyCap),
            daily_pct: dailyPct,
            monthly_spend: monthly / 100,
            monthly_cap: capOut(wallet.monthlyCap),
            monthly_pct: pct(monthly, wallet.monthlyCap),
            alert_triggered: dailyPct >= wallet.alertThreshold * 100 && dailyPct > 0,
            cap_exceeded: Boolean(wallet.dailyCap && daily >= wallet.dailyCap),
          },
        };
      }
      case 'freeze_wallet':
      case 'unfreeze_wallet': {
        const wallet = w.wallets.get(String(p.agent_id));
        if (wallet) wallet.frozen = tool === 'freeze_wallet';
        return { result: { agent_id: p.agent_id, frozen: tool === 'freeze_wallet' } };
      }
    }
    return undefined;
  }

  /** Escrows, intents, payment history. */
  private paymentsTool(
    caller: Caller,
    tool: ToolName,
    p: Record<string, unknown>,
    ctx: DispatchContext,
  ): ToolOutcome | undefined {
    const w = this.world;
    const now = w.clock.now();
    const asAdmin = caller.admin && ctx.via !== 'batch';
    switch (tool) {
      case 'create_escrow':
        return this.createEscrow(caller, p, ctx);
      case 'get_escrow': {
        // tools/payments.py `_get_escrow` returns these 7 fields; the list returns the whole row.
        const e = this.escrow(String(p.escrow_id));
        return {
          result: {
            id: e.id,
            status: e.status,
            payer: e.payer,
            payee: e.payee,
            amount: decimalString(e.amount),
            description: e.description,
            created_at: e.createdAt / 1000,
          },
        };
      }
      case 'list_escrows': {
        const status = p.status as string | undefined;
        const rows: EscrowRec[] = [];
        const end = num(p.offset, 0) + num(p.limit, 50);
        // Stops at the page's end: a 1,000-agent fleet's pass would otherwise scan every escrow per call.
        for (let i = w.escrowOrder.length - 1; i >= 0 && rows.length < end; i--) {
          const e = w.escrowOrder[i]!;
          if ((e.payer === p.agent_id || e.payee === p.agent_id) && (!status || e.status === status))
            rows.push(e);
        }
        const page = rows.slice(num(p.offset, 0), end);
        return { result: { escrows: page.map(escrowView), count: page.length } };
      }
      case 'release_escrow': {
        const e = this.escrow(String(p.escrow_id));
        if (!asAdmin && caller.agentId !== e.payer && caller.agentId !== e.payee)
          throw new GatewayError(403, 'forbidden', 'Only the payer, the payee or an admin may release');
        if (e.status === 'settled' && ctx.idempotencyKey)
          return { result: { id: e.settlementId, status: 'settled', amount: decimalString(e.amount) } };
        if (e.status !== 'held')
          throw new GatewayError(409, 'invalid_state', `Escrow ${e.id} is ${e.status}, not held`);
        if (this.wallet(e.payee).frozen)
          throw new GatewayError(403, 'wallet_frozen', `Wallet ${e.payee} is frozen`);
        w.credit(e.payee, e.amount, 'deposit', `escrow_release:${e.id}`);
        e.status = 'settled';
        e.settlementId = `stl_${randomBytes(8).toString('hex')}`;
        e.updatedAt = now;
        return { result: { id: e.settlementId, status: 'settled', amount: decimalString(e.amount) } };
      }
      case 'cancel_escrow': {
        const begun = this.beginRefund(caller, p, ctx);
        return 'result' in begun ? begun : this.finishRefund(begun.escrow);
      }
      case 'process_due_subscriptions':
        return { result: this.processDue() };
      case 'get_payment_history': {
        // storage.py `get_payment_history`: intents, escrows and subscriptions together, newest first.
        const mine = (r: { payer: string; payee: string }) =>
          r.payer === p.agent_id || r.payee === p.agent_id;
        const rows = [
          ...w.intentOrder.filter(mine).map((r) => ({ type: 'intent', r })),
          ...w.escrowOrder.filter(mine).map((r) => ({ type: 'escrow', r })),
          ...w.subscriptionOrder.filter(mine).map((r) => ({ type: 'subscription', r })),
        ].sort((a, b) => b.r.createdAt - a.r.createdAt);
        const page = rows.slice(num(p.offset, 0), num(p.offset, 0) + num(p.limit, 100));
        return {
          result: {
            history: page.map(({ type, r }) => ({
              type,
              id: r.id,
              payer: r.payer,
              payee: r.payee,
              amount: decimalString(r.amount),
              status: r.status,
              description: r.description,
              created_at: r.createdAt / 1000,
            })),
          },
        };
      }
    }
    return undefined;
  }

  /** Event bus, webhooks, API keys. */
  private infraTool(
    caller: Caller,
    tool: ToolName,
    p: Record<string, unknown>,
    ctx: DispatchContext,
  ): ToolOutcome | undefined {
    const w = this.world;
    const now = w.clock.now();
    switch (tool) {
      case 'publish_event': {
        const ev = w.publish(String(p.event_type), String(p.source), p.payload ?? {});
        if (this.options.deliverBusEvents) this.deliverToWebhooks(ev);
        return { result: { event_id: ev.id } };
      }
      case 'get_events': {
        const since = num(p.since_id, 0);
        const rows = w.events
          .filter((e) => e.id > since && (!p.event_type || e.event_type === p.event_type))
          .slice(0, num(p.limit, 100));
        return { result: { events: rows } };
      }
      case 'register_webhook':
        return this.registerWebhook(caller, p);
      case 'list_webhooks':
        return {
          result: {
            webhooks: [...w.webhooks.values()]
              .filter((h) => h.agentId === caller.agentId && h.active)
              .map(webhookView),
          },
        };
      case 'delete_webhook': {
        const h = this.ownWebhook(caller, String(p.webhook_id));
        h.active = false;
        return { result: { deleted: true } };
      }
      case 'get_webhook_deliveries': {
        const h = this.ownWebhook(caller, String(p.webhook_id));
        const rows = w.deliveries
          .filter((d) => d.webhookId === h.id)
          .slice(num(p.offset, 0), num(p.offset, 0) + num(p.limit, 50));
        return {
          result: {
            deliveries: rows.map((d) => ({
              id: d.id,
              webhook_id: d.webhookId,
              event_type: d.eventType,
              payload: d.payload,
              status: d.status,
              attempts: d.attempts,
              last_attempt_at: d.lastAttemptAt === null ? null : d.lastAttemptAt / 1000,
              next_retry_at: null,
              response_code: d.responseCode,
              response_body: d.responseBody,
              created_at: d.createdAt / 1000,
            })),
          },
        };
      }
      case 'test_webhook':
        return { result: this.testWebhook(caller, String(p.webhook_id)) };
      case 'list_api_keys': {
        const rows = [...w.keys.values()].filter((k) => !p.agent_id || k.agentId === p.agent_id);
        return {
          result: {
            keys: rows.map((k) => ({
              key_hash_prefix: k.prefix,
              agent_id: k.agentId,
              owner: k.agentId,
              tier: k.tier,
              scopes: k.scopes,
              created_at: k.createdAt / 1000,
              revoked: k.revokedAt !== null,
            })),
          },
        };
      }
      case 'revoke_api_key': {
        // Searches only the caller's own keys, so another agent's key cannot be revoked over REST.
        const k = [...w.keys.values()].find(
          (x) => x.agentId === caller.agentId && x.prefix === p.key_hash_prefix && x.revokedAt === null,
        );
        if (k) k.revokedAt = now;
        return { result: { revoked: Boolean(k), key_hash_prefix: p.key_hash_prefix } };
      }
      case 'rotate_key': {
        if (ctx.rotateConfirmation !== 'confirm')
          throw new GatewayError(428, 'rotate_confirmation_required', 'Send X-Rotate-Confirmation: confirm');
        const old = w.keys.get(sha3(String(p.current_key)));
        if (!old || old.agentId !== caller.agentId)
          throw new GatewayError(403, 'forbidden', 'current_key is not a key of the caller');
        old.revokedAt = now;
        const fresh = w.issueKey(old.agentId, old.tier, ['read', 'write']);
        return {
          result: {
            new_key: fresh,
            tier: old.tier,
            agent_id: old.agentId,
            revoked: false,
            grace_period_seconds: 300,
            grace_expires_at: (now + 300_000) / 1000,
          },
        };
      }
      case 'get_global_audit_log':
        return { result: { entries: [] } };
    }
    return undefined;
  }

  /** Identity, claims, metrics, trust, marketplace, disputes. */
  private identityTool(
    caller: Caller,
    tool: ToolName,
    p: Record<string, unknown>,
    _ctx: DispatchContext,
  ): ToolOutcome | undefined {
    const w = this.world;
    const now = w.clock.now();
    switch (tool) {
      case 'register_agent':
        return this.registerAgent(p);
      case 'verify_agent': {
        const agent = w.agents.get(String(p.agent_id));
        if (!agent) throw new GatewayError(404, 'agent_not_found', `Agent ${String(p.agent_id)} not found`);
        return {
          result: { valid: verifySignature(agent.publicKey, String(p.message), String(p.signature)) },
        };
      }
      case 'submit_metrics':
        return this.submitMetrics(String(p.agent_id), p.metrics, String(p.data_source ?? 'self_reported'));
      case 'get_agent_identity': {
        const agent = w.agents.get(String(p.agent_id));
        if (!agent) throw new GatewayError(404, 'not_found', `Agent ${String(p.agent_id)} not found`);
        return {
          result: {
            agent_id: agent.id,
            public_key: agent.publicKey,
            created_at: agent.createdAt / 1000,
            org_id: agent.orgId,
            found: true,
          },
        };
      }
      case 'get_verified_claims': {
        const rows = w.claims.filter((c) => c.agentId === p.agent_id && c.validUntil > now);
        return {
          result: {
            claims: rows.map((c) => ({
              agent_id: c.agentId,
              metric_name: c.metricName,
              claim_type: c.claimType,
              bound_value: c.boundValue,
              valid_until: c.validUntil / 1000,
            })),
          },
        };
      }
      case 'get_agent_reputation': {
        // No reputation row (an unknown agent, or one whose key was made directly): ToolNotFoundError.
        const agent = w.agents.get(String(p.agent_id));
        if (!agent?.reputation)
          throw new GatewayError(
            404,
            'not_found',
            `Agent reputation not found: ${String(p.agent_id)}. Register identity first: POST /v1/identity/agents`,
          );
        return { result: { agent_id: agent.id, ...roundRep(agent.reputation), found: true } };
      }
      case 'build_claim_chain':
        return { result: this.buildChain(String(p.agent_id)) };
      case 'get_claim_chains': {
        const rows = w.chains
          .filter((c) => c.agentId === p.agent_id)
          .slice(-num(p.limit, 10))
          .reverse();
        return {
          result: {
            chains: rows.map((c) => ({
              id: c.id,
              agent_id: c.agentId,
              merkle_root: c.merkleRoot,
              leaf_hashes: JSON.stringify(c.leafHashes),
              chain_length: c.leafHashes.length,
              period_start: c.periodStart / 1000,
              period_end: c.periodEnd / 1000,
              created_at: c.createdAt / 1000,
            })),
          },
        };
      }
      case 'query_metrics': {
        const since = typeof p.since === 'number' ? p.since * 1000 : 0;
        const rows = w.metrics
          .filter((m) => m.agentId === p.agent_id && m.metricName === p.metric_name && m.timestamp >= since)
          .reverse()
          .slice(0, num(p.limit, 100));
        return {
          result: {
            data: rows.map((m) => ({
              id: m.id,
              agent_id: m.agentId,
              metric_name: m.metricName,
              value: m.value,
              window_days: 30,
              timestamp: m.timestamp / 1000,
              data_source: m.dataSource,
              commitment_hash: m.commitmentHash,
            })),
          },
        };
      }
      case 'get_metric_deltas': {
        const deltas: Record<string, unknown> = {};
        const names = new Set(
          w.metrics
            .filter((m) => m.agentId === p.agent_id && (!p.metric_name || m.metricName === p.metric_name))
            .map((m) => m.metricName),
        );
        for (const name of names) {
          const pts = w.metrics.filter((m) => m.agentId === p.agent_id && m.metricName === name);
          if (pts.length < 2) continue;
          const cur = pts[pts.length - 1]!.value;
          const prev = pts[pts.length - 2]!.value;
          deltas[name] = {
            current: cur,
            previous: prev,
            absolute_delta: cur - prev,
            relative_delta: prev === 0 ? null : ((cur - prev) / Math.abs(prev)) * 100,
          };
        }
        return { result: { deltas } };
      }
      case 'ingest_metrics':
        return {
          result: this.ingest(String(p.agent_id), p.metrics, String(p.data_source ?? 'self_reported')),
        };
      case 'get_trust_score':
        throw new GatewayError(
          404,
          'server_not_found',
          `MCP server ${String(p.server_id)} is not registered`,
        );
      case 'rate_service': {
        const rating = {
          service_id: String(p.service_id),
          agent_id: caller.agentId,
          rating: Number(p.rating),
          review: String(p.review ?? ''),
        };
        w.ratings.set(`${rating.service_id}:${rating.agent_id}`, rating);
        return { result: rating };
      }
      case 'open_dispute': {
        const e = this.escrow(String(p.escrow_id));
        if (e.status !== 'held')
          throw new GatewayError(
            409,
            'dispute_state_error',
            `Escrow ${e.id} is ${e.status}; disputes need a held escrow`,
          );
        const d = {
          id: `dsp_${randomBytes(8).toString('hex')}`,
          escrowId: e.id,
          opener: String(p.opener),
          status: 'open',
          reason: String(p.reason ?? ''),
          createdAt: now,
          deadlineAt: now + 7 * DAY,
        };
        w.disputes.set(d.id, d);
        return {
          result: {
            id: d.id,
            escrow_id: d.escrowId,
            opener: d.opener,
            status: d.status,
            reason: d.reason,
            created_at: now / 1000,
            deadline_at: d.deadlineAt / 1000,
          },
        };
      }
    }
    return undefined;
  }

  /**
   * The non-atomic cancel of HTTP callers: an await (the gateway's read of the escrow), the status check,
   * another await (the deposit), then the refund and the update. Concurrent cancels of one escrow that
   * check before the first update both refund; those that check after it get 409, as on the real gateway.
   */
  private async cancelEscrow(
    caller: Caller,
    p: Record<string, unknown>,
    ctx: DispatchContext,
    refundWindow: () => Promise<void>,
  ): Promise<ToolOutcome> {
    await refundWindow();
    const begun = this.beginRefund(caller, p, ctx);
    if ('result' in begun) return begun;
    await refundWindow();
    return this.finishRefund(begun.escrow);
  }

  /** refund_escrow's checks: payer or admin, an idempotent replay of a refunded escrow, held. */
  private beginRefund(
    caller: Caller,
    p: Record<string, unknown>,
    ctx: DispatchContext,
  ): ToolOutcome | { escrow: EscrowRec } {
    const e = this.escrow(String(p.escrow_id));
    const asAdmin = caller.admin && ctx.via !== 'batch';
    if (!asAdmin && caller.agentId !== e.payer)
      throw new GatewayError(403, 'forbidden', 'Only the payer or an admin may cancel');
    if (e.status === 'refunded' && ctx.idempotencyKey)
      return { result: { id: e.id, status: 'refunded', amount: decimalString(e.amount) } };
    if (e.status !== 'held')
      throw new GatewayError(
        409,
        'invalid_state',
        `Cannot refund escrow in state '${e.status}'; must be 'held'`,
      );
    return { escrow: e };
  }

  /** The deposit to the payer (which a freeze blocks: nothing changes), then the status update. */
  private finishRefund(e: EscrowRec): ToolOutcome {
    if (this.wallet(e.payer).frozen)
      throw new GatewayError(403, 'wallet_frozen', `Wallet ${e.payer} is frozen; the refund cannot be made`);
    this.world.credit(e.payer, e.amount, 'deposit', `escrow_refund:${e.id}`);
    e.status = 'refunded';
    e.updatedAt = this.world.clock.now();
    return { result: { id: e.id, status: 'refunded', amount: decimalString(e.amount) } };
  }

  private wallet(agentId: string) {
    const w = this.world.wallets.get(agentId);
    if (!w) throw new GatewayError(404, 'wallet_not_found', `Wallet ${agentId} not found`);
    return w;
  }

  private escrow(id: string): EscrowRec {
    const e = this.world.escrows.get(id);
    if (!e) throw new GatewayError(404, 'escrow_not_found', `Escrow ${id} not found`);
    return e;
  }

  private createEscrow(
    caller: Caller,
    p: Record<string, unknown>,
    ctx: DispatchContext,
  ): { result: unknown; charged: boolean } {
    const w = this.world;
    const key =
      ctx.idempotencyKey ??
      (ctx.via === 'batch' && typeof p.idempotency_key === 'string' ? p.idempotency_key : undefined);
    if (key && w.idempotentEscrows.has(key)) {
      // Keys are global and the body is not compared; the fee is charged again on a replay.
      const e = w.escrows.get(w.idempotentEscrows.get(key)!)!;
      return {
        result: { id: e.id, status: e.status, amount: decimalString(e.amount), currency: e.currency },
        charged: true,
      };
    }
    const payer = String(p.payer);
    const payee = String(p.payee);
    const amount = toCents(p.amount);
    // Reached through batch, which checks no types or bounds (REST stops these at 422 first).
    if (amount <= 0) throw new GatewayError(400, 'payment_error', 'Amount must be positive');
    if (payer === payee)
      throw new GatewayError(400, 'payment_error', 'Payer and payee must be different agents');
    const wallet = this.wallet(payer);
    if (!w.wallets.has(payee)) throw new GatewayError(404, 'wallet_not_found', `Wallet ${payee} not found`);
    if (wallet.frozen) throw new GatewayError(403, 'wallet_frozen', `Wallet ${payer} is frozen`);
    const fee = escrowFee(p.amount);
    if (wallet.balance < amount + (caller.agentId === payer ? fee : 0))
      throw new GatewayError(
        402,
        'insufficient_balance',
        `Balance ${fmt(wallet.balance)} is below ${fmt(amount)}`,
      );
    const now = w.clock.now();
    const e: EscrowRec = {
      id: randomBytes(16).toString('hex'),
      payer,
      payee,
      amount,
      currency: String(p.currency ?? 'CREDITS'),
      description: String(p.description ?? ''),
      status: 'held',
      createdAt: now,
      updatedAt: now,
      timeoutAt: now + num(p.timeout_hours, 72) * HOUR,
      settlementId: null,
      idempotencyKey: key ?? null,
      metadata: (p.metadata as Record<string, unknown>) ?? null,
    };
    // engine.py `create_escrow`: the hold names the parties, not the escrow.
    w.debit(payer, amount, 'withdrawal', `escrow_hold:${payer}->${e.payee}`);
    w.escrows.set(e.id, e);
    w.escrowOrder.push(e);
    if (key) w.idempotentEscrows.set(key, e.id);
    return {
      result: { id: e.id, status: 'held', amount: decimalString(amount), currency: e.currency },
      charged: true,
    };
  }

  /**
   * The gateway's scheduler pass (products/payments/src/scheduler.py `process_due`, run every 300 s and by
   * POST …/subscriptions/process-due): expired escrows first, then every due subscription of every agent.
   */
  processDue(): {
    processed: number;
    succeeded: number;
    failed: number;
    suspended: number;
    expired_escrows: number;
  } {
    const expired = this.expireEscrows();
    return { ...this.money.chargeDue(), expired_escrows: expired };
  }

  /** The scheduler: every 300 s, refund held escrows past `timeout_at` (not into a frozen wallet). */
  expireEscrows(): number {
    const now = this.world.clock.now();
    let n = 0;
    for (const e of this.world.escrowOrder) {
      if (e.status !== 'held' || e.timeoutAt > now) continue;
      const payer = this.world.wallets.get(e.payer);
      if (!payer || payer.frozen) continue;
      this.world.credit(e.payer, e.amount, 'deposit', `escrow_expired:${e.id}`);
      e.status = 'expired';
      e.updatedAt = now;
      n++;
    }
    return n;
  }

  private registerWebhook(caller: Caller, p: Record<string, unknown>): { result: unknown } {
    const url = String(p.url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new GatewayError(400, 'validation_error', 'url is not a valid URL');
    }
    const loopback = /^(127\.|localhost$|\[::1\]$)/.test(parsed.hostname);
    if (!(this.options.allowLoopbackWebhooks && loopback)) {
      if (parsed.protocol !== 'https:')
        throw new GatewayError(400, 'https_required', 'Webhook URLs must use https');
      if (loopback || /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(parsed.hostname))
        throw new GatewayError(400, 'validation_error', 'Webhook URL must be a public host');
    }
    const h = {
      id: `whk-${randomBytes(12).toString('hex')}`,
      agentId: caller.agentId,
      url,
      eventTypes: (p.event_types ?? p.events) as string[],
      secret: String(p.secret),
      filterAgentIds: (p.filter_agent_ids as string[] | undefined) ?? null,
      active: true,
      createdAt: this.world.clock.now(),
    };
    this.world.webhooks.set(h.id, h);
    return { result: webhookView(h) };
  }

  private ownWebhook(caller: Caller, id: string) {
    const h = this.world.webhooks.get(id);
    // Owner only: admins get no bypass here.
    if (!h?.active || h.agentId !== caller.agentId)
      throw new GatewayError(404, 'not_found', `Webhook ${id} not found`);
    return h;
  }

  private testWebhook(caller: Caller, id: string): unknown {
    const h = this.ownWebhook(caller, id);
    const body = pyJson({
      type: 'test.ping',
      webhook_id: h.id,
      timestamp: this.world.clock.now() / 1000,
      message: 'Test ping from A2A gateway',
    });
    const d = this.deliver(h, 'test.ping', body);
    return { delivery_id: d.id, status: d.status, response_code: d.responseCode };
  }

  private deliverToWebhooks(ev: { event_type: string; payload: unknown; source: string; id: number }): void {
    const payload = (ev.payload ?? {}) as Record<string, unknown>;
    const named = ['agent_id', 'payer', 'payee', 'sender', 'recipient']
      .map((f) => payload[f])
      .filter((v): v is string => typeof v === 'string');
    for (const h of this.world.webhooks.values()) {
      if (!h.active || !(h.eventTypes.includes(ev.event_type) || h.eventTypes.includes('*'))) continue;
      if (h.filterAgentIds && named.length && !named.some((a) => h.filterAgentIds!.includes(a))) continue;
      this.deliver(h, ev.event_type, pyJson(ev));
    }
  }

  /** Sends one delivery (fire and forget; the record is updated when the POST settles). */
  private deliver(h: { id: string; url: string; secret: string }, eventType: string, body: string) {
    const d = {
      id: this.world.deliveries.length + 1,
      webhookId: h.id,
      eventType,
      payload: body,
      status: 'pending' as 'pending' | 'delivered' | 'failed',
      attempts: 1,
      lastAttemptAt: this.world.clock.now(),
      responseCode: null as number | null,
      responseBody: null as string | null,
      createdAt: this.world.clock.now(),
    };
    this.world.deliveries.push(d);
    const signature = createHmac('sha256', Buffer.from(h.secret, 'utf8')).update(body, 'utf8').digest('hex');
    fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-a2a-signature': signature },
      body,
      signal: AbortSignal.timeout(10_000),
    })
      .then(async (r) => {
        d.responseCode = r.status;
        d.responseBody = (await r.text()).slice(0, 500);
        d.status = r.ok ? 'delivered' : 'failed';
      })
      .catch(() => {
        // The gateway's retry loop is never scheduled: a failed first try stays pending.
      });
    return d;
  }

  private registerAgent(p: Record<string, unknown>): { result: unknown } {
    const id = String(p.agent_id);
    const key = p.public_key === undefined ? undefined : String(p.public_key);
    if (key !== undefined && !/^[0-9a-fA-F]{64}$/.test(key))
      throw new GatewayError(400, 'validation_error', 'public_key must be 64 hex characters (raw Ed25519)');
    let agent = this.world.agents.get(id);
    if (!agent) agent = this.world.addAgent(id, { withKeyPair: key === undefined });
    // With no key or the same key it is a no-op; a different key overwrites the stored one.
    if (key !== undefined && key.toLowerCase() !== agent.publicKey) {
      agent.publicKey = key.toLowerCase();
      agent.privateKey = null;
    }
    return {
      result: { agent_id: agent.id, public_key: agent.publicKey, created_at: agent.createdAt / 1000 },
    };
  }

  private submitMetrics(agentId: string, metrics: unknown, dataSource: string): { result: unknown } {
    const entries = Object.entries((metrics ?? {}) as Record<string, unknown>);
    const now = this.world.clock.now();
    const hashes: string[] = [];
    for (const [name, value] of entries) {
      if (!METRIC_NAMES.has(name) || typeof value !== 'number')
        throw new GatewayError(400, 'invalid_metric', `Unknown metric or non-numeric value: ${name}`);
      this.world.claims.push({
        agentId,
        metricName: name,
        claimType: name.includes('latency') || name === 'error_rate' || name === 'loss' ? 'lte' : 'gte',
        boundValue: value,
        validUntil: now + 7 * DAY,
        createdAt: now,
      });
      hashes.push(sha3(`${agentId}:${name}:${value}:${now}`));
    }
    return {
      result: {
        agent_id: agentId,
        commitment_hashes: hashes,
        verified_at: now / 1000,
        valid_until: (now + 7 * DAY) / 1000,
        data_source: dataSource,
        signature: randomBytes(32).toString('hex'),
      },
    };
  }

  ingest(agentId: string, metrics: unknown, dataSource: string): { accepted: number; rejected: number } {
    let accepted = 0;
    let rejected = 0;
    const now = this.world.clock.now();
    for (const [name, value] of Object.entries((metrics ?? {}) as Record<string, unknown>)) {
      if (!METRIC_NAMES.has(name) || typeof value !== 'number' || !Number.isFinite(value)) {
        rejected++;
        continue;
      }
      this.world.metrics.push({
        id: this.world.metrics.length + 1,
        agentId,
        metricName: name,
        value,
        timestamp: now,
        dataSource,
        commitmentHash: sha3(`${agentId}${name}${value}${now}`),
      });
      accepted++;
    }
    return { accepted, rejected };
  }

  buildChain(agentId: string): unknown {
    const now = this.world.clock.now();
    const since = this.world.chains.filter((c) => c.agentId === agentId).at(-1)?.periodEnd ?? 0;
    const leaves = [
      ...this.world.claims
        .filter((c) => c.agentId === agentId && c.createdAt > since)
        .map((c) => sha3(`${c.metricName}:${c.claimType}:${c.boundValue}:${c.createdAt}`)),
      ...this.world.metrics
        .filter((m) => m.agentId === agentId && m.timestamp > since)
        .map((m) => m.commitmentHash),
    ];
    let level = leaves.length ? leaves : [sha3(`${agentId}:empty:${now}`)];
    while (level.length > 1) {
      const next: string[] = [];
      for (let i = 0; i < level.length; i += 2) next.push(sha3(`${level[i]}${level[i + 1] ?? level[i]}`));
      level = next;
    }
    const chain = {
      id: this.world.chains.length + 1,
      agentId,
      merkleRoot: level[0]!,
      leafHashes: leaves,
      periodStart: since || now - DAY,
      periodEnd: now,
      createdAt: now,
    };
    this.world.chains.push(chain);
    return {
      merkle_root: chain.merkleRoot,
      leaf_count: leaves.length,
      period_start: chain.periodStart / 1000,
      period_end: chain.periodEnd / 1000,
      chain_id: chain.id,
    };
  }
}

/** The gateway fee a call is charged: the percentage-priced tools (pricing.json); every other tool is free. */
function feeFor(tool: ToolName, p: Record<string, unknown>): number {
  if (tool === 'create_escrow') return escrowFee(p.amount);
  if (tool !== 'create_intent' && tool !== 'create_split_intent') return 0;
  try {
    return intentFee(toCents(p.amount));
  } catch {
    return 0;
  }
}

/** create_escrow's fee: 1.5 %, at least 0.01, at most 10 CREDITS. */
export function escrowFee(amount: unknown): number {
  let cents: number;
  try {
    cents = toCents(amount);
  } catch {
    return 0;
  }
  if (cents <= 0) return 0;
  return Math.min(1_000, Math.max(1, Math.round(cents * 0.015)));
}

/** A decimal amount as written: sign, whole digits and fraction digits; null when it is not one. */
function decimalParts(v: unknown): { negative: boolean; whole: string; fraction: string } | null {
  if (typeof v !== 'number' && typeof v !== 'string') return null;
  const m = /^(-)?(\d+)(?:\.(\d+))?$/.exec(String(v).trim());
  return m ? { negative: Boolean(m[1]), whole: m[2]!, fraction: m[3] ?? '' } : null;
}

function toCents(v: unknown): number {
  const s = typeof v === 'number' ? String(v) : String(v);
  const m = /^(-)?(\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (!m) throw new GatewayError(422, 'validation_error', 'body.amount: Input should be a valid decimal');
  const frac = (m[3] ?? '').replace(/0+$/, '');
  if (frac.length > 2)
    throw new GatewayError(422, 'validation_error', 'amounts have at most 2 decimals in CREDITS');
  const cents = Number(m[2]) * 100 + Number(frac.padEnd(2, '0'));
  return m[1] ? -cents : cents;
}

/** get_metrics_timeseries reports cost in the billing store's atomic units (1e8 per CREDIT): the gateway bug. */
export const TIMESERIES_COST_SCALE = 100_000_000;

const fmt = (cents: number) => (cents / 100).toFixed(2);
/** Python truthiness of a JSON value: "0" is truthy, 0 and "" are not. */
const pyTruthy = (v: unknown) => v !== undefined && v !== null && v !== 0 && v !== '' && v !== false;
const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const capOut = (c: number | null) => (c === null ? null : c / 100);
function roundRep(r: Record<string, number>) {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 10_000) / 10_000]));
}

function escrowView(e: EscrowRec) {
  return {
    id: e.id,
    payer: e.payer,
    payee: e.payee,
    amount: decimalString(e.amount),
    description: e.description,
    idempotency_key: e.idempotencyKey,
    status: e.status,
    settlement_id: e.settlementId,
    timeout_at: e.timeoutAt / 1000,
    created_at: e.createdAt / 1000,
    updated_at: e.updatedAt / 1000,
    metadata: e.metadata,
  };
}

function webhookView(h: {
  id: string;
  agentId: string;
  url: string;
  eventTypes: string[];
  secret: string;
  createdAt: number;
  active: boolean;
  filterAgentIds: string[] | null;
}) {
  return {
    id: h.id,
    agent_id: h.agentId,
    url: h.url,
    event_types: h.eventTypes,
    secret: h.secret,
    created_at: h.createdAt / 1000,
    active: h.active ? 1 : 0,
    filter_agent_ids: h.filterAgentIds,
  };
}

const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

function verifySignature(publicKeyHex: string | null, message: string, signatureHex: string): boolean {
  if (!publicKeyHex || !/^[0-9a-f]{64}$/i.test(publicKeyHex) || !/^[0-9a-f]{128}$/i.test(signatureHex))
    return false;
  try {
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI, Buffer.from(publicKeyHex, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    return verify(null, Buffer.from(message, 'utf8'), key, Buffer.from(signatureHex, 'hex'));
  } catch {
    return false;
  }
}

/** Batch checks only that required params are present (not their types). */
function checkRequired(spec: RouteSpec, p: Record<string, unknown>): Record<string, unknown> {
  for (const r of [...spec.pathParams, ...(spec.requiredQuery ?? []), ...(spec.requiredBody ?? [])]) {
    if (p[r] === undefined) throw new GatewayError(400, 'missing_parameter', `missing parameter: ${r}`);
  }
  return p;
}

/** The REST request model: unknown fields are a 422, types and money rules are checked. */
function validate(tool: ToolName, spec: RouteSpec, params: Record<string, unknown>): Record<string, unknown> {
  const types = FIELDS[tool] ?? {};
  const allowed = new Set([
    ...spec.pathParams,
    ...spec.query,
    ...spec.body,
    ...Object.keys(spec.bodyAliases ?? {}),
  ]);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (!allowed.has(k))
      throw new GatewayError(422, 'validation_error', `body.${k}: Extra inputs are not permitted`);
    const t = types[k];
    out[k] = t ? coerce(k, v, t, spec.query.includes(k)) : v;
  }
  for (const r of spec.requiredQuery ?? []) {
    if (out[r] === undefined) throw new GatewayError(422, 'validation_error', `query.${r}: Field required`);
  }
  for (const r of [...spec.pathParams, ...(spec.requiredBody ?? [])]) {
    if (out[r] === undefined) throw new GatewayError(422, 'validation_error', `body.${r}: Field required`);
  }
  for (const f of ['agent_id', 'payer', 'payee', 'opener']) {
    if (typeof out[f] === 'string' && !AGENT_ID.test(out[f] as string))
      throw new GatewayError(422, 'validation_error', `${f}: must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`);
  }
  if (out.amount !== undefined) {
    // pydantic's Field(gt=0, le=1_000_000_000, decimal_places=8) on the request model, then its model
    // validator: CREDITS allow 2 decimal places, counted as written ("1.100" has 3).
    const d = decimalParts(out.amount);
    if (!d) throw new GatewayError(422, 'validation_error', 'body.amount: Input should be a valid decimal');
    const value = Number(`${d.negative ? '-' : ''}${d.whole}.${d.fraction || '0'}`);
    if (!(value > 0))
      throw new GatewayError(422, 'validation_error', 'body.amount: Input should be greater than 0');
    if (value > 1_000_000_000)
      throw new GatewayError(
        422,
        'validation_error',
        'body.amount: Input should be less than or equal to 1000000000',
      );
    if (d.fraction.length > 8)
      throw new GatewayError(
        422,
        'validation_error',
        'body.amount: Decimal input should have no more than 8 decimal places',
      );
    if (String(out.currency ?? 'CREDITS') === 'CREDITS' && d.fraction.length > 2)
      throw new GatewayError(
        422,
        'validation_error',
        `body: Value error, CREDITS amounts allow at most 2 decimal places, got ${d.fraction.length}`,
      );
  }
  if (out.currency !== undefined && !CURRENCIES.has(String(out.currency)))
    throw new GatewayError(
      422,
      'unsupported_currency',
      `currency must be one of ${[...CURRENCIES].join(', ')}`,
    );
  if (out.timeout_hours !== undefined && (out.timeout_hours as number) <= 0)
    throw new GatewayError(400, 'payment_error', 'timeout_hours must be > 0');
  if (
    tool === 'list_escrows' &&
    out.limit !== undefined &&
    ((out.limit as number) < 1 || (out.limit as number) > 1000)
  )
    throw new GatewayError(422, 'validation_error', 'limit: must be between 1 and 1000');
  if (tool === 'rate_service' && ((out.rating as number) < 1 || (out.rating as number) > 5))
    throw new GatewayError(422, 'validation_error', 'rating: must be an integer from 1 to 5');
  return out;
}

function coerce(k: string, v: unknown, t: FieldType, fromQuery: boolean): unknown {
  const bad = (what: string) =>
    new GatewayError(422, 'validation_error', `${fromQuery ? 'query' : 'body'}.${k}: ${what}`);
  if (fromQuery && typeof v === 'string') {
    if (t === 'int' || t === 'number') {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n) || (t === 'int' && !Number.isInteger(n)))
        throw bad(`Input should be a valid ${t === 'int' ? 'integer' : 'number'}`);
      return n;
    }
    if (t === 'bool') return v === 'true' || v === '1';
    return v;
  }
  switch (t) {
    case 'string':
      if (typeof v !== 'string') throw bad('Input should be a valid string');
      return v;
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad('Input should be a valid integer');
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw bad('Input should be a valid number');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw bad('Input should be a valid boolean');
      return v;
    case 'object':
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('Input should be a valid dictionary');
      return v;
    case 'array':
      if (!Array.isArray(v)) throw bad('Input should be a valid list');
      return v;
    case 'decimal':
    case 'nullable_decimal':
      if (v === null && t === 'nullable_decimal') return null;
      if (!decimalParts(v)) throw bad('Input should be a valid decimal');
      return v;
  }
}
