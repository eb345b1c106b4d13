/**
 * Form elicitation for an approval, where configured (guards.formElicitation; off by default): the person
 * at the host sees the count and the ids and must type the count. A host that auto-accepts every
 * elicitation would confirm by itself, so the approval page (approval-page.ts) is the default way.
 */
import { untrustedText } from './redact.js';
import { type GuardRefusal, refusal } from './refusal.js';

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

function normalizeIds(ids: readonly string[]): string[] {
  return [...new Set(ids)].sort();
}

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
      `Act on ${ids.length} fleet agents now? Containment freezes every wallet, sets budget caps to 0 and cancels held ` +
      `escrows. Reason given: "${untrustedText(input.reason, 300)}". Agents: ${listed}. ` +
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
  const fix = 'Nothing was done. Call again if the agents should still be contained.';
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
