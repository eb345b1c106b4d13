/**
 * Per-agent circuit breaker (SPEC): closed → open after 5 failures; after 300 s half-open lets one test
 * operation through; a success closes it, a failure opens it again. Time is passed in.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;

  constructor(
    readonly threshold = 5,
    readonly cooldownMs = 300_000,
  ) {}

  state(now: number): BreakerState {
    if (this.openedAt === null) return 'closed';
    return now - this.openedAt >= this.cooldownMs ? 'half_open' : 'open';
  }

  /** Whether an operation may go through now (half-open lets exactly the test operation through). */
  canAttempt(now: number): boolean {
    return this.state(now) !== 'open';
  }

  recordFailure(now: number): void {
    if (this.state(now) === 'half_open') {
      this.openedAt = now;
      return;
    }
    this.failures++;
    if (this.failures >= this.threshold && this.openedAt === null) this.openedAt = now;
  }

  recordSuccess(now: number): void {
    if (this.state(now) === 'open') return;
    this.failures = 0;
    this.openedAt = null;
  }

  toJSON(): { failures: number; opened_at: number | null } {
    return { failures: this.failures, opened_at: this.openedAt };
  }
}
