/** Suggestions for a misspelt name: a tool argument, a tool, a threshold. */

/** The closest of `candidates` to `name`, when it is close enough to be a slip (case, separators, a letter or two). */
export function nearMiss(name: string, candidates: readonly string[]): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const exact = candidates.find((c) => plain(c) === plain(name));
  if (exact) return exact;
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const [a, b] = [plain(name), plain(c)];
    const d = editDistance(a, b);
    // A suffix added or dropped (`payee_id` for `payee`) is a slip too, when the rest is a whole word.
    const affix = Math.min(a.length, b.length) >= 4 && (a.startsWith(b) || b.startsWith(a));
    const close = d <= Math.max(1, Math.min(3, Math.floor(b.length / 4))) || (affix && d <= 3);
    if (close && (!best || d < best.d)) best = { c, d };
  }
  return best?.c;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || a.length > 64 || b.length > 64) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
