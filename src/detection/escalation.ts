/**
 * Escalation (SPEC "Severity and escalation"): which tier answers a (signal, severity) pair.
 * Defaults from the SPEC; overrides per pair; an unknown pair falls back to alerting a person.
 */
import type { Anomaly } from './signals.js';

export type EscalationTier = 'alert_human' | 'auto_contain' | 'fleet_shutdown';

export const DEFAULT_ESCALATION: Readonly<Record<string, EscalationTier>> = {
  'cost_anomaly:critical': 'auto_contain',
  'budget_exhaustion:critical': 'auto_contain',
  'reputation_drift:critical': 'auto_contain',
  // A retry loop and a replaced key are losses or breaches in progress (P0).
  'escrow_burst:critical': 'auto_contain',
  'identity_compromise:critical': 'auto_contain',
  // Possible fraud, growing exposure (P1): the SPEC's automated action is a freeze.
  'escrow_exploitation:critical': 'auto_contain',
  'cascade:critical': 'fleet_shutdown',
};

export function escalate(
  a: Pick<Anomaly, 'signal' | 'severity'>,
  overrides: Readonly<Record<string, string>> = {},
): EscalationTier {
  const key = `${a.signal}:${a.severity}`;
  const tier = overrides[key] ?? DEFAULT_ESCALATION[key];
  return tier === 'auto_contain' || tier === 'fleet_shutdown' || tier === 'alert_human'
    ? tier
    : 'alert_human';
}
