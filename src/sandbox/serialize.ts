/**
 * REST serialization (CONTRACT.md §6), applied to the engine's raw results. Batch returns them raw.
 * Money fields become 2-decimal strings when they are numbers (strings stay as they are); timestamps
 * become ISO-8601 UTC with +00:00; `total_cost`, `*_spend`, `*_cap` and the unix-float fields stay numbers.
 */
import { isoUtc } from './world.js';

const MONEY = new Set([
  'balance',
  'amount',
  'cost',
  'fee',
  'price',
  'charged',
  'total',
  'remaining',
  'spent',
  'cap',
  'used',
  'new_balance',
]);
/** High-precision fields (rates, conversion amounts): the plain decimal text of the number, not 2 places. */
const PRECISE = new Set(['rate', 'from_amount', 'to_amount']);
const TIMESTAMPS = new Set(['created_at', 'updated_at', 'timestamp', 'verified_at', 'expires_at']);

export function serializeRest(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(serializeRest);
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === 'number' && MONEY.has(k)) out[k] = v.toFixed(2);
    else if (typeof v === 'number' && PRECISE.has(k)) out[k] = Number.isInteger(v) ? `${v}.0` : String(v);
    else if (typeof v === 'number' && TIMESTAMPS.has(k)) out[k] = isoUtc(v * 1000);
    else out[k] = serializeRest(v);
  }
  return out;
}
