import type { Config } from '../config.js';
import type { GreenHelixClient } from '../greenhelix/index.js';
import type { IncidentStore } from '../incidents/index.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../util/clock.js';
import type { Alert } from './alerts.js';

/**
 * What the response engine needs. Two gateway clients, one per credential: `monitor` only reads,
 * `actor` (the containment key) is the only one that changes state, and is null when no separate
 * containment key is configured.
 */
export interface OpsDeps {
  readonly config: Config;
  readonly monitor: GreenHelixClient;
  readonly actor: GreenHelixClient | null;
  readonly store: IncidentStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The fleet as configured, or listed through the monitor key. */
  fleet(): Promise<string[]>;
  /** Pages a person (never blocks, never fails the caller). Absent in bare engine tests. */
  page?: ((alert: Alert) => void) | undefined;
}

export interface StepReport {
  action: string;
  target?: string | undefined;
  success: boolean;
  /** True when the step was skipped on purpose (nothing to do); `success` is then true. */
  skipped?: boolean | undefined;
  /** True while the step has begun and has no recorded outcome yet (in flight, or left by a stopped process). */
  pending?: boolean | undefined;
  error?: { code: string; message: string; retryable: boolean } | undefined;
  detail?: Record<string, unknown> | undefined;
  started_at: number;
  duration_ms: number;
}

export function errorInfo(e: unknown): { code: string; message: string; retryable: boolean } {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string') {
    const err = e as { code: string; message?: string; detail?: string; retryable?: boolean };
    return {
      code: err.code,
      message: err.detail ?? err.message ?? err.code,
      retryable: Boolean(err.retryable),
    };
  }
  return { code: 'internal_error', message: e instanceof Error ? e.message : String(e), retryable: false };
}

const inFlight = new Set<number>();

/**
 * Action rows this process has begun and is still waiting on. A begun, unfinished row that is not here
 * was left by a process that stopped, and must be reconciled.
 */
export function inFlightActions(): ReadonlySet<number> {
  return inFlight;
}

/** Marks a begun action as in flight in this process until `done` settles. */
export function trackInFlight(id: number, done: Promise<unknown>): void {
  inFlight.add(id);
  void done.finally(() => inFlight.delete(id)).catch(() => undefined);
}

export type Recorded<T> =
  | { ok: true; value: T; report: StepReport }
  | { ok: false; error: unknown; report: StepReport };

/**
 * Runs one gateway action written ahead to the store (begun before the call, finished with its outcome),
 * so a crash leaves a record of every call that may have happened. Never throws: the outcome is returned.
 */
export async function recordAction<T>(
  deps: Pick<OpsDeps, 'store' | 'clock'>,
  at: {
    incident_id: string;
    agent_id: string;
    phase: 'contain' | 'recover' | 'learn';
    action: string;
    target?: string | undefined;
    params?: Record<string, unknown> | undefined;
  },
  fn: () => Promise<T>,
  summarize?: (value: T) => Record<string, unknown> | undefined,
): Promise<Recorded<T>> {
  const { store, clock } = deps;
  const id = store.beginAction(at);
  inFlight.add(id);
  const t = clock.now();
  const base = { action: at.action, target: at.target, started_at: t };
  try {
    const value = await fn();
    const detail = summarize?.(value);
    store.finishAction(id, { success: true, result: detail });
    return { ok: true, value, report: { ...base, success: true, detail, duration_ms: clock.now() - t } };
  } catch (error) {
    const info = errorInfo(error);
    store.finishAction(id, { success: false, error_code: info.code, error_message: info.message });
    return {
      ok: false,
      error,
      report: { ...base, success: false, error: info, duration_ms: clock.now() - t },
    };
  } finally {
    inFlight.delete(id);
  }
}
