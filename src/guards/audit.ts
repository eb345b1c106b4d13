/**
 * Every guard verdict goes to the audit log (the incident store's hash chain), allowed or refused, so a
 * reviewer can see what was let through as well as what was stopped. The sink is structural: guards do
 * not depend on the store.
 */

/** Where decisions are recorded: `IncidentStore.audit`. Throws when it cannot record. */
export interface GuardDecisionSink {
  guard(d: {
    guard: string;
    allowed: boolean;
    tool: string;
    agent_ids: readonly string[];
    reason: string;
  }): unknown;
}

/**
 * Records a verdict and returns it unchanged, so a check reads `recordVerdict(sink, at, checkX(...))`.
 * A refusal's reason is its code and message; an allowance's is `allowed`, or the method that allowed it.
 */
export function recordVerdict<V extends { ok: boolean; code?: string; message?: string; method?: string }>(
  sink: GuardDecisionSink,
  at: { guard: string; tool: string; agent_ids?: readonly unknown[] | undefined },
  verdict: V,
): V {
  sink.guard({
    guard: at.guard,
    allowed: verdict.ok,
    tool: at.tool,
    agent_ids: (at.agent_ids ?? []).map(String),
    reason: verdict.ok ? (verdict.method ?? 'allowed') : `${verdict.code}: ${verdict.message}`,
  });
  return verdict;
}
