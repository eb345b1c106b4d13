/**
 * The watcher: detection and first response without waiting for a person.
 *
 * Each tick polls the agents that are due (30 s by default, tighter for agents in recovery, down to 5 s
 * for an agent whose escrows are rising; see cadence.ts for the read tiers, probes and the schedule),
 * reads the event bus from its stored `since_id` cursor, and reacts per the escalation rules:
 *   auto_contain   → the signal's runbook, at once (P0 within one tick of detection)
 *   fleet_shutdown → the cascade runbook on the affected agents, and a fleet-shutdown approval request
 *                    paged to the operator; the shutdown itself is never automatic
 * Everything it does goes through the same blast radius as the tools (acting.ts): within the limit (3
 * agents or 10 % of the fleet per 10 min) it acts at once; beyond it, it acts on as many as fit, pages
 * the operator with an approval request for the rest, records that it asked (the alert row, the tick's
 * actions), and carries the rest out only once the operator approves on the approval page.
 *   alert_human    → an alert; plus the non-containing automated responses the SPEC's severity table
 *                    gives P1/P2 (exploitation: freeze payer and payee; degradation: halve the budget),
 *                    unless an explicit escalation override for that pair says alert only
 * In shadow mode (`--watch=shadow`) every decision is the same but only recorded (store shadow_decisions):
 * no runbook runs, no alert is sent; check_readiness reports the would-be false-alarm rate.
 * A per-agent circuit breaker counts failed operations on the agent (reads the gateway failed, and the
 * agent's own calls failing: the error rate it reports, `breaker_error_rate`); while it is
 * open, the agent is contained on any anomaly. Warnings never open it. Signed webhooks
 * (X-A2A-Signature, HMAC-SHA256) make an agent due at once; replays are dropped.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type Anomaly, CircuitBreaker } from '../detection/index.js';
import type { Approval } from '../guards/index.js';
import { atRiskText, WATCHER } from './acting.js';
import type { Alert } from './alerts.js';
import { PollCadence } from './cadence.js';
import { errorInfo } from './deps.js';
import { probeEscrows } from './detect.js';
import { FLEET_SHUTDOWN } from './fleet.js';
import { mapBounded } from './limit.js';
import type { Ops } from './ops.js';
import { type RunbookName, type RunbookResult, runbookForSignal } from './playbooks.js';
import { monitoringIntervalMs } from './recover.js';

export interface WatchAction {
  agent_id: string;
  signal: string;
  severity: string;
  priority: string;
  tier: string;
  runbook: string | null;
  incident_id: string | null;
  status: string;
}

export interface TickResult {
  at: number;
  polled: string[];
  /** Agents probed for new escrows between polls (a rising probe also puts the agent in `polled`). */
  probed: number;
  anomalies: Anomaly[];
  actions: WatchAction[];
  alerts: number;
  events_read: number;
}

export interface Watcher {
  /** One poll-and-respond round (the schedule calls it; tests and drills call it directly). */
  tick(opts?: { all?: boolean }): Promise<TickResult>;
  /** URL of the webhook receiver, when one is listening. */
  readonly webhookUrl: string | null;
  stop(): Promise<void>;
}

const ALERT_DEDUPE_MS = 15 * 60_000;
const PRIORITY_LEVEL: Record<string, Alert['level']> = { P0: 'page', P1: 'page', P2: 'chat', P3: 'log' };

export async function startWatcher(
  ops: Ops,
  opts: { schedule?: boolean; webhookPort?: number } = {},
): Promise<Watcher> {
  const { config, store, clock, logger } = ops;
  const log = logger.child({ component: 'watcher' });
  const shadow = config.watch.mode === 'shadow';
  // Where the shadow record starts: check_readiness divides its decisions by the agent-days watched since.
  if (shadow && store.getCursor('shadow_since') === undefined)
    store.setCursor('shadow_since', String(clock.now()));
  const cadence = new PollCadence({
    intervalMs: config.watch.intervalMs,
    minIntervalMs: config.watch.minIntervalMs,
    probeIntervalMs:
      config.watch.probeIntervalMs ?? Math.max(config.watch.minIntervalMs, config.watch.intervalMs / 3),
    slowReadIntervalMs: config.watch.slowReadIntervalMs,
    identityIntervalMs: config.watch.identityIntervalMs,
  });
  // Agents named in an incident, read once a tick for all: only they can have a tighter interval.
  let withIncidents = new Set<string>();
  const baseInterval = (agentId: string) =>
    withIncidents.has(agentId)
      ? monitoringIntervalMs(ops.deps, agentId, config.watch.intervalMs)
      : config.watch.intervalMs;
  const breakers = new Map<string, CircuitBreaker>();
  // Replicas on one store split the fleet: this one polls only the agents it owns (replicas.ts).
  // The app started the membership; ops made without one (tests, drills) get it started here.
  const { replicas } = ops;
  const ownReplicas = !replicas.started;
  if (ownReplicas) replicas.start();
  replicas.setWatching(true);
  let running: Promise<TickResult> | null = null;
  let stopped = false;

  const breakerFor = (agentId: string) => {
    let b = breakers.get(agentId);
    if (!b) {
      b = new CircuitBreaker();
      breakers.set(agentId, b);
    }
    return b;
  };

  /**
   * One replica reads the bus (whichever holds the `event_bus` lease), from the cursor they share; the
   * agents it names are woken on whichever replica owns them.
   */
  async function readEventBus(): Promise<{ count: number; agents: Set<string> }> {
    const agents = new Set<string>();
    if (!store.leases.acquire('event_bus', replicas.id, replicas.timing.ttlMs)) return { count: 0, agents };
    const cursor = Number(store.getCursor('event_bus') ?? 0);
    try {
      const { events } = await ops.deps.monitor.getEvents(
        { since_id: cursor, limit: 100 },
        { timeoutMs: config.greenhelix.timeoutMs },
      );
      for (const e of events) {
        if (e.source === 'agent-incident-mcp') continue;
        for (const name of agentsNamed(e.payload, e.source)) agents.add(name);
      }
      const last = events[events.length - 1];
      if (last) store.setCursor('event_bus', String(last.id));
      return { count: events.length, agents: new Set(replicas.wake([...agents], 'event_bus')) };
    } catch (e) {
      log.warn({ code: errorInfo(e).code }, 'event bus unreadable');
      return { count: 0, agents };
    }
  }

  /** Sends an alert. Alert-only notices repeat at most every 15 min per agent and signal; pages about actions always go. */
  async function alert(a: Alert): Promise<boolean> {
    // In the store, so a replica that takes an agent over does not repeat its previous owner's notice.
    if (
      !a.incident_id &&
      !store.claimWindow('alert', `${a.agent_id}:${a.signal}:${a.priority}`, clock.now(), ALERT_DEDUPE_MS)
    )
      return false;
    await ops.alerts.send(a);
    return true;
  }

  async function respond(anomaly: Anomaly, tier: string, out: TickResult): Promise<void> {
    const explicit = config.escalation[`${anomaly.signal}:${anomaly.severity}`];
    const breakerOpen = breakerFor(anomaly.agent_id).state(clock.now()) === 'open';
    let runbook = runbookForSignal(anomaly.signal);
    let act = tier === 'auto_contain' || tier === 'fleet_shutdown';
    // Exploitation's freeze of payer and payee answers its P1 (critical); its cold-start warning (P2: a new
    // agent's first concentrated batch) is for a person to look at, not a freeze.
    if (
      tier === 'alert_human' &&
      !explicit &&
      ((runbook === 'escrow_exploitation' && anomaly.severity === 'critical') ||
        runbook === 'service_degradation')
    )
      act = true;
    if (breakerOpen && anomaly.signal !== 'detection_failure') {
      act = true;
      if (runbook === 'service_degradation' || !runbook) runbook = 'runaway_spending';
    }
    const record: WatchAction = {
      agent_id: anomaly.agent_id,
      signal: anomaly.signal,
      severity: anomaly.severity,
      priority: anomaly.priority,
      tier,
      runbook: act ? (runbook ?? null) : null,
      incident_id: null,
      status: 'alerted',
    };
    if (shadow) {
      // Shadow mode: the same decision, recorded instead of carried out. Nothing is frozen, nobody paged.
      const action =
        act && runbook && anomaly.signal !== 'detection_failure'
          ? tier === 'fleet_shutdown'
            ? 'fleet_shutdown'
            : 'contain'
          : 'alert';
      store.recordShadowDecision({
        at: anomaly.at,
        agent_id: anomaly.agent_id,
        signal: anomaly.signal,
        severity: anomaly.severity,
        priority: anomaly.priority,
        tier,
        action,
        runbook: action === 'alert' ? null : (runbook ?? null),
        summary: anomaly.summary.slice(0, 500),
      });
      out.actions.push({
        ...record,
        runbook: action === 'alert' ? null : (runbook ?? null),
        status: `shadow:${action}`,
      });
      return;
    }
    if (!act || !runbook || anomaly.signal === 'detection_failure') {
      if (
        await alert({
          level: PRIORITY_LEVEL[anomaly.priority] ?? 'log',
          priority: anomaly.priority as Alert['priority'],
          severity: anomaly.severity,
          agent_id: anomaly.agent_id,
          signal: anomaly.signal,
          title: anomaly.summary,
          actions: [],
          tier,
        })
      )
        out.alerts++;
      out.actions.push(record);
      return;
    }
    const active = store.findActiveIncident(anomaly.agent_id);
    // An agent in recovery whose cause came back is contained again; so is a degradation turning into a loss.
    const escalates =
      active?.status === 'recovering' ||
      (active?.kind === 'service_degradation' && runbook !== 'service_degradation');
    if (active && !escalates) {
      out.actions.push({ ...record, incident_id: active.id, status: `already_handled:${active.status}` });
      return;
    }
    const named = runbook === 'cascade_failure' ? cascadeAgents(anomaly) : [anomaly.agent_id];
    // The watcher may not act here: recorded, and the anomaly paged as NOT contained, with why.
    const notContained = async (status: string, why: string) => {
      out.actions.push({ ...record, status });
      const page: Alert = {
        level: 'page',
        priority: anomaly.priority as Alert['priority'],
        severity: anomaly.severity,
        agent_id: anomaly.agent_id,
        signal: anomaly.signal,
        title: `${anomaly.summary}. NOT contained: ${why}`,
        actions: [],
        tier,
      };
      if (await alert(page)) out.alerts++;
    };
    let fleet: string[];
    try {
      fleet = ops.acting.actingFleet();
    } catch (e) {
      const info = errorInfo(e);
      return notContained(`not_acting:${info.code}`, info.message);
    }
    const acting = new Set(fleet);
    const agentIds = named.filter((a) => acting.has(a));
    if (agentIds.length === 0)
      return notContained(
        'not_acting:agent_not_in_fleet',
        `${named.join(', ')} not in the acting fleet (INCIDENT_FLEET).`,
      );
    // The blast radius: act at once on the agents that fit; ask the operator for the rest.
    const verdict = ops.acting.policy.admit(agentIds, fleet.length);
    const now = verdict.ok ? agentIds : verdict.fits;
    if (!verdict.ok) ops.acting.policy.record(now);
    const deferred = agentIds.filter((a) => !now.includes(a));
    const params = {
      payee: typeof anomaly.details.suspect_payee === 'string' ? anomaly.details.suspect_payee : undefined,
      reason: `watcher: ${anomaly.summary}`.slice(0, 500),
    };
    let incidentId: string | null = null;
    if (now.length > 0) {
      try {
        const result: RunbookResult = await ops.runRunbook(
          {
            runbook,
            agent_ids: now,
            params,
            dry_run: false,
            detected_at: anomaly.at,
            signal: anomaly.signal,
            priority: anomaly.priority,
          },
          { alert: async (a) => void (await alert({ ...a, tier })) },
        );
        incidentId = result.incident_id;
        out.actions.push({ ...record, incident_id: result.incident_id, status: result.status });
      } catch (e) {
        const info = errorInfo(e);
        out.actions.push({ ...record, status: `failed:${info.code}` });
        await alert({
          level: 'page',
          priority: 'P0',
          severity: 'critical',
          agent_id: anomaly.agent_id,
          signal: anomaly.signal,
          title: `MANUAL INTERVENTION REQUIRED: ${runbook} failed: ${info.message}`,
          actions: [],
          tier,
        });
      }
    }
    if (deferred.length > 0 && !verdict.ok) {
      const status = await askApproval(
        { tool: `watcher:${runbook}`, runbook, agent_ids: deferred, params, anomaly, incidentId, tier },
        `The watcher may act on ${agents(verdict.limit)} per ${Math.round(verdict.window_ms / 60_000)} min on its own; ${deferred.length} more need an operator's approval.`,
      );
      out.actions.push({ ...record, incident_id: incidentId, status });
    }
    if (tier === 'fleet_shutdown') {
      const status = await askApproval(
        {
          tool: FLEET_SHUTDOWN,
          runbook: null,
          agent_ids: [...fleet].sort(),
          params: { reason: `cascade: ${anomaly.summary}`.slice(0, 500) },
          anomaly,
          incidentId,
          tier,
        },
        `A cascade calls for a full fleet shutdown (${fleet.length} agents), which always needs an operator's approval.`,
      );
      out.actions.push({
        ...record,
        runbook: null,
        incident_id: incidentId,
        status: `fleet_shutdown:${status}`,
      });
    }
  }

  interface Deferred {
    tool: string;
    runbook: RunbookName | null;
    agent_ids: string[];
    params: { payee?: string | undefined; reason: string };
    anomaly: Anomaly;
    incidentId: string | null;
    tier: string;
  }

  /** What the watcher asked the operator for and will carry out once approved, by approval id. */
  const awaiting = new Map<string, Deferred>();
  /** Actions the operator rejected: not asked again for one window. */
  const rejectedUntil = new Map<string, number>();
  const actionOf = (d: Deferred) => ({
    tool: d.tool,
    agent_ids: d.agent_ids,
    params: d.runbook ? { runbook: d.runbook, payee: d.params.payee ?? null } : undefined,
  });

  /**
   * Opens (once) an approval request for what the watcher may not do alone and pages the operator with
   * it. Returns the status for the tick's record: approval_pending:<digest>, approval_rejected, or
   * approval_unavailable / approval_limit when no request could be opened (then the page says so).
   */
  async function askApproval(d: Deferred, why: string): Promise<string> {
    const spec = actionOf(d);
    const key = JSON.stringify(spec);
    if ((rejectedUntil.get(key) ?? 0) > clock.now()) return 'approval_rejected';
    // One open request per agent: a runaway on an agent a pending cascade request names is already asked for.
    for (const [id, waiting] of awaiting) {
      const open = ops.acting.book.get(id);
      if (open?.status !== 'pending') {
        // Expired or forgotten: nothing left to carry out.
        if (open?.status !== 'approved') awaiting.delete(id);
        continue;
      }
      const same = JSON.stringify(actionOf(waiting)) === key;
      const covers =
        waiting.tool !== FLEET_SHUTDOWN && d.agent_ids.every((a) => waiting.agent_ids.includes(a));
      if (same || (d.tool !== FLEET_SHUTDOWN && covers)) return `approval_pending:${open.digest}`;
    }
    try {
      const opened = await ops.acting.open(
        {
          tool: d.tool,
          agent_ids: d.agent_ids,
          params: spec.params,
          reason: d.params.reason,
          requester: WATCHER,
          alwaysApprove: d.tool === FLEET_SHUTDOWN,
        },
        why,
      );
      const a = opened.approval as Approval;
      awaiting.set(a.id, d);
      await alert({
        level: 'page',
        priority: 'P0',
        severity: 'critical',
        agent_id: d.anomaly.agent_id,
        signal: d.anomaly.signal,
        title: `${d.tool === FLEET_SHUTDOWN ? 'Full fleet shutdown' : `${d.runbook} on ${agents(d.agent_ids.length)}`} NOT executed: waiting for an operator's approval (${agents(d.agent_ids.length)}, ${atRiskText(a.at_risk_cents)} at risk, digest ${a.digest}). ${why}`,
        actions: [`approval_requested ${a.digest}`],
        incident_id: d.incidentId ?? undefined,
        tier: d.tier,
        details: {
          digest: a.digest,
          agents: d.agent_ids.length,
          expires_at: new Date(a.expires_at).toISOString(),
        },
      });
      log.warn({ digest: a.digest, tool: d.tool, agents: d.agent_ids.length }, 'watcher asked for approval');
      return `approval_pending:${a.digest}`;
    } catch (e) {
      const info = errorInfo(e);
      await alert({
        level: 'page',
        priority: 'P0',
        severity: 'critical',
        agent_id: d.anomaly.agent_id,
        signal: d.anomaly.signal,
        title: `MANUAL INTERVENTION REQUIRED: ${d.agent_ids.length} agents NOT contained (${d.agent_ids.slice(0, 10).join(', ')}): ${info.message}`,
        actions: [],
        incident_id: d.incidentId ?? undefined,
        tier: d.tier,
      });
      return `not_acting:${info.code}`;
    }
  }

  /** The operator decided on one of the watcher's requests: carry it out once, or remember the no. */
  const stopListening = ops.acting.book.onDecision((a) => {
    const d = awaiting.get(a.id);
    if (!d || a.requester !== WATCHER) return;
    awaiting.delete(a.id);
    if (a.status === 'rejected') {
      rejectedUntil.set(JSON.stringify(actionOf(d)), clock.now() + config.guards.windowMs);
      log.warn({ digest: a.digest }, "operator rejected the watcher's request");
      return;
    }
    if (a.status !== 'approved' || shadow) return;
    void carryOut(d).catch((e: unknown) =>
      log.error({ err: (e as Error).message, digest: a.digest }, 'approved action failed'),
    );
  });

  async function carryOut(d: Deferred): Promise<void> {
    if (d.tool === FLEET_SHUTDOWN) {
      // The same action as the request, so the approval is found and used once.
      await ops.fleetShutdown(
        { reason: d.params.reason, agent_ids: d.agent_ids, dry_run: false },
        { requester: WATCHER },
      );
      return;
    }
    const approval = ops.acting.book.lookup(actionOf(d), WATCHER);
    if (approval.status !== 'approved' || !d.runbook) return;
    ops.acting.policy.record(d.agent_ids);
    await ops.runRunbook(
      {
        runbook: d.runbook,
        agent_ids: d.agent_ids,
        params: d.params,
        dry_run: false,
        detected_at: d.anomaly.at,
        signal: d.anomaly.signal,
      },
      { alert: async (x) => void (await alert({ ...x, tier: d.tier })) },
    );
  }

  /**
   * Agents due now: named on the bus, due by their schedule, or probed and found rising. Probes run for
   * agents whose probe time comes before their next poll; one list_escrows each, concurrently.
   */
  async function dueAgents(
    fleet: string[],
    named: Set<string>,
    now: number,
  ): Promise<{ due: string[]; probed: number }> {
    const due = new Set([...cadence.due(fleet, now), ...fleet.filter((a) => named.has(a))]);
    const probes = cadence.probeDue(fleet, now).filter((a) => !due.has(a));
    const opts = { timeoutMs: config.greenhelix.timeoutMs };
    await mapBounded(probes, config.greenhelix.concurrency, async (agentId) => {
      const page = await probeEscrows(ops.deps, agentId, opts);
      if (page && cadence.probed(agentId, clock.now(), page).rising) due.add(agentId);
      else if (!page) log.debug({ agent_id: agentId }, 'probe failed; the next poll reports it');
    });
    return { due: fleet.filter((a) => due.has(a)), probed: probes.length };
  }

  async function tickOnce(all: boolean): Promise<TickResult> {
    // A containment another process left mid-way (it died, its lease expired) may have the wallet open in a
    // refund window: finishing it comes before anything else this tick does. Shadow mode acts on nothing.
    const resumed = await (shadow ? Promise.resolve([]) : ops.resumeInterrupted()).catch((e: unknown) => {
      log.error({ err: e }, 'resuming an interrupted containment failed');
      return [];
    });
    for (const r of resumed)
      log.warn(
        { incident_id: r.incident_id, agent_id: r.agent_id, status: r.status },
        'resumed an abandoned containment',
      );
    const now = clock.now();
    replicas.refresh();
    const fleet = replicas.mine(await ops.fleet());
    cadence.retain(fleet);
    const bus = await readEventBus();
    for (const a of replicas.takeWakes()) bus.agents.add(a);
    const { due, probed } = all ? { due: fleet, probed: 0 } : await dueAgents(fleet, bus.agents, now);
    const out: TickResult = {
      at: now,
      polled: due,
      probed,
      anomalies: [],
      actions: [],
      alerts: 0,
      events_read: bus.count,
    };
    if (due.length === 0) return out;
    withIncidents = store.agentsWithIncidents(due);
    const pass = await ops.detect({ agent_ids: due, cadence, full: all, intervalOf: baseInterval });
    for (const agentId of due) cadence.scheduled(agentId, now, baseInterval(agentId));
    out.anomalies = pass.raw;
    const byAgent = new Map<string, Anomaly[]>();
    for (const a of pass.raw) byAgent.set(a.agent_id, [...(byAgent.get(a.agent_id) ?? []), a]);
    for (const agentId of due) {
      // The breaker counts failed operations, never warnings (five P2 notices in a row are five notices,
      // not a reason to freeze an agent): reads of this agent the gateway failed, and the agent's own calls
      // failing (the error rate it reports, at or above breaker_error_rate).
      const failed =
        pass.failing.includes(agentId) ||
        (byAgent.get(agentId) ?? []).some((a) => a.signal === 'detection_failure' && isGatewayFailure(a));
      const breaker = breakerFor(agentId);
      if (failed) breaker.recordFailure(now);
      else breaker.recordSuccess(now);
    }
    // Worst first: a P0 on one agent must not wait behind P2 chat alerts on others.
    // A cascade comes before the per-agent anomalies it explains: its runbook contains them all at once.
    const rank = (a: { priority: string; signal: string }) =>
      `${a.priority}${a.signal === 'cascade' ? 0 : 1}`;
    const ordered = [...pass.anomalies].sort((x, y) => rank(x).localeCompare(rank(y)));
    const seen = new Set<string>();
    for (const a of ordered) {
      const key = `${a.agent_id}:${runbookForSignal(a.signal) ?? a.signal}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const raw = pass.raw.find(
        (r) => r.agent_id === a.agent_id && r.signal === a.signal && r.severity === a.severity,
      ) as Anomaly;
      await respond(raw, a.tier, out);
    }
    return out;
  }

  const watcher: Watcher = {
    webhookUrl: null,
    tick: async (o = {}) => {
      // One tick at a time: a slow gateway must not stack polls.
      while (running) await running.catch(() => undefined);
      running = tickOnce(Boolean(o.all));
      try {
        return await running;
      } finally {
        running = null;
      }
    },
    stop: async () => {
      stopped = true;
      stopListening();
      if (ownReplicas) replicas.stop();
      else replicas.setWatching(false);
      try {
        store.leases.release('event_bus', replicas.id);
      } catch {
        // A closed store: the lease simply expires.
      }
      if (timer) clearTimeout(timer);
      await running?.catch(() => undefined);
      await new Promise<void>((r) => (webhookServer ? webhookServer.close(() => r()) : r()));
    },
  };

  let webhookServer: Server | null = null;
  const port = opts.webhookPort ?? config.watch.webhookPort;
  if (port !== undefined && config.watch.webhookSecret) {
    webhookServer = await startWebhookReceiver(
      ops,
      config.watch.webhookSecret,
      config.watch.webhookHost,
      port,
      (agents) => {
        for (const a of replicas.wake(agents, 'webhook')) cadence.wake(a);
        void watcher
          .tick()
          .catch((e) => log.error({ err: (e as Error).message }, 'tick after webhook failed'));
      },
    );
    const addr = webhookServer.address();
    (watcher as { webhookUrl: string | null }).webhookUrl =
      typeof addr === 'object' && addr ? `http://${config.watch.webhookHost}:${addr.port}/webhook` : null;
  }

  /**
   * Until the earliest poll or probe falls due, between 1 s and 5 s (or the interval if shorter): each
   * tick also reads the event bus, so the monitor key spends at most one bus read a second on it.
   */
  const loopDelayMs = () => {
    const ceiling = Math.min(config.watch.intervalMs, 5_000);
    const wake = cadence.nextWakeAt();
    return wake === null ? ceiling : Math.max(1_000, Math.min(ceiling, wake - clock.now()));
  };

  let timer: NodeJS.Timeout | undefined;
  if (opts.schedule !== false) {
    const loop = async () => {
      if (stopped) return;
      try {
        const r = await watcher.tick();
        if (r.actions.length)
          log.info({ actions: r.actions.length, anomalies: r.anomalies.length }, 'watcher tick');
      } catch (e) {
        log.error({ err: (e as Error).message }, 'watcher tick failed');
      }
      if (!stopped) timer = setTimeout(loop, loopDelayMs()).unref();
    };
    timer = setTimeout(loop, 0).unref();
  }
  return watcher;
}

const agents = (n: number) => `${n} agent${n === 1 ? '' : 's'}`;

/** A blind check caused by the gateway failing (an error, a timeout), not by malformed entries we skipped. */
function isGatewayFailure(a: Anomaly): boolean {
  const code = String(a.details.code ?? '');
  return code !== 'invalid_entries' && code !== 'invalid_observation';
}

function cascadeAgents(anomaly: Anomaly): string[] {
  const listed = anomaly.details.affected_agents;
  const ids = Array.isArray(listed) ? listed.filter((x): x is string => typeof x === 'string') : [];
  // The root-cause candidate first: when the blast radius lets the watcher contain only some, it is that one.
  return ids.includes(anomaly.agent_id)
    ? [...new Set([anomaly.agent_id, ...ids])]
    : ids.length
      ? [...new Set(ids)]
      : [anomaly.agent_id];
}

/** Agent ids an event names: the fields the gateway's webhook filter uses, plus `source`. */
export function agentsNamed(payload: unknown, source?: string): string[] {
  const out: string[] = [];
  if (source) out.push(source);
  if (payload && typeof payload === 'object') {
    for (const f of ['agent_id', 'payer', 'payee', 'sender', 'recipient']) {
      const v = (payload as Record<string, unknown>)[f];
      if (typeof v === 'string') out.push(v);
    }
  }
  return out;
}

/**
 * Agent ids a webhook delivery names. The gateway delivers a bus event as it stored it,
 * `{id, event_type, source, payload: {agent_id, …}, integrity_hash, created_at}` (event_bus.publish →
 * WebhookManager.deliver), so the agent is `source` or inside `payload`; the top-level fields its own
 * filter reads (`agent_id`, `payer`, …) are kept for flat bodies such as older senders and test pings.
 */
export function agentsInDelivery(event: unknown): string[] {
  if (!event || typeof event !== 'object') return [];
  const e = event as Record<string, unknown>;
  const source = typeof e.source === 'string' ? e.source : undefined;
  const named = [...agentsNamed(e), ...agentsNamed(e.payload, source)];
  // Ids only: a delivery is untrusted, and anything else cannot name a fleet agent anyway.
  return [...new Set(named)].filter((a) => AGENT_ID.test(a));
}

const AGENT_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

/**
 * Verifies `X-A2A-Signature: hex(HMAC-SHA256(secret, exact body bytes))`. The gateway sends no
 * timestamp or event id, so replays are dropped by remembering each body's hash.
 */
export function verifyWebhookSignature(secret: string, body: Buffer, signature: string | undefined): boolean {
  if (!signature || !/^[0-9a-f]{64}$/i.test(signature.trim())) return false;
  const expected = createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(signature.trim(), 'hex'));
}

async function startWebhookReceiver(
  ops: Ops,
  secret: string,
  host: string,
  port: number,
  onEvent: (agents: string[]) => void,
): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: Record<string, unknown>) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'http://x').pathname !== '/webhook')
      return reply(404, { error: 'POST /webhook' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 256 * 1024) {
        reply(413, { error: 'body too large' });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (res.writableEnded) return;
      const body = Buffer.concat(chunks);
      const sig = req.headers['x-a2a-signature'];
      if (!verifyWebhookSignature(secret, body, typeof sig === 'string' ? sig : undefined))
        return reply(401, { error: 'bad or missing X-A2A-Signature' });
      const hash = createHash('sha256').update(body).digest('hex');
      if (!ops.store.markSeen('webhook', hash, ops.clock.now()))
        return reply(200, { accepted: false, duplicate: true });
      let event: unknown;
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch {
        return reply(400, { error: 'body is not JSON' });
      }
      const agents = agentsInDelivery(event);
      reply(202, { accepted: true, agents });
      if (agents.length) onEvent(agents);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
