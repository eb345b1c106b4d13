/**
 * Grouping escrows the way a retry loop shows itself: repeats of one amount (within a tolerance, so a
 * loop that jitters its amounts is still one group) to one payee, or to a handful of payees in rotation;
 * and the densest stretch of a set within a sliding window.
 */
import type { EscrowObservation } from './types.js';

/** Amounts within this share of each other are "the same amount" (a loop jittering ±10 % stays one group). */
export const AMOUNT_TOLERANCE = 0.12;
/** A loop rotating over at most this many payees is still a loop; a payout to many payees is not. */
export const ROTATION_MAX_PAYEES = 5;

/** The largest set of `items` whose amounts lie within AMOUNT_TOLERANCE of its smallest amount. */
function largestAmountCluster<T extends EscrowObservation>(items: readonly T[]): T[] {
  const sorted = [...items].sort((a, b) => a.amount - b.amount);
  let best: T[] = [];
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]!.amount > sorted[lo]!.amount * (1 + AMOUNT_TOLERANCE) + 1) lo++;
    if (hi - lo + 1 > best.length) best = sorted.slice(lo, hi + 1);
  }
  return best;
}

export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const e of items) {
    const k = key(e);
    const g = groups.get(k);
    if (g) g.push(e);
    else groups.set(k, [e]);
  }
  return groups;
}

export interface Repeat<T> {
  /** `payee`: one payee, one amount; `rotation`: one amount over a few payees that each repeat. */
  kind: 'payee' | 'rotation';
  set: T[];
}

/**
 * The retry signature: the largest group of escrows of about one amount to one payee, or of about one
 * amount over at most ROTATION_MAX_PAYEES payees where payees repeat (a loop rotating its targets). A
 * payout to many distinct payees, or varied orders, forms no large group.
 */
export function largestRepeat<T extends EscrowObservation>(items: readonly T[]): Repeat<T> {
  let best: Repeat<T> = { kind: 'payee', set: [] };
  for (const g of groupBy(items, (e) => e.payee).values()) {
    const c = largestAmountCluster(g);
    if (c.length > best.set.length) best = { kind: 'payee', set: c };
  }
  // A rotation repeats its payees: at least twice as many escrows as payees. Five similar amounts to
  // three of a busy agent's eighty payees are chance; a loop over three payees hits each again and again.
  const c = largestAmountCluster(items);
  const payees = new Set(c.map((e) => e.payee)).size;
  if (c.length > best.set.length && payees <= ROTATION_MAX_PAYEES && c.length >= 2 * payees)
    best = { kind: 'rotation', set: c };
  return best;
}

/** The members of the largest group (ties: the group whose newest escrow is newest). */
export function largestGroup<T extends EscrowObservation>(items: readonly T[], key: (e: T) => string): T[] {
  let best: T[] = [];
  for (const g of groupBy(items, key).values())
    if (g.length > best.length || (g.length === best.length && newest(g) > newest(best))) best = g;
  return best;
}

/**
 * The densest `windowMs` stretch of `items`: the most escrows created within any window (a, a + windowMs]
 * that ends after `endsAfter`, so windows a previous poll already judged in full are not judged again.
 */
export function densest<T extends EscrowObservation>(
  items: readonly T[],
  windowMs: number,
  endsAfter = Number.NEGATIVE_INFINITY,
): T[] {
  const sorted = [...items].sort((a, b) => a.created_at - b.created_at);
  let best: T[] = [];
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]!.created_at - sorted[lo]!.created_at >= windowMs) lo++;
    // The window ending at this escrow; one ending later holds the same set, so `endsAfter` is met
    // whenever the window can still be placed to end after it.
    if (sorted[lo]!.created_at + windowMs <= endsAfter) continue;
    if (hi - lo + 1 > best.length) best = sorted.slice(lo, hi + 1);
  }
  return best;
}

export const newest = (g: readonly EscrowObservation[]) =>
  g.reduce((m, e) => Math.max(m, e.created_at), Number.NEGATIVE_INFINITY);

export const newestFirst = <T extends EscrowObservation>(g: readonly T[]) =>
  [...g].sort((a, b) => b.created_at - a.created_at);
