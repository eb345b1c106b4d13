/**
 * Operator approvals: the confirmation an action beyond the blast radius (and every fleet shutdown)
 * needs. A request is bound to a digest of the exact action (tool, agents, count, money at risk, reason),
 * is decided only on the approval page by a person holding the operator secret, and is then usable once,
 * by the caller that asked for it, before it expires. The caller (and so the model) only ever learns
 * "pending", the digest and, later, the decision.
 *
 * Requests are kept per requester (one MCP session, the watcher): a caller can hold only a few open
 * requests and never pushes out another caller's, so a loop of new requests cannot evict the operator's
 * pending one.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../util/clock.js';
import { untrustedText } from './redact.js';
import { type GuardRefusal, refusal } from './refusal.js';

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'used';

/** What is to be approved: the exact action. */
export interface ActionSpec {
  /** The tool or automated path that acts: contain_agent, run_runbook:cascade_failure, watcher:…, fleet_shutdown. */
  tool: string;
  agent_ids: readonly string[];
  /** Further arguments that change what happens (payee, stage); part of the action's identity. */
  params?: Record<string, string | number | boolean | null> | undefined;
  reason: string;
  /** CREDITS held in escrow by these agents when the request was made, in cents; null when unreadable. */
  at_risk_cents: number | null;
  /** Why approval is needed, for the page (the blast-radius line). */
  why: string;
}

/** An approval request as the page, the log and the caller see it. Never holds a secret. */
export interface Approval {
  id: string;
  /** sha256 over the exact action, hex; `digest` is its first 16 characters, shown everywhere. */
  digest: string;
  full_digest: string;
  tool: string;
  agent_ids: string[];
  agent_count: number;
  params: Record<string, string | number | boolean | null>;
  reason: string;
  why: string;
  at_risk_cents: number | null;
  requester: string;
  requested_at: number;
  expires_at: number;
  status: ApprovalStatus;
  decided_at: number | null;
  decided_by: string | null;
}

/** What a caller asking again for the same action learns. */
export type ApprovalLookup =
  | { status: 'none' }
  | { status: 'approved' | 'pending' | 'rejected' | 'expired'; approval: Approval };

export interface ApprovalBookOptions {
  clock: Clock;
  /** How long a request stays open and an approval stays usable (default 5 min). */
  ttlMs?: number | undefined;
  /** Open requests one requester may hold (default 3); more are refused, none evicted. */
  maxPendingPerRequester?: number | undefined;
  /** Open requests in all (default 500); past it new requests are refused, never evicted. */
  maxOpen?: number | undefined;
  /** Requesters exempt from `maxOpen` (the watcher: its pages must never be crowded out). */
  reserved?: readonly string[] | undefined;
}

type Listener = (approval: Approval) => void;

/** Decided requests kept for the record (page history, the caller's next look-up). */
const KEEP_DECIDED = 200;

/** The exact action, canonically: sorted agents, sorted params. */
function canonicalAction(spec: Omit<ActionSpec, 'at_risk_cents' | 'why' | 'reason'>): string {
  const agents = [...new Set(spec.agent_ids)].sort();
  const params = Object.fromEntries(
    Object.entries(spec.params ?? {})
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  return JSON.stringify({ tool: spec.tool, agents, params });
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Identifies "the same action" across calls: tool, agents and params (not the reason or the money). */
export function actionKey(spec: Omit<ActionSpec, 'at_risk_cents' | 'why' | 'reason'>): string {
  return sha256(canonicalAction(spec));
}

/** Holds approval requests. One instance per server process; shared by every session and the watcher. */
export class ApprovalBook {
  readonly #byId = new Map<string, Approval & { key: string }>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #perRequester: number;
  readonly #maxOpen: number;
  readonly #reserved: Set<string>;
  readonly #listeners = new Set<Listener>();

  constructor(opts: ApprovalBookOptions) {
    this.#clock = opts.clock;
    this.#ttlMs = positive(opts.ttlMs, 5 * 60_000);
    this.#perRequester = positive(opts.maxPendingPerRequester, 3);
    this.#maxOpen = positive(opts.maxOpen, 500);
    this.#reserved = new Set(opts.reserved ?? []);
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** Called on every decision (approve, reject); the page sends URL-elicitation completions from it. */
  onDecision(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Opens a request for the action. Refused (never evicting) when the requester already holds its
   * limit of open requests, or when the book is full. Never throws.
   */
  request(spec: ActionSpec, requester: string): { ok: true; approval: Approval } | GuardRefusal {
    this.#expire();
    const open = [...this.#byId.values()].filter((a) => a.status === 'pending' || a.status === 'approved');
    const mine = open.filter((a) => a.requester === requester);
    if (mine.length >= this.#perRequester) {
      return refusal(
        'approval_limit',
        `This caller already has ${mine.length} approval requests open (the limit is ${this.#perRequester}).`,
        'Wait for the operator to decide them, or for them to expire; then ask again.',
      );
    }
    if (!this.#reserved.has(requester) && open.length >= this.#maxOpen) {
      return refusal(
        'approval_queue_full',
        `${open.length} approval requests are open; no more are accepted until some are decided or expire.`,
        'Ask the operator to clear the queue on the approval page.',
      );
    }
    const agents = [...new Set(spec.agent_ids)].sort();
    const params = Object.fromEntries(
      Object.entries(spec.params ?? {}).filter(([, v]) => v !== undefined),
    ) as Approval['params'];
    const now = this.#clock.now();
    const id = `apr_${randomUUID()}`;
    const reason = untrustedText(spec.reason, 500);
    const fullDigest = sha256(
      JSON.stringify({
        id,
        action: canonicalAction(spec),
        count: agents.length,
        at_risk_cents: spec.at_risk_cents,
        reason,
      }),
    );
    const approval: Approval & { key: string } = {
      id,
      key: actionKey(spec),
      digest: fullDigest.slice(0, 16),
      full_digest: fullDigest,
      tool: spec.tool,
      agent_ids: agents,
      agent_count: agents.length,
      params,
      reason,
      why: spec.why,
      at_risk_cents: spec.at_risk_cents,
      requester,
      requested_at: now,
      expires_at: now + this.#ttlMs,
      status: 'pending',
      decided_at: null,
      decided_by: null,
    };
    this.#byId.set(id, approval);
    this.#trim();
    return { ok: true, approval: view(approval) };
  }

  /**
   * The caller asks again for the same action. An approval is handed out once (it becomes `used`); a
   * rejection or an expiry is reported once and then forgotten, so the next call opens a new request.
   */
  lookup(spec: Omit<ActionSpec, 'at_risk_cents' | 'why' | 'reason'>, requester: string): ApprovalLookup {
    this.#expire();
    const key = actionKey(spec);
    const latest = [...this.#byId.values()]
      .filter((a) => a.key === key && a.requester === requester && a.status !== 'used')
      .at(-1);
    if (!latest) return { status: 'none' };
    if (latest.status === 'approved') {
      latest.status = 'used';
      return { status: 'approved', approval: view(latest) };
    }
    if (latest.status === 'pending') return { status: 'pending', approval: view(latest) };
    // Reported once: the record stays for the page's history, no longer for look-ups.
    latest.key = `reported:${latest.key}`;
    return { status: latest.status === 'rejected' ? 'rejected' : 'expired', approval: view(latest) };
  }

  /** Hands out an approval once, by id (the watcher's own requests). */
  take(id: string): Approval | undefined {
    this.#expire();
    const a = this.#byId.get(id);
    if (a?.status !== 'approved') return undefined;
    a.status = 'used';
    return view(a);
  }

  get(id: string): Approval | undefined {
    this.#expire();
    const a = typeof id === 'string' ? this.#byId.get(id) : undefined;
    return a ? view(a) : undefined;
  }

  /** Newest first. */
  list(): Approval[] {
    this.#expire();
    return [...this.#byId.values()].reverse().map(view);
  }

  /**
   * The operator's decision, on exactly the digest shown to them. Only an open request can be decided.
   * Never throws.
   */
  decide(
    id: string,
    decision: 'approve' | 'reject',
    digest: string,
    by: string,
  ): { ok: true; approval: Approval } | GuardRefusal {
    this.#expire();
    const a = typeof id === 'string' ? this.#byId.get(id) : undefined;
    if (!a) return refusal('approval_unknown', 'No such approval request.', 'Open the list of requests.');
    if (a.status !== 'pending')
      return refusal('approval_closed', `This request is already ${a.status}.`, 'Nothing to do.');
    if (digest !== a.full_digest)
      return refusal(
        'approval_digest_mismatch',
        'The action shown differs from the request.',
        'Reload the page and decide on what it shows.',
      );
    a.status = decision === 'approve' ? 'approved' : 'rejected';
    a.decided_at = this.#clock.now();
    a.decided_by = untrustedText(by, 100);
    // An approval is usable for a full TTL from the decision: the caller still has to call again.
    if (decision === 'approve') a.expires_at = a.decided_at + this.#ttlMs;
    const out = view(a);
    for (const l of this.#listeners) {
      try {
        l(out);
      } catch {
        // A listener (a notification to a gone client) never undoes the decision.
      }
    }
    return { ok: true, approval: out };
  }

  #expire(): void {
    const now = this.#clock.now();
    for (const a of this.#byId.values())
      if ((a.status === 'pending' || a.status === 'approved') && now >= a.expires_at) a.status = 'expired';
  }

  /** Drops the oldest decided records past the history limit; open requests are never dropped. */
  #trim(): void {
    const closed = [...this.#byId.values()].filter((a) => a.status !== 'pending' && a.status !== 'approved');
    for (const a of closed.slice(0, Math.max(0, closed.length - KEEP_DECIDED))) this.#byId.delete(a.id);
  }
}

function view(a: Approval & { key?: string }): Approval {
  const { key: _key, ...rest } = a;
  return { ...rest, agent_ids: [...rest.agent_ids], params: { ...rest.params } };
}

function positive(n: number | undefined, fallback: number): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : fallback;
}
