import { describe, expect, it } from 'vitest';
import { buildElicitation, checkElicitationResponse } from '../../src/guards/index.js';

describe('approval by form elicitation (opt-in)', () => {
  it('lists the count and every id, and asks for a tick and the typed count', () => {
    const e = buildElicitation({
      agent_ids: ['agent-03', 'agent-01', 'agent-02'],
      reason: 'cascade\u0007 now',
    });
    expect(e.message).toContain('Act on 3 fleet agents');
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
