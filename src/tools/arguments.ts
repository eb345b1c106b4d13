/**
 * What a model reads when its arguments do not fit: the field, what is wrong, the names the tool accepts
 * and, for a near miss (`dryRun`, `agent_id` for `agent_ids`), the name it meant. Unknown keys are
 * refused, never dropped: a dropped `dryRun` runs a real containment.
 */
import { z } from 'zod';
import { ToolError } from '../util/errors.js';

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

/** The keys the object schema at `path` accepts (through optional, default and nullable wrappers). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let node: z.ZodType | undefined = schema;
  for (const part of [...path, null]) {
    while (node instanceof z.ZodOptional || node instanceof z.ZodNullable || node instanceof z.ZodDefault)
      node = node.def.innerType as z.ZodType;
    if (part === null) break;
    if (node instanceof z.ZodObject) node = node.shape[String(part)] as z.ZodType | undefined;
    else if (node instanceof z.ZodArray) node = node.element as z.ZodType;
    else return [];
  }
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}

const quote = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
const where = (path: readonly PropertyKey[]) => path.map(String).join('.');

/** A ToolError naming each problem in `error`, with the accepted names of the object that has an unknown key. */
export function invalidArguments(toolName: string, input: z.ZodType, error: z.ZodError): ToolError {
  const problems: string[] = [];
  let accepted: { path: string; keys: string[] } | undefined;
  for (const issue of error.issues.slice(0, 5)) {
    if (issue.code === 'unrecognized_keys') {
      const keys = keysAt(input, issue.path);
      accepted ??= { path: where(issue.path), keys };
      for (const key of issue.keys.slice(0, 5)) {
        const name = issue.path.length ? `${where(issue.path)}.${key}` : key;
        const guess = nearMiss(key, keys);
        problems.push(`unknown argument ${quote(name)}${guess ? ` (did you mean ${quote(guess)}?)` : ''}`);
      }
    } else {
      problems.push(`${issue.path.length ? where(issue.path) : 'arguments'}: ${issue.message}`);
    }
  }
  const top = keysAt(input, []);
  const list = accepted ?? { path: '', keys: top };
  const names = list.keys.length
    ? `${toolName}${list.path ? ` ${list.path}` : ''} accepts: ${list.keys.join(', ')}.`
    : `${toolName} takes no arguments: call it with {}.`;
  return new ToolError(
    'invalid_arguments',
    `Invalid arguments for ${toolName}: ${problems.join('; ')}. Nothing was done.`,
    false,
    `${names} Fix the arguments and call again.`,
  );
}

/** A ToolError for a tool this server does not list, with the nearest name and every listed one. */
export function unknownTool(name: string, known: readonly string[]): ToolError {
  const guess = nearMiss(name, known);
  return new ToolError(
    'unknown_tool',
    `No tool ${quote(name)} on this server${guess ? ` (did you mean ${quote(guess)}?)` : ''}.`,
    false,
    `The tools here: ${known.join(', ')}.`,
  );
}
