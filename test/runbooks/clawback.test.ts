/**
 * The human-confirmed claw-back (recover_agent clawback_intent_ids), end to end on the sandbox over real
 * HTTP: each confirmed settled intent refunded exactly once (the sandbox's wallet transactions are the
 * ground truth: a repeated refund shows there even though the intent stays `settled`), never into a frozen
 * payer, nothing moved for an id outside the incident's claw-back list, a refused refund reported failed,
 * and unanswered or crashed refunds read back from the payer's wallet and never sent again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GreenHelixClient } from '../../src/greenhelix/index.js';
import type { Ops } from '../../src/runbooks/ops.js';
import { intentFee } from '../../src/sandbox/money-paths.js';
import { TOOLS } from '../../src/tools/index.js';
import { errorOf, startFixture } from '../helpers/fixture.js';
import { cleanups, closeAll, engine, sendsPer, VOID, type World, world } from '../helpers/money-paths.js';

afterEach(closeAll);

/** refund_intent is the gateway's route for voids and refunds alike; POSTs per intent id. */
const REFUND = VOID;

/** A contained world: 3 settled intents in the window (paid to fleet[2]), some pending, nothing else. */
async function contained(pending = 4) {
  const w = await world({ pending, subscriptions: 0, escrows: 0 });
  const { app, dataDir } = await engine(w.sandbox, w.proxy.url);
  const c = await app.ops.contain({ agent_id: w.agent, reason: 'intent loop' });
  expect(c.status).toBe('contained');
  expect(c.paths.clawback.intent_ids.sort()).toEqual([...w.settledInWindow].sort());
  return { w, ops: app.ops, dataDir, incidentId: c.incident_id };
}

const refundsOf = (w: World) =>
  new Map(w.sandbox.intentRecords(w.agent).map((i) => [i.id, i.refunds] as const));
const balanceCents = (w: World, agent: string) =>
  Math.round(Number(w.sandbox.groundTruth(agent).balance) * 100);
const adminPost = (w: World, path: string) =>
  fetch(`${w.sandbox.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${w.sandbox.keys.containment}` },
  });
/** State-changing calls sent so far (event publishes, fire and forget, left out). */
const moneyPosts = (w: World) =>
  w.proxy.log.filter((x) => x.method === 'POST' && x.path !== '/v1/infra/events').length;
const outcomes = (r: { clawback?: { id: string; outcome: string }[] | undefined }) =>
  Object.fromEntries((r.clawback ?? []).map((c) => [c.id, c.outcome]));

describe('claw-back of settled intents, confirmed by a person', () => {
  it('refunds each confirmed intent once with stage 1; a repeat refunds nothing; post-mortem and get_incident count them', async () => {
    const w = await world({ pending: 3, subscriptions: 0, escrows: 0 });
    const f = await startFixture({
      sandbox: w.sandbox,
      config: (c) => ({ ...c, greenhelix: { ...c.greenhelix, baseUrl: w.proxy.url } }),
    });
    cleanups.push(() => f.close());
    const payee = w.sandbox.fleet[2] as string;
    const c = await f.call('contain_agent', { agent_id: w.agent, reason: 'intent loop' });
    const incidentId = c.structuredContent.incident_id as string;
    const ids = c.structuredContent.clawback_ids as string[];
    expect(ids.sort()).toEqual([...w.settledInWindow].sort());
    const before = { agent: balanceCents(w, w.agent), payee: balanceCents(w, payee) };

    const r = await f.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      confirmed_by: 'ops on call',
      clawback_intent_ids: ids,
    });
    expect(r.isError).toBeFalsy();
    const out = TOOLS.find((t) => t.name === 'recover_agent')!.output.parse(r.structuredContent) as {
      applied: boolean;
      stage: number;
      unfrozen: boolean;
      clawback?: { id: string; amount: string; outcome: string }[];
    };
    expect([out.applied, out.stage, out.unfrozen]).toEqual([true, 1, true]);
    expect(out.clawback?.map((x) => x.outcome)).toEqual(['refunded', 'refunded', 'refunded']);
    expect(out.clawback?.map((x) => x.amount).sort()).toEqual(['11.00', '4.00', '6.00']);
    const text = (r.content[0] as { text: string }).text;
    expect(text).toContain('Claw-back of 3 settled intents: 3 refunded (21.00 CREDITS)');
    // Ground truth: each refunded exactly once; the payee paid back the principal, the agent got it and
    // each create fee back (the gateway's fee policy).
    for (const id of w.settledInWindow) expect(refundsOf(w).get(id)).toBe(1);
    expect(before.payee - balanceCents(w, payee)).toBe(w.settledCents);
    const fees = w.sandbox
      .intentRecords(w.agent)
      .filter((i) => w.settledInWindow.includes(i.id))
      .reduce((n, i) => n + intentFee(i.amount), 0);
    expect(balanceCents(w, w.agent) - before.agent).toBe(w.settledCents + fees);
    expect(sendsPer(w.proxy, REFUND).get(ids[0]!)).toBe(1);

    // The same confirmation again (stage 1 already applied): nothing is sent, each reported as done.
    const sent = w.proxy.log.length;
    const again = await f.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 1,
      clawback_intent_ids: ids,
    });
    expect(again.isError).toBeFalsy();
    expect((again.structuredContent.clawback as { outcome: string }[]).map((x) => x.outcome)).toEqual(
      Array(3).fill('already_refunded'),
    );
    expect(w.proxy.log.slice(sent).filter((x) => x.method === 'POST' && REFUND.test(x.path))).toEqual([]);
    for (const id of w.settledInWindow) expect(refundsOf(w).get(id)).toBe(1);

    // The incident's record and its post-mortem count each claw-back once, and none as still possible.
    const view = f.ops.incidentView(incidentId)?.incident.detail.money_paths;
    expect(view).toMatchObject({
      intents_clawed_back: 3,
      amount_clawed_back: { amount: '21.00' },
      clawbacks_failed: 0,
      clawbacks_unknown: 0,
    });
    const g = await f.call('get_incident', { incident_id: incidentId });
    expect((g.content[0] as { text: string }).text).toContain(
      'Claw-back: 3 settled intents refunded once each (21.00 CREDITS)',
    );
    const pm = await f.ops.postmortem(incidentId);
    const mp = (pm.report as { impact: { money_paths: Record<string, unknown> } }).impact.money_paths;
    expect(mp).toMatchObject({
      intents_settled: 0,
      intents_refunded_by_us: 3,
      amount_refunded_by_us: { amount: '21.00' },
      unconfirmed: 0,
    });
  }, 60_000);

  it('never while frozen: refused before the stage when the call cannot unfreeze; not sent when stage 1 fails', async () => {
    const { w, ops, incidentId } = await contained();
    const ids = w.settledInWindow;
    await expect(
      ops.recover({
        incident_id: incidentId,
        root_cause_fixed: true,
        stage: 2,
        dry_run: false,
        clawback_intent_ids: ids,
      }),
    ).rejects.toMatchObject({
      code: 'wallet_frozen',
      message: expect.stringContaining('Nothing was refunded'),
    });
    // Stage 1 in the same call, but its first gate fails: the wallet stays frozen and nothing is sent.
    const r = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: false,
      dry_run: false,
      clawback_intent_ids: ids,
    });
    expect(r.applied).toBe(false);
    expect(Object.values(outcomes(r))).toEqual(['not_sent', 'not_sent', 'not_sent']);
    expect(r.clawback?.[0]?.note).toContain('gates did not both pass');
    expect(w.sandbox.groundTruth(w.agent).frozen).toBe(true);
    expect(sendsPer(w.proxy, REFUND).size).toBe(4); // the 4 voids of containment, no refund
    expect([...refundsOf(w).values()].every((n) => n === 0)).toBe(true);
  }, 60_000);

  it('refuses, before anything moves, every id not in the claw-back list, naming it and why', async () => {
    const { w, ops, incidentId } = await contained(2);
    const voided = w.sandbox.intentRecords(w.agent).find((i) => i.status === 'voided')!.id;
    const posts = moneyPosts(w);
    const err = await ops
      .recover({
        incident_id: incidentId,
        root_cause_fixed: true,
        dry_run: false,
        clawback_intent_ids: [
          w.settledInWindow[0]!,
          w.settledBefore,
          w.paidToAgent,
          voided,
          'no-such-intent',
        ],
      })
      .catch((e: unknown) => e as { code: string; message: string });
    expect(err).toMatchObject({ code: 'clawback_refused' });
    const msg = (err as { message: string }).message;
    expect(msg).toContain(`${w.settledBefore} (settled `);
    expect(msg).toMatch(/outside the incident window/);
    expect(msg).toContain(`${w.paidToAgent} (paid by ${w.sandbox.fleet[1]}, not ${w.agent})`);
    expect(msg).toContain(`${voided} (our void of it (incident ${incidentId}) is done)`);
    expect(msg).toContain('no-such-intent (no such intent)');
    expect(msg).not.toContain(`${w.settledInWindow[0]} (`);
    // Nothing moved: no stage applied (still frozen), no POST at all.
    expect(moneyPosts(w)).toBe(posts);
    expect(w.sandbox.groundTruth(w.agent).frozen).toBe(true);
  }, 60_000);

  it('a refund the gateway refuses is reported failed with nothing moved; confirmed again later, refunded once', async () => {
    const { w, ops, incidentId } = await contained();
    const payee = w.sandbox.fleet[2] as string;
    // The payee frozen (by hand, or by its own incident): the refund's first leg is refused.
    expect((await adminPost(w, `/v1/billing/wallets/${payee}/freeze`)).status).toBe(200);
    const payeeBefore = balanceCents(w, payee);
    const r = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      dry_run: false,
      clawback_intent_ids: w.settledInWindow,
    });
    expect([r.applied, r.unfrozen]).toEqual([true, true]);
    expect(Object.values(outcomes(r))).toEqual(['failed', 'failed', 'failed']);
    expect(r.clawback?.[0]?.note).toContain('payee leg was refused; nothing moved');
    expect(r.steps.find((s) => s.action === 'refund_settled_intents')?.success).toBe(false);
    expect(balanceCents(w, payee)).toBe(payeeBefore);
    expect([...refundsOf(w).values()].every((n) => n === 0)).toBe(true);
    expect(ops.incidentView(incidentId)?.incident.detail.money_paths).toMatchObject({
      intents_clawed_back: 0,
      clawbacks_failed: 3,
    });
    // Once the payee can pay, the same confirmation refunds each once.
    await adminPost(w, `/v1/billing/wallets/${payee}/unfreeze`);
    const again = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 1,
      dry_run: false,
      clawback_intent_ids: w.settledInWindow,
    });
    expect(Object.values(outcomes(again))).toEqual(['refunded', 'refunded', 'refunded']);
    for (const id of w.settledInWindow) expect(refundsOf(w).get(id)).toBe(1);
    for (const id of w.settledInWindow) expect(sendsPer(w.proxy, REFUND).get(id)).toBe(2);
  }, 60_000);

  it('an unanswered refund is read back from the payer’s wallet: done if the refund reached it, else unknown; never re-sent', async () => {
    const { w, ops, incidentId } = await contained();
    const [reached, lost, plain] = w.settledInWindow as [string, string, string];
    // 502 after the gateway refunded `reached`; 503 before `lost` reached the gateway.
    w.proxy.intercept = async (c, res, forward) => {
      const m = REFUND.exec(c.path);
      if (c.method !== 'POST' || !m || (m[1] !== reached && m[1] !== lost)) return false;
      if (m[1] === reached) await forward();
      res.writeHead(m[1] === reached ? 502 : 503, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'https://api.greenhelix.net/errors/service-error', status: 503 }));
      return true;
    };
    const r = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      dry_run: false,
      clawback_intent_ids: w.settledInWindow,
    });
    expect(outcomes(r)).toEqual({ [reached]: 'refunded', [lost]: 'unknown', [plain]: 'refunded' });
    expect(r.clawback?.find((c) => c.id === lost)?.note).toContain('read back: no refund deposit');
    expect(r.steps.map((s) => s.action)).toContain('reconcile_intent_refunds');
    w.proxy.intercept = undefined;
    const again = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 1,
      dry_run: false,
      clawback_intent_ids: w.settledInWindow,
    });
    expect(outcomes(again)).toEqual({
      [reached]: 'already_refunded',
      [lost]: 'unknown',
      [plain]: 'already_refunded',
    });
    const refunds = refundsOf(w);
    expect([refunds.get(reached), refunds.get(lost), refunds.get(plain)]).toEqual([1, 0, 1]);
    expect(w.proxy.log.filter((x) => x.method === 'POST' && x.path.includes(lost))).toHaveLength(0);
    expect(ops.incidentView(incidentId)?.incident.detail.money_paths).toMatchObject({
      intents_clawed_back: 2,
      clawbacks_unknown: 1,
    });
  }, 60_000);

  it('a crash between the ledger write and the answer: read back, never sent again', async () => {
    const { w, ops, incidentId } = await contained();
    const [reached, lost, fresh] = w.settledInWindow as [string, string, string];
    const store = ops.store;
    // What a process killed mid-claw-back leaves: two rows claimed (`sending`), one refund that reached the
    // gateway, the other never sent.
    const records = w.sandbox.intentRecords(w.agent);
    store.moneyPaths.claim(
      'intent',
      'refund',
      incidentId,
      w.agent,
      [reached, lost].map((id) => {
        const i = records.find((x) => x.id === id)!;
        return { id, payee: i.payee, amount: i.amount, detail: { clawback: true } };
      }),
    );
    // Stage 1 applied earlier (the claw-back needs the wallet unfrozen).
    const stage = await ops.recover({ incident_id: incidentId, root_cause_fixed: true, dry_run: false });
    expect(stage.unfrozen).toBe(true);
    const admin = new GreenHelixClient({ baseUrl: w.sandbox.url, apiKey: w.sandbox.keys.containment });
    cleanups.push(() => admin.close());
    await admin.refundIntent({ intent_id: reached });

    const r = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 1,
      dry_run: false,
      clawback_intent_ids: [reached, lost, fresh],
    });
    expect(outcomes(r)).toEqual({ [reached]: 'already_refunded', [lost]: 'unknown', [fresh]: 'refunded' });
    const sent = sendsPer(w.proxy, REFUND);
    expect([sent.get(reached), sent.get(lost), sent.get(fresh)]).toEqual([undefined, undefined, 1]);
    const refunds = refundsOf(w);
    expect([refunds.get(reached), refunds.get(lost), refunds.get(fresh)]).toEqual([1, 0, 1]);
  }, 60_000);

  it('two engines on one store confirming at once: each intent refunded once', async () => {
    const { w, ops, dataDir, incidentId } = await contained();
    await ops.recover({ incident_id: incidentId, root_cause_fixed: true, dry_run: false });
    const second = (await engine(w.sandbox, w.proxy.url, dataDir)).app.ops as Ops;
    const ask = (o: Ops) =>
      o.recover({
        incident_id: incidentId,
        root_cause_fixed: true,
        stage: 1,
        dry_run: false,
        clawback_intent_ids: w.settledInWindow,
      });
    const [a, b] = await Promise.all([ask(ops), ask(second)]);
    for (const id of w.settledInWindow) {
      expect(refundsOf(w).get(id)).toBe(1);
      expect(sendsPer(w.proxy, REFUND).get(id)).toBe(1);
      expect([outcomes(a)[id], outcomes(b)[id]]).toContain('refunded');
    }
    const third = await ask(ops);
    expect(Object.values(outcomes(third))).toEqual(Array(3).fill('already_refunded'));
  }, 60_000);

  it('a resolved incident takes a claw-back alone (root cause and identity gates again, no stage)', async () => {
    const { w, ops, incidentId } = await contained();
    const stage = (n: number) =>
      ops.recover({ incident_id: incidentId, root_cause_fixed: true, stage: n, dry_run: false });
    expect((await stage(1)).applied).toBe(true);
    await w.sandbox.advance(6 * 3_600_000);
    expect((await stage(2)).applied).toBe(true);
    await w.sandbox.advance(18 * 3_600_000);
    const last = await stage(3);
    expect([last.applied, last.status]).toEqual([true, 'resolved']);
    const r = await ops.recover({
      incident_id: incidentId,
      root_cause_fixed: true,
      dry_run: false,
      clawback_intent_ids: w.settledInWindow,
    });
    expect([r.applied, r.stage, r.status]).toEqual([false, 3, 'resolved']);
    expect(r.gates.map((g) => [g.gate, g.passed])).toEqual([
      ['stage', true],
      ['root_cause_fixed', true],
      ['identity_verified', true],
    ]);
    expect(Object.values(outcomes(r))).toEqual(['refunded', 'refunded', 'refunded']);
    for (const id of w.settledInWindow) expect(refundsOf(w).get(id)).toBe(1);
    // Without a claw-back, a resolved incident is still not recoverable.
    await expect(
      ops.recover({ incident_id: incidentId, root_cause_fixed: true, dry_run: false }),
    ).rejects.toMatchObject({ code: 'invalid_state' });
  }, 60_000);

  it('dry run lists what would be refunded and changes nothing; the tool refuses a frozen claw-back as an error', async () => {
    const w = await world({ pending: 2, subscriptions: 0, escrows: 0 });
    const f = await startFixture({
      sandbox: w.sandbox,
      config: (c) => ({ ...c, greenhelix: { ...c.greenhelix, baseUrl: w.proxy.url } }),
    });
    cleanups.push(() => f.close());
    const c = await f.call('contain_agent', { agent_id: w.agent, reason: 'intent loop' });
    const incidentId = c.structuredContent.incident_id as string;
    const posts = moneyPosts(w);
    const dry = await f.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      dry_run: true,
      clawback_intent_ids: w.settledInWindow,
    });
    expect(dry.isError).toBeFalsy();
    expect((dry.structuredContent.clawback as { outcome: string }[]).map((x) => x.outcome)).toEqual(
      Array(3).fill('would_refund'),
    );
    expect(moneyPosts(w)).toBe(posts);
    expect(f.ops.store.moneyPaths.rows(incidentId, 'intent', { action: 'refund' })).toEqual([]);
    const frozen = await f.call('recover_agent', {
      incident_id: incidentId,
      root_cause_fixed: true,
      stage: 2,
      clawback_intent_ids: w.settledInWindow,
    });
    expect(errorOf(frozen)).toMatchObject({ code: 'wallet_frozen' });
    expect(moneyPosts(w)).toBe(posts);
  }, 60_000);
});
