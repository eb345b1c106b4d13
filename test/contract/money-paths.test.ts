/**
 * The money paths beyond escrows over HTTP against the sandbox, as the real gateway runs them
 * (products/payments/src/engine.py, gateway/src/tools/payments.py at ec0b30f): states, status codes,
 * RFC 9457 error types, what a freeze blocks, and the quirks (repeatable refund of a settled intent,
 * cancelled subscriptions are final, a split into a frozen payee keeps the payer's money).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { failure } from '../helpers/failure.js';

let sb: Sandbox;
let payer: string;
let payee: string;
let third: string;
let admin: GreenHelixClient;
let agent: GreenHelixClient;
const clients: GreenHelixClient[] = [];
const cents = (id: string) => Math.round(Number(sb.groundTruth(id).balance) * 100);

beforeAll(async () => {
  sb = await startSandbox({ agents: 3, seed: 11, timeScale: 0, autoStartTraffic: false });
  [payer, payee, third] = sb.fleet as [string, string, string];
  admin = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.containment });
  agent = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.agents[payer] as string });
  clients.push(admin, agent);
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await sb?.close();
});

describe('payment intents', () => {
  it('create is pending and charges a 2 % fee; capture moves the money and settles; a second capture is 409', async () => {
    const before = cents(payer);
    const i = await agent.createIntent({ payer, payee, amount: 50 });
    expect(i.status).toBe('pending');
    expect(i.gateway_fee).toBe(100);
    expect(cents(payer)).toBe(before - 100);
    const payeeBefore = cents(payee);
    const settled = await agent.captureIntent({ intent_id: i.id });
    expect([settled.status, settled.amount]).toEqual(['settled', 5000]);
    expect(settled.id).not.toBe(i.id);
    expect(cents(payer)).toBe(before - 100 - 5000);
    expect(cents(payee)).toBe(payeeBefore + 5000);
    expect((await admin.getIntent({ intent_id: i.id })).status).toBe('settled');
    const again = await failure(agent.captureIntent({ intent_id: i.id }));
    expect([again.status, again.code]).toEqual([409, 'invalid_state']);
  });

  it('only the payer may capture; an unknown intent is 404 intent_not_found', async () => {
    const i = await agent.createIntent({ payer, payee, amount: 5 });
    const other = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.agents[payee] as string });
    clients.push(other);
    const e = await failure(other.captureIntent({ intent_id: i.id }));
    expect([e.status, e.code]).toEqual([403, 'forbidden']);
    const missing = await failure(admin.getIntent({ intent_id: 'no-such-intent' }));
    expect([missing.status, missing.code]).toEqual([404, 'intent_not_found']);
  });

  it('partial capture pays part and leaves the rest pending; more than is left is 400 payment_error', async () => {
    const i = await agent.createIntent({ payer, payee, amount: 20 });
    const part = await agent.partialCapture({ intent_id: i.id, amount: 15 });
    expect([part.amount, part.remaining_amount]).toEqual([1500, 500]);
    const after = await admin.getIntent({ intent_id: i.id });
    expect([after.status, after.amount]).toEqual(['pending', 500]);
    const over = await failure(agent.partialCapture({ intent_id: i.id, amount: 6 }));
    expect([over.status, over.code]).toEqual([400, 'payment_error']);
    await agent.partialCapture({ intent_id: i.id, amount: 5 });
    expect((await admin.getIntent({ intent_id: i.id })).status).toBe('settled');
  });

  it('refund voids a pending intent (fee back); a voided one is 409', async () => {
    const before = cents(payer);
    const i = await agent.createIntent({ payer, payee, amount: 10 });
    const r = await admin.refundIntent({ intent_id: i.id });
    expect([r.status, r.amount, r.fee_refunded]).toEqual(['voided', 1000, true]);
    expect(cents(payer)).toBe(before);
    const again = await failure(admin.refundIntent({ intent_id: i.id }));
    expect([again.status, again.code]).toEqual([409, 'invalid_state']);
  });

  it('the quirk: a settled intent answers refunded but stays settled, so every refund pays the payer again', async () => {
    const i = await agent.createIntent({ payer, payee, amount: 30 });
    await agent.captureIntent({ intent_id: i.id });
    const before = cents(payer);
    expect((await admin.refundIntent({ intent_id: i.id })).status).toBe('refunded');
    expect((await admin.refundIntent({ intent_id: i.id })).status).toBe('refunded');
    expect((await admin.getIntent({ intent_id: i.id })).status).toBe('settled');
    // Principal and the 0.60 fee, twice.
    expect(cents(payer)).toBe(before + 2 * (3000 + 60));
    const rec = sb.intentRecords(payer).find((r) => r.id === i.id);
    expect(rec?.refunds).toBe(2);
    expect(sb.groundTruth(payer).intent_double_refunds).toBeGreaterThanOrEqual(1);
  });

  it('a freeze blocks capture (nothing moves) but not creating or voiding an intent', async () => {
    const i = await agent.createIntent({ payer, payee, amount: 7 });
    await admin.freezeWallet({ agent_id: payer });
    try {
      const before = cents(payer);
      const e = await failure(agent.captureIntent({ intent_id: i.id }));
      expect([e.status, e.code]).toEqual([403, 'wallet_frozen']);
      expect(cents(payer)).toBe(before);
      expect((await admin.getIntent({ intent_id: i.id })).status).toBe('pending');
      const created = await agent.createIntent({ payer, payee, amount: 1 });
      expect(created.status).toBe('pending');
      expect((await admin.refundIntent({ intent_id: i.id })).status).toBe('voided');
      const p = await failure(agent.partialCapture({ intent_id: created.id, amount: 1 }));
      expect(p.code).toBe('wallet_frozen');
    } finally {
      await admin.unfreezeWallet({ agent_id: payer });
    }
  });

  it('a capture into a frozen payee is 403 and compensated: the payer keeps its money, the intent stays pending', async () => {
    const i = await agent.createIntent({ payer, payee, amount: 4 });
    const before = cents(payer);
    await admin.freezeWallet({ agent_id: payee });
    try {
      const e = await failure(agent.captureIntent({ intent_id: i.id }));
      expect(e.code).toBe('wallet_frozen');
      expect(cents(payer)).toBe(before);
      // The gateway reverts `captured` to `pending` after the failed deposit.
      expect(sb.intentRecords(payer).find((r) => r.id === i.id)?.status).toBe('pending');
    } finally {
      await admin.unfreezeWallet({ agent_id: payee });
    }
  });

  it('list_intents lists payer or payee rows newest first, filtered by status', async () => {
    const listed = await admin.listIntents({ agent_id: payer, status: 'pending', limit: 100 });
    expect(listed.intents.every((i) => i.status === 'pending')).toBe(true);
    const truth = sb.intentRecords(payer).filter((i) => i.status === 'pending');
    expect(listed.count).toBe(truth.length);
    expect(listed.intents[0]?.id).toBe(truth.at(-1)?.id);
  });
});

describe('split intents', () => {
  it('moves the money at once to each payee by percentage; percentages must sum to 100', async () => {
    const [a, b] = [cents(payee), cents(third)];
    const r = await agent.createSplitIntent({
      payer,
      amount: 10,
      splits: [
        { payee, percentage: 70 },
        { payee: third, percentage: 30 },
      ],
    });
    expect(r.status).toBe('settled');
    expect(r.settlements.map((s) => s.amount)).toEqual([700, 300]);
    expect([cents(payee) - a, cents(third) - b]).toEqual([700, 300]);
    // The client refuses a split that does not sum to 100 before sending anything.
    const bad = await failure(
      agent.createSplitIntent({ payer, amount: 10, splits: [{ payee, percentage: 50 }] }),
    );
    expect([bad.status, bad.code]).toEqual([0, 'invalid_request']);
    // The gateway's own answer to one (sent raw, past the client's check): 400 validation_error.
    const raw = await fetch(`${sb.url}/v1/payments/intents/split`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sb.keys.agents[payer]}`, 'content-type': 'application/json' },
      body: JSON.stringify({ payer, amount: 10, splits: [{ payee, percentage: 50 }] }),
    });
    expect(raw.status).toBe(400);
    expect(raw.headers.get('content-type')).toContain('application/problem+json');
    expect(((await raw.json()) as { type: string }).type).toMatch(/validation-error$/);
  });

  it('a frozen payee stops the split after the payer has paid: the payer loses the amount', async () => {
    await admin.freezeWallet({ agent_id: third });
    try {
      const before = cents(payer);
      const e = await failure(
        agent.createSplitIntent({
          payer,
          amount: 10,
          splits: [
            { payee, percentage: 50 },
            { payee: third, percentage: 50 },
          ],
        }),
      );
      expect([e.status, e.code]).toEqual([403, 'wallet_frozen']);
      // The fee (0.20) is not charged on a failed call; the 10.00 withdrawal is not undone.
      expect(cents(payer)).toBe(before - 1000);
    } finally {
      await admin.unfreezeWallet({ agent_id: third });
    }
  });
});

describe('subscriptions', () => {
  /** Past the due time and the gateway's next 300 s scheduler pass, which charges what is due. */
  const SCHEDULED = 3_600_000 + 300_000;

  it('create is active; the scheduler charges each due one once; cancel is final (reactivate is 409)', async () => {
    const s = await agent.createSubscription({ payer, payee, amount: 2, interval: 'hourly' });
    expect([s.status, s.interval]).toEqual(['active', 'hourly']);
    const before = cents(payer);
    expect((await admin.processDueSubscriptions()).processed).toBe(0);
    await sb.advance(SCHEDULED);
    expect((await admin.getSubscription({ subscription_id: s.id })).charge_count).toBe(1);
    expect(cents(payer)).toBe(before - 200);
    // Charged once: the next charge is an hour later, so nothing is due now.
    expect((await admin.processDueSubscriptions()).processed).toBe(0);
    expect((await admin.cancelSubscription({ subscription_id: s.id })).status).toBe('cancelled');
    const again = await failure(admin.cancelSubscription({ subscription_id: s.id }));
    expect([again.status, again.code]).toEqual([409, 'invalid_state']);
    const re = await failure(admin.reactivateSubscription({ subscription_id: s.id }));
    expect([re.status, re.code]).toEqual([409, 'invalid_state']);
    const missing = await failure(admin.getSubscription({ subscription_id: 'nope' }));
    expect([missing.status, missing.code]).toEqual([404, 'subscription_not_found']);
  });

  it('a charge the payer cannot afford suspends it; a suspended one can be reactivated', async () => {
    const s = await agent.createSubscription({ payer, payee, amount: 999_999, interval: 'hourly' });
    await sb.advance(SCHEDULED);
    expect((await admin.getSubscription({ subscription_id: s.id })).status).toBe('suspended');
    expect((await admin.reactivateSubscription({ subscription_id: s.id })).status).toBe('active');
    await admin.cancelSubscription({ subscription_id: s.id });
  });

  it('a frozen payer is not charged (still due) and is charged once the wallet is unfrozen', async () => {
    const s = await agent.createSubscription({ payer, payee, amount: 1, interval: 'hourly' });
    await admin.freezeWallet({ agent_id: payer });
    const before = cents(payer);
    try {
      await sb.advance(SCHEDULED);
      const frozenRun = await admin.processDueSubscriptions();
      expect([frozenRun.processed, frozenRun.failed]).toEqual([1, 1]);
      expect(cents(payer)).toBe(before);
    } finally {
      await admin.unfreezeWallet({ agent_id: payer });
    }
    const run = await admin.processDueSubscriptions();
    expect(run.succeeded).toBe(1);
    expect(cents(payer)).toBe(before - 100);
    expect(sb.groundTruth(payer).active_subscriptions).toBe(1);
    await admin.cancelSubscription({ subscription_id: s.id });
    expect(sb.groundTruth(payer).active_subscriptions).toBe(0);
  });

  it('another agent may cancel a subscription (the gateway checks no party)', async () => {
    const s = await agent.createSubscription({ payer, payee, amount: 1, interval: 'daily' });
    const stranger = new GreenHelixClient({ baseUrl: sb.url, apiKey: sb.keys.agents[third] as string });
    clients.push(stranger);
    expect((await stranger.cancelSubscription({ subscription_id: s.id })).status).toBe('cancelled');
  });

  it('list_subscriptions names the agent as payer or payee; another agent is 403 forbidden', async () => {
    const rows = await admin.listSubscriptions({ agent_id: payee, limit: 100 });
    expect(rows.subscriptions.length).toBe(sb.subscriptionRecords(payer).length);
    const e = await failure(agent.listSubscriptions({ agent_id: payee }));
    expect([e.status, e.code]).toEqual([403, 'forbidden']);
  });
});

describe('withdraw and convert', () => {
  it('withdraw takes CREDITS out for good; convert moves them to another currency at the default rate', async () => {
    const before = cents(payer);
    const w = await agent.withdraw({ agent_id: payer, amount: 3 });
    expect(w.new_balance).toBe(before - 300);
    const c = await agent.convertCurrency({
      agent_id: payer,
      amount: 200,
      from_currency: 'CREDITS',
      to_currency: 'USD',
    });
    expect([c.from_amount, c.to_amount]).toEqual(['200.0', '2.0']);
    expect(cents(payer)).toBe(before - 300 - 20_000);
    expect(sb.groundTruth(payer).holdings.USD).toBe('2');
    await agent.withdraw({ agent_id: payer, amount: 2, currency: 'USD' });
    expect(sb.groundTruth(payer).holdings.USD).toBe('0');
  });

  it('a frozen wallet refuses both (403 wallet_frozen, nothing moves); too much is 402 insufficient_balance', async () => {
    const big = await failure(agent.withdraw({ agent_id: payer, amount: 999_999 }));
    expect([big.status, big.code]).toEqual([402, 'insufficient_balance']);
    await admin.freezeWallet({ agent_id: payer });
    try {
      const before = cents(payer);
      const w = await failure(agent.withdraw({ agent_id: payer, amount: 1 }));
      const c = await failure(
        agent.convertCurrency({ agent_id: payer, amount: 1, from_currency: 'CREDITS', to_currency: 'EUR' }),
      );
      expect([w.status, w.code, c.status, c.code]).toEqual([403, 'wallet_frozen', 403, 'wallet_frozen']);
      expect(cents(payer)).toBe(before);
    } finally {
      await admin.unfreezeWallet({ agent_id: payer });
    }
  });
});
