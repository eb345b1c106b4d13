/**
 * Containment of the money paths beyond escrows, end to end on the sandbox: pending intents voided and
 * active subscriptions cancelled in the same call as the escrows, each sent once (write-ahead ledger),
 * settled intents in the window listed as claw-back possible and never refunded, the totals equal to the
 * sandbox's own books, and the same through a faulty network, a second process and a resumed run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import { faultInjector } from '../helpers/faults.js';
import { CANCEL, cleanups, closeAll, engine, sendsPer, VOID, world } from '../helpers/money-paths.js';

afterEach(closeAll);

describe('containment of intents and subscriptions', () => {
  it('one call: pending intents voided, subscriptions cancelled, escrows cancelled; claw-back listed, not refunded', async () => {
    const w = await world({ pending: 30, subscriptions: 6, escrows: 20 });
    const pendingBefore = w.sandbox.intentRecords(w.agent).filter((i) => i.status === 'pending');
    const { app } = await engine(w.sandbox, w.proxy.url);
    const r = await app.ops.contain({ agent_id: w.agent, reason: 'intent loop' });
    expect(r.status).toBe('contained');
    const truth = w.sandbox.groundTruth(w.agent);
    expect(truth).toMatchObject({
      frozen: true,
      held_escrows: 0,
      pending_intents: 0,
      active_subscriptions: 0,
    });
    expect(r.paths.intents.voided).toBe(pendingBefore.length);
    expect(r.paths.intents.amount_voided).toBe(
      (pendingBefore.reduce((n, i) => n + i.amount, 0) / 100).toFixed(2),
    );
    expect(r.paths.subscriptions.cancelled).toBe(6);
    expect(r.paths.subscriptions.cancelled_list.map((s) => s.interval)).toEqual(Array(6).fill('hourly'));
    expect(r.escrows_cancelled).toBe(truth.escrows_refunded);
    expect(r.exposure).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
    // Claw-back: exactly the settled intents inside the window, nothing refunded.
    expect(r.paths.clawback.intent_ids.sort()).toEqual([...w.settledInWindow].sort());
    expect(r.paths.clawback.total).toBe((w.settledCents / 100).toFixed(2));
    expect(truth.intents_refunded).toBe(0);
    expect(w.sandbox.intentRecords().every((i) => i.refunds === 0)).toBe(true);
    // Each void and cancel sent once; the intent paid to the agent untouched.
    expect([...sendsPer(w.proxy, VOID).values()].every((n) => n === 1)).toBe(true);
    expect(sendsPer(w.proxy, VOID).size).toBe(pendingBefore.length);
    expect([...sendsPer(w.proxy, CANCEL).values()].every((n) => n === 1)).toBe(true);
    expect(
      w.sandbox.intentRecords().filter((i) => i.payee === w.agent && i.status === 'pending'),
    ).toHaveLength(1);
    // Recovery offers the cancelled subscriptions back (as new ones: the gateway cannot reactivate them).
    const rec = await app.ops.recover({ incident_id: r.incident_id, root_cause_fixed: false, dry_run: true });
    expect(rec.cancelled_subscriptions.map((c) => c.id).sort()).toEqual(
      w.sandbox
        .subscriptionRecords(w.agent)
        .filter((x) => x.status === 'cancelled')
        .map((x) => x.id)
        .sort(),
    );
    expect(rec.cancelled_subscriptions[0]).toMatchObject({ amount_cents: 100, interval: 'hourly' });
    // The post-mortem accounts for every path: stopped, still armed, settled (claw-back possible), cancelled.
    const pm = await app.ops.postmortem(r.incident_id);
    const mp = (pm.report as { impact: { money_paths: Record<string, unknown> } }).impact.money_paths;
    expect(mp).toMatchObject({
      intents_settled: w.settledInWindow.length,
      amount_settled: { amount: (w.settledCents / 100).toFixed(2) },
      intents_pending: 0,
      intents_voided_by_us: pendingBefore.length,
      intents_refunded_by_us: 0,
      unconfirmed: 0,
      subscriptions_active: 0,
    });
    expect(mp.subscriptions_cancelled).toHaveLength(6);
    expect(pm.markdown).toContain('| Intents voided by us (stopped) |');
    // The incident view (get_incident) carries the per-path totals from the ledger.
    expect(app.ops.incidentView(r.incident_id)?.incident.detail.money_paths).toMatchObject({
      intents_voided: pendingBefore.length,
      amount_voided: { amount: r.paths.intents.amount_voided },
      intents_failed: 0,
      subscriptions_cancelled: 6,
      subscriptions_failed: 0,
    });
    // A contained agent returns its incident; nothing is sent again.
    const sent = w.proxy.log.length;
    const again = await app.ops.contain({ agent_id: w.agent, reason: 'again' });
    expect([again.existing, again.incident_id, again.paths.intents.voided]).toEqual([
      true,
      r.incident_id,
      pendingBefore.length,
    ]);
    expect(
      w.proxy.log.filter((c, i) => i >= sent && (VOID.test(c.path) || CANCEL.test(c.path))),
    ).toHaveLength(0);
  }, 60_000);

  it('the read closing a round goes out beside its voids: what it still shows pending that our voids confirmed is not left', async () => {
    const w = await world({ pending: 30, subscriptions: 3, escrows: 0 });
    // Every void reaches the gateway 300 ms late, so the closing read (sent with them) is answered first
    // and still shows each intent pending.
    w.proxy.intercept = async (c, res, forward) => {
      if (c.method !== 'POST' || !VOID.test(c.path)) return false;
      await sleep(300);
      const u = await forward();
      res.writeHead(u.status, u.headers);
      res.end(u.text);
      return true;
    };
    const { app } = await engine(w.sandbox, w.proxy.url);
    const r = await app.ops.contain({ agent_id: w.agent, reason: 'intent loop' });
    expect(r.status).toBe('contained');
    expect(r.exposure).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
    expect(w.sandbox.groundTruth(w.agent)).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
    const pendingReads = w.proxy.log.filter(
      (c) => c.method === 'GET' && c.path === '/v1/payments/intents' && c.query.get('status') === 'pending',
    );
    // The first list and one closing read; the stale read made no second round.
    expect(pendingReads).toHaveLength(2);
    const stale = (pendingReads[1]!.response as { intents: { payer: string }[] }).intents;
    expect(stale.filter((i) => i.payer === w.agent)).toHaveLength(30);
    expect(r.steps.filter((s) => s.action === 'void_pending_intents')).toHaveLength(1);
  }, 60_000);

  it('two callers at once: one containment, each intent voided once', async () => {
    const w = await world({ pending: 25, subscriptions: 3, escrows: 0 });
    const { app } = await engine(w.sandbox, w.proxy.url);
    const [a, b] = await Promise.all([
      app.ops.contain({ agent_id: w.agent, reason: 'first' }),
      app.ops.contain({ agent_id: w.agent, reason: 'second' }),
    ]);
    expect(a.incident_id).toBe(b.incident_id);
    expect(Math.max(...sendsPer(w.proxy, VOID).values())).toBe(1);
    expect(Math.max(...sendsPer(w.proxy, CANCEL).values())).toBe(1);
    expect(w.sandbox.groundTruth(w.agent)).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
  }, 60_000);

  it.each([1, 2, 3])(
    'through 5xx before and after the gateway acted, and resets, seed %i: each void read back, never sent blind twice',
    async (seed) => {
      const w = await world({ pending: 40, subscriptions: 8, escrows: 0 });
      const faults = faultInjector({ seed, error5xx: 0.15, reset: 0.05 });
      w.proxy.intercept = faults.intercept;
      const { app } = await engine(w.sandbox, w.proxy.url);
      const r = await app.ops.contain({ agent_id: w.agent, reason: `faults ${seed}` });
      const truth = w.sandbox.groundTruth(w.agent);
      expect(truth.intents_refunded).toBe(0);
      if (r.status === 'contained') {
        expect(truth).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
      } else {
        // Not contained: what is left is said exactly, or said to be unknown.
        if (r.exposure.pending_intents !== null)
          expect(r.exposure.pending_intents).toBe(truth.pending_intents);
        if (r.exposure.active_subscriptions !== null)
          expect(r.exposure.active_subscriptions).toBe(truth.active_subscriptions);
      }
      const voided = w.sandbox.intentRecords(w.agent).filter((i) => i.status === 'voided').length;
      expect(r.paths.intents.voided).toBe(voided);
      const cancelled = w.sandbox.subscriptionRecords(w.agent).filter((s) => s.status === 'cancelled').length;
      expect(r.paths.subscriptions.cancelled).toBe(cancelled);
      // A resumed call finishes the job, counting each once.
      w.proxy.intercept = undefined;
      const again = await app.ops.contain({ agent_id: w.agent, reason: 'heal' });
      expect(again.status).toBe('contained');
      expect(w.sandbox.groundTruth(w.agent)).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
      expect(again.paths.intents.voided).toBe(
        w.sandbox.intentRecords(w.agent).filter((i) => i.status === 'voided').length,
      );
    },
    60_000,
  );

  it('a void that reaches an intent settled meanwhile is sent once, reported failed, never re-sent', async () => {
    const w = await world({ pending: 5, subscriptions: 0, escrows: 0 });
    const own = new GreenHelixClient({
      baseUrl: w.sandbox.url,
      apiKey: w.sandbox.keys.agents[w.agent] as string,
    });
    cleanups.push(() => own.close());
    const admin = (path: string) =>
      fetch(`${w.sandbox.url}/v1/billing/wallets/${w.agent}/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${w.sandbox.keys.containment}` },
      });
    let captured: string | undefined;
    // One intent settles between the pending list and its void (forced here through a moment unfrozen):
    // the gateway's "void" is a refund, which into the frozen payer fails after debiting the payee.
    w.proxy.intercept = async (c) => {
      const m = VOID.exec(c.path);
      if (c.method === 'POST' && m && !captured) {
        captured = m[1] as string;
        await admin('unfreeze');
        await own.captureIntent({ intent_id: captured });
        await admin('freeze');
      }
      return false;
    };
    const { app } = await engine(w.sandbox, w.proxy.url);
    const r = await app.ops.contain({ agent_id: w.agent, reason: 'race' });
    expect(captured).toBeDefined();
    expect([r.paths.intents.voided, r.paths.intents.failed]).toEqual([4, 1]);
    expect(r.exposure.pending_intents).toBe(0);
    const rec = w.sandbox.intentRecords(w.agent).find((i) => i.id === captured);
    expect([rec?.status, rec?.refunds]).toEqual(['settled', 0]);
    // Ours now (its outcome unknown): never listed for claw-back, never sent again.
    expect(r.paths.clawback.intent_ids).not.toContain(captured);
    w.proxy.intercept = undefined;
    await app.ops.contain({ agent_id: w.agent, reason: 'again' });
    expect(sendsPer(w.proxy, VOID).get(captured as string)).toBe(1);
  }, 60_000);

  it('recovery stops what the agent armed while frozen before it unfreezes, and stays frozen when it cannot tell', async () => {
    const w = await world({ pending: 3, subscriptions: 2, escrows: 0 });
    const { app } = await engine(w.sandbox, w.proxy.url);
    const r = await app.ops.contain({ agent_id: w.agent, reason: 'storm' });
    expect(r.status).toBe('contained');
    // A freeze blocks neither: a new subscription and a new intent while contained.
    const admin = new GreenHelixClient({ baseUrl: w.sandbox.url, apiKey: w.sandbox.keys.containment });
    cleanups.push(() => admin.close());
    const payee = w.sandbox.fleet[1] as string;
    await admin.createSubscription({ payer: w.agent, payee, amount: 2, interval: 'daily' });
    await admin.createIntent({ payer: w.agent, payee, amount: 5 });
    expect(w.sandbox.groundTruth(w.agent)).toMatchObject({ pending_intents: 1, active_subscriptions: 1 });
    // Unreadable subscriptions: stage 1 is refused and the wallet stays frozen.
    w.proxy.intercept = async (c, res) => {
      if (c.method !== 'GET' || c.path !== '/v1/payments/subscriptions') return false;
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'https://api.greenhelix.net/errors/service-error', status: 503 }));
      return true;
    };
    const refused = await app.ops.recover({
      incident_id: r.incident_id,
      root_cause_fixed: true,
      dry_run: false,
    });
    expect(refused.applied).toBe(false);
    expect(refused.steps.find((s) => s.action === 'check_money_paths_before_unfreeze')?.error?.code).toBe(
      'money_paths_armed',
    );
    expect(w.sandbox.groundTruth(w.agent).frozen).toBe(true);
    w.proxy.intercept = undefined;
    const rec = await app.ops.recover({ incident_id: r.incident_id, root_cause_fixed: true, dry_run: false });
    expect([rec.applied, rec.stage]).toEqual([true, 1]);
    expect(w.sandbox.groundTruth(w.agent)).toMatchObject({
      frozen: false,
      pending_intents: 0,
      active_subscriptions: 0,
    });
    expect(rec.cancelled_subscriptions).toHaveLength(3);
  }, 60_000);

  it('resumes after a crash mid-void: claimed rows are read back, not re-sent; the rest voided once', async () => {
    const w = await world({ pending: 10, subscriptions: 4, escrows: 0 });
    const { app } = await engine(w.sandbox, w.proxy.url);
    const store = app.ops.store;
    // What a process killed mid-round leaves: the incident containing, its rows claimed (`sending`), the
    // round's action begun and never finished, and only some of the calls having reached the gateway.
    const { incident } = store.claimContainment(w.agent, {
      agent_ids: [w.agent],
      primary_agent_id: w.agent,
      reason: 'crashed run',
      kind: 'containment',
      detected_at: w.sandbox.clock.now(),
    });
    const pending = w.sandbox.intentRecords(w.agent).filter((i) => i.status === 'pending');
    const subs = w.sandbox.subscriptionRecords(w.agent).filter((x) => x.status === 'active');
    store.moneyPaths.claim(
      'intent',
      'void',
      incident.id,
      w.agent,
      pending.map((i) => ({ id: i.id, payee: i.payee, amount: i.amount })),
    );
    store.moneyPaths.claim(
      'subscription',
      'cancel',
      incident.id,
      w.agent,
      subs.map((x) => ({ id: x.id, payee: x.payee, amount: x.amount, detail: { interval: x.interval } })),
    );
    store.beginAction({
      incident_id: incident.id,
      agent_id: w.agent,
      phase: 'contain',
      action: 'void_pending_intents',
      target: w.agent,
    });
    const admin = new GreenHelixClient({ baseUrl: w.sandbox.url, apiKey: w.sandbox.keys.containment });
    cleanups.push(() => admin.close());
    const reached = pending.slice(0, 6);
    for (const i of reached) await admin.refundIntent({ intent_id: i.id });
    await admin.cancelSubscription({ subscription_id: subs[0]!.id });

    const r = await app.ops.contain({ agent_id: w.agent, reason: 'resume' });
    expect(r.incident_id).toBe(incident.id);
    expect(r.status).toBe('contained');
    expect(r.steps.map((x) => x.action)).toEqual(
      expect.arrayContaining(['reconcile_interrupted_actions', 'reconcile_intent_voids']),
    );
    // Those the dead run got through are never sent again; the others are sent once.
    const sent = sendsPer(w.proxy, VOID);
    for (const i of reached) expect(sent.get(i.id)).toBeUndefined();
    for (const i of pending.slice(6)) expect(sent.get(i.id)).toBe(1);
    expect(sendsPer(w.proxy, CANCEL).get(subs[0]!.id)).toBeUndefined();
    expect([r.paths.intents.voided, r.paths.subscriptions.cancelled]).toEqual([pending.length, subs.length]);
    expect(w.sandbox.groundTruth(w.agent)).toMatchObject({ pending_intents: 0, active_subscriptions: 0 });
    // The dead run's begun action is finished (as interrupted); none of its kind stays open.
    expect(store.pendingActions(incident.id).filter((a) => a.action === 'void_pending_intents')).toHaveLength(
      0,
    );
  }, 60_000);
});
