/**
 * Fleet shutdown: contain every fleet agent at once. Never automatic and never confirmable by the model:
 * either the person at the host confirms through elicitation (seeing the count and the ids), or a
 * one-time code goes out of band to the operator (log / alert channel) and must come back with the
 * request id, for exactly the same agents, before it expires.
 */

import { sumCents } from '../greenhelix/money.js';
import {
  buildElicitation,
  checkElicitationResponse,
  type FleetShutdownConfirmation,
  recordVerdict,
} from '../guards/index.js';
import { ToolError } from '../util/errors.js';
import { containAgent } from './contain.js';
import type { OpsDeps } from './deps.js';
import { type PlannedCall, planned } from './plan.js';

export interface FleetShutdownRequest {
  reason: string;
  agent_ids?: string[] | undefined;
  request_id?: string | undefined;
  confirmation_code?: string | undefined;
  dry_run: boolean;
}

export interface FleetShutdownResult {
  status: 'confirmation_required' | 'declined' | 'executed' | 'planned';
  request_id: string | null;
  agent_count: number;
  agent_ids: string[];
  expires_at: string | null;
  how_to_confirm: string | null;
  incident_id: string | null;
  results: {
    agent_id: string;
    incident_id: string | null;
    status: string;
    escrows_cancelled: number;
    escrows_failed: number;
    amount_unlocked: string;
    error?: string;
  }[];
  elapsed_ms: number;
  planned_calls?: PlannedCall[];
}

export interface FleetShutdownOptions {
  signal?: AbortSignal | undefined;
  elicit?:
    | ((
        message: string,
        schema: Record<string, unknown>,
      ) => Promise<{ action: string; content?: Record<string, unknown> }>)
    | undefined;
  onProgress?: ((done: number, total: number, message: string) => void) | undefined;
}

function empty(agentIds: string[], status: FleetShutdownResult['status']): FleetShutdownResult {
  return {
    status,
    request_id: null,
    agent_count: agentIds.length,
    agent_ids: agentIds,
    expires_at: null,
    how_to_confirm: null,
    incident_id: null,
    results: [],
    elapsed_ms: 0,
  };
}

export async function fleetShutdown(
  deps: OpsDeps,
  confirmation: FleetShutdownConfirmation,
  req: FleetShutdownRequest,
  opts: FleetShutdownOptions,
): Promise<FleetShutdownResult> {
  const agentIds = [...new Set(req.agent_ids ?? (await deps.fleet()))].sort();
  if (agentIds.length === 0)
    throw new ToolError(
      'empty_fleet',
      'The fleet is empty; nothing to shut down.',
      false,
      'Set INCIDENT_FLEET.',
    );
  if (req.dry_run) {
    return {
      ...empty(agentIds, 'planned'),
      planned_calls: agentIds.flatMap((a) => [
        planned('freeze_spending', 'freeze_wallet', 'containment', { agent_id: a }),
        planned('freeze_spending', 'set_budget_cap', 'containment', {
          agent_id: a,
          daily_cap: 0,
          monthly_cap: 0,
        }),
        planned('cancel_escrows', 'cancel_escrow', 'containment', {
          agent_id: a,
          escrows: 'every held escrow as payer',
        }),
      ]),
    };
  }

  if (req.request_id || req.confirmation_code) {
    if (!req.request_id || !req.confirmation_code) {
      throw new ToolError(
        'confirmation_incomplete',
        'Both request_id and confirmation_code are needed to confirm.',
        false,
        'Ask the operator for the code sent out of band.',
      );
    }
    const verdict = recordVerdict(
      deps.store.audit,
      { guard: 'fleet_shutdown_confirmation', tool: 'fleet_shutdown', agent_ids: agentIds },
      confirmation.confirm({ request_id: req.request_id, code: req.confirmation_code, agent_ids: agentIds }),
    );
    if (!verdict.ok) throw new ToolError(verdict.code, verdict.message, false, verdict.fix);
    return execute(deps, agentIds, req.reason, opts);
  }

  if (opts.elicit) {
    const { message, requestedSchema } = buildElicitation({ agent_ids: agentIds, reason: req.reason });
    const answer = await opts.elicit(message, requestedSchema);
    const check = recordVerdict(
      deps.store.audit,
      { guard: 'fleet_shutdown_elicitation', tool: 'fleet_shutdown', agent_ids: agentIds },
      checkElicitationResponse(answer, agentIds.length),
    );
    if (!check.ok) return { ...empty(agentIds, 'declined'), how_to_confirm: check.message };
    return execute(deps, agentIds, req.reason, opts);
  }

  const pending = confirmation.request({ agent_ids: agentIds, reason: req.reason });
  deps.store.audit.guard({
    guard: 'fleet_shutdown_confirmation',
    allowed: false,
    tool: 'fleet_shutdown',
    agent_ids: agentIds,
    reason: `confirmation_required: code sent out of band for request ${pending.request_id}`,
  });
  return {
    ...empty(agentIds, 'confirmation_required'),
    request_id: pending.request_id,
    expires_at: new Date(pending.expires_at).toISOString(),
    how_to_confirm:
      'A one-time code was sent to the operator out of band (server log / alert channel). Ask the person for it, then call ' +
      `fleet_shutdown again with the same agents, request_id "${pending.request_id}" and confirmation_code. Never guess it.`,
  };
}

async function execute(
  deps: OpsDeps,
  agentIds: string[],
  reason: string,
  opts: FleetShutdownOptions,
): Promise<FleetShutdownResult> {
  const t0 = deps.clock.now();
  const parent = deps.store.createIncident({
    agent_ids: agentIds,
    primary_agent_id: agentIds[0]!,
    reason: `fleet shutdown: ${reason}`,
    signal: 'fleet_shutdown',
    priority: 'P0',
    kind: 'fleet_shutdown',
    detected_at: t0,
  });
  let done = 0;
  const settled = await Promise.allSettled(
    agentIds.map((agentId) =>
      containAgent(
        deps,
        {
          agent_id: agentId,
          reason: `fleet shutdown ${parent.id}: ${reason}`,
          priority: 'P0',
          parent_incident_id: parent.id,
          detected_at: t0,
        },
        { signal: opts.signal },
      ).finally(() =>
        opts.onProgress?.(++done, agentIds.length, `contained ${done}/${agentIds.length} agents`),
      ),
    ),
  );
  const results = settled.map((s, i): FleetShutdownResult['results'][number] =>
    s.status === 'fulfilled'
      ? {
          agent_id: s.value.agent_id,
          incident_id: s.value.incident_id,
          status: s.value.status,
          escrows_cancelled: s.value.escrows_cancelled,
          escrows_failed: s.value.escrows_failed,
          amount_unlocked: s.value.amount_unlocked,
        }
      : {
          agent_id: agentIds[i]!,
          incident_id: null,
          status: 'containment_failed',
          escrows_cancelled: 0,
          escrows_failed: 0,
          amount_unlocked: '0.00',
          error: (s.reason as Error).message,
        },
  );
  const now = deps.clock.now();
  const ok = results.every((r) => r.status === 'contained');
  deps.store.transition(parent.id, 'containing', { containment_started_at: t0 });
  deps.store.transition(parent.id, ok ? 'contained' : 'containment_partial', {
    contained_at: now,
    containment_elapsed_ms: now - t0,
    met_sla: now - t0 <= deps.config.containment.slaMs,
    escrows_cancelled: results.reduce((n, r) => n + r.escrows_cancelled, 0),
    escrows_failed: results.reduce((n, r) => n + r.escrows_failed, 0),
    amount_unlocked_cents: sumCents(
      settled.map((s) => (s.status === 'fulfilled' ? s.value.amount_unlocked_cents : 0)),
    ),
  });
  return {
    ...empty(agentIds, 'executed'),
    incident_id: parent.id,
    results,
    elapsed_ms: now - t0,
  };
}
