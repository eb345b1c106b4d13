/**
 * Operator approvals (finding 4): bound to a digest of the exact action, single-use, expiring, and kept
 * per requester, so no caller can push out another's pending request.
 */
import { describe, expect, it } from 'vitest';
import { type ActionSpec, ApprovalBook } from '../../src/guards/index.js';

const TTL = 5 * 60_000;

function setup() {
  const t = { now: 1_700_000_000_000 };
  const book = new ApprovalBook({
    clock: { now: () => t.now },
    ttlMs: TTL,
    maxPendingPerRequester: 3,
    maxOpen: 50,
    reserved: ['watcher'],
  });
  return { t, book };
}

const spec = (agents: string[], extra: Partial<ActionSpec> = {}): ActionSpec => ({
  tool: 'fleet_shutdown',
  agent_ids: agents,
  reason: 'cascade',
  at_risk_cents: 4_680_000,
  why: 'always',
  ...extra,
});
const FLEET = ['agent-02', 'agent-00', 'agent-01'];

function open(book: ApprovalBook, s: ActionSpec, requester: string) {
  const r = book.request(s, requester);
  if (!r.ok) throw new Error(r.message);
  return r.approval;
}

describe('ApprovalBook', () => {
  it('binds the request to a digest of the exact action, and decides only on that digest', () => {
    const { book } = setup();
    const a = open(book, spec(FLEET), 'mcp-1');
    expect(a).toMatchObject({
      agent_ids: ['agent-00', 'agent-01', 'agent-02'],
      agent_count: 3,
      at_risk_cents: 4_680_000,
      status: 'pending',
      digest: a.full_digest.slice(0, 16),
    });
    const b = open(book, spec(FLEET, { at_risk_cents: 1 }), 'mcp-2');
    expect(b.full_digest).not.toBe(a.full_digest);
    expect(book.decide(a.id, 'approve', b.full_digest, 'op')).toMatchObject({
      code: 'approval_digest_mismatch',
    });
    expect(book.decide(a.id, 'approve', a.full_digest, 'op')).toMatchObject({ ok: true });
    expect(book.decide(a.id, 'reject', a.full_digest, 'op')).toMatchObject({ code: 'approval_closed' });
  });

  it('hands an approval out once, to the requester, for the same agents in any order', () => {
    const { book } = setup();
    const a = open(book, spec(FLEET), 'mcp-1');
    const same = { tool: 'fleet_shutdown', agent_ids: ['agent-01', 'agent-02', 'agent-00'] };
    expect(book.lookup(same, 'mcp-1')).toMatchObject({ status: 'pending' });
    book.decide(a.id, 'approve', a.full_digest, 'op');
    expect(book.lookup(same, 'mcp-2')).toEqual({ status: 'none' });
    expect(book.lookup({ ...same, agent_ids: ['agent-00'] }, 'mcp-1')).toEqual({ status: 'none' });
    expect(book.lookup(same, 'mcp-1')).toMatchObject({ status: 'approved' });
    expect(book.lookup(same, 'mcp-1')).toEqual({ status: 'none' });
    expect(book.get(a.id)?.status).toBe('used');
  });

  it('reports a rejection once; expires open requests and unused approvals', () => {
    const { t, book } = setup();
    const r = open(book, spec(FLEET), 'mcp-1');
    book.decide(r.id, 'reject', r.full_digest, 'op');
    const key = { tool: 'fleet_shutdown', agent_ids: FLEET };
    expect(book.lookup(key, 'mcp-1')).toMatchObject({ status: 'rejected' });
    expect(book.lookup(key, 'mcp-1')).toEqual({ status: 'none' });
    const p = open(book, spec(FLEET), 'mcp-1');
    t.now += TTL;
    expect(book.decide(p.id, 'approve', p.full_digest, 'op')).toMatchObject({ code: 'approval_closed' });
    expect(book.lookup(key, 'mcp-1')).toMatchObject({ status: 'expired' });
    const q = open(book, spec(FLEET), 'mcp-1');
    book.decide(q.id, 'approve', q.full_digest, 'op');
    t.now += TTL;
    expect(book.lookup(key, 'mcp-1')).toMatchObject({ status: 'expired' });
  });

  it("55 new requests from one caller never evict another's pending request (the old store kept 50)", () => {
    const { book } = setup();
    const operators = open(book, spec(FLEET), 'mcp-operator');
    const refused: string[] = [];
    for (let i = 0; i < 55; i++) {
      const r = book.request(spec([`agent-${i}`]), 'mcp-loop');
      if (!r.ok) refused.push(r.code);
    }
    expect(refused).toHaveLength(52);
    expect(new Set(refused)).toEqual(new Set(['approval_limit']));
    expect(book.get(operators.id)?.status).toBe('pending');
    expect(book.decide(operators.id, 'approve', operators.full_digest, 'op')).toMatchObject({ ok: true });
  });

  it('when full, refuses new callers but never the watcher, and evicts nobody', () => {
    const { book } = setup();
    const first = open(book, spec(['agent-0']), 'mcp-0');
    for (let i = 1; i < 50; i++) open(book, spec([`agent-${i}`]), `mcp-${i}`);
    expect(book.request(spec(['agent-x']), 'mcp-new')).toMatchObject({ code: 'approval_queue_full' });
    expect(book.request(spec(['agent-x']), 'watcher').ok).toBe(true);
    expect(book.get(first.id)?.status).toBe('pending');
  });

  it('survives malformed input', () => {
    const { book } = setup();
    expect(book.decide(undefined as never, 'approve', '', 'op')).toMatchObject({ code: 'approval_unknown' });
    expect(book.get(42 as never)).toBeUndefined();
    const r = book.request(spec(FLEET, { reason: `\u202e${'x'.repeat(10_000)}` }), 'mcp-1');
    expect(r.ok && r.approval.reason.length).toBeLessThan(600);
  });
});
