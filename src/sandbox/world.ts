/**
 * The sandbox's state in memory, and the small helpers the engine and scenarios share: Python-style JSON
 * (the gateway signs and hashes `json.dumps` output), money and time formats, a seeded PRNG.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import type { Clock } from '../util/clock.js';

export type Tier = 'free' | 'starter' | 'pro' | 'enterprise';

export interface AgentRec {
  id: string;
  publicKey: string | null;
  privateKey: KeyObject | null;
  /**
   * The private key the agent itself holds (its half of the key it registered at creation). A thief who
   * overwrites the registered public key does not change it: a challenge the agent signs then fails
   * verify_agent against the registered key, which is how a swap is proved.
   */
  signingKey: KeyObject | null;
  createdAt: number;
  orgId: string;
  /**
   * The reputation row, or null when there is none: the gateway seeds one only for keys provisioned
   * through it (POST /v1/register, POST /v1/billing/keys); keys made directly in its database get none,
   * and GET …/reputation answers 404 for them.
   */
  reputation: {
    payment_reliability: number;
    data_source_quality: number;
    transaction_volume_score: number;
    composite_score: number;
    confidence: number;
  } | null;
}

/**
 * How an agent's key came to exist: `gateway` (through the running gateway, which also seeds a zeroed
 * reputation row) or `direct` (written straight into the gateway's SQLite files, as its
 * scripts/generate_audit_keys.py does: no reputation row). Real fleets have both.
 */
export type Provisioning = 'gateway' | 'direct';

export interface WalletRec {
  agentId: string;
  /** CREDITS, in cents. */
  balance: number;
  /** Balances in the other currencies (convert_currency), in units of 1e-8. */
  holdings: Map<string, number>;
  frozen: boolean;
  dailyCap: number | null;
  monthlyCap: number | null;
  alertThreshold: number;
}

export interface KeyRec {
  hash: string;
  prefix: string;
  agentId: string;
  tier: Tier;
  scopes: string[];
  createdAt: number;
  revokedAt: number | null;
  expiresAt: number | null;
}

export interface EscrowRec {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  currency: string;
  description: string;
  status: 'held' | 'settled' | 'refunded' | 'expired';
  createdAt: number;
  updatedAt: number;
  timeoutAt: number;
  settlementId: string | null;
  idempotencyKey: string | null;
  metadata: Record<string, unknown> | null;
}

/** A payment intent (products/payments/src/models.py PaymentIntent). `captured` is transient there. */
export interface IntentRec {
  id: string;
  payer: string;
  payee: string;
  /** Cents; a partial capture lowers it to what is left. */
  amount: number;
  currency: string;
  description: string;
  status: 'pending' | 'captured' | 'settled' | 'voided';
  settlementId: string | null;
  idempotencyKey: string | null;
  createdAt: number;
  updatedAt: number;
  /** The request's metadata with `currency` merged in, as the engine stores it. */
  metadata: Record<string, unknown>;
}

export type SubscriptionInterval = 'hourly' | 'daily' | 'weekly' | 'monthly';

/** A recurring payment (models.py Subscription). Only `suspended` can be reactivated; `cancelled` is final. */
export interface SubscriptionRec {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  currency: string;
  interval: SubscriptionInterval;
  description: string;
  idempotencyKey: string | null;
  status: 'active' | 'cancelled' | 'suspended';
  cancelledBy: string | null;
  nextChargeAt: number;
  lastChargedAt: number | null;
  chargeCount: number;
  createdAt: number;
  updatedAt: number;
  metadata: Record<string, unknown>;
}

export interface TxRec {
  id: string;
  agentId: string;
  /** Cents of `currency` (signed: a withdrawal is negative). */
  amount: number;
  /** CREDITS unless a conversion or a withdrawal moved another currency. */
  currency: string;
  txType: string;
  description: string;
  createdAt: number;
  idempotencyKey: string | null;
}

export interface EventRec {
  id: number;
  event_type: string;
  source: string;
  payload: unknown;
  integrity_hash: string;
  created_at: string;
}

export interface WebhookRec {
  id: string;
  agentId: string;
  url: string;
  eventTypes: string[];
  secret: string;
  filterAgentIds: string[] | null;
  active: boolean;
  createdAt: number;
}

export interface DeliveryRec {
  id: number;
  webhookId: string;
  eventType: string;
  payload: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastAttemptAt: number | null;
  responseCode: number | null;
  responseBody: string | null;
  createdAt: number;
}

export interface MetricPoint {
  id: number;
  agentId: string;
  metricName: string;
  value: number;
  timestamp: number;
  dataSource: string;
  commitmentHash: string;
}

export interface ClaimRec {
  agentId: string;
  metricName: string;
  claimType: 'gte' | 'lte';
  boundValue: number;
  validUntil: number;
  createdAt: number;
}

export interface ChainRec {
  id: number;
  agentId: string;
  merkleRoot: string;
  leafHashes: string[];
  periodStart: number;
  periodEnd: number;
  createdAt: number;
}

export interface DisputeRec {
  id: string;
  escrowId: string;
  opener: string;
  status: string;
  reason: string;
  createdAt: number;
  deadlineAt: number;
}

export interface UsageRec {
  agentId: string;
  tool: string;
  cost: number;
  at: number;
  dedupe: string;
}

/** Everything the gateway holds. Times are sandbox-clock ms. */
export class World {
  readonly agents = new Map<string, AgentRec>();
  readonly wallets = new Map<string, WalletRec>();
  readonly keys = new Map<string, KeyRec>();
  readonly escrows = new Map<string, EscrowRec>();
  readonly escrowOrder: EscrowRec[] = [];
  readonly transactions: TxRec[] = [];
  /** The same rows per agent, oldest first (get_transactions reads one agent's). */
  private readonly txByAgent = new Map<string, TxRec[]>();
  readonly events: EventRec[] = [];
  readonly webhooks = new Map<string, WebhookRec>();
  readonly deliveries: DeliveryRec[] = [];
  readonly metrics: MetricPoint[] = [];
  readonly claims: ClaimRec[] = [];
  readonly chains: ChainRec[] = [];
  readonly disputes = new Map<string, DisputeRec>();
  readonly ratings = new Map<
    string,
    { service_id: string; agent_id: string; rating: number; review: string }
  >();
  readonly usage: UsageRec[] = [];
  readonly usageKeys = new Set<string>();
  readonly calls = new Map<string, number[]>();
  readonly idempotentEscrows = new Map<string, string>();
  readonly intents = new Map<string, IntentRec>();
  readonly intentOrder: IntentRec[] = [];
  readonly subscriptions = new Map<string, SubscriptionRec>();
  readonly subscriptionOrder: SubscriptionRec[] = [];
  /** create_intent's per-agent Idempotency-Key gate (deps/idempotency.py): key → body hash and response. */
  readonly intentKeys = new Map<string, { bodyHash: string; response: unknown }>();
  /** Per agent, usage times and running fee totals, so a cap check is a binary search, not a scan. */
  private readonly spendIndex = new Map<string, { at: number[]; total: number[] }>();
  private seq = 0;

  constructor(readonly clock: Clock) {}

  nextId(): number {
    return ++this.seq;
  }

  addAgent(
    id: string,
    opts: {
      withKeyPair?: boolean;
      balance?: number;
      reputation?: Partial<NonNullable<AgentRec['reputation']>>;
      provisioning?: Provisioning;
    } = {},
  ): AgentRec {
    let publicKey: string | null = null;
    let privateKey: KeyObject | null = null;
    if (opts.withKeyPair !== false) {
      const pair = generateKeyPairSync('ed25519');
      privateKey = pair.privateKey;
      publicKey = rawPublicKey(pair.publicKey);
    }
    const agent: AgentRec = {
      id,
      publicKey,
      privateKey,
      signingKey: privateKey,
      createdAt: this.clock.now(),
      orgId: 'org-sandbox',
      reputation:
        opts.provisioning === 'direct'
          ? null
          : {
              payment_reliability: 0,
              data_source_quality: 0,
              transaction_volume_score: 0,
              composite_score: 0,
              confidence: 0,
              ...opts.reputation,
            },
    };
    this.agents.set(id, agent);
    this.wallets.set(id, {
      agentId: id,
      balance: 0,
      holdings: new Map(),
      frozen: false,
      dailyCap: null,
      monthlyCap: null,
      alertThreshold: 0.8,
    });
    if (opts.balance) this.credit(id, opts.balance, 'signup_bonus', 'signup bonus');
    return agent;
  }

  /** Creates an API key `a2a_{tier}_{24 hex}`; only its SHA3-256 is kept, as the gateway does. */
  issueKey(agentId: string, tier: Tier, scopes: string[] = ['read', 'write']): string {
    const key = `a2a_${tier}_${randomBytes(12).toString('hex')}`;
    const hash = sha3(key);
    this.keys.set(hash, {
      hash,
      prefix: hash.slice(0, 8),
      agentId,
      tier,
      scopes,
      createdAt: this.clock.now(),
      revokedAt: null,
      expiresAt: null,
    });
    return key;
  }

  credit(
    agentId: string,
    cents: number,
    txType: string,
    description: string,
    idempotencyKey: string | null = null,
  ): void {
    const w = this.wallets.get(agentId);
    if (!w) throw new Error(`no wallet ${agentId}`);
    w.balance += cents;
    this.record(agentId, cents, 'CREDITS', txType, description, idempotencyKey);
  }

  /**
   * Writes one transaction row without touching the CREDITS balance: the other currency's leg of a
   * conversion or a withdrawal in another currency, which the gateway records like any other.
   */
  record(
    agentId: string,
    cents: number,
    currency: string,
    txType: string,
    description: string,
    idempotencyKey: string | null = null,
  ): void {
    const tx: TxRec = {
      id: `tx_${this.nextId()}`,
      agentId,
      amount: cents,
      currency,
      txType,
      description,
      createdAt: this.clock.now(),
      idempotencyKey,
    };
    this.transactions.push(tx);
    const mine = this.txByAgent.get(agentId);
    if (mine) mine.push(tx);
    else this.txByAgent.set(agentId, [tx]);
  }

  /** One agent's transactions, oldest first. */
  transactionsOf(agentId: string): readonly TxRec[] {
    return this.txByAgent.get(agentId) ?? [];
  }

  debit(
    agentId: string,
    cents: number,
    txType: string,
    description: string,
    idempotencyKey: string | null = null,
  ): void {
    this.credit(agentId, -cents, txType, description, idempotencyKey);
  }

  /** Records one metered call (what `spend` sums). */
  recordUsage(u: UsageRec): void {
    this.usage.push(u);
    let idx = this.spendIndex.get(u.agentId);
    if (!idx) {
      idx = { at: [], total: [] };
      this.spendIndex.set(u.agentId, idx);
    }
    // The sandbox clock never moves back, so each agent's times are sorted.
    idx.at.push(Math.max(u.at, idx.at.at(-1) ?? u.at));
    idx.total.push((idx.total.at(-1) ?? 0) + u.cost);
  }

  /** Fees (usage cost) over a rolling window: what budget caps limit. */
  spend(agentId: string, windowMs: number): number {
    const idx = this.spendIndex.get(agentId);
    if (!idx) return 0;
    const since = this.clock.now() - windowMs;
    // The first record inside the window (at > since).
    let lo = 0;
    let hi = idx.at.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((idx.at[mid] as number) > since) hi = mid;
      else lo = mid + 1;
    }
    const all = idx.total.at(-1) ?? 0;
    return lo === 0 ? all : all - (idx.total[lo - 1] as number);
  }

  publish(eventType: string, source: string, payload: unknown): EventRec {
    const created = pyTimestamp(this.clock.now());
    const event: EventRec = {
      id: this.events.length + 1,
      event_type: eventType,
      source,
      payload: payload ?? {},
      integrity_hash: sha3(`${eventType}${source}${pyJson(payload ?? {}, true)}${created}`),
      created_at: created,
    };
    this.events.push(event);
    return event;
  }
}

export function sha3(s: string): string {
  return createHash('sha3-256').update(s, 'utf8').digest('hex');
}

/** 32 raw bytes of an Ed25519 public key, as hex (the gateway's `public_key` format). */
export function rawPublicKey(key: KeyObject): string {
  const der = key.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32)).toString('hex');
}

/**
 * Python's `json.dumps` (separators ", " and ": ", ASCII escapes): the gateway signs and hashes its
 * output, so the sandbox must produce the same bytes.
 */
export function pyJson(v: unknown, sortKeys = false): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloat(v);
  if (typeof v === 'string')
    return JSON.stringify(v).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  if (Array.isArray(v)) return `[${v.map((x) => pyJson(x, sortKeys)).join(', ')}]`;
  const entries = Object.entries(v as Record<string, unknown>);
  if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${pyJson(k)}: ${pyJson(x, sortKeys)}`).join(', ')}}`;
}

function pyFloat(n: number): string {
  const s = String(n);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** `YYYY-MM-DDTHH:MM:SS`, as the event bus stores `created_at` (no zone). */
export function pyTimestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

/** ISO-8601 UTC with `+00:00`, as REST serializes timestamps. */
export function isoUtc(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+00:00');
}

/** `str(Decimal)` of an amount as the engine stores it: 15000 → "150.0", 15050 → "150.5". */
export function decimalString(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  const whole = Math.trunc(abs / 100);
  const frac = abs % 100;
  if (frac === 0) return `${sign}${whole}.0`;
  return `${sign}${whole}.${String(frac).padStart(2, '0').replace(/0$/, '')}`;
}

/** Mulberry32: a small seeded PRNG so the demo fleet and its traffic are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
