/**
 * Every malformed message gets a JSON-RPC error, on both transports. The SDK drops a message its schema
 * rejects (`tools/call` with `params: null` got no answer at all, so the caller hung) and answers a
 * request whose params its handler rejects with -32603. This check runs before the SDK sees a message:
 * what cannot be a JSON-RPC message is -32600 (-32700 when it is not JSON), and a request for a method
 * we know whose params do not fit is -32602, with the request's id whenever it has a usable one.
 */
import {
  ClientRequestSchema,
  type JSONRPCMessage,
  JSONRPCMessageSchema,
  RequestIdSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { z } from 'zod';

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const INVALID_PARAMS = -32602;

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string };
}

export type Checked =
  | { ok: true; message: JSONRPCMessage }
  /** `reply` is undefined for a malformed notification or response: JSON-RPC answers neither. */
  | { ok: false; reply: JsonRpcErrorResponse | undefined; reason: string };

/** The params schema of each client request method the SDK knows, by method name. */
const REQUEST_SCHEMAS: ReadonlyMap<string, z.ZodType> = new Map(
  (ClientRequestSchema as unknown as { options: z.ZodObject[] }).options.map((schema) => [
    String((schema.shape.method as z.ZodLiteral).value),
    schema,
  ]),
);

export function errorResponse(
  id: string | number | null,
  code: number,
  message: string,
): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one parsed JSON value (not a batch) as a JSON-RPC message from a client. */
export function checkMessage(raw: unknown): Checked {
  const fail = (id: string | number | null, code: number, reason: string): Checked => ({
    ok: false,
    reply: errorResponse(id, code, reason),
    reason,
  });
  if (!isObject(raw)) return fail(null, INVALID_REQUEST, 'Invalid Request: a message is a JSON object');
  const hasId = 'id' in raw;
  const id = hasId && RequestIdSchema.safeParse(raw.id).success ? (raw.id as string | number) : null;
  if (hasId && id === null)
    return fail(null, INVALID_REQUEST, 'Invalid Request: id must be a string or an integer');
  if (raw.jsonrpc !== '2.0') return fail(id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"');
  if ('method' in raw) {
    const problem = requestProblem(raw);
    if (problem) {
      // A notification has no id to answer; JSON-RPC says to stay silent.
      if (!hasId) return { ok: false, reply: undefined, reason: problem.message };
      return fail(id, problem.code, problem.message);
    }
  } else if (!hasId) {
    return fail(
      null,
      INVALID_REQUEST,
      'Invalid Request: a message needs a method (or an id, for a response)',
    );
  }
  const parsed = JSONRPCMessageSchema.safeParse(raw);
  if (parsed.success) return { ok: true, message: parsed.data };
  const reason = `Invalid Request: ${describe(parsed.error)}`;
  // A malformed response (no method) is never answered: it would answer an answer.
  if (!('method' in raw)) return { ok: false, reply: undefined, reason };
  return hasId ? fail(id, INVALID_REQUEST, reason) : { ok: false, reply: undefined, reason };
}

function requestProblem(raw: Record<string, unknown>): { code: number; message: string } | undefined {
  if (typeof raw.method !== 'string' || raw.method.length === 0 || raw.method.length > 200)
    return { code: INVALID_REQUEST, message: 'Invalid Request: method must be a non-empty string' };
  if ('params' in raw && !isObject(raw.params))
    return {
      code: INVALID_PARAMS,
      message: `Invalid params for ${short(raw.method)}: params must be an object (got ${kind(raw.params)})`,
    };
  if (!('id' in raw)) return undefined;
  const schema = REQUEST_SCHEMAS.get(raw.method);
  if (!schema) return undefined;
  const parsed = schema.safeParse({ method: raw.method, params: raw.params });
  if (!parsed.success)
    return { code: INVALID_PARAMS, message: `Invalid params for ${raw.method}: ${describe(parsed.error)}` };
  // The SDK parses the URI with `new URL` and would answer -32603 for one that is not a URI.
  if (raw.method === 'resources/read' && !URL.canParse(String((raw.params as { uri: string }).uri)))
    return { code: INVALID_PARAMS, message: 'Invalid params for resources/read: uri is not a URI' };
  return undefined;
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'does not match the schema';
  const where = issue.path.length ? `${issue.path.map(String).join('.')}: ` : '';
  return `${where}${issue.message}`.slice(0, 300);
}

const short = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s);

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/** The answer to a line that is not JSON: id null, since JSON-RPC forbids guessing one. */
export function parseError(bytes: number): JsonRpcErrorResponse {
  return errorResponse(null, PARSE_ERROR, `Parse error: not JSON (${bytes} bytes)`);
}
