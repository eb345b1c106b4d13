/**
 * Blast radius: a call acts only on fleet agents, and on at most a small number of them without a
 * person's approval: per call AND per sliding window, counted in distinct agents, so splitting a call
 * into several does not get around it. A model that misreads an id, or is steered by text inside
 * gateway data, must not be able to freeze an agent outside the fleet or a large part of the fleet; the
 * watcher, acting alone, must not either.
 */

import type { Clock } from '../util/clock.js';
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
      'Set guards.maxAgentsPerCall to a positive integer (the default is 3).',
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
      'Use fleet_shutdown for the whole fleet: it needs an operator approval.',
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

export interface BlastRadiusLimits {
  /** Distinct agents acted on without approval, per call and per window. */
  maxAgents: number;
  /** The same as a share of the acting fleet; the smaller limit applies, never below 1 agent. */
  maxFleetShare: number;
  windowMs: number;
}

/** Why an action exceeds the blast radius, in numbers a refusal and an approval page can show. */
export interface BlastRadiusExcess {
  ok: false;
  reason: 'per_call' | 'window';
  limit: number;
  /** Distinct agents the call names. */
  requested: number;
  /** Distinct agents acted on within the window, this call included. */
  in_window: number;
  window_ms: number;
  /** Agents the call names that fit under the limit now (the watcher acts on these alone). */
  fits: string[];
}

/**
 * The one blast-radius policy: the tools, the runbooks and the watcher all ask it before acting. It
 * remembers which agents were acted on when, in this process (a restart forgets the window; the store's
 * incidents still show what was contained). `admit` checks and records in one synchronous step, so two
 * concurrent calls cannot both fit into the last slot.
 */
export class BlastRadiusPolicy {
  readonly #actedAt = new Map<string, number>();
  readonly #clock: Clock;
  readonly limits: BlastRadiusLimits;

  constructor(opts: { clock: Clock } & BlastRadiusLimits) {
    this.#clock = opts.clock;
    this.limits = { maxAgents: opts.maxAgents, maxFleetShare: opts.maxFleetShare, windowMs: opts.windowMs };
  }

  /** Agents acted on without approval, for a fleet of this size: min(count, share × fleet), at least 1. */
  limitFor(fleetSize: number): number {
    const byShare = Math.floor(this.limits.maxFleetShare * Math.max(0, fleetSize) + 1e-9);
    return Math.max(1, Math.min(this.limits.maxAgents, byShare));
  }

  /** Distinct agents acted on within the window, oldest first. */
  recent(): string[] {
    this.#prune();
    return [...this.#actedAt.keys()];
  }

  /** Whether acting on these agents now stays within the limit. Records nothing. */
  check(agentIds: readonly string[], fleetSize: number): { ok: true } | BlastRadiusExcess {
    this.#prune();
    const ids = [...new Set(agentIds)];
    const limit = this.limitFor(fleetSize);
    const window = new Set(this.#actedAt.keys());
    const fits: string[] = [];
    for (const id of ids) {
      if (window.has(id)) fits.push(id);
      else if (window.size < limit) {
        window.add(id);
        fits.push(id);
      }
    }
    const inWindow = new Set([...this.#actedAt.keys(), ...ids]).size;
    if (ids.length <= limit && inWindow <= limit) return { ok: true };
    return {
      ok: false,
      reason: ids.length > limit ? 'per_call' : 'window',
      limit,
      requested: ids.length,
      in_window: inWindow,
      window_ms: this.limits.windowMs,
      fits,
    };
  }

  /** Checks and, when within the limit, records the agents as acted on now. */
  admit(agentIds: readonly string[], fleetSize: number): { ok: true } | BlastRadiusExcess {
    const verdict = this.check(agentIds, fleetSize);
    if (verdict.ok) this.record(agentIds);
    return verdict;
  }

  /** Records agents as acted on now: after an approved action, which counts like any other. */
  record(agentIds: readonly string[]): void {
    const now = this.#clock.now();
    for (const id of agentIds) {
      this.#actedAt.delete(id);
      this.#actedAt.set(id, now);
    }
  }

  #prune(): void {
    const since = this.#clock.now() - this.limits.windowMs;
    for (const [id, at] of this.#actedAt) if (at <= since) this.#actedAt.delete(id);
  }
}

/** One line for a refusal, a page or an approval page: what was asked and what the limit is. */
export function describeExcess(e: BlastRadiusExcess): string {
  const minutes = Math.round(e.window_ms / 60_000);
  return e.reason === 'per_call'
    ? `${e.requested} agents in one call; without an operator's approval the limit is ${e.limit}.`
    : `${e.in_window} distinct agents acted on within ${minutes} min with this call; without an operator's approval the limit is ${e.limit}.`;
}
