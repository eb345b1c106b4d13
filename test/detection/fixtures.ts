/**
 * Test data for the detectors: a fixed clock origin, a seeded generator, and a tiny escrow world whose
 * list view at any time is what list_escrows would return then (newest first, statuses as of then).
 */
import type { AgentObservation, EscrowObservation } from '../../src/detection/index.js';
import { prng } from '../../src/sandbox/world.js';

export const T0 = Date.UTC(2026, 10, 24, 2, 47);
export const SEC = 1_000;
export const MIN = 60_000;
export const HOUR = 60 * MIN;

/** The sandbox's seeded PRNG (mulberry32): small, good enough for traffic shapes. */
export const rng = prng;

export interface SimEscrow {
  id: string;
  payer: string;
  payee: string;
  amount: number;
  created_at: number;
  /** What happens to it, and when; undefined stays held. */
  fate?: { status: 'settled' | 'refunded' | 'expired'; at: number };
}

let seq = 0;
export function escrow(over: Partial<SimEscrow> & { created_at: number }): SimEscrow {
  return { id: `e${++seq}`, payer: 'a1', payee: 'v1', amount: 15_000, ...over };
}

/** The escrow list as list_escrows returns it at `at`: the agent's, newest first, one page. */
export function view(
  world: readonly SimEscrow[],
  agent: string,
  at: number,
  limit = 200,
): EscrowObservation[] {
  return world
    .filter((e) => (e.payer === agent || e.payee === agent) && e.created_at <= at)
    .sort((a, b) => b.created_at - a.created_at)
    .slice(0, limit)
    .map((e) => {
      const decided = e.fate && e.fate.at <= at ? e.fate : undefined;
      return {
        id: e.id,
        payer: e.payer,
        payee: e.payee,
        amount: e.amount,
        status: decided?.status ?? 'held',
        created_at: e.created_at,
        updated_at: decided?.at ?? e.created_at,
      };
    });
}

/**
 * Ordinary commerce: Poisson orders at `perHour`, $5–$80, to a handful of payees; 90 % released by the
 * payee within 2–20 min, 7 % cancelled within 1–11 min, the rest left held.
 */
export function normalTraffic(
  agent: string,
  from: number,
  to: number,
  perHour: number,
  seed: number,
): SimEscrow[] {
  const r = rng(seed);
  const out: SimEscrow[] = [];
  for (
    let at = from - Math.log(1 - r()) * (HOUR / perHour);
    at < to;
    at += -Math.log(1 - r()) * (HOUR / perHour)
  ) {
    const created_at = Math.round(at);
    const fate = r();
    out.push(
      escrow({
        payer: agent,
        payee: `shop-${Math.floor(r() * 6)}`,
        amount: 500 + Math.floor(r() * 7_500),
        created_at,
        fate:
          fate < 0.9
            ? { status: 'settled', at: created_at + Math.round((2 + r() * 18) * MIN) }
            : fate < 0.97
              ? { status: 'refunded', at: created_at + Math.round((1 + r() * 10) * MIN) }
              : undefined,
      }),
    );
  }
  return out;
}

/** A retry loop: `count` held escrows of one amount to one payee, `perMin` a minute, the last at `end`. */
export function retryLoop(
  agent: string,
  end: number,
  count: number,
  opts: { perMin?: number; amount?: number; payee?: string } = {},
): SimEscrow[] {
  const every = MIN / (opts.perMin ?? 30);
  return Array.from({ length: count }, (_, i) =>
    escrow({
      payer: agent,
      payee: opts.payee ?? 'vendor-flaky',
      amount: opts.amount ?? 15_000,
      created_at: end - (count - 1 - i) * every,
    }),
  );
}

export function observation(over: Partial<AgentObservation> = {}): AgentObservation {
  return { agent_id: 'a1', at: T0, failures: [], ...over };
}
