/** The scheduler fires in (time, insertion) order, including tasks added while firing, and drops a stopped owner's. */
import { describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/sandbox/scheduler.js';
import { prng } from '../../src/sandbox/world.js';

describe('Scheduler', () => {
  it('fires by time, then insertion order, with tasks added while firing', () => {
    const s = new Scheduler();
    const fired: string[] = [];
    const r = prng(3);
    const times = Array.from({ length: 500 }, () => Math.floor(r() * 50));
    for (const [i, t] of times.entries()) s.at(t, 'a', () => fired.push(`${t}:${i}`));
    s.at(10, 'b', (now) => s.at(now, 'b', () => fired.push('10:added')));
    const clock: number[] = [];
    expect(s.runUntil(30, (t) => clock.push(t))).toBeGreaterThan(0);
    const expected = times
      .map((t, i) => ({ t, i, k: `${t}:${i}` }))
      .filter((x) => x.t <= 30)
      .sort((a, b) => a.t - b.t || a.i - b.i)
      .map((x) => x.k);
    // The task added at 10 while firing goes after every task already queued for 10.
    const at10 = expected.filter((k) => k.startsWith('10:')).length;
    const firstAfter10 = expected.findIndex((k) => Number(k.split(':')[0]) > 10);
    expected.splice(firstAfter10 === -1 ? expected.length : firstAfter10, 0, '10:added');
    expect(at10).toBeGreaterThan(0);
    expect(fired).toEqual(expected);
    expect(clock).toEqual([...clock].sort((a, b) => a - b));
    expect(s.pending).toBe(times.filter((t) => t > 30).length);
  });

  it('cancelOwner drops only that owner and keeps the order of the rest', () => {
    const s = new Scheduler();
    const fired: number[] = [];
    for (let i = 0; i < 100; i++) s.at(100 - i, i % 2 ? 'odd' : 'even', () => fired.push(100 - i));
    s.cancelOwner('odd');
    s.runUntil(1_000, () => undefined);
    expect(fired).toEqual(Array.from({ length: 50 }, (_, k) => 100 - 2 * k).sort((a, b) => a - b));
  });
});
