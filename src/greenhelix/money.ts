/**
 * Exact money. The gateway sends money as 2-decimal strings ("500.00"), as `str(Decimal)` ("50.0"),
 * or, through batch, as raw numbers. Everything is held as an integer count of cents so that a sum
 * of 312 escrows of $150 is exactly $46,800.00, never 46799.99999.
 */

/** An integer number of cents (1/100 of a CREDIT). */
export type Cents = number & { readonly __brand?: 'cents' };

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/**
 * Parses a decimal string or number into cents. Rejects more than 2 significant decimals
 * (CREDITS has 2) rather than rounding: losing a fraction silently is how ledgers drift.
 */
export function parseCents(value: string | number): Cents {
  const text = typeof value === 'number' ? numberToDecimalString(value) : value.trim();
  const match = DECIMAL.exec(text);
  if (!match) throw new RangeError(`not a decimal amount: ${JSON.stringify(value)}`);
  const [, sign, whole = '0', fraction = ''] = match;
  const significant = fraction.replace(/0+$/, '');
  if (significant.length > 2) throw new RangeError(`more than 2 decimals: ${JSON.stringify(value)}`);
  const cents = Number(whole) * 100 + Number(significant.padEnd(2, '0'));
  if (!Number.isSafeInteger(cents)) throw new RangeError(`amount out of range: ${JSON.stringify(value)}`);
  return (sign ? -cents : cents) as Cents;
}

function numberToDecimalString(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite amount: ${value}`);
  // Numbers from JSON like 150.1 print exactly as written; round to 8 places to drop binary noise.
  const text = String(Number(value.toFixed(8)));
  if (/e/i.test(text)) throw new RangeError(`amount out of range: ${value}`);
  return text;
}

/** Formats cents as the gateway's 2-decimal money string: 4680000 → "46800.00". */
export function formatCents(cents: Cents): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** Converts cents to a JSON number with at most 2 decimals (for fields the gateway sends as numbers). */
export function centsToNumber(cents: Cents): number {
  return Number(formatCents(cents));
}

export function sumCents(values: Iterable<Cents>): Cents {
  let total = 0;
  for (const v of values) total += v;
  return total as Cents;
}

/** The gateway's one currency: every amount a model or operator sees carries it. */
export const CURRENCY = 'CREDITS';

/** Money as a model or operator sees it: the exact decimal string and its currency. */
export interface Money {
  amount: string;
  currency: typeof CURRENCY;
}

/** 4680000 → `{amount: "46800.00", currency: "CREDITS"}`. */
export function money(cents: Cents): Money {
  return { amount: formatCents(cents), currency: CURRENCY };
}

/** 4680000 → `"46800.00 CREDITS"`, the one way amounts are written in text. */
export function moneyText(cents: Cents): string {
  return `${formatCents(cents)} ${CURRENCY}`;
}

/** A decimal string as the engine reports it ("46800.00") → Money; throws on a malformed amount. */
export function moneyOf(decimal: string): Money {
  return money(parseCents(decimal));
}

/**
 * Evidence as a model reads it: every `<name>_cents` number (at any depth) becomes `<name>` as Money, so
 * no amount reaches a model in cents. Other values are kept as they are.
 */
export function centsToMoney(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(centsToMoney);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k.endsWith('_cents') && (typeof v === 'number' || v === null)) {
      const name = k.slice(0, -'_cents'.length);
      out[name] = typeof v === 'number' && Number.isFinite(v) ? money(Math.round(v)) : null;
    } else out[k] = centsToMoney(v);
  }
  return out;
}
