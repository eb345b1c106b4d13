/**
 * When and how long to retry a gateway call.
 *
 * Whether a retry is *safe* is a property of the tool (ROUTES[tool].retry); whether it is *useful* is a
 * property of the error (GreenHelixError.retryable: network errors, 429, 5xx). Both must hold. The
 * wait is exponential with full jitter, never shorter than the server's Retry-After, and never runs
 * past the caller's deadline: a wait that would end after it stops the loop with the last error.
 */
import { GreenHelixError } from './errors.js';
import type { RetryClass } from './routes.js';

export interface BackoffPolicy {
  /** Retries after the first attempt (so at most maxRetries + 1 attempts). */
  maxRetries: number;
  /** Cap of the first backoff window; window n is min(maxDelayMs, baseDelayMs · 2^n). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** [0, 1); injectable so tests can pin the jitter. */
  random: () => number;
}

/**
 * Whether a call of this retry class may be sent again after a failure whose outcome is unknown.
 * `keyed` creates are safe only with an Idempotency-Key: the gateway then returns the first result
 * instead of making a second escrow.
 */
export function retryAllowed(retry: RetryClass, hasIdempotencyKey: boolean): boolean {
  return retry === 'read' || retry === 'idempotent' || (retry === 'keyed' && hasIdempotencyKey);
}

/** Full-jitter exponential backoff for the given retry number (0 = the first retry). */
export function backoffMs(retryNumber: number, policy: BackoffPolicy): number {
  const window = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retryNumber);
  return Math.floor(policy.random() * window);
}

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). Undefined when
 * absent or unreadable. The gateway's authenticated 429 sends none (CONTRACT §4); only its public,
 * IP-limited endpoints and proxies in front of it do.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Date.parse reads "-3" or "2026" as dates; an HTTP-date always has a weekday or month name.
  const at = /[a-z]{3}/i.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The wait before retry `retryNumber`: the jittered backoff, or the server's Retry-After if longer. */
export function retryDelayMs(err: GreenHelixError, retryNumber: number, policy: BackoffPolicy): number {
  const serverMs = err.retryAfterSeconds === undefined ? 0 : err.retryAfterSeconds * 1000;
  return Math.max(backoffMs(retryNumber, policy), serverMs);
}

export interface RetryContext {
  /** Whether this call may be retried at all (see retryAllowed). */
  allowed: boolean;
  /** Epoch ms after which nothing more is attempted. */
  deadline: number;
  signal?: AbortSignal | undefined;
  /** Builds the error thrown when the caller aborts during a backoff sleep. */
  abortError: () => GreenHelixError;
  now?: () => number;
  onRetry?: (err: GreenHelixError, retryNumber: number, delayMs: number) => void;
}

/**
 * Runs `attempt` until it succeeds, the error is not retryable, retries are not allowed, the retries
 * run out, a backoff would cross the deadline, or the caller aborts. Throws the last error (an abort
 * during a backoff throws `abortError()`). `attempt` must throw GreenHelixError only.
 */
export async function withRetries<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  policy: BackoffPolicy,
  ctx: RetryContext,
): Promise<T> {
  const now = ctx.now ?? Date.now;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      const err = e as GreenHelixError;
      if (!ctx.allowed || !err.retryable || n >= policy.maxRetries) throw err;
      const delay = retryDelayMs(err, n, policy);
      if (now() + delay >= ctx.deadline) throw err;
      ctx.onRetry?.(err, n, delay);
      if (!(await sleep(delay, ctx.signal))) throw ctx.abortError();
    }
  }
}

/** Sleeps `ms`; resolves false at once if the signal aborts (before or during the sleep). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A non-retryable client-side error: the caller gave up, or the time did. */
export function stopError(
  code: 'aborted' | 'deadline_exceeded',
  tool: string,
  detail?: string,
  requestId?: string,
): GreenHelixError {
  return new GreenHelixError({
    status: 0,
    code,
    detail:
      detail ?? (code === 'aborted' ? 'the caller cancelled the call' : 'no answer within the deadline'),
    tool,
    requestId,
    retryable: false,
  });
}
