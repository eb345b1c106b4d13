/**
 * A small FIFO semaphore bounding how many requests one client has in flight.
 *
 * The pool already caps connections, but undici would queue the excess internally where a caller's
 * deadline and AbortSignal cannot reach it. Queuing here instead lets a waiter leave the queue the
 * moment its caller gives up, so a burst of 312 cancels never spends a late caller's deadline waiting.
 */
export class ConcurrencyLimiter {
  private running = 0;
  private readonly waiters: { grant: () => void }[] = [];

  /** @param limit the most holders at once; a positive integer. */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${String(limit)}`);
  }

  /** Holders now running. */
  get active(): number {
    return this.running;
  }

  /** Waiters in the queue. */
  get queued(): number {
    return this.waiters.length;
  }

  /**
   * Waits for a slot, first come first served. Resolves to a release function (safe to call twice);
   * rejects with `signal.reason` if the signal aborts first, and the waiter leaves the queue.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running++;
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Runs `task` inside a slot and releases it however the task ends. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await task();
    } finally {
      release();
    }
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.waiters.shift()?.grant();
    };
  }
}
