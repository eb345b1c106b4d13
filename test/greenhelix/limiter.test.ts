import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from '../../src/greenhelix/index.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('ConcurrencyLimiter', () => {
  it('grants at most `limit` slots and serves waiters first come, first served', async () => {
    const limiter = new ConcurrencyLimiter(2);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    const waiting = [0, 1, 2, 3, 4].map((i) =>
      limiter.acquire().then((release) => {
        order.push(i);
        releases.push(release);
      }),
    );
    await tick();
    expect([limiter.active, limiter.queued, order]).toEqual([2, 3, [0, 1]]);
    releases[0]?.();
    releases[0]?.(); // a second release of the same slot is a no-op
    await tick();
    expect([limiter.active, limiter.queued, order]).toEqual([2, 2, [0, 1, 2]]);
    for (let i = 1; i < 5; i++) {
      releases[i]?.();
      await tick();
    }
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    releases[4]?.();
    expect([limiter.active, limiter.queued]).toEqual([0, 0]);
  });

  it('an aborted waiter leaves the queue and never takes a slot', async () => {
    const limiter = new ConcurrencyLimiter(1);
    const first = await limiter.acquire();
    const ctl = new AbortController();
    const aborted = limiter.acquire(ctl.signal);
    const next = limiter.acquire();
    expect(limiter.queued).toBe(2);
    ctl.abort(new Error('caller gave up'));
    await expect(aborted).rejects.toThrow('caller gave up');
    expect(limiter.queued).toBe(1);
    first();
    const release = await next;
    expect(limiter.active).toBe(1);
    release();
    await expect(limiter.acquire(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    expect(limiter.active).toBe(0);
  });

  it('run() releases the slot when the task throws', async () => {
    const limiter = new ConcurrencyLimiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(limiter.active).toBe(0);
    expect(await limiter.run(async () => 7)).toBe(7);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new ConcurrencyLimiter(0)).toThrow(/positive integer/);
    expect(() => new ConcurrencyLimiter(1.5)).toThrow(/positive integer/);
  });
});
