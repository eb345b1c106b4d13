/**
 * Every hint a host reads is true, and this file says why, per tool and per hint. A host uses them to
 * decide what to run without asking (readOnly), what to warn about (destructive) and what to retry
 * (idempotent), so a wrong hint is a wrong decision. The table is checked against what the server
 * registers, in the default and the read-only configuration; the claims that are easiest to get wrong
 * are also shown in behaviour below.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thresholdsFor } from '../../src/runbooks/detect.js';
import { type Fixture, startFixture } from '../helpers/fixture.js';

type Hint = 'readOnlyHint' | 'destructiveHint' | 'idempotentHint' | 'openWorldHint';
type Why = Record<Hint, [boolean, string]>;

const WHY: Record<string, Why> = {
  detect_anomalies: {
    readOnlyHint: [
      true,
      'monitor key, GET calls only; it updates only the server’s own baselines and key pins',
    ],
    destructiveHint: [false, 'changes nothing at the gateway'],
    idempotentHint: [true, 'a repeat reads again; no state a second call would change twice'],
    openWorldHint: [true, 'reads the live GreenHelix gateway'],
  },
  contain_agent: {
    readOnlyHint: [false, 'freezes wallets, sets budget caps to 0, cancels held escrows'],
    destructiveHint: [true, 'stops an agent’s spending and cancels its escrows: not an additive update'],
    idempotentHint: [
      true,
      'one incident per agent: a repeat returns it, a partial one resumes; no escrow is cancelled twice',
    ],
    openWorldHint: [true, 'acts on the live gateway'],
  },
  recover_agent: {
    readOnlyHint: [false, 'raises budget caps and unfreezes the wallet'],
    destructiveHint: [
      true,
      'unfreezes and re-enables spending: replaces the containment, not an additive update',
    ],
    idempotentHint: [
      false,
      'without `stage` each call applies the next stage, so a repeat after the wait raises caps again',
    ],
    openWorldHint: [true, 'acts on the live gateway'],
  },
  run_postmortem: {
    readOnlyHint: [
      false,
      'stores the report, publishes an incident_post_mortem event, may tighten detection',
    ],
    destructiveHint: [
      false,
      'additive: a report rebuilt from the records, one event, detection only ever tightened',
    ],
    idempotentHint: [
      true,
      'tightening once per incident, the event once per content, the report rebuilt the same',
    ],
    openWorldHint: [true, 'reads the gateway (identity, claims, escrows, balance) and publishes on its bus'],
  },
  list_incidents: {
    readOnlyHint: [true, 'a SELECT on the local store'],
    destructiveHint: [false, 'changes nothing'],
    idempotentHint: [true, 'changes nothing'],
    openWorldHint: [false, 'local records only, no gateway call'],
  },
  get_incident: {
    readOnlyHint: [true, 'a SELECT on the local store'],
    destructiveHint: [false, 'changes nothing'],
    idempotentHint: [true, 'changes nothing'],
    openWorldHint: [false, 'local records only, no gateway call'],
  },
  fleet_shutdown: {
    readOnlyHint: [false, 'contains every listed agent'],
    destructiveHint: [true, 'freezes and stops a whole fleet'],
    idempotentHint: [
      true,
      'each agent is contained once (a repeat returns its incident); an unconfirmed call changes nothing',
    ],
    openWorldHint: [true, 'acts on the live gateway'],
  },
  list_runbooks: {
    readOnlyHint: [true, 'returns the built-in catalog'],
    destructiveHint: [false, 'changes nothing'],
    idempotentHint: [true, 'changes nothing'],
    openWorldHint: [false, 'built-in data, no gateway call'],
  },
  run_runbook: {
    readOnlyHint: [false, 'runs containment, budget cuts, disputes'],
    destructiveHint: [true, 'freezes agents, cancels escrows, halves budgets'],
    idempotentHint: [
      false,
      'no agent is contained twice, but a repeat pages again and cascade_failure opens another incident',
    ],
    openWorldHint: [true, 'acts on the live gateway'],
  },
  check_readiness: {
    readOnlyHint: [true, 'reads configuration and the gateway; the containment timing is a dry-run plan'],
    destructiveHint: [false, 'changes nothing'],
    idempotentHint: [true, 'changes nothing'],
    openWorldHint: [true, 'reads the live gateway'],
  },
};

/** In read-only mode run_postmortem builds and returns the report only: no store, no event, no tightening. */
const READ_ONLY_MODE: Record<string, Partial<Why>> = {
  run_postmortem: {
    readOnlyHint: [true, 'read-only mode: the report is returned, not stored; no event; detection untouched'],
  },
};

const HINTS: Hint[] = ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'];

describe('every hint is true, and says why', () => {
  let f: Fixture;
  let ro: Fixture;
  beforeAll(async () => {
    f = await startFixture({ agents: 3 });
    ro = await startFixture({ sandbox: f.sandbox, config: (c) => ({ ...c, readOnly: true }) });
  });
  afterAll(async () => {
    await ro?.close();
    await f?.close();
  });

  it('the table names every registered tool, each hint with a reason', async () => {
    const { tools } = await f.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(Object.keys(WHY).sort());
    for (const t of tools)
      for (const h of HINTS) {
        const [value, reason] = WHY[t.name]![h];
        expect(reason.length, `${t.name}.${h}`).toBeGreaterThan(10);
        expect(t.annotations?.[h], `${t.name}.${h}: ${reason}`).toBe(value);
      }
  });

  it('read-only mode shows each tool’s hints for that mode', async () => {
    const { tools } = await ro.client.listTools();
    for (const t of tools)
      for (const h of HINTS) {
        const [value, reason] = READ_ONLY_MODE[t.name]?.[h] ?? WHY[t.name]![h];
        expect(t.annotations?.[h], `${t.name}.${h} (read-only mode): ${reason}`).toBe(value);
      }
    expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true);
  });

  it('recover_agent is destructive: stage 1 unfreezes the wallet and restores spending', async () => {
    const agent = f.sandbox.fleet[0]!;
    const c = await f.call('contain_agent', { agent_id: agent, reason: 'hint check' });
    expect(f.sandbox.groundTruth(agent).frozen).toBe(true);
    const r = await f.call('recover_agent', {
      incident_id: c.structuredContent.incident_id as string,
      root_cause_fixed: true,
      confirmed_by: 'test',
      stage: 1,
    });
    expect(r.structuredContent.applied).toBe(true);
    expect(f.sandbox.groundTruth(agent).frozen).toBe(false);
  });

  it('run_postmortem writes (report, event, tightening), once; in read-only mode it writes nothing', async () => {
    // Both containments detected two minutes before they started: the SLA is missed, so tightening is due.
    const lateContainment = (fx: Fixture, agent: string) =>
      fx.ops.contain({
        agent_id: agent,
        reason: 'late containment',
        detected_at: fx.ops.clock.now() - 120_000,
      });
    const quietAgent = f.sandbox.fleet[1]!;
    const before = thresholdsFor(ro.ops.deps, quietAgent).k_sigma;
    const inRo = await lateContainment(ro, quietAgent);
    const quiet = await ro.call('run_postmortem', { incident_id: inRo.incident_id });
    expect(quiet.isError).toBeFalsy();
    expect(quiet.structuredContent).toMatchObject({
      markdown_uri: null,
      thresholds_tightened: false,
      event_published: false,
    });
    expect(ro.ops.store.getPostmortem(inRo.incident_id)).toBeUndefined();
    expect(thresholdsFor(ro.ops.deps, quietAgent).k_sigma).toBe(before);
    expect(ro.ops.store.listActions(inRo.incident_id).map((a) => a.action)).not.toContain(
      'publish_incident_post_mortem',
    );

    // Default mode: it does write, which is why it is not read-only…
    const agent = f.sandbox.fleet[2]!;
    const late = await lateContainment(f, agent);
    const published = () =>
      f.ops.store.listActions(late.incident_id).filter((a) => a.action === 'publish_incident_post_mortem')
        .length;
    const first = await f.call('run_postmortem', { incident_id: late.incident_id });
    expect(first.structuredContent).toMatchObject({ thresholds_tightened: true, event_published: true });
    expect(f.ops.store.getPostmortem(late.incident_id)).toBeDefined();
    expect(thresholdsFor(f.ops.deps, agent).k_sigma).toBeLessThan(before);
    expect(published()).toBe(1);
    await f.sandbox.advance(1_000);
    // …and a repeat adds nothing: no second event, no second tightening, which is why it is idempotent.
    await f.call('run_postmortem', { incident_id: late.incident_id });
    expect(published()).toBe(1);
    expect(f.ops.store.thresholdHistory(agent)).toHaveLength(1);
  });
});
