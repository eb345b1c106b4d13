/**
 * Blast radius: a call acts only on fleet agents, at most a configured number at once.
 */
import type { GuardRefusal } from './index.js';

const AGENT_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

export function checkBlastRadius(input: {
  agent_ids: readonly string[];
  fleet: readonly string[];
  maxAgentsPerCall: number;
}): { ok: true; agent_ids: string[] } | GuardRefusal {
  const ids = [...new Set(input.agent_ids)];
  const refuse = (code: string, message: string, fix: string): GuardRefusal => ({
    ok: false,
    code,
    message,
    fix,
    retryable: false,
  });
  const malformed = ids.filter((a) => !AGENT_ID.test(a));
  if (malformed.length)
    return refuse(
      'invalid_agent_id',
      `Not agent ids: ${malformed
        .slice(0, 5)
        .map((a) => JSON.stringify(a))
        .join(', ')}.`,
      'Use ids like "agent-07" (letters, digits, ".", "_", "-").',
    );
  const fleet = new Set(input.fleet);
  const outside = ids.filter((a) => !fleet.has(a));
  if (outside.length) {
    return refuse(
      'agent_not_in_fleet',
      `Not in the fleet: ${outside.slice(0, 10).join(', ')}${outside.length > 10 ? ', …' : ''}. This server acts only on fleet agents.`,
      'Check the id, or add the agent to INCIDENT_FLEET.',
    );
  }
  if (ids.length > input.maxAgentsPerCall) {
    return refuse(
      'too_many_agents',
      `${ids.length} agents in one call; the limit is ${input.maxAgentsPerCall}.`,
      'Split the call, or use fleet_shutdown (which needs confirmation) for the whole fleet.',
    );
  }
  return { ok: true, agent_ids: ids };
}
