/**
 * Per-agent circuit breaker (SPEC): closed → open after `threshold` (5) consecutive failures; after
 * `cooldownMs` (300 s) it is half-open and lets one test operation through; that operation's success
 * closes it, its failure opens it again for another cooldown. Time is passed in; the state is plain
 * JSON (`toJSON` / `CircuitBreaker.fromJSON`) so the caller can persist it.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerSnapshot {
  failures: number;
  opened_at: number | null;
  /** When the half-open test operation was let through; null when none is outstanding. */
  trial_at: number | null;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;
  private trialAt: number | null = null;

  constructor(
    readonly threshold = 5,
    readonly cooldownMs = 300_000,
  ) {
    if (!Number.isInteger(threshold) || threshold < 1)
      throw new RangeError(`threshold: expected an integer ≥ 1, got ${threshold}`);
    if (!Number.isFinite(cooldownMs) || cooldownMs < 0)
      throw new RangeError(`cooldownMs: expected milliseconds ≥ 0, got ${cooldownMs}`);
  }

  state(now: number): BreakerState {
    if (this.openedAt === null) return 'closed';
    return now - this.openedAt >= this.cooldownMs ? 'half_open' : 'open';
  }

  /** Whether an operation may go through now, without taking the half-open trial slot. */
  canAttempt(now: number): boolean {
    const s = this.state(now);
    return s === 'closed' || (s === 'half_open' && !this.trialOutstanding(now));
  }

  /**
   * Takes permission for one operation: always when closed, never when open, and when half-open only
   * for the single test operation (another is let through if that one never reports back within a
   * cooldown).
   */
  tryAcquire(now: number): boolean {
    if (!this.canAttempt(now)) return false;
    if (this.state(now) === 'half_open') this.trialAt = now;
    return true;
  }

  recordFailure(now: number): void {
    if (this.state(now) === 'half_open') {
      this.openedAt = now;
      this.trialAt = null;
      return;
    }
    this.failures++;
    if (this.failures >= this.threshold && this.openedAt === null) this.openedAt = now;
  }

  /** A success closes a closed or half-open breaker; one arriving while open is a straggler and ignored. */
  recordSuccess(now: number): void {
    if (this.state(now) === 'open') return;
    this.failures = 0;
    this.openedAt = null;
    this.trialAt = null;
  }

  toJSON(): BreakerSnapshot {
    return { failures: this.failures, opened_at: this.openedAt, trial_at: this.trialAt };
  }

  /** Restores a snapshot; anything malformed in it gives a closed breaker rather than an exception. */
  static fromJSON(snapshot: unknown, threshold = 5, cooldownMs = 300_000): CircuitBreaker {
    const b = new CircuitBreaker(threshold, cooldownMs);
    const s = (snapshot ?? {}) as Partial<Record<keyof BreakerSnapshot, unknown>>;
    const time = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
    if (typeof s.failures === 'number' && Number.isInteger(s.failures) && s.failures >= 0)
      b.failures = s.failures;
    b.openedAt = time(s.opened_at);
    b.trialAt = b.openedAt === null ? null : time(s.trial_at);
    return b;
  }

  private trialOutstanding(now: number): boolean {
    return this.trialAt !== null && now - this.trialAt < this.cooldownMs;
  }
}
