/**
 * Timeline and post-mortem from recorded facts only. Every time in the timeline is a time the store
 * recorded; a missing one is null and said so, never estimated.
 */
import { type Money, money, moneyText } from '../greenhelix/money.js';
import { UNTRUSTED_LEGEND, untrustedInline, untrustedText } from '../guards/redact.js';
import type { ActionRecord, GateRecord, Incident, RecoveryStage } from './store.js';

export interface TimelineEntry {
  at: number;
  iso: string;
  phase: string;
  action: string;
  agent_id: string;
  target: string | null;
  success: boolean | null;
  duration_ms: number | null;
  detail: string | null;
}

export interface PhaseDurations {
  detect_to_freeze_ms: number | null;
  detect_to_contained_ms: number | null;
  contained_to_recovery_ms: number | null;
  recovery_to_resolved_ms: number | null;
}

export interface Timeline {
  entries: TimelineEntry[];
  phases: PhaseDurations;
  sla_ms: number;
  met_sla: boolean | null;
  missing: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);

export function buildTimeline(
  incident: Incident,
  actions: ActionRecord[],
  stages: RecoveryStage[],
  gates: GateRecord[],
  slaMs = 60_000,
): Timeline {
  const entries: TimelineEntry[] = [];
  if (incident.detected_at !== null) {
    entries.push({
      at: incident.detected_at,
      iso: iso(incident.detected_at),
      phase: 'detect',
      action: `detected${incident.signal ? `: ${incident.signal}` : ''}`,
      agent_id: incident.primary_agent_id,
      target: null,
      success: true,
      duration_ms: null,
      detail: incident.reason.slice(0, 200),
    });
  }
  for (const a of actions) {
    entries.push({
      at: a.started_at,
      iso: iso(a.started_at),
      phase: a.phase,
      action: a.action,
      agent_id: a.agent_id,
      target: a.target,
      success: a.success,
      duration_ms: a.duration_ms,
      detail:
        a.finished_at === null
          ? 'never finished (interrupted)'
          : a.error_code
            ? // Both come from the gateway's problem details: the message is marked as its data.
              `${untrustedText(a.error_code, 60)}: ${untrustedInline(a.error_message ?? '', 160)}`
            : null,
    });
  }
  for (const g of gates)
    entries.push({
      at: g.at,
      iso: iso(g.at),
      phase: 'recover',
      action: `gate ${g.gate}`,
      agent_id: incident.primary_agent_id,
      target: null,
      success: g.passed,
      duration_ms: null,
      detail: g.reason.slice(0, 200),
    });
  for (const s of stages)
    entries.push({
      at: s.at,
      iso: iso(s.at),
      phase: 'recover',
      action: `recovery stage ${s.stage} (${s.percent} %)`,
      agent_id: s.agent_id,
      target: null,
      success: true,
      duration_ms: null,
      detail: `caps ${moneyText(s.daily_cap)} daily / ${moneyText(s.monthly_cap)} monthly`,
    });
  entries.sort((x, y) => x.at - y.at);

  const missing: string[] = [];
  if (incident.detected_at === null) missing.push('detection time');
  if (incident.frozen_at === null) missing.push('freeze time (the freeze did not succeed)');
  if (incident.contained_at === null) missing.push('containment completion time');
  const phases: PhaseDurations = {
    detect_to_freeze_ms: diff(incident.detected_at, incident.frozen_at),
    detect_to_contained_ms: diff(incident.detected_at, incident.contained_at),
    contained_to_recovery_ms: diff(incident.contained_at, incident.recovery_started_at),
    recovery_to_resolved_ms: diff(incident.recovery_started_at, incident.resolved_at),
  };
  const met =
    phases.detect_to_contained_ms === null
      ? null
      : phases.detect_to_contained_ms <= slaMs && incident.frozen_at !== null;
  return { entries, phases, sla_ms: slaMs, met_sla: met, missing };
}

export interface ImpactInput {
  balance_cents: number | null;
  usage: { total_calls: number; total_cost: number } | null;
  escrows_still_locked: number;
  amount_still_locked_cents: number;
  escrows_cancelled: number;
  amount_recovered_cents: number;
  escrows_released: number;
  amount_lost_cents: number;
  escrows_expired: number;
  window: { start: number; end: number };
  /** Intents and subscriptions: what the gateway shows now, and what our own ledger did. */
  money_paths?: MoneyPathsImpact | undefined;
}

/** The money paths beyond escrows in a post-mortem (cents; Money in the report). */
export interface MoneyPathsImpact {
  /**
   * Intents the agent paid in the window, by gateway status (settled: those our ledger does not hold, i.e.
   * claw-back still possible); null when they could not be read.
   */
  intents_settled: number | null;
  amount_settled_cents: number | null;
  intents_pending: number | null;
  amount_pending_cents: number | null;
  /** Voided by our containment or recovery (stopped before any money moved). */
  intents_voided_by_us: number;
  amount_voided_by_us_cents: number;
  /** Refunded by us (a void that met a settled intent, or a confirmed claw-back): once each. */
  intents_refunded_by_us: number;
  amount_refunded_by_us_cents: number;
  /** Our voids, cancels or refunds whose outcome the gateway never confirmed. */
  unconfirmed: number;
  subscriptions_active: number | null;
  subscriptions_cancelled: { id: string; payee: string; amount_cents: number; interval: string }[];
}

export interface PostmortemInput {
  incident: Incident;
  actions: ActionRecord[];
  stages: RecoveryStage[];
  gates: GateRecord[];
  audit: { identity: unknown; claim_chains: unknown[]; verified_claims: unknown[] };
  impact: ImpactInput;
  gaps: string[];
  thresholds_tightened: boolean;
  sla_ms: number;
}

export interface PostmortemReport {
  incident_id: string;
  agent_id: string;
  agent_ids: string[];
  kind: string;
  status: string;
  signal: string | null;
  priority: string | null;
  reason: string;
  runbook: string | null;
  widened_to: string | null;
  timeline: Timeline;
  impact: {
    balance: Money | null;
    usage: { total_calls: number; total_cost: Money } | null;
    escrows_still_locked: number;
    amount_still_locked: Money;
    escrows_cancelled: number;
    amount_recovered: Money;
    escrows_released: number;
    amount_lost: Money;
    escrows_expired: number;
    window: { start: string; end: string };
    money_paths: {
      intents_settled: number | null;
      amount_settled: Money | null;
      intents_pending: number | null;
      amount_pending: Money | null;
      intents_voided_by_us: number;
      amount_voided_by_us: Money;
      intents_refunded_by_us: number;
      amount_refunded_by_us: Money;
      unconfirmed: number;
      subscriptions_active: number | null;
      subscriptions_cancelled: { id: string; payee: string; amount: Money; interval: string }[];
    } | null;
  };
  audit: { identity: unknown; claim_chains: number; claim_chain_roots: string[]; verified_claims: number };
  containment: {
    steps: number;
    failed_steps: string[];
    escrows_cancelled: number;
    escrows_failed: number;
    amount_unlocked: Money;
    time_to_freeze_ms: number | null;
    elapsed_ms: number | null;
  };
  recommendations: string[];
  gaps: string[];
  /** What the ⟪ ⟫ marks in this report mean. */
  untrusted_text: string;
  generated_at: number;
}

export function buildPostmortem(input: PostmortemInput, now = Date.now()): PostmortemReport {
  const { incident: i, impact } = input;
  const timeline = buildTimeline(i, input.actions, input.stages, input.gates, input.sla_ms);
  const failed = input.actions
    .filter((a) => a.success === false)
    .map((a) => `${a.action}${a.target ? ` (${a.target})` : ''}: ${a.error_code ?? 'failed'}`);
  const interrupted = input.actions
    .filter((a) => a.finished_at === null)
    .map((a) => `${a.action}: interrupted`);
  const recs: string[] = [];
  if (timeline.met_sla === false) {
    recs.push(
      `Containment took ${timeline.phases.detect_to_contained_ms} ms against a ${input.sla_ms} ms target: ${input.thresholds_tightened ? 'detection for this agent was tightened (k lowered) and the change kept' : 'tighten detection for this agent'}.`,
    );
  }
  if (i.frozen_at === null)
    recs.push('The freeze did not succeed: check the containment key’s admin scope and run check_readiness.');
  if (impact.escrows_still_locked > 0)
    recs.push(
      `${impact.escrows_still_locked} escrows (${moneyText(impact.amount_still_locked_cents)}) are still held: cancel them or let them expire.`,
    );
  if (impact.escrows_released > 0)
    recs.push(
      `${impact.escrows_released} escrows (${moneyText(impact.amount_lost_cents)}) were released to payees during the window: review them and open disputes where warranted.`,
    );
  const mp = impact.money_paths;
  if (mp?.intents_settled)
    recs.push(
      `${mp.intents_settled} intents (${moneyText(mp.amount_settled_cents ?? 0)}) settled in the window: claw-back is possible, once per intent, once a person confirms each (recover_agent clawback_intent_ids, with or after stage 1; the gateway lets a settled intent be refunded again and again).`,
    );
  if (mp?.intents_pending)
    recs.push(`${mp.intents_pending} intents are still pending: contain_agent again before any unfreeze.`);
  if (mp?.subscriptions_active)
    recs.push(
      `${mp.subscriptions_active} subscriptions are still active: contain_agent again before any unfreeze.`,
    );
  if (mp?.subscriptions_cancelled.length)
    recs.push(
      `${mp.subscriptions_cancelled.length} subscriptions were cancelled (final on the gateway): re-create those still wanted with the agent's own key.`,
    );
  if (mp?.unconfirmed)
    recs.push(
      `${mp.unconfirmed} intent or subscription actions were never confirmed: check each on the gateway (a refund of a settled intent into a frozen payer debits the payee and credits nobody).`,
    );
  if (i.widened_to === 'compromised')
    recs.push(
      'Identity compromise: rotate keys, re-register the identity, audit every transaction since the last good verification, re-verify counterparties.',
    );
  if (i.kind === 'escrow_exploitation' && i.suspect_payee)
    recs.push(
      `Review ${i.suspect_payee}'s claim chains; dispute if confirmed, or unfreeze it and clear the flag if a false positive.`,
    );
  if (input.audit.claim_chains.length === 0)
    recs.push(
      'No claim chains in the window: have agents build claim chains so forensics has an audit trail.',
    );
  if (i.status !== 'resolved')
    recs.push(
      'Recovery is not finished: restore the budget in stages with recover_agent once the root cause is fixed.',
    );
  const roots = input.audit.claim_chains
    .map((c) => untrustedText((c as { merkle_root?: unknown }).merkle_root ?? '', 80))
    .filter(Boolean);
  return {
    incident_id: i.id,
    agent_id: i.primary_agent_id,
    agent_ids: i.agent_ids,
    kind: i.kind,
    status: i.status,
    signal: i.signal,
    priority: i.priority,
    reason: i.reason,
    runbook: i.runbook,
    widened_to: i.widened_to,
    timeline,
    impact: {
      balance: impact.balance_cents === null ? null : money(impact.balance_cents),
      usage: impact.usage
        ? {
            total_calls: impact.usage.total_calls,
            // The gateway reports fees as a float of CREDITS; shown to the cent.
            total_cost: money(Math.round(impact.usage.total_cost * 100)),
          }
        : null,
      escrows_still_locked: impact.escrows_still_locked,
      amount_still_locked: money(impact.amount_still_locked_cents),
      escrows_cancelled: impact.escrows_cancelled,
      amount_recovered: money(impact.amount_recovered_cents),
      escrows_released: impact.escrows_released,
      amount_lost: money(impact.amount_lost_cents),
      escrows_expired: impact.escrows_expired,
      window: { start: iso(impact.window.start), end: iso(impact.window.end) },
      money_paths: mp
        ? {
            intents_settled: mp.intents_settled,
            amount_settled: mp.amount_settled_cents === null ? null : money(mp.amount_settled_cents),
            intents_pending: mp.intents_pending,
            amount_pending: mp.amount_pending_cents === null ? null : money(mp.amount_pending_cents),
            intents_voided_by_us: mp.intents_voided_by_us,
            amount_voided_by_us: money(mp.amount_voided_by_us_cents),
            intents_refunded_by_us: mp.intents_refunded_by_us,
            amount_refunded_by_us: money(mp.amount_refunded_by_us_cents),
            unconfirmed: mp.unconfirmed,
            subscriptions_active: mp.subscriptions_active,
            subscriptions_cancelled: mp.subscriptions_cancelled.map((c) => ({
              id: c.id,
              payee: c.payee,
              amount: money(c.amount_cents),
              interval: c.interval,
            })),
          }
        : null,
    },
    audit: {
      identity: input.audit.identity,
      claim_chains: input.audit.claim_chains.length,
      claim_chain_roots: roots.slice(0, 20),
      verified_claims: input.audit.verified_claims.length,
    },
    containment: {
      steps: input.actions.filter((a) => a.phase === 'contain').length,
      failed_steps: [...failed, ...interrupted],
      escrows_cancelled: i.escrows_cancelled ?? 0,
      escrows_failed: i.escrows_failed ?? 0,
      amount_unlocked: money(i.amount_unlocked_cents ?? 0),
      time_to_freeze_ms: i.time_to_freeze_ms,
      elapsed_ms: i.containment_elapsed_ms,
    },
    recommendations: recs,
    gaps: [...input.gaps, ...timeline.missing.map((m) => `not recorded: ${m}`)],
    untrusted_text: UNTRUSTED_LEGEND,
    generated_at: now,
  };
}

/** Escapes text from the gateway or the record for a Markdown table cell: no HTML, no links, no breaks. */
export function mdCell(value: unknown, max = 200): string {
  const s = value === null || value === undefined ? '–' : String(value);
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return cut
    .replace(/[\r\n]+/g, ' ')
    .replace(/[\\`*_[\]<>|#!]/g, (c) => `\\${c}`)
    .replace(/(https?):\/\//gi, '$1\u200b://');
}

const moneyMd = (m: Money) => `${m.amount} ${m.currency}`;

/** The money paths beyond escrows, as rows of the impact table (none when they were not read). */
function moneyPathRows(r: PostmortemReport): string[] {
  const m = r.impact.money_paths;
  if (!m) return [];
  const n = (v: number | null) => (v === null ? 'not read' : String(v));
  const amt = (v: Money | null) => (v === null ? 'not read' : moneyMd(v));
  return [
    `| Intents settled in the window (claw-back possible) | ${n(m.intents_settled)} | ${amt(m.amount_settled)} |`,
    `| Intents still pending | ${n(m.intents_pending)} | ${amt(m.amount_pending)} |`,
    `| Intents voided by us (stopped) | ${m.intents_voided_by_us} | ${moneyMd(m.amount_voided_by_us)} |`,
    `| Intents refunded by us (once each) | ${m.intents_refunded_by_us} | ${moneyMd(m.amount_refunded_by_us)} |`,
    `| Subscriptions cancelled by us (re-create to restore) | ${m.subscriptions_cancelled.length} | – |`,
    `| Subscriptions still active | ${n(m.subscriptions_active)} | – |`,
    `| Our intent or subscription actions unconfirmed | ${m.unconfirmed} | – |`,
  ];
}

export function renderPostmortemMarkdown(r: PostmortemReport): string {
  const t = r.timeline;
  const ms = (v: number | null) => (v === null ? 'not recorded' : `${(v / 1000).toFixed(1)} s`);
  const lines = [
    `# Post-mortem ${r.incident_id}`,
    '',
    `| | |`,
    `|---|---|`,
    `| Agent | ${mdCell(r.agent_id)}${r.agent_ids.length > 1 ? ` (+${r.agent_ids.length - 1} more)` : ''} |`,
    `| Kind | ${mdCell(r.kind)} |`,
    `| Signal / priority | ${mdCell(r.signal)} / ${mdCell(r.priority)} |`,
    `| Status | ${mdCell(r.status)} |`,
    `| Runbook | ${mdCell(r.runbook)} |`,
    `| Reason | ${mdCell(r.reason)} |`,
    r.widened_to ? `| Widened to | ${mdCell(r.widened_to)} |` : '',
    '',
    `> ${UNTRUSTED_LEGEND}`,
    '',
    '## Timeline',
    '',
    `Detection → freeze: **${ms(t.phases.detect_to_freeze_ms)}**; detection → contained: **${ms(t.phases.detect_to_contained_ms)}** (target ${t.sla_ms / 1000} s: ${t.met_sla === null ? 'not recorded' : t.met_sla ? 'met' : '**missed**'}).`,
    '',
    '| time (UTC) | phase | action | agent | target | result | ms |',
    '|---|---|---|---|---|---|---|',
    ...t.entries.map(
      (e) =>
        `| ${e.iso} | ${e.phase} | ${mdCell(e.action)} | ${mdCell(e.agent_id)} | ${mdCell(e.target)} | ${e.success === null ? 'pending' : e.success ? 'ok' : `failed${e.detail ? `: ${mdCell(e.detail, 400)}` : ''}`} | ${e.duration_ms ?? '–'} |`,
    ),
    '',
    '## Impact',
    '',
    '| | escrows | amount |',
    '|---|---|---|',
    `| Cancelled (recovered) | ${r.impact.escrows_cancelled} | ${moneyMd(r.impact.amount_recovered)} |`,
    `| Released to payees (lost) | ${r.impact.escrows_released} | ${moneyMd(r.impact.amount_lost)} |`,
    `| Still locked | ${r.impact.escrows_still_locked} | ${moneyMd(r.impact.amount_still_locked)} |`,
    `| Expired | ${r.impact.escrows_expired} | – |`,
    ...moneyPathRows(r),
    '',
    `Balance now: ${r.impact.balance ? moneyMd(r.impact.balance) : 'not read'}. Metered usage in the window: ${r.impact.usage ? `${r.impact.usage.total_calls} calls, ${moneyMd(r.impact.usage.total_cost)} in fees` : 'not read'}. Window ${r.impact.window.start} → ${r.impact.window.end}.`,
    '',
    '## Audit trail',
    '',
    `Claim chains in the window: ${r.audit.claim_chains}${r.audit.claim_chain_roots.length ? ` (roots: ${r.audit.claim_chain_roots.map((x) => untrustedInline(mdCell(x, 80), 120)).join(', ')})` : ''}. Verified claims: ${r.audit.verified_claims}.`,
    '',
    '## Containment',
    '',
    `${r.containment.steps} steps; ${r.containment.escrows_cancelled} escrows cancelled, ${r.containment.escrows_failed} failed; ${moneyMd(r.containment.amount_unlocked)} unlocked; freeze after ${r.containment.time_to_freeze_ms ?? '–'} ms, done after ${r.containment.elapsed_ms ?? '–'} ms.`,
    ...(r.containment.failed_steps.length
      ? ['', 'Failed or interrupted steps:', ...r.containment.failed_steps.map((s) => `- ${mdCell(s)}`)]
      : []),
    '',
    '## Recommendations',
    '',
    ...(r.recommendations.length ? r.recommendations.map((s) => `- ${mdCell(s, 400)}`) : ['- None.']),
    ...(r.gaps.length ? ['', '## Gaps in the data', '', ...r.gaps.map((g) => `- ${mdCell(g)}`)] : []),
    '',
  ];
  return lines.filter((l, idx) => l !== '' || lines[idx - 1] !== '').join('\n');
}
