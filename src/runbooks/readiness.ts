/**
 * Readiness (SPEC "Readiness"): what a team checks before production, checked against the live
 * configuration and gateway. Reads only; each item passes or fails with the fix.
 */
import { DEFAULT_THRESHOLDS } from '../detection/index.js';
import { abandonedContainments } from './contain.js';
import type { OpsDeps } from './deps.js';
import { errorInfo } from './deps.js';
import { mapBounded } from './limit.js';
import { planContainment } from './plan.js';

export interface ReadinessItem {
  item: string;
  passed: boolean;
  detail: string;
  fix: string | null;
}

export async function checkReadiness(
  deps: OpsDeps,
  keyCheck: () => Promise<{ ok: true; method?: string } | { ok: false; message: string; fix: string }>,
  signal?: AbortSignal,
  approvals: { pageUrl: string | null } = { pageUrl: null },
): Promise<{ ready: boolean; items: ReadinessItem[] }> {
  const items: ReadinessItem[] = [];
  const opts = { signal, timeoutMs: deps.config.greenhelix.timeoutMs };
  const add = (item: string, passed: boolean, detail: string, fix: string | null) =>
    items.push({ item, passed, detail, fix: passed ? null : fix });

  // A containment nobody is finishing may have left a wallet unfrozen (a crash inside a refund window), and a
  // failed one ended with the wallet not known to be frozen: both are money exposed right now.
  const abandoned = abandonedContainments(deps);
  const failed = deps.store.listIncidents({ status: 'containment_failed', limit: 100 });
  add(
    'no_wallet_left_open',
    abandoned.length === 0 && failed.length === 0,
    abandoned.length === 0 && failed.length === 0
      ? 'no containment is abandoned mid-way or ended with a wallet not frozen'
      : [
          ...abandoned.map(
            (i) => `${i.primary_agent_id} (${i.id}): containment abandoned mid-way, wallet may be unfrozen`,
          ),
          ...failed.map((i) => `${i.primary_agent_id} (${i.id}): containment failed, wallet not frozen`),
        ].join('; '),
    `Call contain_agent for ${[...abandoned, ...failed].map((i) => i.primary_agent_id).join(', ')}: it resumes the incident and retries what is left.`,
  );

  // Acting needs an explicit fleet, and anything beyond the blast radius needs an operator who can approve.
  add(
    'acting_fleet_explicit',
    deps.config.fleet !== null,
    deps.config.fleet
      ? `acts on the ${deps.config.fleet.length} agents of INCIDENT_FLEET only`
      : 'no INCIDENT_FLEET: the server watches every agent the monitor key lists and acts on none',
    'Set INCIDENT_FLEET to your own agents (not counterparties); shared wallets go in INCIDENT_SHARED_WALLETS.',
  );
  add(
    'operator_approval',
    approvals.pageUrl !== null,
    approvals.pageUrl
      ? `the approval page is served at ${approvals.pageUrl} (operator secret required)`
      : 'no approval page: fleet shutdowns and actions beyond the blast radius cannot be approved',
    'Set INCIDENT_OPERATOR_SECRET (at least 16 characters, not the HTTP token) and restart.',
  );

  const key = await keyCheck();
  add(
    'containment_key_separate',
    key.ok,
    key.ok
      ? `separate from the monitor key and from every fleet agent's key (checked by ${key.method ?? 'configuration'})`
      : key.message,
    key.ok ? null : key.fix,
  );
  if (deps.actor) {
    // Admin scope is what freeze/unfreeze need; list_api_keys is admin-only, so it proves the scope without changing anything.
    try {
      await deps.actor.listApiKeys({}, opts);
      add(
        'containment_key_permissions',
        true,
        'containment key has the admin scope (freeze_wallet, unfreeze_wallet, cancel any escrow)',
        null,
      );
    } catch (e) {
      const info = errorInfo(e);
      add(
        'containment_key_permissions',
        false,
        `containment key lacks admin scope (${info.code})`,
        'Provision the containment key as enterprise with scopes [read, write, admin].',
      );
    }
  }

  let fleet: string[] = [];
  try {
    fleet = await deps.fleet();
    add(
      'fleet_defined',
      fleet.length > 0,
      `${fleet.length} agents in the fleet`,
      'Set INCIDENT_FLEET to the agent ids to watch.',
    );
  } catch (e) {
    add(
      'fleet_defined',
      false,
      `could not list the fleet: ${errorInfo(e).message}`,
      'Set INCIDENT_FLEET, or give the monitor key admin scope so it can list keys.',
    );
  }

  const t0 = deps.clock.now();
  const reach = await mapBounded(fleet, 16, async (agentId) => {
    try {
      await deps.monitor.getBudgetStatus({ agent_id: agentId }, opts);
      return null;
    } catch (e) {
      return `${agentId}: ${errorInfo(e).code}`;
    }
  });
  const unreachable = reach.filter((x): x is string => x !== null);
  add(
    'fleet_reachable',
    fleet.length > 0 && unreachable.length === 0,
    unreachable.length
      ? `unreadable: ${unreachable.slice(0, 5).join(', ')}`
      : `budget status readable for all ${fleet.length} agents`,
    'Give the monitor key admin scope (a non-admin key cannot read other agents’ budgets or escrows).',
  );
  const rtt = fleet.length ? (deps.clock.now() - t0) / Math.ceil(fleet.length / 16) : 0;

  const unpinned = fleet.filter((a) => !deps.store.getPin(a));
  add(
    'identities_pinned',
    fleet.length > 0 && unpinned.length === 0,
    unpinned.length
      ? `${unpinned.length} agents have no pinned public key`
      : 'every fleet agent has a pinned public key',
    'Run detect_anomalies once over the fleet: it pins each key on first sight.',
  );

  const overrides = Object.keys(deps.config.thresholds);
  const unknown = overrides.filter((k) => !(k in DEFAULT_THRESHOLDS));
  add(
    'thresholds_set',
    unknown.length === 0,
    unknown.length
      ? `unknown threshold names: ${unknown.join(', ')}`
      : overrides.length
        ? `overrides: ${overrides.join(', ')}`
        : 'defaults from the spec (k = 2.0); tune on two weeks of data',
    `Remove or rename: ${unknown.join(', ')}`,
  );

  const interval = deps.config.watch.intervalMs;
  add(
    'monitoring_interval',
    interval <= 300_000,
    `watch interval ${interval / 1000} s (30 s for high-value agents, 5 min for low)`,
    'Set INCIDENT_WATCH_INTERVAL_MS to 30000 for high-value fleets.',
  );

  const withCaps = fleet.filter((a) => deps.store.latestKnownCaps(a));
  add(
    'pre_incident_budgets_on_record',
    true,
    `${withCaps.length}/${fleet.length} agents have caps on record from an incident; containment records the rest before changing anything`,
    null,
  );

  try {
    await deps.monitor.getEvents({ since_id: 0, limit: 1 }, opts);
    add(
      'event_bus_readable',
      true,
      'event bus readable (the gateway does not deliver bus events to webhooks, so the watcher polls it)',
      null,
    );
  } catch (e) {
    add(
      'event_bus_readable',
      false,
      `event bus unreadable: ${errorInfo(e).code}`,
      'Check the monitor key and the gateway URL.',
    );
  }
  add(
    'webhook_receiver',
    Boolean(deps.config.watch.webhookSecret),
    deps.config.watch.webhookSecret
      ? 'webhook receiver configured with a signing secret'
      : 'no webhook receiver secret configured',
    'Set INCIDENT_WEBHOOK_SECRET and INCIDENT_WEBHOOK_PORT for the watcher.',
  );

  const sample = fleet[0];
  if (sample) {
    try {
      const chains = await deps.monitor.getClaimChains({ agent_id: sample }, opts);
      const usage = await deps.monitor.getUsageSummary({ agent_id: sample }, opts);
      const ok = chains.chains.length > 0 && usage.total_calls > 0;
      add(
        'forensics_data',
        ok,
        `${sample}: ${chains.chains.length} claim chains, ${usage.total_calls} metered calls`,
        'Have agents build claim chains (build_claim_chain) so post-mortems have an audit trail.',
      );
    } catch (e) {
      add(
        'forensics_data',
        false,
        `forensics reads failed: ${errorInfo(e).code}`,
        'The monitor key needs pro tier for claim chains.',
      );
    }
    try {
      const plan = await planContainment(deps, { agent_id: sample }, signal);
      // The critical path: freeze, list intents and subscriptions, void and cancel them (beside the read
      // that confirms none is left), open the refund window, cancel escrows in waves, refreeze, read back.
      const width = deps.config.containment.concurrency;
      const paths = (plan.pending_intents ?? 0) + (plan.active_subscriptions ?? 0);
      const rounds = 5 + Math.max(1, Math.ceil(paths / width)) + Math.ceil(plan.held_escrows / width);
      const estimate = Math.round(rounds * rtt);
      add(
        'containment_timed',
        estimate < deps.config.containment.slaMs,
        `estimated ${estimate} ms for ${sample} (${plan.held_escrows} held escrows, ${rounds} round trips at ${Math.round(rtt)} ms)`,
        'Raise INCIDENT_CONTAINMENT_CONCURRENCY or reduce gateway latency.',
      );
    } catch (e) {
      add(
        'containment_timed',
        false,
        `could not plan containment: ${errorInfo(e).code}`,
        'Check the monitor key.',
      );
    }
  }
  const shadow = shadowFalseAlarms(deps, fleet.length);
  if (shadow)
    add(
      'shadow_false_alarm_rate',
      shadow.judged && shadow.per_40_agent_days <= SHADOW_TARGET_PER_40_AGENT_DAYS,
      shadow.judged
        ? `shadow mode over ${shadow.agent_days.toFixed(1)} agent-days: ${shadow.would_contain} containments it would have made, ${shadow.confirmed} matched by an incident a person opened, ${shadow.false_alarms} false (${shadow.per_40_agent_days.toFixed(2)} per 40 agent-days; target ≤ ${SHADOW_TARGET_PER_40_AGENT_DAYS}); ${shadow.would_alert} alerts`
        : `shadow mode has ${shadow.agent_days.toFixed(1)} agent-days on record; ${SHADOW_MIN_AGENT_DAYS} are needed to judge`,
      shadow.judged
        ? 'Read the shadow decisions marked false (store shadow_decisions): raise the thresholds they crossed (INCIDENT_THRESHOLDS) or the escalation tier, then keep shadow mode until the rate holds.'
        : 'Keep --watch=shadow running on the real fleet until enough agent-days are recorded.',
    );
  return { ready: items.every((i) => i.passed), items };
}

/** The false-alarm rate at which enforcement is reasonable: one would-be freeze per 40 agent-days. */
const SHADOW_TARGET_PER_40_AGENT_DAYS = 1;
const SHADOW_MIN_AGENT_DAYS = 10;
const DAY = 24 * 60 * 60_000;
/** A would-be containment counts as confirmed when a person opened an incident for that agent this close to it. */
const CONFIRM_WINDOW_MS = 60 * 60_000;

/**
 * What shadow mode recorded since it started: the containments the watcher would have made, and how many
 * of them a person confirmed by opening an incident for the same agent within an hour. Undefined when
 * shadow mode never ran on this store.
 */
export function shadowFalseAlarms(deps: OpsDeps, fleetSize: number) {
  const since = Number(deps.store.getCursor('shadow_since'));
  if (!Number.isFinite(since) || since <= 0) return undefined;
  const decisions = deps.store.listShadowDecisions({ since });
  const acting = decisions.filter((d) => d.action !== 'alert');
  // One decision per agent and hour: a loop alarms on every poll until someone acts.
  const distinct = new Map<string, (typeof acting)[number]>();
  for (const d of [...acting].sort((a, b) => a.at - b.at)) {
    const key = `${d.agent_id}:${Math.floor(d.at / CONFIRM_WINDOW_MS)}`;
    if (!distinct.has(key)) distinct.set(key, d);
  }
  let confirmed = 0;
  for (const d of distinct.values()) {
    const opened = deps.store
      .listIncidents({ agent_id: d.agent_id, limit: 50 })
      .some((i) => Math.abs(i.created_at - d.at) <= CONFIRM_WINDOW_MS);
    if (opened) confirmed++;
  }
  const agentDays = (fleetSize * Math.max(0, deps.clock.now() - since)) / DAY;
  const falseAlarms = distinct.size - confirmed;
  return {
    agent_days: agentDays,
    judged: agentDays >= SHADOW_MIN_AGENT_DAYS,
    would_contain: distinct.size,
    would_alert: decisions.length - acting.length,
    confirmed,
    false_alarms: falseAlarms,
    per_40_agent_days: agentDays > 0 ? (falseAlarms / agentDays) * 40 : 0,
  };
}
