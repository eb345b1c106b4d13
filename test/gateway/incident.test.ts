/**
 * The incident this product exists for, end to end against the REAL GreenHelix gateway (its own source,
 * on loopback): detect a runaway loop, contain it (quiet, and under live load from the agent's own key),
 * contain again, detect and watch afterwards, write the post-mortem, recover. The product is driven
 * exactly as in test/e2e (startApp, createServer, the MCP SDK client); every verdict on what happened
 * comes from the gateway's own SQLite files, never from the product.
 *
 * "Contained" means, on the gateway: no escrow the agent pays is held, its wallet is frozen, its caps are
 * 0, no escrow was refunded twice, and the product's escrows_cancelled / amount_unlocked are exactly the
 * escrows the gateway refunded and the money it returned.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Money, money, parseCents } from '../../src/greenhelix/money.js';
import { startWatcher } from '../../src/runbooks/watcher.js';
import { TOOLS } from '../../src/tools/index.js';
import { type Fleet, provisionFleet } from './fleet.js';
import { type RealGateway, startGateway } from './harness.js';
import { type LoadReport, startEscrowLoad } from './load.js';
import { type Product, startProduct } from './product.js';
import { GatewayTruth } from './truth.js';

const skip = inject('gatewaySkip');
const outputOf = (name: string) => TOOLS.find((t) => t.name === name)!.output;

const RUNAWAY = 'agent-00'; // POST /v1/register: has a reputation row
const DIRECT = 'agent-01'; // key made directly in the gateway's SQLite: no reputation row
const LIVE = 'agent-02'; // key from POST /v1/billing/keys: has a reputation row
const LOOP_PAYEE = 'vendor-flaky';
const LIVE_CREATORS = 8;
/**
 * Escrows the live load creates before containment starts: ≥ 500 in the run, and more than one page of
 * the product's escrow listing (500), so containment lists while new escrows keep arriving.
 */
const LIVE_BEFORE_CONTAINMENT = 600;

interface ContainOut {
  incident_id: string;
  existing: boolean;
  status: string;
  escrows_cancelled: number;
  escrows_failed: number;
  escrows_skipped: number;
  amount_unlocked: Money;
  steps: { action: string; success: boolean; detail?: Record<string, unknown> }[];
  exposure: {
    wallet_frozen: boolean;
    caps_zero: boolean;
    held_escrows: number | null;
    held_amount: Money | null;
  };
}
interface Anomaly {
  agent_id: string;
  signal: string;
  severity: string;
  priority: string;
}

describe.skipIf(skip)('the real gateway: detect → contain → watch → post-mortem → recover', () => {
  let gw: RealGateway;
  let fleet: Fleet;
  let truth: GatewayTruth;
  let product: Product;
  const incidents: Record<string, string> = {};

  const loop = async (agent: string, count: number, creators = 1): Promise<LoadReport> => {
    const load = startEscrowLoad({
      url: gw.url,
      key: fleet.keys[agent]!,
      payer: agent,
      payee: LOOP_PAYEE,
      amount: '150.00',
      creators,
      limit: count,
      maxConsecutiveRefusals: 20,
    });
    await load.reached(count);
    return load.stop();
  };
  const contain = async (agent: string, reason: string) => {
    const r = await product.call('contain_agent', { agent_id: agent, reason });
    return { r, out: r.structuredContent as unknown as ContainOut };
  };
  /** What the gateway refunded for `agent`: every refunded escrow, the money actually deposited back. */
  const refundTruth = (agent: string) => {
    const refunded = truth.escrows(agent, 'refunded');
    const tally = truth.refunds(agent);
    return {
      escrows: refunded.length,
      escrowCents: refunded.reduce((n, e) => n + e.amount_cents, 0),
      depositedCents: tally.refundedCents,
      doubleRefunded: tally.doubleRefunded,
    };
  };

  beforeAll(async () => {
    gw = await startGateway({ rootfs: inject('gatewayRootfs') });
    fleet = await provisionFleet(gw, {
      agents: [
        {
          id: RUNAWAY,
          via: 'register',
          balance: '20000.00',
          caps: { daily: '1000.00', monthly: '20000.00' },
        },
        { id: DIRECT, via: 'direct', balance: '20000.00', caps: { daily: '1000.00', monthly: '20000.00' } },
        {
          id: LIVE,
          via: 'billing_keys',
          balance: '150000.00',
          caps: { daily: '5000.00', monthly: '50000.00' },
        },
        { id: 'agent-03', via: 'direct', balance: '5000.00', caps: { daily: '500.00', monthly: '5000.00' } },
        {
          id: 'agent-04',
          via: 'register',
          balance: '5000.00',
          caps: { daily: '500.00', monthly: '5000.00' },
        },
      ],
      counterparties: [LOOP_PAYEE, 'vendor-01'],
    });
    truth = new GatewayTruth(gw.dataDir);
    product = await startProduct(gw.url, fleet);
  });
  afterAll(async () => {
    await product?.close();
    truth?.close();
    await gw?.stop();
  });

  it('the fleet is provisioned both ways: reputation rows only for agents the running gateway keyed', () => {
    expect(truth.hasReputationRow(RUNAWAY)).toBe(true);
    expect(truth.hasReputationRow(LIVE)).toBe(true);
    expect(truth.hasReputationRow(DIRECT)).toBe(false);
    expect(truth.hasReputationRow('agent-03')).toBe(false);
    expect(truth.caps(RUNAWAY)).toEqual({ daily_cents: 100_000, monthly_cents: 2_000_000 });
    expect(truth.balanceCents(RUNAWAY)).toBe(2_000_000);
    expect(truth.balanceCents(LIVE)).toBe(15_000_000);
    expect(fleet.monitorKey).not.toBe(fleet.containmentKey);
    for (const op of [fleet.monitorAgent, fleet.containmentAgent])
      expect(truth.keys(op)).toEqual([
        { tier: 'enterprise', scopes: ['read', 'write', 'admin'], revoked: false },
      ]);
  });

  it('detects a runaway loop on the first detect_anomalies pass, and flags nobody else', async () => {
    const made = await loop(RUNAWAY, 12);
    expect(made.created).toBe(12);
    expect(truth.held(RUNAWAY).count).toBe(12);
    const r = await product.call('detect_anomalies', { agent_ids: fleet.ids });
    expect(r.isError).toBeFalsy();
    const parsed = outputOf('detect_anomalies').parse(r.structuredContent) as { anomalies: Anomaly[] };
    const mine = parsed.anomalies.filter((a) => a.agent_id === RUNAWAY);
    expect(mine.find((a) => a.signal === 'escrow_burst')).toMatchObject({
      priority: 'P0',
      severity: 'critical',
    });
    const others = parsed.anomalies.filter((a) => a.agent_id !== RUNAWAY);
    expect.soft(others.filter((a) => a.signal !== 'detection_failure')).toEqual([]);
    // A blind check is a defect too: every fleet agent, however its key was made, is observable.
    expect.soft(parsed.anomalies.filter((a) => a.signal === 'detection_failure')).toEqual([]);
  });

  it('contains it (quiet): nothing held, frozen, caps 0, no double refund, counts equal the gateway', async () => {
    const before = truth.held(RUNAWAY);
    const { r, out } = await contain(RUNAWAY, 'runaway retry loop');
    expect(r.isError).toBeFalsy();
    outputOf('contain_agent').parse(r.structuredContent);
    incidents[RUNAWAY] = out.incident_id;
    const t = refundTruth(RUNAWAY);
    expect.soft(truth.held(RUNAWAY).count).toBe(0);
    expect.soft(truth.frozen(RUNAWAY)).toBe(true);
    expect.soft(truth.caps(RUNAWAY)).toEqual({ daily_cents: 0, monthly_cents: 0 });
    expect.soft(t.doubleRefunded).toEqual([]);
    expect.soft(out.status).toBe('contained');
    expect.soft(out.escrows_failed).toBe(0);
    expect.soft(out.escrows_cancelled).toBe(t.escrows);
    expect.soft(parseCents(out.amount_unlocked.amount)).toBe(t.depositedCents);
    expect.soft(t.escrows).toBe(before.count);
    expect.soft(t.escrowCents).toBe(before.cents);
    expect.soft(t.depositedCents).toBe(t.escrowCents);
    expect(out.steps).toEqual(
      expect.arrayContaining([expect.objectContaining({ action: 'freeze_wallet', success: true })]),
    );
  });

  it('a second contain_agent right after the first returns the existing incident and changes nothing', async () => {
    const refundsBefore = truth.refunds(RUNAWAY).refundCount;
    const { r, out } = await contain(RUNAWAY, 'again');
    expect.soft(r.isError ?? false).toBe(false);
    expect.soft(out?.existing).toBe(true);
    expect.soft(out?.incident_id).toBe(incidents[RUNAWAY]);
    expect.soft(out?.status).toBe('contained');
    expect.soft(truth.refunds(RUNAWAY).refundCount).toBe(refundsBefore);
    expect.soft(truth.frozen(RUNAWAY)).toBe(true);
  });

  it('detect after containment: no alarm from the agent’s own refunds', async () => {
    const r = await product.call('detect_anomalies', { agent_ids: fleet.ids });
    expect(r.isError).toBeFalsy();
    const { anomalies } = r.structuredContent as { anomalies: Anomaly[] };
    expect(anomalies.filter((a) => a.agent_id === RUNAWAY && a.signal !== 'detection_failure')).toEqual([]);
  });

  it('the post-mortem’s financial impact is the gateway’s', async () => {
    const r = await product.call('run_postmortem', { incident_id: incidents[RUNAWAY] });
    expect(r.isError).toBeFalsy();
    const impact = (r.structuredContent.report as { impact: Record<string, unknown> }).impact;
    const t = refundTruth(RUNAWAY);
    expect.soft(impact.escrows_still_locked).toBe(truth.held(RUNAWAY).count);
    expect.soft(impact.escrows_cancelled).toBe(t.escrows);
    expect.soft(impact.amount_recovered).toEqual(money(t.escrowCents));
    expect.soft(impact.escrows_released).toBe(truth.escrows(RUNAWAY, 'settled').length);
    expect.soft(impact.balance).toEqual(money(truth.balanceCents(RUNAWAY)!));
    const md = await product.client.readResource({ uri: `incident://${incidents[RUNAWAY]}/postmortem` });
    expect((md.contents[0] as { text: string }).text).toContain(incidents[RUNAWAY]);
  });

  describe(`under live load: ${LIVE_CREATORS} creators (REST and batch) on ${LIVE}'s own key while containment runs`, () => {
    let first: Awaited<ReturnType<typeof contain>>;
    let second: Awaited<ReturnType<typeof contain>>;
    let third: Awaited<ReturnType<typeof contain>>;
    let load: LoadReport;
    let heldAtStart = 0;
    type Books = ReturnType<typeof refundTruth> & { held: number; heldCents: number; frozen: boolean };
    const books = (): Books => {
      const held = truth.held(LIVE);
      return { ...refundTruth(LIVE), held: held.count, heldCents: held.cents, frozen: truth.frozen(LIVE) };
    };
    let afterFirst: Books;
    let afterSecond: Books;

    beforeAll(async () => {
      const running = startEscrowLoad({
        url: gw.url,
        key: fleet.keys[LIVE]!,
        payer: LIVE,
        payee: LOOP_PAYEE,
        amount: '150.00',
        creators: LIVE_CREATORS,
        // Half the creators call REST (caps bind there), half /v1/batch as the provider's MCP servers do
        // (no cap check): a loop that keeps landing escrows whenever the wallet is unfrozen.
        channels: ['rest', 'batch'],
        batchSize: 5,
      });
      const t0 = Date.now();
      let loadMs = 0;
      try {
        await running.reached(LIVE_BEFORE_CONTAINMENT);
        loadMs = Date.now() - t0;
        heldAtStart = truth.held(LIVE).count;
        first = await contain(LIVE, 'runaway loop under load');
        // The wallet is frozen once a call returns, so the gateway's books cannot move until the next.
        afterFirst = books();
        second = await contain(LIVE, 'second call right after');
        afterSecond = books();
        // The loop keeps trying for a moment after containment: none of it may land.
        await new Promise((r) => setTimeout(r, 1_000));
      } finally {
        load = await running.stop();
      }
      // The loop has stopped (its process killed, in real life): the next call finishes what is left.
      third = await contain(LIVE, 'after the loop stopped');
      process.stderr.write(
        `[gateway] live load: ${load.created} escrows created ${JSON.stringify(load.createdBy)} ` +
          `(${LIVE_BEFORE_CONTAINMENT} in ${loadMs} ms; ` +
          `${heldAtStart} held when containment began), ` +
          `refused ${JSON.stringify(load.refused)}; contain: ${JSON.stringify({
            status: first.out.status,
            cancelled: first.out.escrows_cancelled,
            failed: first.out.escrows_failed,
            exposure: first.out.exposure,
            unlocked: first.out.amount_unlocked,
            elapsed_ms: (first.r.structuredContent as { elapsed_ms?: number } | undefined)?.elapsed_ms,
            rounds: first.out.steps
              .filter((x) => x.action === 'cancel_held_escrows')
              .map((x) => ({
                attempted: x.detail?.attempted,
                cancelled: x.detail?.cancelled,
                failures: x.detail?.failures,
              })),
            second: second.r.isError
              ? `error ${JSON.stringify(second.r.content).slice(0, 300)}`
              : {
                  existing: second.out.existing,
                  status: second.out.status,
                  cancelled: second.out.escrows_cancelled,
                },
            third: {
              existing: third.out.existing,
              status: third.out.status,
              cancelled: third.out.escrows_cancelled,
            },
          })}; gateway after each call: ${JSON.stringify({ afterFirst, afterSecond, final: books() })}\n`,
      );
    });

    it('the load was real: ≥ 500 escrows in the run, created concurrently through the agent’s key', () => {
      expect(load.created).toBeGreaterThanOrEqual(LIVE_BEFORE_CONTAINMENT);
      expect(truth.escrows(LIVE).length).toBe(load.created);
      expect(truth.escrowCount()).toBeGreaterThanOrEqual(500);
    });

    it('the first call ends frozen with caps 0, and its report equals the gateway’s books at that moment', () => {
      // A loop that keeps creating through /v1/batch (no cap check) lands escrows in every refund window,
      // so "nothing held" may be out of reach while it runs; what is left must be stated exactly.
      expect(first.r.isError).toBeFalsy();
      expect(afterFirst.frozen).toBe(true);
      expect(first.out.exposure).toMatchObject({ wallet_frozen: true, caps_zero: true });
      expect.soft(first.out.escrows_cancelled).toBe(afterFirst.escrows);
      expect.soft(parseCents(first.out.amount_unlocked.amount)).toBe(afterFirst.depositedCents);
      expect.soft(first.out.exposure.held_escrows).toBe(afterFirst.held);
      expect.soft(parseCents(first.out.exposure.held_amount?.amount ?? '-1')).toBe(afterFirst.heldCents);
      expect.soft(first.out.escrows_failed).toBe(afterFirst.held);
      expect.soft(first.out.status).toBe(afterFirst.held === 0 ? 'contained' : 'containment_partial');
    });

    it('no escrow was refunded twice', () => {
      const tally = truth.refunds(LIVE);
      expect(tally.doubleRefunded.map((id) => `${id} refunded ${tally.byEscrow.get(id)} times`)).toEqual([]);
      expect(afterFirst.depositedCents).toBe(afterFirst.escrowCents);
    });

    it('the second call right after returns the same incident, resuming it when the first left escrows held', () => {
      expect.soft(second.r.isError ?? false).toBe(false);
      expect.soft(second.out?.incident_id).toBe(first.out.incident_id);
      expect.soft(second.out?.existing).toBe(first.out.status === 'contained');
      // Totals are the incident's, summed over both runs, each refund once.
      expect.soft(second.out?.escrows_cancelled).toBe(afterSecond.escrows);
      expect.soft(parseCents(second.out?.amount_unlocked.amount ?? '-1')).toBe(afterSecond.depositedCents);
      if (!second.out.existing) expect.soft(second.out.exposure.held_escrows).toBe(afterSecond.held);
    });

    it('once the loop stops, the next call finishes it: nothing held, frozen, caps 0, totals exact', () => {
      const t = refundTruth(LIVE);
      expect.soft(third.out.incident_id).toBe(first.out.incident_id);
      expect.soft(third.out.status).toBe('contained');
      expect.soft(truth.held(LIVE).count).toBe(0);
      expect.soft(truth.frozen(LIVE)).toBe(true);
      expect.soft(truth.caps(LIVE)).toEqual({ daily_cents: 0, monthly_cents: 0 });
      expect.soft(third.out.escrows_cancelled).toBe(t.escrows);
      expect.soft(parseCents(third.out.amount_unlocked.amount)).toBe(t.depositedCents);
      expect.soft(t.depositedCents).toBe(t.escrowCents);
    });

    it('the post-mortem counts the same escrows as the gateway', async () => {
      const r = await product.call('run_postmortem', { incident_id: first.out.incident_id });
      expect(r.isError).toBeFalsy();
      const impact = (r.structuredContent.report as { impact: Record<string, unknown> }).impact;
      const t = refundTruth(LIVE);
      expect.soft(impact.escrows_still_locked).toBe(truth.held(LIVE).count);
      expect.soft(impact.escrows_cancelled).toBe(t.escrows);
      expect.soft(impact.amount_recovered).toEqual(money(t.escrowCents));
    });
  });

  describe('recovery', () => {
    it('an agent with a reputation row: refused until the root cause is fixed, then stage 1 on the gateway', async () => {
      const refused = await product.call('recover_agent', {
        incident_id: incidents[RUNAWAY],
        root_cause_fixed: false,
      });
      expect(refused.structuredContent.applied).toBe(false);
      expect(truth.frozen(RUNAWAY)).toBe(true);
      const r = await product.call('recover_agent', {
        incident_id: incidents[RUNAWAY],
        root_cause_fixed: true,
        confirmed_by: 'gateway-test',
      });
      expect.soft(r.isError ?? false).toBe(false);
      expect.soft(r.structuredContent?.applied).toBe(true);
      expect.soft(truth.frozen(RUNAWAY)).toBe(false);
      expect.soft(truth.caps(RUNAWAY)).toEqual({ daily_cents: 50_000, monthly_cents: 1_000_000 });
    });

    it('an agent whose key was made directly (no reputation row): contained, then stage 1', async () => {
      const made = await loop(DIRECT, 6);
      expect(made.created).toBe(6);
      const { r, out } = await contain(DIRECT, 'loop on a directly keyed agent');
      expect(r.isError).toBeFalsy();
      expect.soft(truth.held(DIRECT).count).toBe(0);
      expect.soft(truth.frozen(DIRECT)).toBe(true);
      expect.soft(out.escrows_cancelled).toBe(refundTruth(DIRECT).escrows);
      const rec = await product.call('recover_agent', {
        incident_id: out.incident_id,
        root_cause_fixed: true,
        confirmed_by: 'gateway-test',
      });
      expect.soft(rec.isError ?? false).toBe(false);
      expect.soft(rec.structuredContent?.applied).toBe(true);
      expect
        .soft(rec.structuredContent?.gates)
        .toEqual(expect.not.arrayContaining([expect.objectContaining({ passed: false })]));
      expect.soft(truth.frozen(DIRECT)).toBe(false);
      expect.soft(truth.caps(DIRECT)).toEqual({ daily_cents: 50_000, monthly_cents: 1_000_000 });
    });
  });

  it('the watcher afterwards acts on nothing: no payee frozen, nobody re-frozen, no new incident', async () => {
    // By now: RUNAWAY and DIRECT are recovering (stage 1, unfrozen), LIVE is contained, the rest were
    // never touched. Their refunded loops are the product's own doing, not a reason to act.
    const incidentsBefore = product.ops.store
      .listIncidents({ limit: 50, offset: 0 })
      .map((i) => i.id)
      .sort();
    const watcher = await startWatcher(product.ops, { schedule: false });
    try {
      await watcher.tick({ all: true });
      await watcher.tick({ all: true });
    } finally {
      await watcher.stop();
    }
    expect.soft(truth.frozen(LOOP_PAYEE)).toBe(false);
    expect.soft(truth.frozenWallets()).toEqual([LIVE]);
    expect
      .soft(
        product.ops.store
          .listIncidents({ limit: 50, offset: 0 })
          .map((i) => i.id)
          .sort(),
      )
      .toEqual(incidentsBefore);
  });
});
