/**
 * The incident store, run once per engine: SQLite, and PostgreSQL on the run's throwaway cluster. Two
 * stores on one place are two processes on one SQLite file, or two replicas on one PostgreSQL database.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildPostmortem,
  buildTimeline,
  mdCell,
  openSqlite,
  PgDatabase,
  renderPostmortemMarkdown,
  type SqlDatabase,
} from '../../src/incidents/index.js';
import { migrate } from '../../src/incidents/migrate.js';
import { MIGRATIONS } from '../../src/incidents/migrations.js';
import {
  cleanupStores,
  ENGINES,
  type Engine,
  newStorePlace,
  openTestStore,
  type StorePlace,
} from '../helpers/stores.js';

afterEach(cleanupStores);

/** The place's database without the store on top (no migrations run). */
function rawDb(place: StorePlace): SqlDatabase {
  return place.engine === 'sqlite'
    ? openSqlite(`${place.dir as string}/incidents.sqlite`)
    : new PgDatabase(place.url as string);
}
const clock = (t = { now: 1_700_000_000_000 }) => ({ now: () => t.now, t });
const init = (agent: string) => ({
  agent_ids: [agent],
  primary_agent_id: agent,
  reason: 'test',
  kind: 'containment',
});

describe.each(ENGINES)('incident store (%s)', (engine: Engine) => {
  it('migrates from empty, reopens idempotently, keeps everything across connections', () => {
    const place = newStorePlace(engine);
    const a = place.open(clock());
    expect(a.schemaVersion()).toBe(MIGRATIONS.length);
    const { incident } = a.claimContainment('agent-1', init('agent-1'));
    a.close();
    const b = place.open(clock());
    expect(b.schemaVersion()).toBe(MIGRATIONS.length);
    expect(b.getIncident(incident.id)?.primary_agent_id).toBe('agent-1');
    b.close();
  });

  it('upgrades a version-1 store in place, keeping its recovery stages (as round 1)', () => {
    const place = newStorePlace(engine);
    const old = rawDb(place);
    migrate(old, MIGRATIONS.slice(0, 1));
    old
      .prepare(
        "INSERT INTO incidents (id, kind, status, primary_agent_id, agent_ids, reason, created_at) VALUES ('inc_old1', 'containment', 'recovering', 'a', '[\"a\"]', 'r', 1)",
      )
      .run();
    old
      .prepare(
        "INSERT INTO recovery_stages (incident_id, agent_id, stage, percent, daily_cap, monthly_cap, gates, at) VALUES ('inc_old1', 'a', 1, 50, 500, 15000, '[]', 2)",
      )
      .run();
    old.close();
    const s = place.open(clock());
    expect(s.schemaVersion()).toBe(MIGRATIONS.length);
    expect(s.getIncident('inc_old1')?.containment_round).toBe(1);
    expect(s.listRecoveryStages('inc_old1')).toEqual([
      expect.objectContaining({ round: 1, stage: 1, daily_cap: 500 }),
    ]);
    s.startContainmentRound('inc_old1');
    expect(s.listRecoveryStages('inc_old1')).toEqual([]);
    s.close();
  });

  it('claimContainment yields one incident per agent, across two connections to the same store', () => {
    const place = newStorePlace(engine);
    const a = place.open(clock());
    const b = place.open(clock());
    const first = a.claimContainment('agent-1', init('agent-1'));
    const second = b.claimContainment('agent-1', init('agent-1'));
    expect(first.created).toBe(true);
    expect(second).toEqual({ incident: expect.objectContaining({ id: first.incident.id }), created: false });
    expect(b.claimContainment('agent-2', init('agent-2')).created).toBe(true);
    a.transition(first.incident.id, 'containing');
    a.transition(first.incident.id, 'contained');
    a.transition(first.incident.id, 'resolved');
    expect(b.claimContainment('agent-1', init('agent-1')).created).toBe(true);
    a.close();
    b.close();
  });

  it('escalates an active degradation incident into a containment instead of blocking it', () => {
    const s = openTestStore(engine, { clock: clock() });
    const deg = s.claimContainment('a', { ...init('a'), kind: 'service_degradation' });
    s.transition(deg.incident.id, 'containing');
    s.transition(deg.incident.id, 'contained');
    const c = s.claimContainment('a', init('a'));
    expect(c).toMatchObject({
      created: true,
      incident: { id: deg.incident.id, kind: 'containment', status: 'containing' },
    });
  });

  it('pre-incident caps are write-once; transitions follow the table', () => {
    const s = openTestStore(engine, { clock: clock() });
    const { incident } = s.claimContainment('a', init('a'));
    s.recordPreIncidentState(incident.id, 'a', {
      daily_cap: 100_000,
      monthly_cap: 2_000_000,
      alert_threshold: null,
      frozen_before: null,
    });
    const again = s.recordPreIncidentState(incident.id, 'a', {
      daily_cap: 0,
      monthly_cap: 0,
      alert_threshold: null,
      frozen_before: null,
    });
    expect(again.daily_cap).toBe(100_000);
    expect(s.latestKnownCaps('a')?.monthly_cap).toBe(2_000_000);
    expect(() => s.transition(incident.id, 'recovering')).toThrow(/cannot go from detected to recovering/);
    s.transition(incident.id, 'containing', { frozen_at: 5, met_sla: true });
    expect(s.getIncident(incident.id)).toMatchObject({ status: 'containing', frozen_at: 5, met_sla: true });
  });

  it('actions are written ahead: begun-but-unfinished ones are listed as pending', () => {
    const c = clock();
    const s = openTestStore(engine, { clock: c });
    const { incident } = s.claimContainment('a', init('a'));
    const done = s.beginAction({
      incident_id: incident.id,
      agent_id: 'a',
      phase: 'contain',
      action: 'freeze_wallet',
    });
    c.t.now += 120;
    s.finishAction(done, { success: true, result: { frozen: true } });
    s.beginAction({
      incident_id: incident.id,
      agent_id: 'a',
      phase: 'contain',
      action: 'cancel_held_escrows',
      params: { escrow_ids: ['e1'] },
    });
    expect(s.listActions(incident.id).map((x) => [x.action, x.success, x.duration_ms])).toEqual([
      ['freeze_wallet', true, 120],
      ['cancel_held_escrows', null, null],
    ]);
    expect(s.pendingActions(incident.id).map((x) => x.action)).toEqual(['cancel_held_escrows']);
  });

  it('de-duplicates webhook bodies; pins are first-sight unless re-pinned deliberately', () => {
    const s = openTestStore(engine, { clock: clock() });
    expect(s.markSeen('webhook', 'h1', 1)).toBe(true);
    expect(s.markSeen('webhook', 'h1', 2)).toBe(false);
    s.pinKey('a', 'k1', 'detection');
    s.pinKey('a', 'k2', 'detection');
    expect(s.getPin('a')?.public_key).toBe('k1');
    s.repin('a', 'k2', 'rotated after incident');
    expect(s.getPin('a')?.public_key).toBe('k2');
  });
});

describe.each(ENGINES)('timeline and post-mortem (%s)', (engine: Engine) => {
  it('uses recorded times only, sorted, with phase durations and the SLA verdict; hostile text is escaped', () => {
    const c = clock();
    const s = openTestStore(engine, { clock: c });
    const { incident } = s.claimContainment('a', {
      ...init('a'),
      reason: '<script>alert(1)</script> [click](https://evil.example)',
    });
    c.t.now += 1_000;
    s.transition(incident.id, 'containing', { containment_started_at: c.now() });
    const id = s.beginAction({
      incident_id: incident.id,
      agent_id: 'a',
      phase: 'contain',
      action: 'freeze_wallet',
    });
    c.t.now += 250;
    s.finishAction(id, { success: true });
    s.transition(incident.id, 'containing', { frozen_at: c.now() });
    c.t.now += 70_000;
    s.transition(incident.id, 'contained', { contained_at: c.now() });
    const inc = s.getIncident(incident.id)!;
    const t = buildTimeline(inc, s.listActions(incident.id), [], []);
    expect(t.entries.map((e) => e.action)).toEqual(['detected', 'freeze_wallet']);
    expect(t.phases).toMatchObject({
      detect_to_freeze_ms: 1_250,
      detect_to_contained_ms: 71_250,
      contained_to_recovery_ms: null,
    });
    expect(t.met_sla).toBe(false);
    const report = buildPostmortem({
      incident: inc,
      actions: s.listActions(incident.id),
      stages: [],
      gates: [],
      audit: { identity: null, claim_chains: [], verified_claims: [] },
      impact: {
        balance_cents: 100,
        usage: null,
        escrows_still_locked: 0,
        amount_still_locked_cents: 0,
        escrows_cancelled: 3,
        amount_recovered_cents: 45_000,
        escrows_released: 1,
        amount_lost_cents: 15_000,
        escrows_expired: 0,
        window: { start: 0, end: 1 },
      },
      gaps: [],
      thresholds_tightened: true,
      sla_ms: 60_000,
    });
    expect(report.impact).toMatchObject({
      amount_recovered: { amount: '450.00', currency: 'CREDITS' },
      amount_lost: { amount: '150.00', currency: 'CREDITS' },
    });
    expect(report.recommendations.join(' ')).toMatch(/tightened/);
    const md = renderPostmortemMarkdown(report);
    expect(md).not.toContain('<script>');
    expect(md).not.toMatch(/\]\(https:\/\//);
    expect(md).toContain('**missed**');
    expect(mdCell('a|b\nc')).toBe('a\\|b c');
  });
});

describe.each(ENGINES)('detection state (%s)', (engine: Engine) => {
  it("a pass's states and pins are saved in one transaction: all of them, or none when one row fails", () => {
    const s = openTestStore(engine, { clock: clock() });
    s.saveDetection(
      [
        { agentId: 'a', state: { v: 2, n: 1 } },
        { agentId: 'b', state: { v: 2, n: 2 }, pinKey: 'ab'.repeat(32) },
      ],
      'detection',
    );
    expect(s.getDetectionState('b')).toEqual({ v: 2, n: 2 });
    expect(s.getPin('b')?.public_key).toBe('ab'.repeat(32));
    // JSON.stringify throws on a BigInt: the whole pass's writes roll back, the earlier state stays.
    expect(() =>
      s.saveDetection(
        [
          { agentId: 'a', state: { v: 2, n: 10 } },
          { agentId: 'c', state: { n: 1n } },
        ],
        'detection',
      ),
    ).toThrow();
    expect(s.getDetectionState('a')).toEqual({ v: 2, n: 1 });
    expect(s.getDetectionState('c')).toBeUndefined();
    s.close();
  });

  it('a pass reads and writes any number of agents in a few statements, the same as one by one', () => {
    const s = openTestStore(engine, { clock: clock() });
    const ids = Array.from({ length: 700 }, (_, i) => `agent-${i}`);
    // 700 = 256 + 256 + 128 + 32 + 16 + 8 + 4: every chunk size but the smallest three.
    s.saveDetection(
      ids.map((agentId, i) => ({ agentId, state: { i }, pinKey: i % 100 === 0 ? `key-${i}` : undefined })),
      'detection',
    );
    s.setThresholdOverride('agent-5', { escrow_burst_count: 9 }, 'first');
    s.setThresholdOverride('agent-5', { escrow_burst_count: 7 }, 'newer');
    // A repeated agent in one save: the last row wins.
    s.saveDetection(
      [
        { agentId: 'agent-1', state: { i: -1 } },
        { agentId: 'agent-1', state: { i: 'last' } },
      ],
      'detection',
    );
    const known = s.loadDetection([...ids, 'never-seen']);
    expect(known.size).toBe(701);
    for (const id of ids.filter((a) => a !== 'agent-1')) {
      expect(known.get(id)?.state).toEqual(s.getDetectionState(id));
      expect(known.get(id)?.pin).toBe(s.getPin(id)?.public_key ?? null);
    }
    expect(known.get('agent-1')?.state).toEqual({ i: 'last' });
    expect(known.get('agent-200')?.pin).toBe('key-200');
    expect(known.get('agent-5')?.thresholds).toEqual({ escrow_burst_count: 7 });
    expect(known.get('agent-6')?.thresholds).toBeUndefined();
    expect(known.get('never-seen')).toEqual({
      state: undefined,
      pin: null,
      thresholds: undefined,
      acted_on: false,
    });
    // Our containment's record of an agent's escrows: detection must then leave our refunds out.
    const { incident } = s.claimContainment('agent-9', {
      agent_ids: ['agent-9'],
      primary_agent_id: 'agent-9',
      reason: 'test',
      kind: 'containment',
    });
    s.escrows.claim(incident.id, 'agent-9', [{ id: 'e1', payee: 'v', amount: 100 }]);
    const again = s.loadDetection(['agent-9', 'agent-10']);
    expect(again.get('agent-9')?.acted_on).toBe(true);
    expect(again.get('agent-10')?.acted_on).toBe(false);
    expect(s.agentsWithIncidents(['agent-10', 'agent-9', 'agent-9'])).toEqual(new Set(['agent-9']));
    s.close();
  });
});

describe.each(ENGINES)('every query, on each engine (%s)', (engine: Engine) => {
  it('round-trips incidents, gates, alerts, shadow decisions, thresholds, cursors, post-mortems and money paths', () => {
    const c = clock();
    const s = openTestStore(engine, { clock: c });
    const a = s.claimContainment('a', init('a')).incident;
    c.t.now += 1;
    const b = s.claimContainment('b', { ...init('b'), agent_ids: ['b', 'c'] }).incident;
    expect(s.listIncidents().map((i) => i.id)).toEqual([b.id, a.id]);
    expect(s.listIncidents({ agent_id: 'c' }).map((i) => i.id)).toEqual([b.id]);
    expect(s.listIncidents({ status: 'detected', limit: 1, offset: 1 }).map((i) => i.id)).toEqual([a.id]);
    expect(s.getIncident(b.id)?.agent_ids).toEqual(['b', 'c']);
    s.recordGate(a.id, { gate: 'g1', passed: true, reason: 'ok', at: 5, by: null });
    expect(s.listGates(a.id)).toEqual([
      { incident_id: a.id, gate: 'g1', passed: true, reason: 'ok', at: 5, by: null },
    ]);
    s.recordAlert({
      incident_id: a.id,
      agent_id: 'a',
      signal: 'x',
      severity: 'high',
      priority: 'P1',
      tier: 'auto_contain',
      actions: ['freeze'],
      sinks: ['log'],
      at: 10,
    });
    expect(s.listAlerts({ agent_id: 'a' })).toMatchObject([{ id: 1, actions: ['freeze'], sinks: ['log'] }]);
    expect(s.listAlerts({ since: 11 })).toEqual([]);
    s.recordShadowDecision({
      at: 3,
      agent_id: 'a',
      signal: 'x',
      severity: 'high',
      priority: 'P1',
      tier: 'auto_contain',
      action: 'contain',
      runbook: null,
      summary: 'would contain',
    });
    expect(s.listShadowDecisions()).toMatchObject([{ id: 1, at: 3, action: 'contain' }]);
    s.setThresholdOverride('a', { spend: 5 }, 'tight');
    s.setThresholdOverride('a', { spend: 4 }, 'tighter');
    expect(s.getThresholdOverride('a')).toEqual({ spend: 4 });
    expect(s.thresholdHistory('a').map((h) => h.reason)).toEqual(['tight', 'tighter']);
    s.setCursor('k', '1');
    s.setCursor('k', '2');
    expect(s.getCursor('k')).toBe('2');
    s.setFrozenBelief('a', true, a.id);
    expect(s.getFrozenBelief('a')).toBe(true);
    expect(s.getFrozenBelief('zz')).toBeNull();
    s.savePostmortem(a.id, { json: { v: 1 }, markdown: '# pm' });
    s.savePostmortem(a.id, { json: { v: 2 }, markdown: '# pm2' });
    expect(s.getPostmortem(a.id)).toMatchObject({ json: { v: 2 }, markdown: '# pm2' });
    s.recordPreIncidentState(a.id, 'a', {
      daily_cap: 100,
      monthly_cap: 1_000,
      alert_threshold: 0.75,
      balance_cents: 5,
      frozen_before: false,
    });
    expect(s.getPreIncidentState(a.id, 'a')).toMatchObject({ alert_threshold: 0.75, frozen_before: false });
    s.recordRecoveryStage(a.id, 'a', {
      stage: 1,
      percent: 25,
      daily_cap: 25,
      monthly_cap: 250,
      gates: ['g1'],
      at: 1_700_000_000_500,
    });
    s.recordRecoveryStage(a.id, 'a', {
      stage: 1,
      percent: 99,
      daily_cap: 1,
      monthly_cap: 1,
      gates: [],
      at: 1,
    });
    expect(s.listRecoveryStages(a.id)).toEqual([
      {
        incident_id: a.id,
        agent_id: 'a',
        round: 1,
        stage: 1,
        percent: 25,
        daily_cap: 25,
        monthly_cap: 250,
        gates: ['g1'],
        at: 1_700_000_000_500,
      },
    ]);
    const mp = s.moneyPaths;
    const items = [
      { id: 'pi_1', payee: 'v', amount: 700 },
      { id: 'pi_2', payee: 'v', amount: 300, detail: { interval: 'month' } },
    ];
    expect(mp.claim('intent', 'void', a.id, 'a', items)).toEqual(['pi_1', 'pi_2']);
    expect(mp.claim('intent', 'void', a.id, 'a', items)).toEqual([]);
    mp.settle('intent', [
      { id: 'pi_1', state: 'done', action: 'refund' },
      { id: 'pi_2', state: 'retry', error: 'rate_limited' },
    ]);
    expect(mp.get('intent', 'pi_1')).toMatchObject({ action: 'refund', state: 'done', amount_cents: 700 });
    expect(mp.claim('intent', 'void', a.id, 'a', items)).toEqual(['pi_2']);
    expect(mp.totals(a.id, 'intent', 'refund')).toEqual({ done: 1, done_cents: 700, open: 0, gone: 0 });
    expect(mp.idsActedOnByUs('a').sort()).toEqual(['pi_1', 'pi_2']);
    expect(mp.rows(a.id, 'intent', { states: ['sending'] }).map((r) => r.object_id)).toEqual(['pi_2']);
  });
});
