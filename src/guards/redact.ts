/**
 * Text from the gateway (descriptions, payloads, error details) is data written by whoever called the
 * gateway, possibly a compromised agent. It is returned length-limited and stripped of control
 * characters, never as instructions, and keys never appear in clear.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function untrustedText(value: unknown, maxLen = 500): string {
  const text =
    typeof value === 'string'
      ? value
      : value === undefined || value === null
        ? ''
        : (JSON.stringify(value) ?? '');
  const clean = text.replace(CONTROL, '');
  return clean.length > maxLen
    ? `${clean.slice(0, maxLen)}… [truncated ${clean.length - maxLen} chars]`
    : clean;
}

export function sanitizeGatewayData(
  value: unknown,
  opts: { maxString?: number; maxDepth?: number; maxArray?: number } = {},
  depth = 0,
): unknown {
  const { maxString = 500, maxDepth = 6, maxArray = 100 } = opts;
  if (typeof value === 'string') return untrustedText(value, maxString);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= maxDepth) return '[nested too deep]';
  if (Array.isArray(value)) {
    const items = value.slice(0, maxArray).map((v) => sanitizeGatewayData(v, opts, depth + 1));
    return value.length > maxArray ? [...items, `[${value.length - maxArray} more]`] : items;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, maxArray))
    out[untrustedText(k, 100)] = sanitizeGatewayData(v, opts, depth + 1);
  return out;
}

/** `a2a_pro_0123456789abcdef01234567` → `a2a_pro_…4567`. */
export function redactKey(key: string | undefined): string {
  if (!key) return '(none)';
  const m = /^(a2a_[a-z]+_)/.exec(key);
  return `${m?.[1] ?? ''}…${key.slice(-4)}`;
}
