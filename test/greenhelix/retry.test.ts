import { describe, expect, it } from 'vitest';
import {
  type BackoffPolicy,
  backoffMs,
  GreenHelixError,
  parseRetryAfter,
  retryAllowed,
  retryDelayMs,
  withRetries,
} from '../../src/greenhelix/index.js';

const policy = (random: number, maxRetries = 3): BackoffPolicy => ({
  maxRetries,
  baseDelayMs: 100,
  maxDelayMs: 1_000,
  random: () => random,
});
const err = (status: number, retryAfterSeconds?: number) =>
  new GreenHelixError({ status, code: `http_${status}`, detail: 'x', retryAfterSeconds });

describe('retry policy', () => {
  it('retries reads and idempotent transitions; keyed creates only with a key; unsafe calls never', () => {
    expect(retryAllowed('read', false)).toBe(true);
    expect(retryAllowed('idempotent', false)).toBe(true);
    expect(retryAllowed('keyed', false)).toBe(false);
    expect(retryAllowed('keyed', true)).toBe(true);
    expect(retryAllowed('unsafe', true)).toBe(false);
  });

  it('full jitter: the wait is random × min(max, base · 2^n)', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffMs(n, policy(0.999999)))).toEqual([
      99, 199, 399, 799, 999, 999,
    ]);
    expect(backoffMs(3, policy(0))).toBe(0);
    expect(backoffMs(1, policy(0.5))).toBe(100);
  });

  it('Retry-After wins when it is longer than the backoff', () => {
    expect(retryDelayMs(err(503, 2), 0, policy(0.5))).toBe(2_000);
    expect(retryDelayMs(err(503, 0), 2, policy(0.5))).toBe(200);
    expect(retryDelayMs(err(429), 2, policy(0.5))).toBe(200);
  });

  it('reads Retry-After as seconds or an HTTP date, and ignores garbage', () => {
    const now = Date.parse('2026-04-22T10:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7_000);
    expect(parseRetryAfter('Wed, 22 Apr 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 22 Apr 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-3', now)).toBeUndefined();
    expect(parseRetryAfter('2026', now)).toBe(2_026_000);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('withRetries: retries retryable errors up to maxRetries, then throws the last error', async () => {
    let attempts = 0;
    const run = withRetries(
      async (n) => {
        attempts++;
        throw err(n < 2 ? 503 : 502);
      },
      policy(0, 2),
      { allowed: true, deadline: Date.now() + 60_000, abortError: () => err(0) },
    );
    await expect(run).rejects.toMatchObject({ status: 502 });
    expect(attempts).toBe(3);
  });

  it('withRetries: no retry when not allowed, or for a 4xx other than 429', async () => {
    for (const [allowed, status, expected] of [
      [false, 503, 1],
      [true, 409, 1],
      [true, 501, 1],
      [true, 429, 4],
    ] as const) {
      let attempts = 0;
      await expect(
        withRetries(
          async () => {
            attempts++;
            throw err(status);
          },
          policy(0),
          { allowed, deadline: Date.now() + 60_000, abortError: () => err(0) },
        ),
      ).rejects.toMatchObject({ status });
      expect(attempts, `allowed=${allowed} status=${status}`).toBe(expected);
    }
  });

  it('withRetries: never sleeps past the deadline — a wait that would cross it ends the loop', async () => {
    const now = 1_000;
    let attempts = 0;
    await expect(
      withRetries(
        async () => {
          attempts++;
          throw err(503, 5);
        },
        policy(0),
        { allowed: true, deadline: 5_000, now: () => now, abortError: () => err(0) },
      ),
    ).rejects.toMatchObject({ status: 503, retryAfterSeconds: 5 });
    expect(attempts).toBe(1);
  });

  it('withRetries: an abort during the backoff sleep throws the abort error', async () => {
    const ctl = new AbortController();
    const run = withRetries(
      async () => {
        setImmediate(() => ctl.abort());
        throw err(503, 30);
      },
      policy(0),
      {
        allowed: true,
        deadline: Date.now() + 120_000,
        signal: ctl.signal,
        abortError: () =>
          new GreenHelixError({ status: 0, code: 'aborted', detail: 'stop', retryable: false }),
      },
    );
    await expect(run).rejects.toMatchObject({ code: 'aborted' });
  });
});
