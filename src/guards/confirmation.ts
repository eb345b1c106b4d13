/**
 * Confirmation before a fleet shutdown, so that a model cannot confirm its own request.
 *
 * With elicitation, the person at the host sees the count and the ids and must type the count.
 * Without it, `request` sends a one-time code out of band (the operator's log or alert channel, never
 * the MCP connection) and returns only a request id. `confirm` accepts that code once, before it
 * expires, for exactly the same agents, within a few attempts; then the request is spent. Codes are
 * random, stored only as hashes, and compared in constant time.
 */
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../util/clock.js';
import { ToolError } from '../util/errors.js';
import { untrustedText } from './redact.js';
import { type GuardRefusal, refusal } from './refusal.js';

/** No 0/O, 1/I/L: the code is read off a log or a pager and typed by a person. */
const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const CODE_LENGTH = 8;
const DEFAULT_TTL_MS = 5 * 60_000;
const DEFAULT_MAX_ATTEMPTS = 5;
/** Open requests kept at once; the oldest is dropped past it, so a calling loop cannot grow memory. */
const MAX_OPEN = 50;

/** What the operator channel receives. The only place the code ever appears. */
export interface ConfirmationMessage {
  code: string;
  request_id: string;
  agent_ids: string[];
  reason: string;
  /** Epoch milliseconds. */
  expires_at: number;
}

/** What the caller (and so the model) gets back from {@link FleetShutdownConfirmation.request}: no code. */
export interface ConfirmationRequest {
  request_id: string;
  /** Epoch milliseconds. */
  expires_at: number;
  agent_count: number;
  /** Deduplicated and sorted: the exact set the code is bound to. */
  agent_ids: string[];
}

/** Refusal codes of {@link FleetShutdownConfirmation.confirm}. */
export type ConfirmationRefusalCode =
  | 'confirmation_invalid'
  | 'confirmation_expired'
  | 'confirmation_mismatch'
  | 'confirmation_used';

export interface FleetShutdownConfirmationOptions {
  clock: Clock;
  /**
   * Sends the code to the operator (log at warn, pager, chat). Must not be a channel the model reads,
   * such as MCP logging notifications. If it throws, the request is dropped and the error propagates.
   */
  deliver: (message: ConfirmationMessage) => void;
  /** How long a code is valid (default 5 min). */
  ttlMs?: number | undefined;
  /** Wrong codes accepted before the request is burned (default 5). */
  maxAttempts?: number | undefined;
}

type State = 'open' | 'used' | 'burned';

interface Pending {
  codeHash: Buffer;
  fleetHash: Buffer;
  expiresAt: number;
  attempts: number;
  state: State;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** The exact set of agents, order and duplicates aside. */
const hashFleet = (ids: readonly string[]) => sha256(JSON.stringify(normalizeIds(ids)));

function normalizeIds(ids: readonly string[]): string[] {
  return [...new Set(ids)].sort();
}

/** People type codes with spaces, dashes and lower case; none of those are in the alphabet. */
const normalizeCode = (code: string) => code.replace(/[\s-]/g, '').toUpperCase();

/** Issues and checks one-time codes for fleet shutdowns. Hold one instance per server process. */
export class FleetShutdownConfirmation {
  readonly #pending = new Map<string, Pending>();
  readonly #clock: Clock;
  readonly #deliver: (m: ConfirmationMessage) => void;
  readonly #ttlMs: number;
  readonly #maxAttempts: number;

  constructor(opts: FleetShutdownConfirmationOptions) {
    this.#clock = opts.clock;
    this.#deliver = opts.deliver;
    this.#ttlMs = positive(opts.ttlMs, DEFAULT_TTL_MS);
    this.#maxAttempts = positive(opts.maxAttempts, DEFAULT_MAX_ATTEMPTS);
  }

  /**
   * Starts a request: delivers a fresh code out of band and returns the request id. The return value
   * never contains the code. Throws a `ToolError` (`invalid_confirmation_request`) for no agents.
   */
  request(input: { agent_ids: readonly string[]; reason: string }): ConfirmationRequest {
    const agentIds = Array.isArray(input?.agent_ids)
      ? normalizeIds(input.agent_ids.filter((a) => typeof a === 'string'))
      : [];
    if (agentIds.length === 0) {
      throw new ToolError(
        'invalid_confirmation_request',
        'agent_ids must name at least one agent.',
        false,
        'Pass the agent ids to shut down.',
      );
    }
    this.#prune();
    const code = Array.from({ length: CODE_LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    const requestId = `fsr_${randomUUID()}`;
    const expiresAt = this.#clock.now() + this.#ttlMs;
    this.#pending.set(requestId, {
      codeHash: sha256(code),
      fleetHash: hashFleet(agentIds),
      expiresAt,
      attempts: 0,
      state: 'open',
    });
    try {
      this.#deliver({
        code,
        request_id: requestId,
        agent_ids: agentIds,
        reason: untrustedText(input.reason, 500),
        expires_at: expiresAt,
      });
    } catch (e) {
      // A code nobody received must not stay confirmable.
      this.#pending.delete(requestId);
      throw e;
    }
    return {
      request_id: requestId,
      expires_at: expiresAt,
      agent_count: agentIds.length,
      agent_ids: agentIds,
    };
  }

  /**
   * Accepts the code once, before it expires, for exactly the agents it was issued for. A wrong code
   * uses an attempt; the last attempt burns the request. Never throws.
   */
  confirm(input: {
    request_id: string;
    code: string;
    agent_ids: readonly string[];
  }): { ok: true } | GuardRefusal {
    const requestId = typeof input?.request_id === 'string' ? input.request_id : '';
    const p = this.#pending.get(requestId);
    if (!p) return unknownRequest();
    if (p.state === 'used') return refuse('confirmation_used', 'This confirmation was already used.');
    if (p.state === 'burned') {
      return refuse('confirmation_used', 'This request was burned after too many wrong codes.');
    }
    if (this.#clock.now() >= p.expiresAt) {
      this.#pending.delete(requestId);
      return refuse('confirmation_expired', 'The confirmation code expired.');
    }
    const ids = Array.isArray(input.agent_ids) ? input.agent_ids.filter((a) => typeof a === 'string') : [];
    if (!timingSafeEqual(hashFleet(ids), p.fleetHash)) {
      return refusal(
        'confirmation_mismatch',
        'The agents differ from the ones the code was issued for.',
        'Confirm with exactly the same agent_ids as the request, or start a new request for the new set.',
      );
    }
    const given = sha256(normalizeCode(typeof input.code === 'string' ? input.code : ''));
    if (timingSafeEqual(given, p.codeHash)) {
      p.state = 'used';
      return { ok: true };
    }
    return this.#wrongCode(p);
  }

  #wrongCode(p: Pending): GuardRefusal {
    p.attempts++;
    const left = this.#maxAttempts - p.attempts;
    if (left > 0) {
      return refusal(
        'confirmation_invalid',
        `Wrong code (${left} attempt${left === 1 ? '' : 's'} left).`,
        'Ask the operator for the code sent out of band (server log / alert channel); never guess it.',
      );
    }
    p.state = 'burned';
    return refuse('confirmation_invalid', 'Wrong code; that was the last attempt, so the request is burned.');
  }

  #prune(): void {
    const now = this.#clock.now();
    for (const [id, p] of this.#pending) if (now >= p.expiresAt) this.#pending.delete(id);
    while (this.#pending.size >= MAX_OPEN) this.#pending.delete(this.#pending.keys().next().value as string);
  }
}

const NEW_REQUEST_FIX =
  'Call fleet_shutdown again without request_id and confirmation_code to start a new request, then use the new code.';

function refuse(code: ConfirmationRefusalCode, message: string): GuardRefusal {
  return refusal(code, message, NEW_REQUEST_FIX);
}

function unknownRequest(): GuardRefusal {
  return refuse('confirmation_invalid', 'Unknown confirmation request (wrong request_id, or it expired).');
}

function positive(n: number | undefined, fallback: number): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : fallback;
}

/** An MCP `elicitation/create` request's content (plain JSON Schema; no SDK types needed). */
export interface ElicitationContent {
  message: string;
  requestedSchema: {
    type: 'object';
    properties: Record<string, Record<string, unknown>>;
    required: string[];
  };
}

/** How many ids the message lists before summarising the rest. */
const LISTED_IDS = 50;

/**
 * The question the person at the host sees: the count, the ids and what will happen; they tick
 * `confirm` and type the number of agents. Nothing defaults to yes.
 */
export function buildElicitation(input: {
  agent_ids: readonly string[];
  reason: string;
}): ElicitationContent {
  const ids = normalizeIds(input.agent_ids);
  const listed =
    ids.length > LISTED_IDS
      ? `${ids.slice(0, LISTED_IDS).join(', ')} and ${ids.length - LISTED_IDS} more`
      : ids.join(', ');
  return {
    message:
      `Contain ALL ${ids.length} fleet agents now? Every wallet is frozen, budget caps set to 0 and held ` +
      `escrows cancelled. Reason given: "${untrustedText(input.reason, 300)}". Agents: ${listed}. ` +
      `To confirm, tick the box and type ${ids.length}.`,
    requestedSchema: {
      type: 'object',
      properties: {
        confirm: {
          type: 'boolean',
          title: 'Contain every listed agent',
          description: 'Tick to confirm the fleet shutdown',
        },
        typed_count: {
          type: 'string',
          title: 'Type the number of agents',
          description: `Type ${ids.length} to confirm`,
          minLength: 1,
          maxLength: 10,
        },
      },
      required: ['confirm', 'typed_count'],
    },
  };
}

/** An elicitation result as the MCP client returns it. */
export interface ElicitationAnswer {
  action: string;
  content?: Record<string, unknown> | undefined;
}

/**
 * Accepts only `action: "accept"` with `confirm: true` and the typed count equal to the number of
 * agents (hosts may send it as a number). Anything else is a refusal and nothing happens.
 */
export function checkElicitationResponse(
  answer: ElicitationAnswer,
  expectedCount: number,
): { ok: true } | GuardRefusal {
  const fix = 'Nothing was done. Call fleet_shutdown again if the fleet should still be contained.';
  const action = typeof answer?.action === 'string' ? answer.action : 'no answer';
  if (action !== 'accept') {
    return refusal('confirmation_declined', `The person chose "${untrustedText(action, 20)}".`, fix);
  }
  const content = answer.content ?? {};
  if (content.confirm !== true) {
    return refusal('confirmation_declined', 'The confirmation box was not ticked.', fix);
  }
  const typed = content.typed_count;
  const typedText = typeof typed === 'string' || typeof typed === 'number' ? String(typed).trim() : '';
  if (typedText !== String(expectedCount)) {
    return refusal(
      'confirmation_count_mismatch',
      `The typed count "${untrustedText(typedText, 10)}" is not ${expectedCount}, the number of agents.`,
      fix,
    );
  }
  return { ok: true };
}
