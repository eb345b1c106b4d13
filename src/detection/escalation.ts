/**
 * Escalation (SPEC "Severity and escalation"): which tier answers a (signal, severity) pair.
 * Defaults from the SPEC; overrides per pair as `"<signal>:<severity>": tier`; an unknown pair, or an
 * override naming no known tier, falls back to alerting a person.
 */
import { type Anomaly, SEVERITIES, SIGNALS } from './types.js';

export type EscalationTier = 'alert_human' | 'auto_contain' | 'fleet_shutdown';
export const ESCALATION_TIERS: readonly EscalationTier[] = ['alert_human', 'auto_contain', 'fleet_shutdown'];

/** Overrides keyed `"<signal>:<severity>"`, e.g. `{"reputation_drift:critical": "alert_human"}`. */
export type EscalationRules = Readonly<Record<string, string>>;

/**
 * The SPEC's defaults: critical cost_anomaly, budget_exhaustion and reputation_drift auto-contain;
 * every warning alerts a person; a cascade asks for a full fleet shutdown (which always needs
 * confirmation: the guards, not this table, enforce that). Beyond the SPEC's list, the P0/P1 signals
 * whose runbooks begin with a freeze also auto-contain: escrow_burst (a loss in progress),
 * identity_compromise (a breach) and escrow_exploitation (SPEC P1: "budget freeze").
 */
export const DEFAULT_ESCALATION: Readonly<Record<string, EscalationTier>> = {
  'cost_anomaly:critical': 'auto_contain',
  'budget_exhaustion:critical': 'auto_contain',
  'reputation_drift:critical': 'auto_contain',
  'escrow_burst:critical': 'auto_contain',
  'identity_compromise:critical': 'auto_contain',
  'escrow_exploitation:critical': 'auto_contain',
  'cascade:critical': 'fleet_shutdown',
};

const isTier = (x: unknown): x is EscalationTier => ESCALATION_TIERS.includes(x as EscalationTier);

export function escalate(
  a: Pick<Anomaly, 'signal' | 'severity'>,
  overrides: EscalationRules = {},
): EscalationTier {
  const key = `${a.signal}:${a.severity}`;
  const tier = Object.hasOwn(overrides, key) ? overrides[key] : DEFAULT_ESCALATION[key];
  return isTier(tier) ? tier : 'alert_human';
}

/** What is wrong with a set of overrides, one line per entry; empty when all are valid. */
export function escalationProblems(overrides: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  for (const [key, tier] of Object.entries(overrides)) {
    const [signal, severity, extra] = key.split(':');
    if (extra !== undefined || !SIGNALS.includes(signal as never) || !SEVERITIES.includes(severity as never))
      problems.push(
        `escalation.${key}: expected "<signal>:<severity>" with signal one of ${SIGNALS.join(', ')} and severity one of ${SEVERITIES.join(', ')}`,
      );
    else if (!isTier(tier))
      problems.push(
        `escalation.${key}: got ${JSON.stringify(tier)}, expected one of ${ESCALATION_TIERS.join(', ')}`,
      );
  }
  return problems;
}
