/**
 * Fleet shutdown: contain every fleet agent (or the listed ones) at once. Never automatic and never
 * confirmable by the model or its host: it always needs an operator's approval on the loopback approval
 * page (acting.ts). The first call opens the request and returns "approval_pending" with the action's
 * digest; the same call made again returns the decision, and executes once if it was approved.
 */

import { sumCents } from '../greenhelix/money.js';
import type { Approval } from '../guards/index.js';
import { ToolError } from '../util/errors.js';
import { type ActingGate, type ActingRequest, atRiskText } from './acting.js';
import { containAgent } from './contain.js';
import type { OpsDeps } from './deps.js';
import { type PlannedCall, planned } from './plan.js';

export interface FleetShutdownRequest {
  reason: string;
  agent_ids?: string[] | undefined;
  dry_run: boolean;
}

export type FleetShutdownStatus = 'approval_pending' | 'rejected' | 'expired' | 'executed' | 'planned';

export interface FleetShutdownResult {
  status: FleetShutdownStatus;
  /** The approval request's digest: it binds the agents, their count and the money at risk. */
  digest: string | null;
  at_risk: string | null;
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
  /** Who asks (one MCP session, the watcher); approvals are never shared between requesters. */
  requester?: string | undefined;
  announce?: ActingRequest['announce'];
  formElicit?: ActingRequest['formElicit'];
  onProgress?: ((done: number, total: number, message: string) => void) | undefined;
}

function empty(agentIds: string[], status: FleetShutdownStatus): FleetShutdownResult {
  return {
    status,
    digest: null,
    at_risk: null,
    agent_count: agentIds.length,
    agent_ids: agentIds,
    expires_at: null,
    how_to_confirm: null,
    incident_id: null,
    results: [],
    elapsed_ms: 0,
  };
}

/** The same action, as the caller sees it: the approval's facts without its address. */
function withApproval(agentIds: string[], status: FleetShutdownStatus, a: Approval): FleetShutdownResult {
  const again =
    'Call fleet_shutdown again with exactly the same arguments to see whether it was approved (it then runs), rejected or expired.';
  return {
    ...empty(agentIds, status),
    digest: a.digest,
    at_risk: atRiskText(a.at_risk_cents),
    expires_at: new Date(a.expires_at).toISOString(),
    how_to_confirm:
      status === 'approval_pending'
        ? `An operator must approve this on the approval page (they were told where; it needs their secret, and there is no code for you to pass on). ${again}`
        : status === 'rejected'
          ? 'The operator rejected it; nothing changed. Do not retry it unchanged.'
          : 'The request expired unused; nothing changed. Call again to ask anew.',
  };
}

/** The fleet shutdown's action identity: the same agents and the same tool, whatever the reason text. */
export const FLEET_SHUTDOWN = 'fleet_shutdown';

export async function fleetShutdown(
  deps: OpsDeps,
  gate: ActingGate,
  req: FleetShutdownRequest,
  opts: FleetShutdownOptions,
): Promise<FleetShutdownResult> {
  const agentIds = [...new Set(req.agent_ids ?? gate.actingFleet())].sort();
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
  const admission = await gate.admit({
    tool: FLEET_SHUTDOWN,
    agent_ids: agentIds,
    reason: req.reason,
    requester: opts.requester ?? 'internal',
    alwaysApprove: true,
    announce: opts.announce,
    formElicit: opts.formElicit,
    signal: opts.signal,
  });
  deps.store.audit.guard({
    guard: 'fleet_shutdown_approval',
    allowed: admission.status === 'admitted',
    tool: FLEET_SHUTDOWN,
    agent_ids: agentIds,
    reason: `${admission.status}${admission.approval ? ` digest ${admission.approval.digest}` : ''}`,
  });
  if (admission.status !== 'admitted')
    return withApproval(
      agentIds,
      admission.status === 'pending' ? 'approval_pending' : admission.status,
      admission.approval,
    );
  const r = await execute(deps, agentIds, req.reason, opts);
  return admission.approval
    ? { ...r, digest: admission.approval.digest, at_risk: atRiskText(admission.approval.at_risk_cents) }
    : r;
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
