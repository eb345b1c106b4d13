/**
 * A gateway time to epoch milliseconds. REST sends ISO-8601 strings; batch and some fields send unix
 * seconds as floats; anything unparseable is undefined, never "now".
 */
export function toEpochMs(v: string | number | null | undefined): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'number') return v < 1e12 ? v * 1000 : v;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}
