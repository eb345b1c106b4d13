/**
 * Containment of the money paths beyond escrows, end to end against the REAL gateway: an agent with
 * pending intents (an intent loop), active subscriptions (a subscription storm), settled intents and
 * held escrows is contained with one contain_agent call. Every verdict comes from the gateway's own
 * SQLite files: no pending intent and no active subscription left, the wallet frozen, no intent refunded
 * (claw-back is listed, not done), and the product's counts equal to what the gateway holds. Then a
 * person confirms the claw-back with stage 1: each settled intent refunded exactly once, and once only.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { intentFee } from '../../src/sandbox/money-paths.js';
import { TOOLS } from '../../src/tools/index.js';
import { type Fleet, provisionFleet, rest } from './fleet.js';
import { type RealGateway, startGateway } from './harness.js';
import { type Product, startProduct } from './product.js';
import { GatewayTruth } from './truth.js';

const skip = inject('gatewaySkip');
const outputOf = (name: string) => TOOLS.find((t) => t.name === name)!.output;

const AGENT = 'agent-00';
const PAYEE = 'vendor-01';
const PENDING = 40;
const SUBSCRIPTIONS = 12;
const SETTLED = 3;
const DRAINER = 'agent-01';

describe.skipIf(skip)('the real gateway: intents and subscriptions contained in one call', () => {
  let gw: RealGateway;
  let fleet: Fleet;
  let truth: GatewayTruth;
  let product: Product;

  beforeAll(async () => {
    gw = await startGateway({ rootfs: inject('gatewayRootfs') });
    fleet = await provisionFleet(gw, {
      agents: [
        { id: AGENT, via: 'register', balance: '5000.00', caps: { daily: '1000.00', monthly: '20000.00' } },
        { id: DRAINER, via: 'direct', balance: '5000.00', caps: { daily: '500.00', monthly: '5000.00' } },
      ],
      counterparties: [PAYEE],
    });
    truth = new GatewayTruth(gw.dataDir);
    const key = fleet.keys[AGENT]!;
    const post = async (path: string, body: unknown) => {
      const r = await rest(gw.url, 'POST', path, { key, body });
      if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as { id: string };
    };
    for (let n = 0; n < SETTLED; n++) {
      const i = await post('/v1/payments/intents', { payer: AGENT, payee: PAYEE, amount: `${n + 2}.00` });
      await post(`/v1/payments/intents/${i.id}/capture`, undefined);
    }
    for (let n = 0; n < PENDING; n++)
      await post('/v1/payments/intents', { payer: AGENT, payee: PAYEE, amount: `${(n % 7) + 1}.50` });
    for (let n = 0; n < SUBSCRIPTIONS; n++)
      await post('/v1/payments/subscriptions', {
        payer: AGENT,
        payee: PAYEE,
        amount: '1.00',
        interval: 'hourly',
      });
    await post('/v1/payments/escrows', { payer: AGENT, payee: PAYEE, amount: '20.00' });
    // A second agent loops on the paths no list shows: splits, and conversions out of CREDITS.
    const other = fleet.keys[DRAINER]!;
    for (let n = 0; n < 6; n++) {
      for (const [path, body] of [
        [
          '/v1/payments/intents/split',
          { payer: DRAINER, amount: '10.00', splits: [{ payee: PAYEE, percentage: 100 }] },
        ],
        [
          `/v1/billing/wallets/${DRAINER}/convert`,
          { amount: '20.00', from_currency: 'CREDITS', to_currency: 'USD' },
        ],
      ] as const) {
        const r = await rest(gw.url, 'POST', path, { key: other, body });
        if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }
    product = await startProduct(gw.url, fleet);
  });
  afterAll(async () => {
    await product?.close();
    truth?.close();
    await gw?.stop();
  });

  it("detects the intent loop and the subscription storm from the gateway's own lists, naming the path", async () => {
    const r = await product.call('detect_anomalies', { agent_ids: [AGENT] });
    expect(r.isError).toBeFalsy();
    const anomalies = (
      r.structuredContent as {
        anomalies: { agent_id: string; signal: string; priority: string; details: Record<string, unknown> }[];
      }
    ).anomalies;
    const burst = anomalies.find((a) => a.agent_id === AGENT && a.signal === 'escrow_burst');
    expect(burst?.priority).toBe('P0');
    // Only intents and subscriptions repeat here (one escrow of $20): the burst is theirs.
    const paths = burst?.details.paths as Record<string, number> | undefined;
    expect(Object.keys(paths ?? {}).filter((p) => p !== 'escrow').length).toBeGreaterThan(0);
    expect(paths?.escrow ?? 0).toBe(0);
  });

  it("detects a split and conversion loop from the wallet's own transactions, and a freeze stops it", async () => {
    const r = await product.call('detect_anomalies', { agent_ids: [DRAINER] });
    const anomalies = (
      r.structuredContent as {
        anomalies: { agent_id: string; signal: string; details: Record<string, unknown> }[];
      }
    ).anomalies;
    const burst = anomalies.find((a) => a.agent_id === DRAINER && a.signal === 'escrow_burst');
    const paths = Object.keys((burst?.details.paths as Record<string, number> | undefined) ?? {});
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.every((p) => p === 'split' || p === 'withdrawal')).toBe(true);
    const c = await product.call('contain_agent', { agent_id: DRAINER, reason: 'split and conversion loop' });
    expect(c.isError).toBeFalsy();
    expect(truth.frozen(DRAINER)).toBe(true);
    const before = truth.balanceCents(DRAINER);
    const again = await rest(gw.url, 'POST', '/v1/payments/intents/split', {
      key: fleet.keys[DRAINER]!,
      body: { payer: DRAINER, amount: '10.00', splits: [{ payee: PAYEE, percentage: 100 }] },
    });
    // Refused (caps of 0 answer 402 before the freeze's 403), and nothing left the wallet.
    expect([402, 403]).toContain(again.status);
    expect(truth.balanceCents(DRAINER)).toBe(before);
  });

  it('voids every pending intent and cancels every active subscription; claw-back listed, nothing refunded', async () => {
    expect(truth.intents(AGENT, 'pending')).toHaveLength(PENDING);
    expect(truth.subscriptions(AGENT, 'active')).toHaveLength(SUBSCRIPTIONS);
    const pendingCents = truth.intents(AGENT, 'pending').reduce((n, i) => n + i.amount_cents, 0);
    const r = await product.call('contain_agent', {
      agent_id: AGENT,
      reason: 'intent loop and subscription storm',
    });
    expect(r.isError).toBeFalsy();
    const out = outputOf('contain_agent').parse(r.structuredContent) as {
      status: string;
      intents_voided: number;
      subscriptions_cancelled: string[];
      clawback_ids: string[];
      clawback_total: string | null;
      escrows_cancelled: number;
      exposure: { pending_intents: number | null; active_subscriptions: number | null };
    };
    expect.soft(truth.intents(AGENT, 'pending')).toEqual([]);
    expect.soft(truth.subscriptions(AGENT, 'active')).toEqual([]);
    expect.soft(truth.held(AGENT).count).toBe(0);
    expect.soft(truth.frozen(AGENT)).toBe(true);
    expect.soft(out.status).toBe('contained');
    expect.soft(out.intents_voided).toBe(PENDING);
    expect.soft(truth.intents(AGENT, 'voided')).toHaveLength(PENDING);
    expect.soft(out.subscriptions_cancelled.sort()).toEqual(
      truth
        .subscriptions(AGENT, 'cancelled')
        .map((s) => s.id)
        .sort(),
    );
    expect.soft(out.exposure).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
    // Claw-back: the settled intents, listed with their total, none refunded.
    const settled = truth.intents(AGENT, 'settled');
    expect.soft(out.clawback_ids.sort()).toEqual(settled.map((i) => i.id).sort());
    expect.soft(out.clawback_total).toBe((settled.reduce((n, i) => n + i.amount_cents, 0) / 100).toFixed(2));
    expect.soft(truth.intentRefunds(AGENT).size).toBe(0);
    expect.soft(pendingCents).toBeGreaterThan(0);
  });

  it('a second contain_agent returns the incident and sends nothing again', async () => {
    const voided = truth.intents(AGENT, 'voided').length;
    const r = await product.call('contain_agent', { agent_id: AGENT, reason: 'again' });
    const out = r.structuredContent as { existing: boolean; status: string; intents_voided: number };
    expect.soft(out.existing).toBe(true);
    expect.soft(out.status).toBe('contained');
    expect.soft(out.intents_voided).toBe(voided);
    expect.soft(truth.intentRefunds(AGENT).size).toBe(0);
  });

  it('a claw-back a person confirms with stage 1 refunds each settled intent exactly once; a repeat sends nothing', async () => {
    const incidentId = product.ops.store.listIncidents({ agent_id: AGENT, limit: 1, offset: 0 })[0]!.id;
    const settled = truth.intents(AGENT, 'settled');
    expect(settled).toHaveLength(SETTLED);
    const ids = settled.map((i) => i.id);
    const totalCents = settled.reduce((n, i) => n + i.amount_cents, 0);
    const feeCents = settled.reduce((n, i) => n + intentFee(i.amount_cents), 0);
    const before = { agent: truth.balanceCents(AGENT)!, payee: truth.balanceCents(PAYEE)! };
    const r = await product.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      confirmed_by: 'gateway-test',
      clawback_intent_ids: ids,
    });
    expect(r.isError).toBeFalsy();
    const out = outputOf('recover_agent').parse(r.structuredContent) as {
      applied: boolean;
      clawback?: { id: string; outcome: string }[];
    };
    expect.soft(out.applied).toBe(true);
    expect.soft(truth.frozen(AGENT)).toBe(false);
    expect.soft(out.clawback?.map((c) => c.outcome)).toEqual(Array(SETTLED).fill('refunded'));
    // Ground truth: one refund deposit per intent into the agent's wallet, the payee debited the principal
    // once, the agent credited principal and create fee once; the gateway still says `settled`.
    expect.soft([...truth.intentRefunds(AGENT)].sort()).toEqual(ids.map((id) => [id, 1]).sort());
    expect.soft(before.payee - truth.balanceCents(PAYEE)!).toBe(totalCents);
    expect.soft(truth.balanceCents(AGENT)! - before.agent).toBe(totalCents + feeCents);
    expect.soft(truth.intents(AGENT, 'settled')).toHaveLength(SETTLED);

    const again = await product.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 1,
      clawback_intent_ids: ids,
    });
    expect(again.isError).toBeFalsy();
    expect
      .soft((again.structuredContent.clawback as { outcome: string }[]).map((c) => c.outcome))
      .toEqual(Array(SETTLED).fill('already_refunded'));
    expect.soft([...truth.intentRefunds(AGENT).values()]).toEqual(Array(SETTLED).fill(1));
    expect.soft(before.payee - truth.balanceCents(PAYEE)!).toBe(totalCents);
  });
});
