/**
 * The gateway's money paths beyond escrows: payment intents (create, split, capture, partial capture,
 * refund), subscriptions (create, cancel, reactivate, charge when due) and wallet withdraw/convert, as
 * gateway/src/tools/payments.py, products/payments/src/engine.py and products/billing/src/wallet.py
 * (commit ec0b30f) run them, quirks included:
 * - refunding a settled intent moves the money back and answers `refunded`, but the stored status stays
 *   `settled`, so the same intent can be refunded again and again (and the create fee is credited back
 *   each time);
 * - a cancelled subscription is final: reactivate accepts only `suspended`;
 * - cancel, reactivate and get of a subscription check no party at all;
 * - money moves in steps without a transaction: a split or partial capture into a frozen or missing payee
 *   wallet, a refund into a frozen payer, or a due charge into a frozen payee fails after the first leg,
 *   and that money is gone;
 * - a freeze blocks every leg that touches the frozen wallet (wallet.withdraw/deposit), never creating an
 *   intent or subscription, voiding a pending intent, or cancelling a subscription.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from './gateway-error.js';
import {
  decimalString,
  type IntentRec,
  type SubscriptionInterval,
  type SubscriptionRec,
  type WalletRec,
  type World,
} from './world.js';

export interface MoneyCaller {
  agentId: string;
  /** Admin on REST (batch callers are never admin): skips the party checks. */
  asAdmin: boolean;
}

export interface MoneyContext {
  idempotencyKey?: string | undefined;
}

export type MoneyOutcome = { result: unknown; charged?: boolean };

const INTERVAL_MS: Record<SubscriptionInterval, number> = {
  hourly: 3_600_000,
  daily: 86_400_000,
  weekly: 604_800_000,
  monthly: 2_592_000_000,
};

/** Default exchange rates to CREDITS (products/billing/src/exchange.py `_DEFAULT_RATES`). */
const TO_CREDITS: Record<string, number> = {
  CREDITS: 1,
  USD: 100,
  EUR: 110,
  GBP: 125,
  BTC: 6_000_000,
  ETH: 400_000,
};

/** Holdings outside CREDITS are kept in 1e-8 units (BTC's precision). */
const UNIT = 100_000_000;

/** create_intent and create_split_intent fee: 2 %, at least 0.01, at most 5.00 CREDITS (pricing.json). */
export function intentFee(cents: number): number {
  if (!(cents > 0)) return 0;
  return Math.min(500, Math.max(1, Math.round(cents * 0.02)));
}

/** Refund's fee_policy object (tools/payments.py `_REFUND_FEE_POLICY`). */
const FEE_POLICY = {
  name: 'refund_full_amount',
  adr: 'ADR-012',
  url: 'https://docs.greenhelix.net/adr/012-refund-fee-policy',
  summary:
    'Full refunds return the customer whole: the 2% gateway fee is reversed alongside the principal. Supersedes ADR-011.',
  supersedes: 'ADR-011',
};

const fmt = (cents: number) => (cents / 100).toFixed(2);
const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
/** Python's str(float) for the values these routes produce: 100 → "100.0". */
const pyFloat = (n: number) => (Number.isInteger(n) ? `${n}.0` : String(n));

export class MoneyPaths {
  constructor(
    private readonly world: World,
    private readonly toCents: (v: unknown) => number,
  ) {}

  /** Runs one of this module's tools, or returns undefined when `tool` is not one of them. */
  run(
    caller: MoneyCaller,
    tool: string,
    p: Record<string, unknown>,
    ctx: MoneyContext,
  ): MoneyOutcome | undefined {
    switch (tool) {
      case 'create_intent':
        return this.createIntent(caller, p, ctx);
      case 'get_intent': {
        const i = this.intent(String(p.intent_id));
        return {
          result: {
            id: i.id,
            status: i.status,
            payer: i.payer,
            payee: i.payee,
            amount: decimalString(i.amount),
            description: i.description,
            created_at: i.createdAt / 1000,
            gateway_fee: fmt(intentFee(i.amount)),
          },
        };
      }
      case 'list_intents': {
        const rows = this.page(this.world.intentOrder, p, 50);
        return { result: { intents: rows.map(intentView), count: rows.length } };
      }
      case 'capture_intent':
        return this.capture(caller, String(p.intent_id));
      case 'partial_capture':
        return this.partialCapture(caller, String(p.intent_id), this.toCents(p.amount));
      case 'refund_intent':
        return this.refund(caller, String(p.intent_id), ctx);
      case 'create_split_intent':
        return this.split(p);
      case 'create_subscription':
        return this.createSubscription(p);
      case 'list_subscriptions': {
        const rows = this.page(this.world.subscriptionOrder, p, 100);
        return { result: { subscriptions: rows.map(subscriptionView) } };
      }
      case 'get_subscription': {
        const s = this.subscription(String(p.subscription_id));
        return {
          result: {
            id: s.id,
            payer: s.payer,
            payee: s.payee,
            amount: decimalString(s.amount),
            interval: s.interval,
            status: s.status,
            next_charge_at: s.nextChargeAt / 1000,
            charge_count: s.chargeCount,
            created_at: s.createdAt / 1000,
          },
        };
      }
      case 'cancel_subscription': {
        const s = this.subscription(String(p.subscription_id));
        if (s.status !== 'active' && s.status !== 'suspended')
          throw new GatewayError(
            409,
            'invalid_state',
            `Cannot cancel subscription in state '${s.status}'; must be 'active' or 'suspended'`,
          );
        s.status = 'cancelled';
        s.updatedAt = this.world.clock.now();
        return { result: { id: s.id, status: s.status } };
      }
      case 'reactivate_subscription': {
        const s = this.subscription(String(p.subscription_id));
        if (s.status === 'active' && ctx.idempotencyKey) return { result: { id: s.id, status: s.status } };
        if (s.status !== 'suspended')
          throw new GatewayError(
            409,
            'invalid_state',
            `Cannot reactivate subscription in state '${s.status}'; must be 'suspended'`,
          );
        s.status = 'active';
        s.updatedAt = this.world.clock.now();
        return { result: { id: s.id, status: s.status } };
      }
      case 'withdraw':
        return this.withdraw(p);
      case 'convert_currency':
        return this.convert(p);
    }
    return undefined;
  }

  /**
   * The scheduler's subscription pass (products/payments/src/scheduler.py `process_due`): each active
   * subscription whose next charge is due is charged once. Insufficient balance suspends it; any other
   * failure (a frozen or missing wallet) counts as failed and leaves it due.
   */
  chargeDue(): { processed: number; succeeded: number; failed: number; suspended: number } {
    const w = this.world;
    const now = w.clock.now();
    const out = { processed: 0, succeeded: 0, failed: 0, suspended: 0 };
    for (const s of w.subscriptionOrder) {
      if (s.status !== 'active' || s.nextChargeAt > now || s.metadata.type === 'plan_subscription') continue;
      out.processed++;
      const payer = w.wallets.get(s.payer);
      if (!payer || payer.frozen) {
        out.failed++;
        continue;
      }
      if (payer.balance < s.amount) {
        s.status = 'suspended';
        s.updatedAt = now;
        out.suspended++;
        continue;
      }
      w.debit(s.payer, s.amount, 'withdrawal', `subscription:${s.id}`);
      const payee = w.wallets.get(s.payee);
      // The withdrawal is not undone: the payer has paid and the subscription stays due.
      if (!payee || payee.frozen) {
        out.failed++;
        continue;
      }
      w.credit(s.payee, s.amount, 'deposit', `subscription:${s.id}`);
      s.lastChargedAt = now;
      s.chargeCount++;
      s.nextChargeAt = now + INTERVAL_MS[s.interval];
      s.updatedAt = now;
      out.succeeded++;
    }
    return out;
  }

  private createIntent(caller: MoneyCaller, p: Record<string, unknown>, ctx: MoneyContext): MoneyOutcome {
    const w = this.world;
    // deps/idempotency.py: the route's per-agent gate on the Idempotency-Key header. The same body replays
    // the cached response (the tool does not run, so no fee); another body is a 409.
    const gateKey = ctx.idempotencyKey ? `${caller.agentId}\u0000${ctx.idempotencyKey}` : undefined;
    const bodyHash = JSON.stringify(Object.entries(p).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (gateKey) {
      const seen = w.intentKeys.get(gateKey);
      if (seen && seen.bodyHash !== bodyHash)
        throw new GatewayError(
          409,
          'idempotency_key_reused',
          'Idempotency-Key was already used with a different request body',
        );
      if (seen) return { result: seen.response, charged: false };
    }
    const payer = String(p.payer);
    const payee = String(p.payee);
    const amount = this.toCents(p.amount);
    if (amount <= 0) throw new GatewayError(400, 'payment_error', 'Amount must be positive');
    if (payer === payee)
      throw new GatewayError(400, 'payment_error', 'Payer and payee must be different agents');
    const currency = String(p.currency ?? 'CREDITS');
    const engineKey =
      typeof p.idempotency_key === 'string' ? p.idempotency_key : (ctx.idempotencyKey ?? null);
    const existing = engineKey ? w.intentOrder.find((i) => i.idempotencyKey === engineKey) : undefined;
    const now = w.clock.now();
    const intent: IntentRec = existing ?? {
      id: randomBytes(16).toString('hex'),
      payer,
      payee,
      amount,
      currency,
      description: String(p.description ?? ''),
      status: 'pending',
      settlementId: null,
      idempotencyKey: engineKey,
      createdAt: now,
      updatedAt: now,
      metadata: { ...((p.metadata as Record<string, unknown> | undefined) ?? {}), currency },
    };
    if (!existing) {
      w.intents.set(intent.id, intent);
      w.intentOrder.push(intent);
    }
    const result = {
      id: intent.id,
      status: intent.status,
      amount: decimalString(intent.amount),
      currency,
      gateway_fee: fmt(intentFee(amount)),
    };
    if (gateKey) w.intentKeys.set(gateKey, { bodyHash, response: result });
    return { result, charged: true };
  }

  private capture(caller: MoneyCaller, id: string): MoneyOutcome {
    const w = this.world;
    const i = this.intent(id);
    this.payerOnly(caller, i);
    this.pending(i, 'capture');
    const payer = this.wallet(i.payer);
    this.canWithdraw(payer, i.amount);
    w.debit(i.payer, i.amount, 'withdrawal', `payment:${i.id}`);
    const payee = w.wallets.get(i.payee);
    if (!payee || payee.frozen) {
      // engine.py `capture` compensates: the payer is credited back and the intent is pending again.
      w.credit(i.payer, i.amount, 'reversal', `payment:${i.id}:reversal`);
      throw payee
        ? new GatewayError(403, 'wallet_frozen', `Wallet is frozen for agent ${i.payee}`)
        : new GatewayError(404, 'wallet_not_found', `Wallet not found for agent ${i.payee}`);
    }
    w.credit(i.payee, i.amount, 'deposit', `payment:${i.id}`);
    i.status = 'settled';
    i.settlementId = randomBytes(16).toString('hex');
    i.updatedAt = w.clock.now();
    return { result: { id: i.settlementId, status: 'settled', amount: decimalString(i.amount) } };
  }

  private partialCapture(caller: MoneyCaller, id: string, cents: number): MoneyOutcome {
    const w = this.world;
    const i = this.intent(id);
    this.payerOnly(caller, i);
    this.pending(i, 'capture');
    if (cents <= 0) throw new GatewayError(400, 'payment_error', 'Amount must be positive');
    if (cents > i.amount)
      throw new GatewayError(
        400,
        'payment_error',
        `Capture amount ${cents / 100} exceeds intent amount ${i.amount / 100}`,
      );
    this.canWithdraw(this.wallet(i.payer), cents);
    w.debit(i.payer, cents, 'withdrawal', `partial_capture:${i.id}`);
    // No compensation here (engine.py `partial_capture`): a payee that cannot be paid loses the payer's money.
    this.canDeposit(i.payee);
    w.credit(i.payee, cents, 'deposit', `partial_capture:${i.id}`);
    const settlementId = randomBytes(16).toString('hex');
    const remaining = i.amount - cents;
    if (remaining <= 0) {
      i.status = 'settled';
      i.settlementId = settlementId;
    } else {
      i.amount = remaining;
    }
    i.updatedAt = w.clock.now();
    return {
      result: {
        id: settlementId,
        status: 'settled',
        amount: decimalString(cents),
        remaining_amount: remaining / 100,
      },
    };
  }

  private refund(caller: MoneyCaller, id: string, ctx: MoneyContext): MoneyOutcome {
    const w = this.world;
    const i = this.intent(id);
    if (!caller.asAdmin && caller.agentId !== i.payer && caller.agentId !== i.payee)
      throw new GatewayError(403, 'forbidden', 'Forbidden: you do not have access to this resource');
    const fee = intentFee(i.amount);
    const shape = (status: string) => ({
      id: i.id,
      status,
      amount: decimalString(i.amount),
      gateway_fee: fmt(fee),
      fee_refunded: true,
      fee_retained: '0.00',
      fee_policy: { ...FEE_POLICY },
    });
    // The create fee goes back to the payer; a failure (a frozen or missing wallet) is only logged there.
    const creditFeeBack = () => {
      const payer = w.wallets.get(i.payer);
      if (fee > 0 && payer && !payer.frozen) w.credit(i.payer, fee, 'deposit', `refund-fee:${i.id}`);
    };
    if (i.status === 'pending') {
      i.status = 'voided';
      i.updatedAt = w.clock.now();
      creditFeeBack();
      return { result: shape('voided') };
    }
    if (i.status === 'voided' && ctx.idempotencyKey) return { result: shape('voided') };
    if (i.status === 'settled') {
      this.canWithdraw(this.wallet(i.payee), i.amount);
      w.debit(i.payee, i.amount, 'withdrawal', `refund:${i.id}`);
      // Not undone when the payer cannot be credited; and the status is never updated (the quirk).
      this.canDeposit(i.payer);
      w.credit(i.payer, i.amount, 'deposit', `refund:${i.id}`);
      creditFeeBack();
      return { result: shape('refunded') };
    }
    throw new GatewayError(409, 'invalid_state', `Cannot refund intent in state '${i.status}'`);
  }

  private split(p: Record<string, unknown>): MoneyOutcome {
    const w = this.world;
    const payer = String(p.payer);
    const cents = this.toCents(p.amount);
    const splits = (Array.isArray(p.splits) ? p.splits : []) as { payee?: unknown; percentage?: unknown }[];
    const total = splits.reduce((n, s) => n + num(s.percentage, 0), 0);
    if (Math.abs(total - 100) > 0.01)
      throw new GatewayError(
        400,
        'validation_error',
        `Split percentages must sum to 100, got ${pyFloat(total)}`,
      );
    const currency = String(p.currency ?? 'CREDITS');
    this.canWithdraw(this.wallet(payer), cents);
    w.debit(payer, cents, 'withdrawal', `split:${String(p.description ?? '')}`);
    const settlements: { payee: string; amount: number; percentage: number }[] = [];
    for (const s of splits) {
      const payee = String(s.payee);
      const share = Math.round((cents * num(s.percentage, 0)) / 100);
      // Each deposit on its own: a payee that cannot be paid stops the split after the payer has paid.
      this.canDeposit(payee);
      w.credit(payee, share, 'deposit', `split_from:${payer}`);
      settlements.push({ payee, amount: share / 100, percentage: num(s.percentage, 0) });
    }
    return {
      result: { status: 'settled', payer, total_amount: cents / 100, currency, settlements },
      charged: true,
    };
  }

  private createSubscription(p: Record<string, unknown>): MoneyOutcome {
    const w = this.world;
    const payer = String(p.payer);
    const payee = String(p.payee);
    const amount = this.toCents(p.amount);
    if (amount <= 0) throw new GatewayError(400, 'payment_error', 'Amount must be positive');
    if (payer === payee)
      throw new GatewayError(400, 'payment_error', 'Payer and payee must be different agents');
    const interval = String(p.interval);
    if (!Object.hasOwn(INTERVAL_MS, interval))
      throw new GatewayError(
        400,
        'payment_error',
        `Invalid interval '${interval}'; must be one of ['hourly', 'daily', 'weekly', 'monthly']`,
      );
    const now = w.clock.now();
    const currency = String(p.currency ?? 'CREDITS');
    const s: SubscriptionRec = {
      id: randomBytes(16).toString('hex'),
      payer,
      payee,
      amount,
      currency,
      interval: interval as SubscriptionInterval,
      description: String(p.description ?? ''),
      idempotencyKey: null,
      status: 'active',
      cancelledBy: null,
      nextChargeAt: now + INTERVAL_MS[interval as SubscriptionInterval],
      lastChargedAt: null,
      chargeCount: 0,
      createdAt: now,
      updatedAt: now,
      metadata: { ...((p.metadata as Record<string, unknown> | undefined) ?? {}), currency },
    };
    w.subscriptions.set(s.id, s);
    w.subscriptionOrder.push(s);
    return {
      result: {
        id: s.id,
        status: s.status,
        amount: decimalString(amount),
        interval: s.interval,
        next_charge_at: s.nextChargeAt / 1000,
        currency,
      },
    };
  }

  private withdraw(p: Record<string, unknown>): MoneyOutcome {
    const w = this.world;
    const agentId = String(p.agent_id);
    const currency = String(p.currency ?? 'CREDITS');
    const wallet = this.wallet(agentId);
    if (wallet.frozen) throw new GatewayError(403, 'wallet_frozen', `Wallet is frozen for agent ${agentId}`);
    if (currency === 'CREDITS') {
      const cents = this.toCents(p.amount);
      this.canWithdraw(wallet, cents);
      w.debit(agentId, cents, 'withdrawal', String(p.description ?? ''));
      return { result: { new_balance: wallet.balance / 100 } };
    }
    const units = Math.round(Number(p.amount) * UNIT);
    const held = wallet.holdings.get(currency) ?? 0;
    if (held < units)
      throw new GatewayError(
        402,
        'insufficient_balance',
        `Insufficient ${currency} balance for agent ${agentId}: ${held / UNIT} available`,
      );
    wallet.holdings.set(currency, held - units);
    // The gateway records a withdrawal in any currency (wallet.py `withdraw`).
    w.record(agentId, -Math.round((units / UNIT) * 100), currency, 'withdrawal', String(p.description ?? ''));
    return { result: { new_balance: (held - units) / UNIT } };
  }

  /** Atomic on the gateway (one SQLite transaction); the rates are the defaults, via CREDITS. */
  private convert(p: Record<string, unknown>): MoneyOutcome {
    const w = this.world;
    const agentId = String(p.agent_id);
    const from = String(p.from_currency);
    const to = String(p.to_currency);
    const wallet = this.wallet(agentId);
    if (wallet.frozen) throw new GatewayError(403, 'wallet_frozen', `Wallet is frozen for agent ${agentId}`);
    const fromRate = TO_CREDITS[from];
    const toRate = TO_CREDITS[to];
    if (fromRate === undefined || toRate === undefined)
      throw new GatewayError(422, 'unsupported_currency', `No exchange rate found for ${from} -> ${to}`);
    const amount = Number(p.amount);
    const credits = amount * fromRate;
    const toAmount = Math.round((credits / toRate) * UNIT) / UNIT;
    if (from === 'CREDITS') {
      const cents = this.toCents(p.amount);
      if (wallet.balance < cents)
        throw new GatewayError(
          402,
          'insufficient_balance',
          `Insufficient CREDITS balance for agent ${agentId}`,
        );
      w.debit(agentId, cents, 'withdrawal', `convert:${from}->${to}`);
    } else {
      const units = Math.round(amount * UNIT);
      const held = wallet.holdings.get(from) ?? 0;
      if (held < units)
        throw new GatewayError(
          402,
          'insufficient_balance',
          `Insufficient ${from} balance for agent ${agentId}`,
        );
      wallet.holdings.set(from, held - units);
      w.record(agentId, -Math.round(amount * 100), from, 'withdrawal', `convert:${from}->${to}`);
    }
    // Both legs are recorded, each in its own currency (wallet.py `convert_currency`).
    if (to === 'CREDITS') w.credit(agentId, Math.round(toAmount * 100), 'deposit', `convert:${from}->${to}`);
    else {
      wallet.holdings.set(to, (wallet.holdings.get(to) ?? 0) + Math.round(toAmount * UNIT));
      w.record(agentId, Math.round(toAmount * 100), to, 'deposit', `convert:${from}->${to}`);
    }
    return {
      result: { from_amount: amount, to_amount: toAmount, from_currency: from, to_currency: to },
    };
  }

  private page<T extends { payer: string; payee: string; status: string }>(
    order: readonly T[],
    p: Record<string, unknown>,
    defaultLimit: number,
  ): T[] {
    const agent = typeof p.agent_id === 'string' ? p.agent_id : undefined;
    const status = typeof p.status === 'string' ? p.status : undefined;
    const offset = num(p.offset, 0);
    const end = offset + num(p.limit, defaultLimit);
    const rows: T[] = [];
    // Newest first; stops at the page's end.
    for (let i = order.length - 1; i >= 0 && rows.length < end; i--) {
      const r = order[i]!;
      if ((!agent || r.payer === agent || r.payee === agent) && (!status || r.status === status))
        rows.push(r);
    }
    return rows.slice(offset, end);
  }

  private payerOnly(caller: MoneyCaller, i: IntentRec): void {
    if (!caller.asAdmin && caller.agentId !== i.payer)
      throw new GatewayError(403, 'forbidden', 'Forbidden: only the payer can perform this action');
  }

  private pending(i: IntentRec, verb: string): void {
    if (i.status !== 'pending')
      throw new GatewayError(
        409,
        'invalid_state',
        `Cannot ${verb} intent in state '${i.status}'; must be 'pending'`,
      );
  }

  /** wallet.withdraw's checks, in its order: frozen, then the balance. */
  private canWithdraw(wallet: WalletRec, cents: number): void {
    if (wallet.frozen)
      throw new GatewayError(403, 'wallet_frozen', `Wallet is frozen for agent ${wallet.agentId}`);
    if (wallet.balance < cents)
      throw new GatewayError(
        402,
        'insufficient_balance',
        `Insufficient balance for agent ${wallet.agentId}: ${fmt(wallet.balance)} available, ${fmt(cents)} required`,
      );
  }

  /** wallet.deposit's checks: frozen, then that the wallet exists. */
  private canDeposit(agentId: string): void {
    const wallet = this.wallet(agentId);
    if (wallet.frozen) throw new GatewayError(403, 'wallet_frozen', `Wallet is frozen for agent ${agentId}`);
  }

  private wallet(agentId: string): WalletRec {
    const wallet = this.world.wallets.get(agentId);
    if (!wallet) throw new GatewayError(404, 'wallet_not_found', `Wallet not found for agent ${agentId}`);
    return wallet;
  }

  private intent(id: string): IntentRec {
    const i = this.world.intents.get(id);
    if (!i) throw new GatewayError(404, 'intent_not_found', `Intent ${id} not found`);
    return i;
  }

  private subscription(id: string): SubscriptionRec {
    const s = this.world.subscriptions.get(id);
    if (!s) throw new GatewayError(404, 'subscription_not_found', `Subscription ${id} not found`);
    return s;
  }
}

function intentView(i: IntentRec) {
  return {
    id: i.id,
    payer: i.payer,
    payee: i.payee,
    amount: decimalString(i.amount),
    description: i.description,
    idempotency_key: i.idempotencyKey,
    status: i.status,
    settlement_id: i.settlementId,
    created_at: i.createdAt / 1000,
    updated_at: i.updatedAt / 1000,
    metadata: i.metadata,
  };
}

function subscriptionView(s: SubscriptionRec) {
  return {
    id: s.id,
    payer: s.payer,
    payee: s.payee,
    amount: decimalString(s.amount),
    interval: s.interval,
    description: s.description,
    idempotency_key: s.idempotencyKey,
    status: s.status,
    cancelled_by: s.cancelledBy,
    next_charge_at: s.nextChargeAt / 1000,
    last_charged_at: s.lastChargedAt === null ? null : s.lastChargedAt / 1000,
    charge_count: s.chargeCount,
    created_at: s.createdAt / 1000,
    updated_at: s.updatedAt / 1000,
    metadata: s.metadata,
  };
}
