/**
 * The embedded GreenHelix gateway: a real HTTP server on loopback with the gateway's routes, errors and
 * quirks, a seeded demo fleet sharing a wallet, scenario agents, fault injection, and ground truth the
 * real API cannot give (whether a wallet is frozen).
 */
import { sign as cryptoSign, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SandboxClock } from './clock.js';
import { type Caller, Engine, GatewayError } from './engine.js';
import { SCENARIOS, type ScenarioInfo, ScenarioRunner, Scheduler } from './scenarios.js';
import { createSandboxServer, type Faults, type RequestLogEntry } from './server.js';
import { assignFleet, type FleetAssignment, MIX_PATHS } from './traffic.js';
import { type EscrowRec, type IntentRec, prng, type SubscriptionRec, World } from './world.js';

export { SandboxClock } from './clock.js';
export { type IncidentTruth, SCENARIOS, type ScenarioInfo, type ScenarioName } from './scenarios.js';
export { assignFleet, type FleetAssignment, MIX, MIX_PATHS, PROFILES, type Profile } from './traffic.js';

export const FLEET_TRAFFIC = ['mixed', 'mixed_paths', 'steady', 'none'] as const;
export type FleetTraffic = (typeof FLEET_TRAFFIC)[number];

/** One escrow as the sandbox holds it (ground truth; amounts in cents, times in sandbox ms). */
export interface EscrowRecord {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  status: 'held' | 'settled' | 'refunded' | 'expired';
  description: string;
  created_at: number;
  updated_at: number;
}

/** One wallet transaction (ground truth; signed cents of `currency`, sandbox ms). */
export interface TransactionRecord {
  id: string;
  amount: number;
  currency: string;
  tx_type: string;
  description: string;
  created_at: number;
}

/** One payment intent as the sandbox holds it (ground truth; cents, sandbox ms). */
export interface IntentRecord {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  status: IntentRec['status'];
  created_at: number;
  updated_at: number;
  /** Refunds of this intent after it settled (each moved the money back; the gateway keeps `settled`). */
  refunds: number;
}

/** One subscription as the sandbox holds it (ground truth; cents, sandbox ms). */
export interface SubscriptionRecord {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  interval: SubscriptionRec['interval'];
  status: SubscriptionRec['status'];
  charge_count: number;
  next_charge_at: number;
  created_at: number;
}

export interface SandboxOptions {
  port?: number;
  host?: string;
  agents?: number;
  seed?: number;
  latencyMs?: number;
  jitterMs?: number;
  errorRate?: number;
  /** Sandbox seconds per real second; 0 = time moves only by advance(). */
  timeScale?: number;
  /** Sandbox time at start (epoch ms); default now. A fixed start makes a seeded run repeat exactly. */
  startAt?: number;
  /**
   * Fleet traffic from the start: `steady` (every agent runs normal_traffic's original profile),
   * `mixed` (assignFleet's mix of profiles, docs/TRAFFIC.md), `mixed_paths` (half of the fleet paying on
   * every money path, profile multi_path, the rest in the same mix) or `none`. Default: `steady`, or `none`
   * when autoStartTraffic is false.
   */
  traffic?: FleetTraffic;
  /** Fleet agents run normal_traffic from the start (`traffic: 'steady'`); `traffic` wins when both are set. */
  autoStartTraffic?: boolean;
  allowLoopbackWebhooks?: boolean;
  deliverBusEvents?: boolean;
  /** The await inside the gateway's non-atomic escrow refund, ms (default 5). */
  refundWindowMs?: number;
  /**
   * Fleet agents whose keys were made directly in the gateway's database (no reputation row, so
   * GET …/reputation is a 404). Default: every fourth agent (agent-03, agent-07…), as real fleets mix both.
   */
  directAgents?: readonly string[];
}

export interface AgentGroundTruth {
  agent_id: string;
  frozen: boolean;
  /** CREDITS as numbers, null = no cap (as the gateway reports caps). */
  daily_cap: number | null;
  monthly_cap: number | null;
  balance: string;
  held_escrows: number;
  held_amount: string;
  /** CREDITS this agent has drawn from the shared wallet so far (what its own balance hides). */
  shared_wallet_draws: string;
  /** Escrows refunded to this agent as payer (each once), their total, and refunds beyond the first. */
  escrows_refunded: number;
  refunded_amount: string;
  double_refunds: number;
  /** Intents this agent pays that are still pending (capturable once the wallet is unfrozen). */
  pending_intents: number;
  /** Subscriptions this agent pays that are active (charged when due once the wallet is unfrozen). */
  active_subscriptions: number;
  /** Settled intents this agent was paid back for, and refunds beyond the first of each. */
  intents_refunded: number;
  intent_double_refunds: number;
  /** Balances outside CREDITS (convert_currency), as decimal text. */
  holdings: Record<string, string>;
  public_key: string | null;
}

export interface Sandbox {
  url: string;
  controlToken: string;
  keys: { monitor: string; containment: string; agents: Record<string, string> };
  fleet: string[];
  sharedWallet: string | null;
  clock: SandboxClock;
  /** The profile each fleet agent runs (empty unless traffic is `mixed`). */
  trafficPlan: FleetAssignment[];
  groundTruth(agentId: string): AgentGroundTruth;
  /** Every escrow the sandbox holds, in creation order, optionally only those `agentId` pays. */
  escrowRecords(payer?: string): EscrowRecord[];
  /** Every intent, in creation order, optionally only those `payer` pays. */
  intentRecords(payer?: string): IntentRecord[];
  /** Every subscription, in creation order, optionally only those `payer` pays. */
  subscriptionRecords(payer?: string): SubscriptionRecord[];
  /** One wallet's transactions, oldest first, as get_transactions would list them (cents, sandbox ms). */
  transactionRecords(agentId: string): TransactionRecord[];
  advance(ms: number): Promise<void>;
  startScenario(name: string, agentId: string, params?: Record<string, unknown>): string;
  stopScenario(id: string): boolean;
  scenarios(): ScenarioInfo[];
  setFaults(f: Partial<Faults>): void;
  requestLog(sinceSeq?: number): RequestLogEntry[];
  close(): Promise<void>;
}

/** Refund credits to a payer, read from the wallet's own transactions (so a double refund shows). */
function refundTruth(
  transactions: readonly { agentId: string; amount: number; description: string }[],
  agentId: string,
): { escrows_refunded: number; refunded_amount: string; double_refunds: number } {
  const perEscrow = new Map<string, number>();
  let cents = 0;
  let credits = 0;
  for (const t of transactions) {
    const m = t.agentId === agentId ? /^escrow_refund:(\S+)$/.exec(t.description) : null;
    if (!m) continue;
    credits++;
    const n = perEscrow.get(m[1] as string) ?? 0;
    perEscrow.set(m[1] as string, n + 1);
    if (n === 0) cents += t.amount;
  }
  return {
    escrows_refunded: perEscrow.size,
    refunded_amount: (cents / 100).toFixed(2),
    double_refunds: credits - perEscrow.size,
  };
}

/** Refunds per settled intent, read from the payer's credits `refund:<id>` (so a repeated refund shows). */
function intentRefunds(transactions: readonly { agentId: string; amount: number; description: string }[]) {
  const per = new Map<string, number>();
  for (const t of transactions) {
    const m = t.amount > 0 ? /^refund:(\S+)$/.exec(t.description) : null;
    if (m) per.set(m[1] as string, (per.get(m[1] as string) ?? 0) + 1);
  }
  return per;
}

export const TREASURY = 'fleet-treasury';
export const COUNTERPARTIES = [
  'vendor-01',
  'vendor-02',
  'vendor-03',
  'merchant-01',
  'merchant-02',
  'merchant-03',
];
const SPECIAL_PAYEES = ['vendor-flaky', 'merchant-shady', 'merchant-unknown'];

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const seed = opts.seed ?? 1;
  const random = prng(seed);
  const clock = new SandboxClock(opts.timeScale ?? 1, opts.startAt ?? Date.now());
  const world = new World(clock);
  const engine = new Engine(world);
  engine.options.allowLoopbackWebhooks = opts.allowLoopbackWebhooks ?? false;
  engine.options.deliverBusEvents = opts.deliverBusEvents ?? false;
  const scheduler = new Scheduler();
  const faults: Faults = {
    latencyMs: opts.latencyMs ?? 0,
    jitterMs: opts.jitterMs ?? 0,
    errorRate: opts.errorRate ?? 0,
    rateLimitStorm: false,
    timeoutRate: 0,
    timeoutMs: 30_000,
    refundWindowMs: opts.refundWindowMs ?? 5,
  };

  // The demo fleet: agents with their own wallets and pro keys, a shared treasury they top up from,
  // counterparties, and two admin-scoped operator keys (monitor and containment) owned by non-fleet identities.
  const n = Math.max(1, Math.min(10_000, opts.agents ?? 40));
  const fleet = Array.from({ length: n }, (_, i) => `agent-${String(i).padStart(2, '0')}`);
  const agentKeys: Record<string, string> = {};
  const direct = new Set(opts.directAgents ?? fleet.filter((_, i) => i % 4 === 3));
  for (const id of fleet) {
    // A few agents keep the real gateway's all-zero reputation (computed once, at key provisioning).
    const zero = random() < 0.1;
    const score = 0.8 + random() * 0.15;
    world.addAgent(id, {
      balance: 200_000,
      // Keys made directly have no reputation row; the agent registered its own identity (public key).
      provisioning: direct.has(id) ? 'direct' : 'gateway',
      reputation: zero
        ? {}
        : {
            payment_reliability: score,
            data_source_quality: 0.7 + random() * 0.2,
            transaction_volume_score: 0.5 + random() * 0.3,
            composite_score: score,
            confidence: 0.8,
          },
    });
    const w = world.wallets.get(id)!;
    // Caps limit fees only: at 1.5 % a $150 escrow costs $2.25, so a $1,000 daily cap lets a loop lock
    // ~$66,000 before it binds — the SPEC's "no cap fires".
    w.dailyCap = 100_000;
    w.monthlyCap = 2_000_000;
    agentKeys[id] = world.issueKey(id, 'pro');
  }
  world.addAgent(TREASURY, { balance: 5_000_000 });
  world.issueKey(TREASURY, 'pro');
  for (const c of [...COUNTERPARTIES, ...SPECIAL_PAYEES]) {
    world.addAgent(c, {
      balance: 50_000,
      reputation: {
        payment_reliability: 0.9,
        composite_score: 0.85,
        transaction_volume_score: 0.6,
        confidence: 0.7,
      },
    });
    world.issueKey(c, 'pro');
  }
  world.addAgent('ops-monitor', { withKeyPair: false });
  world.addAgent('ops-containment', { withKeyPair: false });
  const monitor = world.issueKey('ops-monitor', 'enterprise', ['read', 'write', 'admin']);
  const containment = world.issueKey('ops-containment', 'enterprise', ['read', 'write', 'admin']);
  // No claim chains are seeded: the gateway has none until an agent builds one (build_claim_chain).

  const callers = new Map<string, Caller>();
  const callerFor = (agentId: string): Caller => {
    let c = callers.get(agentId);
    if (!c) {
      const key = [...world.keys.values()].find((k) => k.agentId === agentId && k.revokedAt === null);
      if (!key) throw new GatewayError(404, 'agent_not_found', `No key for ${agentId}`);
      c = { key, agentId, tier: key.tier, admin: false, scopes: key.scopes };
      callers.set(agentId, c);
    }
    return c;
  };
  const runner = new ScenarioRunner({
    world,
    engine,
    scheduler,
    random,
    callerFor,
    fleet,
    treasury: TREASURY,
    counterparties: COUNTERPARTIES,
  });
  const traffic = opts.traffic ?? ((opts.autoStartTraffic ?? true) ? 'steady' : 'none');
  const trafficPlan =
    traffic === 'mixed'
      ? assignFleet(fleet, seed)
      : traffic === 'mixed_paths'
        ? assignFleet(fleet, seed, MIX_PATHS)
        : [];
  if (traffic === 'steady') for (const id of fleet) runner.start('normal_traffic', id);
  for (const a of trafficPlan) runner.start('normal_traffic', a.agent_id, a.params);
  // The gateway's scheduler runs every 300 s: escrow expiry, then due subscription charges.
  const expiry = (now: number) => {
    engine.processDue();
    scheduler.at(now + 300_000, 'gateway', expiry);
  };
  scheduler.at(clock.now() + 300_000, 'gateway', expiry);

  const catchUp = () => scheduler.runUntil(clock.now(), () => undefined);
  const advance = async (ms: number) => {
    const target = clock.now() + ms;
    scheduler.runUntil(target, (t) => clock.advanceTo(t));
    clock.advanceTo(target);
  };

  const log: RequestLogEntry[] = [];
  const controlToken = randomBytes(24).toString('hex');
  const moneyPathTruth = (agentId: string) => {
    const refunds = intentRefunds(world.transactionsOf(agentId));
    const paidBack = [...refunds.entries()].filter(([id]) => world.intents.get(id)?.payer === agentId);
    return {
      pending_intents: world.intentOrder.filter((i) => i.payer === agentId && i.status === 'pending').length,
      active_subscriptions: world.subscriptionOrder.filter(
        (s) => s.payer === agentId && s.status === 'active',
      ).length,
      intents_refunded: paidBack.length,
      intent_double_refunds: paidBack.reduce((n, [, k]) => n + k - 1, 0),
      holdings: Object.fromEntries(
        [...(world.wallets.get(agentId)?.holdings ?? new Map<string, number>())].map(([c, u]) => [
          c,
          String(u / 100_000_000),
        ]),
      ),
    };
  };
  const groundTruth = (agentId: string): AgentGroundTruth => {
    const w = world.wallets.get(agentId);
    if (!w) throw new GatewayError(404, 'agent_not_found', `Agent ${agentId} not found`);
    catchUp();
    const held = world.escrowOrder.filter((e) => e.payer === agentId && e.status === 'held');
    const heldCents = held.reduce((s, e) => s + e.amount, 0);
    return {
      agent_id: agentId,
      frozen: w.frozen,
      daily_cap: w.dailyCap === null ? null : w.dailyCap / 100,
      monthly_cap: w.monthlyCap === null ? null : w.monthlyCap / 100,
      balance: (w.balance / 100).toFixed(2),
      held_escrows: held.length,
      held_amount: (heldCents / 100).toFixed(2),
      shared_wallet_draws: (
        world
          .transactionsOf(agentId)
          .filter((t) => t.description === `transfer from ${TREASURY}`)
          .reduce((n, t) => n + t.amount, 0) / 100
      ).toFixed(2),
      public_key: world.agents.get(agentId)?.publicKey ?? null,
      ...refundTruth(world.transactionsOf(agentId), agentId),
      ...moneyPathTruth(agentId),
    };
  };

  const control = {
    handle(
      method: string,
      path: string,
      body: unknown,
      query: URLSearchParams,
    ): { status: number; body: unknown } {
      const b = (body ?? {}) as Record<string, unknown>;
      try {
        if (method === 'POST' && path === '/scenarios') {
          const { scenario, agent_id, ...params } = b;
          if (typeof scenario !== 'string' || typeof agent_id !== 'string')
            throw new GatewayError(
              422,
              'validation_error',
              `body needs scenario (one of ${SCENARIOS.join(', ')}) and agent_id`,
            );
          const info = runner.start(scenario, agent_id, params);
          return {
            status: 201,
            body: { id: info.id, scenario: info.scenario, agent_id: info.agent_id, params: info.params },
          };
        }
        if (method === 'GET' && path === '/scenarios')
          return { status: 200, body: { scenarios: runner.list() } };
        const del = /^\/scenarios\/([^/]+)$/.exec(path);
        if (method === 'DELETE' && del) {
          if (!runner.stop(del[1]!)) throw new GatewayError(404, 'not_found', `No scenario ${del[1]}`);
          return { status: 200, body: { id: del[1], stopped: true } };
        }
        // The agent's own challenge signer (on a real fleet: an endpoint of the agent's): signs `message`
        // with the key the agent holds, whatever is registered now.
        const sign = /^\/agents\/([^/]+)\/sign$/.exec(path);
        if (method === 'POST' && sign) {
          const rec = world.agents.get(decodeURIComponent(sign[1]!));
          if (!rec) throw new GatewayError(404, 'agent_not_found', `Agent ${sign[1]} not found`);
          if (!rec.signingKey)
            throw new GatewayError(409, 'invalid_state', `Agent ${sign[1]} holds no signing key`);
          if (typeof b.message !== 'string' || !b.message)
            throw new GatewayError(422, 'validation_error', 'message: a non-empty string to sign');
          return {
            status: 200,
            body: {
              signature: cryptoSign(null, Buffer.from(b.message, 'utf8'), rec.signingKey).toString('hex'),
            },
          };
        }
        const agent = /^\/agents\/([^/]+)$/.exec(path);
        if (method === 'GET' && agent)
          return { status: 200, body: groundTruth(decodeURIComponent(agent[1]!)) };
        if (method === 'POST' && path === '/faults') {
          setFaults({
            latencyMs: numOr(b.latency_ms, faults.latencyMs),
            jitterMs: numOr(b.jitter_ms, faults.jitterMs),
            errorRate: numOr(b.error_rate, faults.errorRate),
            timeoutRate: numOr(b.timeout_rate, faults.timeoutRate),
            refundWindowMs: numOr(b.refund_window_ms, faults.refundWindowMs),
            rateLimitStorm:
              typeof b.rate_limit_storm === 'boolean' ? b.rate_limit_storm : faults.rateLimitStorm,
          });
          return { status: 200, body: { ...faults } };
        }
        if (method === 'POST' && path === '/clock/advance') {
          const ms = Number(b.ms);
          if (!Number.isFinite(ms) || ms < 0 || ms > 400 * 86_400_000)
            throw new GatewayError(
              422,
              'validation_error',
              'ms: a number of milliseconds from 0 to 400 days',
            );
          const target = clock.now() + ms;
          scheduler.runUntil(target, (t) => clock.advanceTo(t));
          clock.advanceTo(target);
          return { status: 200, body: { now: clock.now() } };
        }
        if (method === 'GET' && path === '/clock')
          return { status: 200, body: { now: clock.now(), time_scale: clock.timeScale } };
        if (method === 'GET' && path === '/requests')
          return {
            status: 200,
            body: { requests: log.filter((r) => r.seq > Number(query.get('since') ?? 0)) },
          };
        if (method === 'POST' && path === '/config') {
          if (typeof b.allow_loopback_webhooks === 'boolean')
            engine.options.allowLoopbackWebhooks = b.allow_loopback_webhooks;
          if (typeof b.deliver_bus_events === 'boolean')
            engine.options.deliverBusEvents = b.deliver_bus_events;
          return {
            status: 200,
            body: {
              allow_loopback_webhooks: engine.options.allowLoopbackWebhooks,
              deliver_bus_events: engine.options.deliverBusEvents,
            },
          };
        }
        // POST /v1/register (public: a free [read, write] key) and /_sandbox/register (drills: any tier and scopes).
        if (method === 'POST' && (path === '/register' || path === '/public-register')) {
          const id = b.agent_id;
          if (typeof id !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/.test(id)) {
            throw new GatewayError(
              422,
              'validation_error',
              'body.agent_id: must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$',
            );
          }
          if (world.agents.has(id))
            throw new GatewayError(409, 'already_exists', `Agent '${id}' is already registered`);
          const drill = path === '/register';
          const tier =
            drill && (b.tier === 'starter' || b.tier === 'pro' || b.tier === 'enterprise') ? b.tier : 'free';
          const scopes =
            drill &&
            Array.isArray(b.scopes) &&
            b.scopes.length > 0 &&
            b.scopes.every((x) => x === 'read' || x === 'write')
              ? (b.scopes as string[])
              : ['read', 'write'];
          // Drills may provision "directly" (as if written into the gateway's database): no reputation row.
          world.addAgent(id, {
            balance: 50_000,
            provisioning: drill && b.provisioning === 'direct' ? 'direct' : 'gateway',
          });
          const apiKey = world.issueKey(id, tier, scopes);
          // The real gateway's shape: balance as a JSON number, and the identity it registers on the way.
          const publicKey = world.agents.get(id)?.publicKey ?? null;
          return {
            status: 201,
            body: {
              agent_id: id,
              api_key: apiKey,
              tier,
              balance: 500,
              identity_registered: publicKey !== null,
              public_key: publicKey,
              next_steps: { onboarding: '/v1/onboarding', docs: '/docs', pricing: '/v1/pricing' },
            },
          };
        }
        throw new GatewayError(404, 'not_found', `No control route ${method} /_sandbox${path}`);
      } catch (e) {
        const err =
          e instanceof GatewayError ? e : new GatewayError(500, 'internal_error', (e as Error).message);
        return {
          status: err.status,
          body: {
            type: `https://api.greenhelix.net/errors/${err.code.replace(/_/g, '-')}`,
            title: err.code,
            status: err.status,
            detail: err.detail,
          },
        };
      }
    },
  };
  const setFaults = (f: Partial<Faults>) => {
    for (const [k, v] of Object.entries(f))
      if (v !== undefined) (faults as unknown as Record<string, unknown>)[k] = v;
  };

  const server = createSandboxServer({
    engine,
    faults,
    controlToken,
    control,
    now: () => clock.now(),
    timeScale: clock.timeScale,
    random: Math.random,
    log,
  });
  // Scenario actions due by "now" run before each request is handled, so real-time scaling needs no race.
  server.prependListener('request', () => catchUp());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const ticker = (opts.timeScale ?? 1) > 0 ? setInterval(catchUp, 100) : undefined;
  ticker?.unref();
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  return {
    url: `http://${host}:${addr.port}`,
    controlToken,
    keys: { monitor, containment, agents: agentKeys },
    fleet,
    sharedWallet: TREASURY,
    clock,
    trafficPlan,
    groundTruth,
    escrowRecords: (payer) => {
      catchUp();
      return world.escrowOrder.filter((e) => payer === undefined || e.payer === payer).map(escrowRecord);
    },
    transactionRecords: (agentId) => {
      catchUp();
      return world.transactionsOf(agentId).map((t) => ({
        id: t.id,
        amount: t.amount,
        currency: t.currency,
        tx_type: t.txType,
        description: t.description,
        created_at: t.createdAt,
      }));
    },
    intentRecords: (payer) => {
      catchUp();
      const refunds = intentRefunds(world.transactions);
      return world.intentOrder
        .filter((i) => payer === undefined || i.payer === payer)
        .map((i) => ({
          id: i.id,
          payer: i.payer,
          payee: i.payee,
          amount: i.amount,
          status: i.status,
          created_at: i.createdAt,
          updated_at: i.updatedAt,
          refunds: refunds.get(i.id) ?? 0,
        }));
    },
    subscriptionRecords: (payer) => {
      catchUp();
      return world.subscriptionOrder
        .filter((s) => payer === undefined || s.payer === payer)
        .map((s) => ({
          id: s.id,
          payer: s.payer,
          payee: s.payee,
          amount: s.amount,
          interval: s.interval,
          status: s.status,
          charge_count: s.chargeCount,
          next_charge_at: s.nextChargeAt,
          created_at: s.createdAt,
        }));
    },
    advance,
    startScenario: (name, agentId, params = {}) => runner.start(name, agentId, params).id,
    stopScenario: (id) => runner.stop(id),
    scenarios: () => runner.list(),
    setFaults,
    requestLog: (since = 0) => log.filter((r) => r.seq > since),
    close: async () => {
      if (ticker) clearInterval(ticker);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function escrowRecord(e: EscrowRec): EscrowRecord {
  return {
    id: e.id,
    payer: e.payer,
    payee: e.payee,
    amount: e.amount,
    status: e.status,
    description: e.description,
    created_at: e.createdAt,
    updated_at: e.updatedAt,
  };
}

function numOr(v: unknown, d: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : d;
}
