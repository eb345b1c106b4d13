import { describe, expect, it } from 'vitest';
import {
  buildElicitation,
  type ConfirmationMessage,
  checkElicitationResponse,
  FleetShutdownConfirmation,
} from '../../src/guards/index.js';

const TTL = 5 * 60_000;

function setup(opts: { maxAttempts?: number } = {}) {
  const t = { now: 1_700_000_000_000 };
  const clock = { now: () => t.now };
  const sent: ConfirmationMessage[] = [];
  const conf = new FleetShutdownConfirmation({ clock, deliver: (m) => sent.push(m), ...opts });
  const start = (agent_ids = ['agent-02', 'agent-01', 'agent-02'], reason = 'cascade') => {
    const req = conf.request({ agent_ids, reason });
    return { req, code: sent.at(-1)!.code };
  };
  return { t, sent, conf, start };
}

describe('FleetShutdownConfirmation.request', () => {
  it('delivers the code out of band and never returns it', () => {
    const { t, sent, start } = setup();
    const { req, code } = start();
    expect(code).toMatch(/^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}$/);
    expect(JSON.stringify(req)).not.toContain(code);
    expect(req).toEqual({
      request_id: expect.stringMatching(/^fsr_/),
      expires_at: t.now + TTL,
      agent_count: 2,
      agent_ids: ['agent-01', 'agent-02'],
    });
    expect(sent[0]).toEqual({
      code,
      request_id: req.request_id,
      agent_ids: ['agent-01', 'agent-02'],
      reason: 'cascade',
      expires_at: t.now + TTL,
    });
  });

  it('issues a different code per request', () => {
    const { start } = setup();
    const codes = new Set(Array.from({ length: 20 }, () => start().code));
    expect(codes.size).toBe(20);
  });

  it('refuses a request for no agents', () => {
    const { conf } = setup();
    expect(() => conf.request({ agent_ids: [], reason: 'x' })).toThrow(/at least one agent/);
  });

  it('drops the request when the code cannot be delivered', () => {
    let captured: ConfirmationMessage | undefined;
    const conf = new FleetShutdownConfirmation({
      clock: { now: () => 0 },
      deliver: (m) => {
        captured = m;
        throw new Error('alert channel down');
      },
    });
    expect(() => conf.request({ agent_ids: ['a'], reason: 'x' })).toThrow('alert channel down');
    expect(
      conf.confirm({ request_id: captured!.request_id, code: captured!.code, agent_ids: ['a'] }),
    ).toMatchObject({ code: 'confirmation_invalid' });
  });
});

describe('FleetShutdownConfirmation.confirm', () => {
  it('accepts the right code once, for the same agents in any order, as a person types it', () => {
    const { conf, start } = setup();
    const { req, code } = start();
    const typed = `${code.slice(0, 4).toLowerCase()}-${code.slice(4)} `;
    expect(
      conf.confirm({ request_id: req.request_id, code: typed, agent_ids: ['agent-02', 'agent-01'] }),
    ).toEqual({
      ok: true,
    });
    expect(conf.confirm({ request_id: req.request_id, code, agent_ids: req.agent_ids })).toMatchObject({
      ok: false,
      code: 'confirmation_used',
      retryable: false,
    });
  });

  it('refuses a wrong code, saying how many attempts are left', () => {
    const { conf, start } = setup();
    const { req } = start();
    expect(
      conf.confirm({ request_id: req.request_id, code: 'AAAAAAAA', agent_ids: req.agent_ids }),
    ).toMatchObject({
      code: 'confirmation_invalid',
      message: expect.stringContaining('4 attempts left'),
      fix: expect.stringContaining('out of band'),
    });
  });

  it('refuses an unknown request id', () => {
    const { conf } = setup();
    expect(conf.confirm({ request_id: 'fsr_nope', code: 'AAAAAAAA', agent_ids: ['a'] })).toMatchObject({
      code: 'confirmation_invalid',
    });
  });

  it('refuses a code for a different set of agents, without using an attempt', () => {
    const { conf, start } = setup({ maxAttempts: 2 });
    const { req, code } = start();
    for (const agent_ids of [['agent-01'], ['agent-01', 'agent-02', 'agent-03'], []]) {
      expect(conf.confirm({ request_id: req.request_id, code, agent_ids })).toMatchObject({
        code: 'confirmation_mismatch',
      });
    }
    expect(conf.confirm({ request_id: req.request_id, code, agent_ids: req.agent_ids })).toEqual({
      ok: true,
    });
  });

  it('expires at expires_at', () => {
    const { t, conf, start } = setup();
    const { req, code } = start();
    t.now = req.expires_at;
    expect(conf.confirm({ request_id: req.request_id, code, agent_ids: req.agent_ids })).toMatchObject({
      code: 'confirmation_expired',
    });
    const next = start();
    t.now = next.req.expires_at - 1;
    expect(
      conf.confirm({ request_id: next.req.request_id, code: next.code, agent_ids: next.req.agent_ids }),
    ).toEqual({ ok: true });
  });

  it('burns the request after the last wrong attempt, even for the right code', () => {
    const { conf, start } = setup();
    const { req, code } = start();
    const wrong = () =>
      conf.confirm({ request_id: req.request_id, code: 'ZZZZZZZZ', agent_ids: req.agent_ids });
    for (let i = 0; i < 4; i++) expect(wrong()).toMatchObject({ code: 'confirmation_invalid' });
    expect(wrong()).toMatchObject({
      code: 'confirmation_invalid',
      message: expect.stringContaining('burned'),
    });
    expect(conf.confirm({ request_id: req.request_id, code, agent_ids: req.agent_ids })).toMatchObject({
      code: 'confirmation_used',
      message: expect.stringContaining('burned'),
    });
  });

  it('keeps each request’s code to itself', () => {
    const { conf, start } = setup();
    const a = start(['agent-01']);
    const b = start(['agent-01']);
    expect(conf.confirm({ request_id: a.req.request_id, code: b.code, agent_ids: ['agent-01'] }).ok).toBe(
      a.code === b.code,
    );
    expect(conf.confirm({ request_id: b.req.request_id, code: b.code, agent_ids: ['agent-01'] })).toEqual({
      ok: true,
    });
  });

  it('survives malformed input', () => {
    const { conf, start } = setup();
    const { req } = start();
    const bad = { request_id: req.request_id, code: 42, agent_ids: 'agent-01' } as unknown as Parameters<
      typeof conf.confirm
    >[0];
    expect(conf.confirm(bad)).toMatchObject({ ok: false, code: 'confirmation_mismatch' });
    expect(conf.confirm(undefined as unknown as Parameters<typeof conf.confirm>[0])).toMatchObject({
      code: 'confirmation_invalid',
    });
  });
});

describe('fleet shutdown elicitation', () => {
  it('lists the count and every id, and asks for a tick and the typed count', () => {
    const e = buildElicitation({
      agent_ids: ['agent-03', 'agent-01', 'agent-02'],
      reason: 'cascade\u0007 now',
    });
    expect(e.message).toContain('ALL 3 fleet agents');
    expect(e.message).toContain('agent-01, agent-02, agent-03');
    expect(e.message).toContain('"cascade now"');
    expect(e.requestedSchema).toEqual({
      type: 'object',
      properties: {
        confirm: expect.objectContaining({ type: 'boolean' }),
        typed_count: expect.objectContaining({ type: 'string', description: 'Type 3 to confirm' }),
      },
      required: ['confirm', 'typed_count'],
    });
    expect(JSON.stringify(e.requestedSchema)).not.toContain('default');
  });

  it('summarises a long list', () => {
    const ids = Array.from({ length: 60 }, (_, i) => `agent-${String(i).padStart(2, '0')}`);
    const e = buildElicitation({ agent_ids: ids, reason: 'x' });
    expect(e.message).toContain('agent-49 and 10 more');
    expect(e.message).not.toContain('agent-50');
  });

  it('accepts only accept + ticked + the exact count', () => {
    const accept = (content: Record<string, unknown>) =>
      checkElicitationResponse({ action: 'accept', content }, 3);
    expect(accept({ confirm: true, typed_count: '3' })).toEqual({ ok: true });
    expect(accept({ confirm: true, typed_count: ' 3 ' })).toEqual({ ok: true });
    expect(accept({ confirm: true, typed_count: 3 })).toEqual({ ok: true });
    expect(accept({ confirm: true, typed_count: '30' })).toMatchObject({
      code: 'confirmation_count_mismatch',
    });
    expect(accept({ confirm: true })).toMatchObject({ code: 'confirmation_count_mismatch' });
    expect(accept({ confirm: 'true', typed_count: '3' })).toMatchObject({ code: 'confirmation_declined' });
    expect(accept({ confirm: false, typed_count: '3' })).toMatchObject({ code: 'confirmation_declined' });
    expect(checkElicitationResponse({ action: 'decline' }, 3)).toMatchObject({
      ok: false,
      code: 'confirmation_declined',
      message: expect.stringContaining('decline'),
      retryable: false,
    });
    expect(
      checkElicitationResponse({ action: 'cancel', content: { confirm: true, typed_count: '3' } }, 3).ok,
    ).toBe(false);
    expect(checkElicitationResponse({ action: 'accept' }, 3).ok).toBe(false);
    expect(checkElicitationResponse(undefined as never, 3).ok).toBe(false);
  });
});
