/**
 * Building anomalies: the priority each (signal, severity) carries, and money in summaries.
 */
import { moneyText } from '../greenhelix/money.js';
import type { Anomaly, Priority, Severity, Signal } from './types.js';

/**
 * Priority per signal and severity (SPEC "Severity and escalation"). Choices the SPEC leaves open:
 * - budget_exhaustion is P1: the cap itself stops fee spend, so exposure grows but no loss is running.
 * - reputation_drift critical is P1, warning P2: runbook 4 answers degradation with a budget cut, not a
 *   freeze; the P1 makes a steep fall reach a person within 15 minutes.
 * - escrow_exploitation critical is P1 (SPEC: "possible fraud"); its only warning is the cold-start
 *   form (escrow.ts: a new agent's first concentrated batch, below twice the floor), P2: a person looks.
 * - identity_compromise and cascade are P0 at any severity.
 */
export const PRIORITY: Readonly<Record<Signal, Readonly<Record<Severity, Priority>>>> = {
  cost_anomaly: { info: 'P3', warning: 'P2', critical: 'P0' },
  budget_warning: { info: 'P3', warning: 'P2', critical: 'P2' },
  budget_exhaustion: { info: 'P3', warning: 'P1', critical: 'P1' },
  reputation_drift: { info: 'P3', warning: 'P2', critical: 'P1' },
  escrow_burst: { info: 'P3', warning: 'P1', critical: 'P0' },
  escrow_exploitation: { info: 'P2', warning: 'P2', critical: 'P1' },
  identity_compromise: { info: 'P0', warning: 'P0', critical: 'P0' },
  cascade: { info: 'P0', warning: 'P0', critical: 'P0' },
  detection_failure: { info: 'P3', warning: 'P2', critical: 'P2' },
};

/** 0 for P0 … 3 for P3. */
export const priorityLevel = (p: Priority): number => Number(p.slice(1));

export function anomaly(
  agent_id: string,
  at: number,
  signal: Signal,
  severity: Severity,
  summary: string,
  details: Record<string, unknown>,
): Anomaly {
  return { agent_id, signal, severity, priority: PRIORITY[signal][severity], at, summary, details };
}

/** Money for summaries: 15000 → "$150.00". */
/** An amount in a summary, written as everywhere else: "150.00 CREDITS". */
export const credits = (cents: number): string => moneyText(Math.round(cents));

/** At most `max` ids, with a flag when some were left out, so details stay small. */
export function idList(ids: string[], max = 50): { escrow_ids: string[]; escrow_ids_truncated?: true } {
  return ids.length > max
    ? { escrow_ids: ids.slice(0, max), escrow_ids_truncated: true }
    : { escrow_ids: ids };
}
