/**
 * Blast radius: a call acts only on fleet agents, and on at most a configured number of them at once.
 * A model that misreads an id, or is steered by text inside gateway data, must not be able to freeze
 * an agent outside the fleet or half the fleet in one call; the whole fleet goes through
 * fleet_shutdown and its confirmation instead.
 */

import { untrustedText } from './redact.js';
import { type GuardRefusal, refusal } from './refusal.js';

/** The gateway's agent id syntax as this server accepts it. */
export const AGENT_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

/** How many offending ids a refusal names before summarising. */
const NAMED = 10;

/**
 * Checks the agents a call targets. Returns the deduplicated ids (first-seen order) or a refusal that
 * names the malformed ids, the ids outside the fleet, or the cap. An empty list passes: tools that
 * target no agent, or "the whole fleet", are bounded elsewhere. Never throws.
 */
export function checkBlastRadius(input: {
  agent_ids: readonly string[];
  fleet: readonly string[];
  maxAgentsPerCall: number;
}): { ok: true; agent_ids: string[] } | GuardRefusal {
  const cap = input.maxAgentsPerCall;
  if (!Number.isInteger(cap) || cap < 1) {
    return refusal(
      'invalid_blast_radius_cap',
      `maxAgentsPerCall is ${untrustedText(cap, 20)}; it must be a whole number of at least 1.`,
      'Set guards.maxAgentsPerCall to a positive integer (the default is 50).',
    );
  }
  const raw: readonly unknown[] = Array.isArray(input.agent_ids) ? input.agent_ids : [input.agent_ids];
  const malformed = raw.filter((a) => typeof a !== 'string' || !AGENT_ID_PATTERN.test(a));
  if (malformed.length > 0) {
    return refusal(
      'invalid_agent_id',
      `agent_ids holds values that are not agent ids: ${nameSome(malformed.map(quote), malformed.length)}.`,
      'Use ids like "agent-07": a letter or digit, then up to 127 letters, digits, ".", "_" or "-".',
    );
  }
  const ids = [...new Set(raw as string[])];
  const fleet = new Set(input.fleet);
  const outside = ids.filter((a) => !fleet.has(a));
  if (outside.length > 0) {
    return refusal(
      'agent_not_in_fleet',
      `Not in the fleet: ${nameSome(outside, outside.length)}. This server acts only on fleet agents.`,
      'Check the ids against list_incidents or detect_anomalies, or add the agent to INCIDENT_FLEET.',
    );
  }
  if (ids.length > cap) {
    return refusal(
      'too_many_agents',
      `${ids.length} agents in one call; the limit is ${cap} per call.`,
      'Split the call into groups of at most the limit, or use fleet_shutdown (which needs confirmation) for the whole fleet.',
    );
  }
  return { ok: true, agent_ids: ids };
}

function nameSome(items: readonly string[], total: number): string {
  const named = items.slice(0, NAMED).join(', ');
  return total > NAMED ? `${named} and ${total - NAMED} more` : named;
}

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(untrustedText(value, 40)) : `(${typeof value})`;
}
