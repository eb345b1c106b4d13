import { describe, expect, it } from 'vitest';
import { KeyedMutex, mapBounded } from '../../src/runbooks/limit.js';

describe('mapBounded', () => {
  it('keeps at most N in flight and results in input order', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0], 3, async (x) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, x));
      inFlight--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(3);
  });

  it('handles an empty list', async () => {
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
  });
});

describe('KeyedMutex', () => {
  it('runs work for one key one at a time, other keys concurrently, and survives a failure', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const job = (key: string, name: string, ms: number, fail = false) =>
      m.run(key, async () => {
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([
      job('a', 'a1', 20, true),
      job('a', 'a2', 1),
      job('b', 'b1', 5),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(log.indexOf('end a1')).toBeLessThan(log.indexOf('start a2'));
    expect(log.indexOf('start b1')).toBeLessThan(log.indexOf('end a1'));
    expect(m.isHeld('a')).toBe(false);
  });
});

describe('recovery monitoring schedule', () => {
  it('30 s at 50 %, 60 s at 75 % and 100 %, standard after 48 h', async () => {
    const { recoveryMonitoringS } = await import('../../src/runbooks/recover.js');
    const H = 3_600_000;
    const s1 = [{ stage: 1, at: 0 }];
    const s3 = [...s1, { stage: 2, at: 6 * H }, { stage: 3, at: 24 * H }];
    expect(recoveryMonitoringS([], 0)).toBeNull();
    expect(recoveryMonitoringS(s1, H)).toBe(30);
    expect(recoveryMonitoringS(s1.concat({ stage: 2, at: 6 * H }), 7 * H)).toBe(60);
    expect(recoveryMonitoringS(s3, 30 * H)).toBe(60);
    expect(recoveryMonitoringS(s3, 48 * H)).toBeNull();
  });
});
