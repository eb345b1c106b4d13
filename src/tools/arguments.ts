/**
 * What a model reads when its arguments do not fit: the field, what is wrong, the names the tool accepts
 * and, for a near miss (`dryRun`, `agent_id` for `agent_ids`), the name it meant. Unknown keys are
 * refused, never dropped: a dropped `dryRun` runs a real containment.
 */
import { z } from 'zod';
import { ToolError } from '../util/errors.js';
import { nearMiss } from '../util/near-miss.js';

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
  const list = accepted?.keys.length ? accepted : { path: '', keys: keysAt(input, []) };
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
