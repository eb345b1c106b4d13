/**
 * Confirmation before a fleet shutdown, so that a model cannot confirm its own request.
 *
 * Without elicitation, `request` sends a one-time code out of band (the operator's log or alert channel)
 * and returns only a request id. `confirm` accepts the code once, before it expires, for exactly the
 * same set of agents, within a few attempts. Codes are stored hashed.
 */
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../util/clock.js';
import type { GuardRefusal } from './index.js';

const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const MAX_ATTEMPTS = 5;

export interface ConfirmationMessage {
  code: string;
  request_id: string;
  agent_ids: string[];
  reason: string;
  expires_at: number;
}

interface Pending {
  codeHash: Buffer;
  fleetHash: string;
  expiresAt: number;
  attempts: number;
  used: boolean;
}

const sha = (s: string) => createHash('sha256').update(s).digest();
const fleetHash = (ids: readonly string[]) => sha([...new Set(ids)].sort().join('\n')).toString('hex');

export class FleetShutdownConfirmation {
  private readonly pending = new Map<string, Pending>();
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly deliver: (m: ConfirmationMessage) => void;

  constructor(opts: { clock: Clock; deliver: (m: ConfirmationMessage) => void; ttlMs?: number }) {
    this.clock = opts.clock;
    this.deliver = opts.deliver;
    this.ttlMs = opts.ttlMs ?? 300_000;
  }

  /** Issues a code to the operator channel; the return value never contains it. */
  request(input: { agent_ids: readonly string[]; reason: string }): {
    request_id: string;
    expires_at: number;
    agent_count: number;
    agent_ids: string[];
  } {
    const code = Array.from({ length: 8 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    const requestId = `fsr_${randomUUID()}`;
    const agentIds = [...new Set(input.agent_ids)].sort();
    const expiresAt = this.clock.now() + this.ttlMs;
    this.pending.set(requestId, {
      codeHash: sha(code),
      fleetHash: fleetHash(agentIds),
      expiresAt,
      attempts: 0,
      used: false,
    });
    this.deliver({
      code,
      request_id: requestId,
      agent_ids: agentIds,
      reason: input.reason,
      expires_at: expiresAt,
    });
    return {
      request_id: requestId,
      expires_at: expiresAt,
      agent_count: agentIds.length,
      agent_ids: agentIds,
    };
  }

  confirm(input: {
    request_id: string;
    code: string;
    agent_ids: readonly string[];
  }): { ok: true } | GuardRefusal {
    const p = this.pending.get(input.request_id);
    const refuse = (code: string, message: string, fix: string): GuardRefusal => ({
      ok: false,
      code,
      message,
      fix,
      retryable: false,
    });
    if (!p)
      return refuse(
        'confirmation_invalid',
        'Unknown confirmation request.',
        'Call fleet_shutdown without a code to start a new request.',
      );
    if (p.used)
      return refuse('confirmation_used', 'This confirmation was already used.', 'Start a new request.');
    if (this.clock.now() > p.expiresAt) {
      this.pending.delete(input.request_id);
      return refuse(
        'confirmation_expired',
        'The confirmation code expired.',
        'Start a new request and confirm within the time limit.',
      );
    }
    if (fleetHash(input.agent_ids) !== p.fleetHash) {
      return refuse(
        'confirmation_mismatch',
        'The agents differ from the ones the code was issued for.',
        'Confirm with exactly the same agent_ids, or start a new request.',
      );
    }
    p.attempts++;
    const given = sha(input.code.trim().toUpperCase());
    if (!timingSafeEqual(given, p.codeHash)) {
      if (p.attempts >= MAX_ATTEMPTS) {
        p.used = true;
        return refuse(
          'confirmation_invalid',
          'Wrong code; too many attempts, the request is burned.',
          'Start a new request.',
        );
      }
      return refuse(
        'confirmation_invalid',
        `Wrong code (${MAX_ATTEMPTS - p.attempts} attempts left).`,
        'Ask the operator for the code sent out of band; never guess it.',
      );
    }
    p.used = true;
    return { ok: true };
  }
}

/** The elicitation request shown to the person: count and ids, and they must type the count. */
export function buildElicitation(input: { agent_ids: readonly string[]; reason: string }): {
  message: string;
  requestedSchema: Record<string, unknown>;
} {
  const ids = input.agent_ids;
  const listed =
    ids.length > 50 ? `${ids.slice(0, 50).join(', ')} and ${ids.length - 50} more` : ids.join(', ');
  return {
    message: `Contain ALL ${ids.length} fleet agents now? Every wallet is frozen, caps set to 0 and held escrows cancelled. Reason: ${input.reason.slice(0, 300)}. Agents: ${listed}.`,
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
        },
      },
      required: ['confirm', 'typed_count'],
    },
  };
}

export function checkElicitationResponse(
  answer: { action: string; content?: Record<string, unknown> | undefined },
  expectedCount: number,
): { ok: true } | { ok: false; message: string } {
  if (answer.action !== 'accept')
    return { ok: false, message: `The person chose "${answer.action}"; nothing was done.` };
  if (answer.content?.confirm !== true)
    return { ok: false, message: 'The confirmation box was not ticked; nothing was done.' };
  if (String(answer.content?.typed_count ?? '').trim() !== String(expectedCount)) {
    return { ok: false, message: `The typed count did not match ${expectedCount}; nothing was done.` };
  }
  return { ok: true };
}
