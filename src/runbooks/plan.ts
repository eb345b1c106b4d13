/**
 * Dry runs: the gateway calls a containment would make, built from reads only (monitor key).
 * Nothing here may call a state-changing route; the sandbox's request log proves it in tests.
 */

import { formatCents, sumCents } from '../greenhelix/money.js';
import { ROUTES, type ToolName } from '../greenhelix/routes.js';
import { listActiveSubscriptions, listPendingIntents } from './contain-paths.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';

export interface PlannedCall {
  step: string;
  tool: string;
  method: string;
  path: string;
  key: 'monitor' | 'containment';
  params?: Record<string, unknown>;
  count?: number;
}

export function planned(
  step: string,
  tool: ToolName,
  key: PlannedCall['key'],
  params?: Record<string, unknown>,
  count?: number,
): PlannedCall {
  const spec = ROUTES[tool];
  const path = spec.path.replace(/\{(\w+)\}/g, (_, name: string) => String(params?.[name] ?? `{${name}}`));
  return {
    step,
    tool,
    method: spec.method,
    path,
    key,
    ...(params ? { params } : {}),
    ...(count !== undefined ? { count } : {}),
  };
}

export interface ContainmentPlan {
  dry_run: true;
  incident_id: null;
  agent_id: string;
  existing: boolean;
  status: 'planned';
  steps: [];
  escrows_cancelled: 0;
  escrows_failed: 0;
  escrows_skipped: 0;
  amount_unlocked: string;
  time_to_freeze_ms: null;
  refund_window_ms: null;
  elapsed_ms: number;
  met_sla: false;
  identity_compromised: false;
  planned_calls: PlannedCall[];
  held_escrows: number;
  /** Pending intents and active subscriptions it pays (to the suspect payee); null when unreadable. */
  pending_intents: number | null;
  active_subscriptions: number | null;
}

/** The calls `containAgent` would make for this agent now, with the held escrows it would cancel. */
export async function planContainment(
  deps: OpsDeps,
  req: { agent_id: string; suspect_payee?: string | undefined },
  signal?: AbortSignal,
): Promise<ContainmentPlan> {
  const started = deps.clock.now();
  const a = req.agent_id;
  let held: { id: string; amount: number }[] = [];
  let listError: string | undefined;
  try {
    const escrows = await deps.monitor.listAllEscrows(
      { agent_id: a, status: 'held' },
      { signal, timeoutMs: deps.config.greenhelix.timeoutMs },
    );
    held = escrows.filter(
      (e) => e.payer === a && e.status === 'held' && (!req.suspect_payee || e.payee === req.suspect_payee),
    );
  } catch (e) {
    listError = errorInfo(e).code;
  }
  const callOpts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const [intents, subs] = await Promise.all([
    listPendingIntents(deps, a, req.suspect_payee, callOpts),
    listActiveSubscriptions(deps, a, req.suspect_payee, callOpts),
  ]);
  const existing = deps.store.findActiveIncident(a);
  const calls: PlannedCall[] = [
    planned('freeze_spending', 'freeze_wallet', 'containment', { agent_id: a }),
    ...(req.suspect_payee
      ? [planned('freeze_spending', 'freeze_wallet', 'containment', { agent_id: req.suspect_payee })]
      : []),
    planned('freeze_spending', 'get_budget_status', 'monitor', { agent_id: a }),
    planned('freeze_spending', 'set_budget_cap', 'containment', {
      agent_id: a,
      daily_cap: 0,
      monthly_cap: 0,
    }),
    planned('stop_money_paths', 'list_intents', 'monitor', { agent_id: a, status: 'pending' }),
    planned('stop_money_paths', 'list_subscriptions', 'monitor', { agent_id: a, status: 'active' }),
    planned('cancel_escrows', 'list_escrows', 'monitor', { agent_id: a, status: 'held' }),
  ];
  if (intents.ok && intents.items.length > 0)
    calls.push(
      planned(
        'stop_money_paths',
        'refund_intent',
        'containment',
        { intent_ids: intents.items.map((i) => i.id).slice(0, 20) },
        intents.items.length,
      ),
    );
  if (subs.ok && subs.items.length > 0)
    calls.push(
      planned(
        'stop_money_paths',
        'cancel_subscription',
        'containment',
        { subscription_ids: subs.items.map((i) => i.id).slice(0, 20) },
        subs.items.length,
      ),
    );
  calls.push(planned('clawback', 'list_intents', 'monitor', { agent_id: a, status: 'settled' }));
  if (held.length > 0) {
    calls.push(
      planned('cancel_escrows', 'unfreeze_wallet', 'containment', { agent_id: a }),
      planned(
        'cancel_escrows',
        'cancel_escrow',
        'containment',
        { escrow_ids: held.map((e) => e.id).slice(0, 20) },
        held.length,
      ),
      planned('cancel_escrows', 'freeze_wallet', 'containment', { agent_id: a }),
      planned('cancel_escrows', 'list_escrows', 'monitor', { agent_id: a, status: 'held' }),
    );
  }
  calls.push(
    planned('check_identity', 'get_agent_identity', 'monitor', { agent_id: a }),
    planned('check_identity', 'get_agent_reputation', 'monitor', { agent_id: a }),
    planned('check_identity', 'get_verified_claims', 'monitor', { agent_id: a }),
    planned('publish', 'publish_event', 'containment', {
      event_type: 'incident_contained',
      source: 'agent-incident-mcp',
    }),
  );
  return {
    dry_run: true,
    incident_id: null,
    agent_id: a,
    existing: Boolean(existing),
    status: 'planned',
    steps: [],
    escrows_cancelled: 0,
    escrows_failed: 0,
    escrows_skipped: 0,
    amount_unlocked: listError
      ? `unknown (list_escrows failed: ${listError})`
      : formatCents(sumCents(held.map((e) => e.amount))),
    time_to_freeze_ms: null,
    refund_window_ms: null,
    elapsed_ms: deps.clock.now() - started,
    met_sla: false,
    identity_compromised: false,
    planned_calls: calls,
    held_escrows: held.length,
    pending_intents: intents.ok ? intents.items.length : null,
    active_subscriptions: subs.ok ? subs.items.length : null,
  };
}
