/**
 * A fault-injecting network between the product and a gateway, built on the recording proxy: 5xx
 * before and after the gateway acted (the second is an unseen success), connection resets before and
 * after, 3–5 s stalls, 429 storms, and failing refreezes. Seeded, so a failing run can be replayed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { prng } from '../../src/sandbox/world.js';
import type { Intercept } from '../contract/proxy.js';

export interface FaultPlan {
  seed: number;
  /** Probability per request of a 503 without forwarding, and of a 502 after the gateway acted. */
  error5xx?: number;
  /** Probability per request of a reset before forwarding, and after the gateway acted. */
  reset?: number;
  /** Probability per request of a stall of 3–5 s before forwarding. */
  stall?: number;
  /**
   * A 429 storm: every request in [start, start + ms) answers 429, the clock starting at the first request,
   * or at the first escrow cancel with `onCancel`.
   */
  storm?: { startMs: number; ms: number; onCancel?: boolean };
  /** The first n freezes after any unfreeze answer 503 (a refreeze that will not stick). */
  failRefreezes?: number;
}

export interface FaultCounts {
  requests: number;
  error5xxBefore: number;
  error5xxAfter: number;
  resetBefore: number;
  resetAfter: number;
  stalls: number;
  rateLimited: number;
  refreezesFailed: number;
}

const problem = (status: number, code: string) =>
  JSON.stringify({
    type: `https://api.greenhelix.net/errors/${code.replace(/_/g, '-')}`,
    title: code,
    status,
  });

/** Returns the intercept and live counters; the plan's clock starts at the first request. */
export function faultInjector(plan: FaultPlan): { intercept: Intercept; counts: FaultCounts } {
  const random = prng(plan.seed);
  const counts: FaultCounts = {
    requests: 0,
    error5xxBefore: 0,
    error5xxAfter: 0,
    resetBefore: 0,
    resetAfter: 0,
    stalls: 0,
    rateLimited: 0,
    refreezesFailed: 0,
  };
  let t0: number | undefined;
  let unfrozen = false;
  let refreezesToFail = 0;
  const intercept: Intercept = async (c, res, forward) => {
    counts.requests++;
    if (!plan.storm?.onCancel || /\/cancel$/.test(c.path)) t0 ??= Date.now();
    const elapsed = t0 === undefined ? -1 : Date.now() - t0;
    if (plan.storm && elapsed >= plan.storm.startMs && elapsed < plan.storm.startMs + plan.storm.ms) {
      counts.rateLimited++;
      res.writeHead(429, { 'content-type': 'application/problem+json' });
      res.end(problem(429, 'rate_limit_exceeded'));
      return true;
    }
    if (c.method === 'POST' && c.path.endsWith('/unfreeze')) {
      unfrozen = true;
      refreezesToFail = plan.failRefreezes ?? 0;
    } else if (c.method === 'POST' && c.path.endsWith('/freeze') && unfrozen && refreezesToFail > 0) {
      refreezesToFail--;
      counts.refreezesFailed++;
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(problem(503, 'service_unavailable'));
      return true;
    }
    const roll = random();
    const e = plan.error5xx ?? 0;
    const r = plan.reset ?? 0;
    const s = plan.stall ?? 0;
    if (roll < e / 2) {
      counts.error5xxBefore++;
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(problem(503, 'service_unavailable'));
      return true;
    }
    if (roll < e) {
      counts.error5xxAfter++;
      await forward();
      res.writeHead(502, { 'content-type': 'application/problem+json' });
      res.end(problem(502, 'bad_gateway'));
      return true;
    }
    if (roll < e + r / 2) {
      counts.resetBefore++;
      res.socket?.destroy();
      return true;
    }
    if (roll < e + r) {
      counts.resetAfter++;
      await forward();
      res.socket?.destroy();
      return true;
    }
    if (roll < e + r + s) {
      counts.stalls++;
      await sleep(3_000 + Math.floor(random() * 2_000));
    }
    return false;
  };
  return { intercept, counts };
}
