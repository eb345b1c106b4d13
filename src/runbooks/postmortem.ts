/**
 * The post-mortem (SPEC "Post-mortem"): audit trail and impact read from the gateway for the incident
 * window, the timeline from recorded action times only, and feedback into detection: a containment
 * that missed its 60 s target tightens that agent's thresholds, persistently.
 */
import { tightenThresholds } from '../detection/index.js';
import type { Intent, Subscription } from '../greenhelix/index.js';
import { sumCents } from '../greenhelix/money.js';
import { markUntrusted } from '../guards/index.js';
import { buildPostmortem, type MoneyPathsImpact, renderPostmortemMarkdown } from '../incidents/index.js';
import { ToolError } from '../util/errors.js';
import { toEpochMs } from '../util/time.js';
import { publishQuietly } from './contain.js';
import { cancelledSubscriptions } from './contain-paths.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';
import { thresholdsFor } from './detect.js';

export interface PostmortemResult {
  incident_id: string;
  report: Record<string, unknown>;
  markdown: string;
  /** Where the stored report can be read; null in read-only mode, where nothing is stored. */
  markdown_uri: string | null;
  thresholds_tightened: boolean;
  /** An incident_post_mortem event with this content went out, now or on an earlier call. */
  event_published: boolean;
}

export async function runPostmortem(
  deps: OpsDeps,
  incidentId: string,
  signal?: AbortSignal,
  options: { publish?: boolean } = {},
): Promise<PostmortemResult> {
  const { store, monitor, clock, config } = deps;
  const incident = store.getIncident(incidentId);
  if (!incident)
    throw new ToolError(
      'incident_not_found',
      `No incident ${incidentId}.`,
      false,
      'Call list_incidents to find the id.',
    );
  const agentId = incident.primary_agent_id;
  const opts = { signal, timeoutMs: config.greenhelix.timeoutMs };
  const windowStart = (incident.detected_at ?? incident.created_at) - 60 * 60_000;
  const windowEnd = incident.resolved_at ?? clock.now();
  const gaps: string[] = [];
  const read = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (e) {
      const info = errorInfo(e);
      gaps.push(`${what}: ${info.code}`);
      return undefined;
    }
  };

  const [identity, chains, claims, balance, usage, escrows, intents, subscriptions] = await Promise.all([
    read('identity', () => monitor.getAgentIdentity({ agent_id: agentId }, opts)),
    read('claim_chains', () => monitor.getClaimChains({ agent_id: agentId }, opts)),
    read('verified_claims', () => monitor.getVerifiedClaims({ agent_id: agentId }, opts)),
    read('balance', () => monitor.getBalance({ agent_id: agentId }, opts)),
    read('usage', () =>
      monitor.getUsageSummary({ agent_id: agentId, since: Math.floor(windowStart / 1000) }, opts),
    ),
    read('escrows', () => monitor.listAllEscrows({ agent_id: agentId }, opts)),
    read('intents', () => monitor.listAllIntents({ agent_id: agentId }, opts)),
    read('subscriptions', () => monitor.listAllSubscriptions({ agent_id: agentId, status: 'active' }, opts)),
  ]);

  const inWindow = (escrows ?? []).filter((e) => {
    const t = toEpochMs(e.created_at);
    return e.payer === agentId && t !== undefined && t >= windowStart && t <= windowEnd;
  });
  const by = (status: string) => inWindow.filter((e) => e.status === status);
  const impact = {
    balance_cents: balance?.balance ?? null,
    usage: usage ? { total_calls: usage.total_calls, total_cost: usage.total_cost } : null,
    escrows_still_locked: by('held').length,
    amount_still_locked_cents: sumCents(by('held').map((e) => e.amount)),
    escrows_cancelled: by('refunded').length,
    amount_recovered_cents: sumCents(by('refunded').map((e) => e.amount)),
    escrows_released: by('settled').length,
    amount_lost_cents: sumCents(by('settled').map((e) => e.amount)),
    escrows_expired: by('expired').length,
    window: { start: windowStart, end: windowEnd },
    money_paths: moneyPathsImpact(deps, incidentId, agentId, intents, subscriptions, windowStart, windowEnd),
  };

  // Read-only mode: the report is built and returned, and nothing else changes (no tightening, no
  // stored report, no event), which is what the tool's read-only hints promise in that mode.
  const readOnly = config.readOnly;
  const tightened = readOnly ? false : maybeTighten(deps, incident);
  const report = buildPostmortem({
    incident: store.getIncident(incidentId) ?? incident,
    actions: store.listActions(incidentId),
    stages: store.listRecoveryStages(incidentId, { allRounds: true }),
    gates: store.listGates(incidentId),
    audit: {
      identity: identity ? markUntrusted(identity) : null,
      claim_chains: (chains?.chains ?? []).filter((c) => {
        const t = toEpochMs(c.created_at);
        return t === undefined || (t >= windowStart && t <= windowEnd);
      }),
      verified_claims: claims?.claims ?? [],
    },
    impact,
    gaps,
    thresholds_tightened: tightened,
    sla_ms: config.containment.slaMs,
  });
  const markdown = renderPostmortemMarkdown(report);
  if (!readOnly) store.savePostmortem(incidentId, { json: report, markdown });
  const event = {
    agent_id: agentId,
    met_sla: incident.met_sla ?? null,
    amount_recovered: impact.amount_recovered_cents / 100,
    amount_lost: impact.amount_lost_cents / 100,
  };
  const published =
    !readOnly && deps.actor !== null && options.publish !== false && publishOnce(deps, incidentId, event);
  return {
    incident_id: incidentId,
    report: report as unknown as Record<string, unknown>,
    markdown,
    markdown_uri: readOnly ? null : `incident://${incidentId}/postmortem`,
    thresholds_tightened: tightened,
    event_published: published,
  };
}

/**
 * Publishes the post-mortem event unless the same content already went out (or is going out) for this
 * incident: calling run_postmortem again on an unchanged incident adds nothing to the bus.
 */
function publishOnce(deps: OpsDeps, incidentId: string, event: Record<string, unknown>): boolean {
  const same = JSON.stringify(event);
  const sent = deps.store
    .listActions(incidentId)
    .some(
      (a) =>
        a.action === 'publish_incident_post_mortem' &&
        a.success !== false &&
        JSON.stringify(a.params) === same,
    );
  if (!sent) publishQuietly(deps, incidentId, 'incident_post_mortem', event);
  return true;
}

/** Missed the 60 s target: tighten this agent's detection once per incident, and keep it. */
function maybeTighten(
  deps: OpsDeps,
  incident: { id: string; primary_agent_id: string; met_sla?: boolean | null; contained_at?: number | null },
): boolean {
  if (incident.met_sla !== false || !incident.contained_at) return false;
  const already = deps.store.listActions(incident.id).some((a) => a.action === 'tighten_detection');
  if (already) return true;
  const agentId = incident.primary_agent_id;
  const next = tightenThresholds(
    thresholdsFor(deps, agentId),
    `incident ${incident.id} missed the containment SLA`,
  );
  deps.store.setThresholdOverride(
    agentId,
    next,
    `post-mortem of ${incident.id}: containment missed ${deps.config.containment.slaMs / 1000} s`,
  );
  const id = deps.store.beginAction({
    incident_id: incident.id,
    agent_id: agentId,
    phase: 'learn',
    action: 'tighten_detection',
    params: { k_sigma: next.k_sigma },
  });
  deps.store.finishAction(id, { success: true, result: { k_sigma: next.k_sigma } });
  return true;
}

/** Intents and subscriptions for the post-mortem: the gateway's view now, and our ledger's (each once). */
function moneyPathsImpact(
  deps: Pick<OpsDeps, 'store'>,
  incidentId: string,
  agentId: string,
  intents: Intent[] | undefined,
  subscriptions: Subscription[] | undefined,
  windowStart: number,
  windowEnd: number,
): MoneyPathsImpact {
  const paid = (intents ?? []).filter((i) => i.payer === agentId);
  const ledger = deps.store.moneyPaths;
  // A refunded intent stays `settled` on the gateway: those our ledger holds (refunded once by us, or with
  // an unconfirmed outcome) are counted below, not as claw-back still possible.
  const settled = paid.filter((i) => {
    const t = toEpochMs(i.updated_at ?? i.created_at);
    return (
      i.status === 'settled' &&
      t !== undefined &&
      t >= windowStart &&
      t <= windowEnd &&
      !ledger.get('intent', i.id)
    );
  });
  const pending = paid.filter((i) => i.status === 'pending');
  const done = (action: 'void' | 'refund') => ledger.rows(incidentId, 'intent', { action, states: ['done'] });
  const unconfirmed = [
    ...ledger.rows(incidentId, 'intent', { states: ['sending', 'retry', 'unknown'] }),
    ...ledger.rows(incidentId, 'subscription', { states: ['sending', 'retry', 'unknown'] }),
  ].length;
  const sum = (rows: { amount_cents: number }[]) => rows.reduce((n, r) => n + r.amount_cents, 0);
  return {
    intents_settled: intents ? settled.length : null,
    amount_settled_cents: intents ? sumCents(settled.map((i) => i.amount)) : null,
    intents_pending: intents ? pending.length : null,
    amount_pending_cents: intents ? sumCents(pending.map((i) => i.amount)) : null,
    intents_voided_by_us: done('void').length,
    amount_voided_by_us_cents: sum(done('void')),
    intents_refunded_by_us: done('refund').length,
    amount_refunded_by_us_cents: sum(done('refund')),
    unconfirmed,
    subscriptions_active: subscriptions ? subscriptions.filter((x) => x.payer === agentId).length : null,
    subscriptions_cancelled: cancelledSubscriptions(deps, incidentId).map((c) => ({
      id: c.id,
      payee: c.payee,
      amount_cents: c.amount_cents,
      interval: c.interval,
    })),
  };
}
