/**
 * Sandbox time: real time scaled, plus manual advances. A drill runs an hour of scenario in a minute
 * with timeScale 60; tests use timeScale 0 and `advance()` for exact, repeatable time.
 */
import type { Clock } from '../util/clock.js';

export class SandboxClock implements Clock {
  private readonly base: number;
  private readonly realStart: number;
  private offset = 0;

  constructor(
    readonly timeScale = 1,
    start = Date.now(),
  ) {
    this.base = start;
    this.realStart = performance.now();
  }

  now(): number {
    return Math.floor(this.base + (performance.now() - this.realStart) * this.timeScale + this.offset);
  }

  /** Moves sandbox time forward (never back). */
  advanceBy(ms: number): void {
    if (ms > 0) this.offset += ms;
  }

  /** Moves sandbox time forward to `at` if it is in the future. */
  advanceTo(at: number): void {
    this.advanceBy(at - this.now());
  }
}
