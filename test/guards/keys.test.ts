import { describe, expect, it } from 'vitest';
import {
  assertActingKey,
  checkContainmentKey,
  checkKeyRole,
  type GatewayKeyRow,
  type KeyCheck,
  KeyVerdictCache,
  keyHashPrefix,
  sameSecret,
} from '../../src/guards/index.js';
import { ToolError } from '../../src/util/errors.js';

const MONITOR = 'a2a_enterprise_aaaaaaaaaaaaaaaaaaaaaaaa';
const OPERATOR = 'a2a_enterprise_bbbbbbbbbbbbbbbbbbbbbbbb';
const AGENT_KEY = 'a2a_pro_cccccccccccccccccccccccc';
const FLEET = ['agent-01', 'agent-02'];

function fakeClock(start = 1_700_000_000_000) {
  const t = { now: start };
  return { now: () => t.now, advance: (ms: number) => (t.now += ms) };
}

/** A key list that counts its calls and can be changed or broken between them. */
function keyList(rows: GatewayKeyRow[]) {
  const state = { rows, calls: 0, error: undefined as Error | undefined };
  const list = async () => {
    state.calls++;
    if (state.error) throw state.error;
    return state.rows;
  };
  return { state, list };
}

const forbidden = Object.assign(new Error('403 admin_only: this tool needs an admin-scoped key'), {
  status: 403,
});

function check(over: Partial<KeyCheck> = {}) {
  return checkContainmentKey({
    monitorKey: MONITOR,
    containmentKey: OPERATOR,
    fleet: FLEET,
    cache: new KeyVerdictCache(),
    ...over,
  });
}

describe('keyHashPrefix', () => {
  it('is the first 8 hex characters of SHA3-256, as the gateway lists it', () => {
    // SHA3-256("abc") = 3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532 (FIPS 202 example)
    expect(keyHashPrefix('abc')).toBe('3a985da7');
  });

  it('compares secrets exactly', () => {
    expect(sameSecret(MONITOR, MONITOR)).toBe(true);
    expect(sameSecret(MONITOR, `${MONITOR}x`)).toBe(false);
    expect(sameSecret('', MONITOR)).toBe(false);
  });
});

describe('checkContainmentKey refuses', () => {
  it('when no containment key is configured, saying which variable to set', async () => {
    for (const containmentKey of [undefined, '', '   ']) {
      expect(await check({ containmentKey })).toEqual({
        ok: false,
        code: 'containment_key_missing',
        message: expect.stringContaining('monitor key only reads'),
        fix: expect.stringContaining('GREENHELIX_CONTAINMENT_KEY'),
        retryable: false,
      });
    }
  });

  it('the monitor key used as the containment key (even with stray whitespace), without printing it', async () => {
    const { list, state } = keyList([]);
    const verdict = await check({ containmentKey: ` ${MONITOR}\n`, listGatewayKeys: list });
    expect(verdict).toMatchObject({
      ok: false,
      code: 'containment_key_not_separate',
      fix: expect.stringContaining('separate admin-scoped key'),
      retryable: false,
    });
    expect(JSON.stringify(verdict)).not.toContain(MONITOR);
    expect(state.calls).toBe(0);
  });

  it('a key the gateway key list shows owned by a fleet agent, naming the agent', async () => {
    const { list } = keyList([
      { key_hash_prefix: keyHashPrefix(MONITOR), agent_id: 'ops-monitor' },
      { key_hash_prefix: keyHashPrefix(AGENT_KEY).toUpperCase(), agent_id: 'agent-02' },
    ]);
    const verdict = await check({ containmentKey: AGENT_KEY, listGatewayKeys: list });
    expect(verdict).toMatchObject({
      ok: false,
      code: 'containment_key_belongs_to_fleet_agent',
      message: expect.stringContaining('agent-02'),
      fix: expect.stringContaining('not a fleet agent'),
    });
  });

  it('a key whose listed owner is a fleet agent', async () => {
    const { list } = keyList([
      { key_hash_prefix: keyHashPrefix(AGENT_KEY), agent_id: 'sub-key-7', owner: 'agent-01' },
    ]);
    expect(await check({ containmentKey: AGENT_KEY, listGatewayKeys: list })).toMatchObject({
      code: 'containment_key_belongs_to_fleet_agent',
      message: expect.stringContaining('agent-01'),
    });
  });

  it('a configured agent key when the key list is forbidden (403)', async () => {
    const { list, state } = keyList([]);
    state.error = forbidden;
    const verdict = await check({
      containmentKey: AGENT_KEY,
      agentKeys: { 'agent-01': MONITOR.replace('a', 'd'), 'agent-02': AGENT_KEY },
      listGatewayKeys: list,
    });
    expect(verdict).toMatchObject({
      ok: false,
      code: 'containment_key_belongs_to_fleet_agent',
      message: expect.stringContaining('agent-02'),
    });
  });

  it('a key the gateway lists as revoked', async () => {
    const { list } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops', revoked: 1 }]);
    expect(await check({ listGatewayKeys: list })).toMatchObject({ code: 'containment_key_revoked' });
  });

  it('when nothing can prove the key is not an agent’s: list forbidden and no agent keys', async () => {
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }]);
    state.error = forbidden;
    const cache = new KeyVerdictCache();
    const verdict = await check({ listGatewayKeys: list, cache });
    expect(verdict).toMatchObject({
      ok: false,
      code: 'containment_key_unverified',
      message: expect.stringContaining('403 admin_only'),
      fix: expect.stringContaining('agentKeys'),
    });
    // Not cached: once the list is readable, the next call proves it.
    state.error = undefined;
    expect(await check({ listGatewayKeys: list, cache })).toMatchObject({
      ok: true,
      method: 'gateway_key_list',
    });
    expect(await check({ listGatewayKeys: undefined, agentKeys: {} })).toMatchObject({
      code: 'containment_key_unverified',
    });
  });
});

describe('checkContainmentKey accepts an operator key', () => {
  it('by the gateway key list, naming the owner', async () => {
    const { list } = keyList([
      { key_hash_prefix: keyHashPrefix(AGENT_KEY), agent_id: 'agent-01' },
      { key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops-containment' },
    ]);
    expect(await check({ listGatewayKeys: list })).toEqual({
      ok: true,
      method: 'gateway_key_list',
      containmentKeyOwner: 'ops-containment',
    });
  });

  it('by the gateway key list when the list does not show the key', async () => {
    const { list } = keyList([{ key_hash_prefix: keyHashPrefix(AGENT_KEY), agent_id: 'agent-01' }]);
    expect(await check({ listGatewayKeys: list })).toEqual({ ok: true, method: 'gateway_key_list' });
  });

  it('by configured agent keys when the list is forbidden, saying so and why', async () => {
    const { list, state } = keyList([]);
    state.error = forbidden;
    expect(await check({ agentKeys: { 'agent-01': AGENT_KEY }, listGatewayKeys: list })).toEqual({
      ok: true,
      method: 'configured_agent_keys',
      fallback_reason: expect.stringContaining('403'),
    });
    expect(await check({ agentKeys: { 'agent-01': AGENT_KEY } })).toEqual({
      ok: true,
      method: 'configured_agent_keys',
    });
  });

  it('treats a malformed key list as unreadable', async () => {
    const broken = async () => ({ keys: [] }) as unknown as GatewayKeyRow[];
    expect(await check({ agentKeys: { 'agent-01': AGENT_KEY }, listGatewayKeys: broken })).toMatchObject({
      ok: true,
      method: 'configured_agent_keys',
      fallback_reason: expect.stringContaining('not an array'),
    });
  });
});

describe('checkContainmentKey caching', () => {
  it('reuses a positive verdict for the TTL, then asks the gateway again', async () => {
    const clock = fakeClock();
    const cache = new KeyVerdictCache();
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }]);
    const run = () => check({ listGatewayKeys: list, cache, clock, ttlMs: 30_000 });
    expect((await run()).ok).toBe(true);
    clock.advance(29_999);
    expect((await run()).ok).toBe(true);
    expect(state.calls).toBe(1);
    clock.advance(1);
    expect((await run()).ok).toBe(true);
    expect(state.calls).toBe(2);
  });

  it('keeps a negative verdict no longer than the TTL', async () => {
    const clock = fakeClock();
    const cache = new KeyVerdictCache();
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'agent-01' }]);
    const run = () => check({ listGatewayKeys: list, cache, clock, ttlMs: 30_000 });
    expect((await run()).ok).toBe(false);
    state.rows = [{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }];
    clock.advance(10_000);
    expect((await run()).ok).toBe(false);
    clock.advance(20_000);
    expect(await run()).toMatchObject({ ok: true, containmentKeyOwner: 'ops' });
  });

  it('never answers a changed configuration from the cache', async () => {
    const clock = fakeClock();
    const cache = new KeyVerdictCache();
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }]);
    expect((await check({ listGatewayKeys: list, cache, clock })).ok).toBe(true);
    // The operator identity joins the fleet: the next check must see it at once.
    expect(await check({ fleet: [...FLEET, 'ops'], listGatewayKeys: list, cache, clock })).toMatchObject({
      code: 'containment_key_belongs_to_fleet_agent',
    });
    expect(state.calls).toBe(2);
  });

  it('shares one key-list request between concurrent checks', async () => {
    const cache = new KeyVerdictCache();
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }]);
    const verdicts = await Promise.all(
      Array.from({ length: 5 }, () => check({ listGatewayKeys: list, cache })),
    );
    expect(verdicts.every((v) => v.ok)).toBe(true);
    expect(state.calls).toBe(1);
  });

  it('reuses a proved verdict when the list later fails and no agent keys are configured', async () => {
    const clock = fakeClock();
    const cache = new KeyVerdictCache();
    const { list, state } = keyList([{ key_hash_prefix: keyHashPrefix(OPERATOR), agent_id: 'ops' }]);
    expect((await check({ listGatewayKeys: list, cache, clock, ttlMs: 1_000 })).ok).toBe(true);
    clock.advance(5_000);
    state.error = new Error('503 upstream timeout');
    expect(await check({ listGatewayKeys: list, cache, clock, ttlMs: 1_000 })).toEqual({
      ok: true,
      method: 'gateway_key_list',
      containmentKeyOwner: 'ops',
      fallback_reason: expect.stringMatching(/503 upstream timeout.*reused the verdict proved at/),
    });
  });
});

describe('the monitor key never acts', () => {
  it('refuses state-changing and unknown gateway tools for the monitor key only', () => {
    expect(checkKeyRole('monitor', 'get_balance')).toEqual({ ok: true });
    expect(checkKeyRole('containment', 'freeze_wallet')).toEqual({ ok: true });
    expect(checkKeyRole('monitor', 'freeze_wallet')).toMatchObject({
      ok: false,
      code: 'monitor_key_cannot_act',
      fix: expect.stringContaining('GREENHELIX_CONTAINMENT_KEY'),
    });
    expect(checkKeyRole('monitor', 'no_such_tool')).toMatchObject({ code: 'monitor_key_cannot_act' });
    expect(checkKeyRole('monitor', 'cancel_escrow').ok).toBe(false);
  });

  it('assertActingKey throws the seam’s ToolError', () => {
    expect(() => assertActingKey('monitor', 'get_balance')).not.toThrow();
    let thrown: unknown;
    try {
      assertActingKey('monitor', 'unfreeze_wallet');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ToolError);
    expect(thrown).toMatchObject({ code: 'monitor_key_cannot_act', retryable: false });
  });
});
