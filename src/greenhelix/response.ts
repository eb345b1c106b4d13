/**
 * Turns one HTTP exchange into a JSON value or a GreenHelixError, looking at the status and the
 * content type before touching the body: a proxy's HTML 502, an empty 503 or a truncated success
 * is a typed error, never a JSON.parse crash and never a zero.
 */
import { GreenHelixError } from './errors.js';
import { parseRetryAfter } from './retry.js';

export type Headers = Record<string, string | string[] | undefined>;

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** Codes for error responses that carry no problem document (a proxy answered, not the gateway). */
const BARE_STATUS_CODES: Record<number, string> = {
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
};

/**
 * The JSON body of a 2xx, or throws: `invalid_response` for a success that is not JSON; the problem
 * document's code for an RFC 9457 error; `bad_gateway`/`http_<status>` for an error without one.
 * Raw bodies stay out of the error (they may be anything); the caller logs an excerpt.
 */
export function interpret(res: RawResponse, ctx: { tool: string; requestId: string; now: number }): unknown {
  const requestId = header(res.headers, 'x-request-id') ?? ctx.requestId;
  const contentType = header(res.headers, 'content-type') ?? '';
  const isJson = JSON_TYPE.test(contentType);
  const base = { status: res.status, tool: ctx.tool, requestId };
  if (res.status >= 200 && res.status < 300) {
    if (!isJson)
      throw new GreenHelixError({
        ...base,
        code: 'invalid_response',
        detail: `expected a JSON body, got ${contentType || 'no content type'}`,
        retryable: false,
      });
    const parsed = parseJson(res.text);
    if (parsed === undefined)
      throw new GreenHelixError({
        ...base,
        code: 'invalid_response',
        detail: res.text ? 'the success body is not valid JSON' : 'the success body is empty',
        retryable: false,
      });
    return parsed;
  }
  const retryAfterMs = parseRetryAfter(header(res.headers, 'retry-after'), ctx.now);
  const retryAfterSeconds = retryAfterMs === undefined ? undefined : retryAfterMs / 1000;
  const problem = isJson ? asProblem(parseJson(res.text)) : undefined;
  if (problem)
    throw new GreenHelixError({
      ...base,
      code: problem.code ?? BARE_STATUS_CODES[res.status] ?? `http_${res.status}`,
      detail: problem.detail,
      retryAfterSeconds,
    });
  throw new GreenHelixError({
    ...base,
    code: BARE_STATUS_CODES[res.status] ?? `http_${res.status}`,
    detail: `HTTP ${res.status} with ${res.text ? `a ${contentType || 'untyped'} body` : 'an empty body'}, not a problem document`,
    retryAfterSeconds,
  });
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * RFC 9457: the gateway's code is the last segment of `type` with `-` for `_` (CONTRACT §3). A type
 * that is not a URL (`about:blank`) gives no code; the status then names the error.
 */
function asProblem(body: unknown): { code: string | undefined; detail: string } | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const p = body as { type?: unknown; title?: unknown; detail?: unknown };
  const type = typeof p.type === 'string' ? p.type : '';
  const segment = /^https?:\/\/[^?#]*\/([\w-]+)\/?$/.exec(type)?.[1];
  const detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : '';
  return { code: segment?.replace(/-/g, '_'), detail };
}
