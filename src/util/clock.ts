/** Wall-clock time in milliseconds since the epoch. Injected everywhere so tests and drills can scale time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
