/**
 * The response engine as one object: what tools, the watcher and the CLI call. It owns the two gateway
 * clients (monitor reads, containment acts), the store, the alert sink and the guards' state.
 */
import type { Config } from '../config.js';
import type { GreenHelixClient } from '../greenhelix/index.js';
import { type Cents, centsToMoney, type Money, money } from '../greenhelix/money.js';
import { checkContainmentKey, markUntrusted, UNTRUSTED_LEGEND, untrustedInline } from '../guards/index.js';
import type { ActionRecord, Incident, IncidentStore } from '../incidents/index.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../util/clock.js';
import { ToolError } from '../util/errors.js';
import { ActingGate } from './acting.js';
import { AlertSink, type Notifier } from './alerts.js';
import {
  abandonedContainments,
  type ContainOptions,
  type ContainRequest,
  type ContainResult,
  containAgent,
  resumeContainment,
} from './contain.js';
import { pathTotals } from './contain-paths.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';
import { type DetectionPass, runDetectionPass } from './detect.js';
import {
  type FleetShutdownOptions,
  type FleetShutdownRequest,
  type FleetShutdownResult,
  fleetShutdown,
} from './fleet.js';
import { type ContainmentPlan, planContainment } from './plan.js';
import {
  listRunbookNames,
  RUNBOOKS,
  type RunbookOptions,
  type RunbookRequest,
  type RunbookResult,
  runRunbook,
} from './playbooks.js';
import { type PostmortemResult, runPostmortem } from './postmortem.js';
import { checkReadiness } from './readiness.js';
import { type RecoverRequest, type RecoverResult, recoverAgent } from './recover.js';
import { ReplicaSet, replicaTiming } from './replicas.js';

export type KeyVerdict =
  | { ok: true; method?: string }
  | { ok: false; code: string; message: string; fix: string };

export interface IncidentSummary {
  incident_id: string;
  agent_id: string;
  agent_ids: string[];
  status: string;
  kind: string;
  reason: string;
  signal: string | null;
  priority: string | null;
  detected_at: string | null;
  contained_at: string | null;
  resolved_at: string | null;
  met_sla: boolean | null;
  amount_unlocked: Money;
}

export interface Ops {
  readonly config: Config;
  readonly store: IncidentStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly alerts: AlertSink;
  readonly deps: OpsDeps;
  /** The blast-radius policy and the operator approvals every state-changing path goes through. */
  readonly acting: ActingGate;
  /**
   * This process among the servers sharing the store (replicas.ts): started by the app (or by a watcher
   * when nothing started it), so a dead process's leases are taken over and watchers split the fleet.
   */
  readonly replicas: ReplicaSet;
  /** The agents watched: the configured fleet, or every agent the monitor key lists. */
  fleet(): Promise<string[]>;
  checkActingKey(): Promise<KeyVerdict>;
  /** One detection pass; the watcher passes its cadence (tiered reads), everything else reads all. */
  detect(params: Parameters<typeof runDetectionPass>[1]): Promise<DetectionPass>;
  contain(req: ContainRequest, opts?: ContainOptions): Promise<ContainResult>;
  planContainment(
    req: { agent_id: string; suspect_payee?: string | undefined },
    signal?: AbortSignal,
  ): Promise<ContainmentPlan>;
  recover(req: RecoverRequest, signal?: AbortSignal): Promise<RecoverResult>;
  /** `publish: false` when the containment key failed its checks: the report is still built and stored. */
  postmortem(
    incidentId: string,
    signal?: AbortSignal,
    opts?: { publish?: boolean },
  ): Promise<PostmortemResult>;
  listIncidentSummaries(filter: {
    status?: string | undefined;
    agent_id?: string | undefined;
    limit: number;
    offset: number;
  }): IncidentSummary[];
  incidentView(id: string): IncidentView | undefined;
  fleetShutdown(req: FleetShutdownRequest, opts: FleetShutdownOptions): Promise<FleetShutdownResult>;
  listRunbooks(): ((typeof RUNBOOKS)[keyof typeof RUNBOOKS] & { uri: string })[];
  runRunbook(req: RunbookRequest, opts?: RunbookOptions): Promise<RunbookResult>;
  checkReadiness(signal?: AbortSignal): Promise<{
    ready: boolean;
    items: { item: string; passed: boolean; detail: string; fix: string | null }[];
  }>;
  /** Sends alerts to an MCP client as logging notifications; returns the detach function. */
  attachNotifier(fn: Notifier): () => void;
  /** Finishes containments a crashed process left in `containing` (the wallet may be unfrozen mid-window). */
  resumeInterrupted(): Promise<ContainResult[]>;
}

export interface IncidentView {
  incident: IncidentSummary & { detail: Record<string, unknown> };
  /** What the markings in `actions` mean: gateway results and error texts are data, never instructions. */
  untrusted_text: string;
  actions: Record<string, unknown>[];
  pre_incident: Record<string, unknown>[];
  recovery_stages: Record<string, unknown>[];
  gates: Record<string, unknown>[];
  has_postmortem: boolean;
}

const iso = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();

export function summarize(i: Incident): IncidentSummary {
  return {
    incident_id: i.id,
    agent_id: i.primary_agent_id,
    agent_ids: i.agent_ids,
    status: i.status,
    kind: i.kind,
    reason: i.reason,
    signal: i.signal ?? null,
    priority: i.priority ?? null,
    detected_at: iso(i.detected_at),
    contained_at: iso(i.contained_at),
    resolved_at: iso(i.resolved_at),
    met_sla: i.met_sla ?? null,
    amount_unlocked: money(i.amount_unlocked_cents ?? 0),
  };
}

export interface CreateOpsOptions {
  config: Config;
  monitor: GreenHelixClient;
  actor: GreenHelixClient | null;
  store: IncidentStore;
  clock: Clock;
  logger: Logger;
}

export function createOps(o: CreateOpsOptions): Ops {
  const { config, monitor, actor, store, clock, logger } = o;
  let fleetCache: { at: number; ids: string[] } | undefined;
  const fleet = async (): Promise<string[]> => {
    if (config.fleet) return config.fleet;
    if (fleetCache && clock.now() - fleetCache.at < 60_000) return fleetCache.ids;
    // Default: every agent the monitor key can list, less the operators' own identities.
    const keys = await monitor
      .listApiKeys({}, { timeoutMs: config.greenhelix.timeoutMs })
      .catch((e: unknown) => {
        const info = errorInfo(e);
        throw new ToolError(
          'fleet_unknown',
          `The fleet is not configured and the monitor key cannot list agents (${info.code}: ${info.message}).`,
          info.retryable,
          'Set INCIDENT_FLEET to the comma-separated agent ids, or give the monitor key the admin scope.',
        );
      });
    const operators = new Set(
      keys.keys
        .filter(
          (k) =>
            k.key_hash_prefix === monitor.keyHashPrefix ||
            (actor && k.key_hash_prefix === actor.keyHashPrefix),
        )
        .map((k) => k.agent_id),
    );
    const ids = [...new Set(keys.keys.filter((k) => !k.revoked).map((k) => k.agent_id))]
      .filter((a) => !operators.has(a) && !config.sharedWallets.includes(a))
      .sort();
    fleetCache = { at: clock.now(), ids };
    return ids;
  };
  const alerts = new AlertSink({ config, store, logger, clock });
  const deps: OpsDeps = {
    config,
    monitor,
    actor,
    store,
    clock,
    logger,
    fleet,
    page: (a) => void alerts.send(a).catch(() => undefined),
  };
  const acting = new ActingGate({ deps, page: (a) => alerts.send(a) });
  const replicas = new ReplicaSet(
    store,
    logger.child({ component: 'replicas' }),
    replicaTiming(config.watch.intervalMs, config.watch.replicaTtlMs),
  );

  const checkActingKey = async (): Promise<KeyVerdict> => {
    const verdict = await checkContainmentKey({
      monitorKey: config.greenhelix.monitorKey,
      containmentKey: config.greenhelix.containmentKey,
      fleet: await fleet().catch(() => config.fleet ?? []),
      agentKeys: config.greenhelix.agentKeys,
      listGatewayKeys: async () =>
        (await monitor.listApiKeys({}, { timeoutMs: config.greenhelix.timeoutMs })).keys,
      clock,
    });
    if (verdict.ok && !actor)
      return {
        ok: false,
        code: 'containment_key_missing',
        message: 'No containment client.',
        fix: 'Set GREENHELIX_CONTAINMENT_KEY.',
      };
    return verdict;
  };

  const ops: Ops = {
    config,
    store,
    clock,
    logger,
    alerts,
    deps,
    acting,
    replicas,
    fleet,
    checkActingKey,
    detect: (params) => runDetectionPass(deps, params),
    contain: (req, opts) => containAgent(deps, req, opts),
    planContainment: (req, signal) => planContainment(deps, req, signal),
    recover: (req, signal) => recoverAgent(deps, req, signal),
    postmortem: (id, signal, opts) => runPostmortem(deps, id, signal, opts),
    listIncidentSummaries: (f) =>
      store
        .listIncidents({ status: f.status, agent_id: f.agent_id, limit: f.limit, offset: f.offset })
        .map(summarize),
    incidentView: (id) => {
      const i = store.getIncident(id);
      if (!i) return undefined;
      return {
        incident: {
          ...summarize(i),
          detail: { ...(centsToMoney(i) as Record<string, unknown>), money_paths: pathsView(deps, id) },
        },
        untrusted_text: UNTRUSTED_LEGEND,
        actions: store.listActions(id).map(markedAction),
        pre_incident: i.agent_ids.flatMap((a) => {
          const p = store.getPreIncidentState(id, a);
          return p ? [capsAsMoney(centsToMoney(p) as Record<string, unknown>)] : [];
        }),
        recovery_stages: store
          .listRecoveryStages(id, { allRounds: true })
          .map((st) => capsAsMoney({ ...st } as unknown as Record<string, unknown>)),
        gates: store.listGates(id) as unknown as Record<string, unknown>[],
        has_postmortem: Boolean(store.getPostmortem(id)),
      };
    },
    fleetShutdown: (req, opts) => fleetShutdown(deps, acting, req, opts),
    listRunbooks: () => listRunbookNames().map((n) => ({ ...RUNBOOKS[n], uri: `runbook://${n}` })),
    runRunbook: (req, opts = {}) =>
      runRunbook(deps, req, { ...opts, alert: opts.alert ?? ((a) => alerts.send(a)) }),
    checkReadiness: (signal) => checkReadiness(deps, checkActingKey, signal, { pageUrl: acting.pageUrl }),
    attachNotifier: (fn) => alerts.attach(fn),
    resumeInterrupted: async () => {
      const out: ContainResult[] = [];
      for (const incident of abandonedContainments(deps)) {
        logger.warn(
          { incident_id: incident.id, agent_id: incident.primary_agent_id },
          'resuming an interrupted containment',
        );
        const r = await resumeContainment(deps, incident.id);
        if (r) out.push(r);
      }
      return out;
    },
  };
  return ops;
}

/**
 * A recorded action as a model reads it: what the gateway answered (results, identity records, claim
 * chains) and its error texts wrapped as untrusted data; our own fields (action, times, params) as they are.
 */
function markedAction(a: ActionRecord): Record<string, unknown> {
  return {
    ...a,
    result: a.result === null || a.result === undefined ? null : markUntrusted(centsToMoney(a.result)),
    error_message: a.error_message === null ? null : untrustedInline(a.error_message, 500),
  };
}

/** Caps are stored in cents without the suffix (null = no cap): shown as Money. */
function capsAsMoney(row: Record<string, unknown>): Record<string, unknown> {
  const out = { ...row };
  for (const k of ['daily_cap', 'monthly_cap'])
    if (typeof out[k] === 'number') out[k] = money(out[k] as number);
  return out;
}

/** Intents and subscriptions an incident stopped, from its ledger, with money as Money. */
function pathsView(deps: OpsDeps, incidentId: string): Record<string, unknown> {
  const t = pathTotals(deps, incidentId);
  return {
    intents_voided: t.intents.voided,
    amount_voided: money(t.intents.voided_cents as Cents),
    intents_refunded_instead: t.intents.refunded_instead,
    intents_failed: t.intents.failed,
    subscriptions_cancelled: t.subscriptions.cancelled,
    subscriptions_failed: t.subscriptions.failed,
    // Claw-backs a person confirmed through recover_agent: refunded once each, refused, or unconfirmed.
    intents_clawed_back: t.clawback.refunded,
    amount_clawed_back: money(t.clawback.refunded_cents as Cents),
    clawbacks_failed: t.clawback.failed,
    clawbacks_unknown: t.clawback.unknown,
  };
}
