/**
 * The sandbox's HTTP layer: the gateway's routes, status codes, problem+json errors and headers, fault
 * injection, the request log, and the `/_sandbox/` control API (bearer control token).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { problemTypeFor } from '../greenhelix/errors.js';
import { ROUTES, type ToolName } from '../greenhelix/routes.js';
import { type Caller, type Engine, GatewayError } from './engine.js';
import { serializeRest } from './serialize.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  428: 'Precondition Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
const MAX_BODY = 1024 * 1024;

export interface Faults {
  latencyMs: number;
  jitterMs: number;
  errorRate: number;
  rateLimitStorm: boolean;
  timeoutRate: number;
  /** How long a request injected as a timeout is held before the 504. */
  timeoutMs: number;
  /**
   * The await inside the gateway's escrow refund, between its status check and its status update (a
   * deposit and a commit on the real one), in sandbox ms. Concurrent cancels of one escrow that overlap
   * it both refund.
   */
  refundWindowMs: number;
}

export interface RequestLogEntry {
  seq: number;
  method: string;
  path: string;
  /** The raw query string (without `?`), '' when none. */
  query: string;
  tool: string | null;
  caller: string | null;
  /** The User-Agent header (first 200 characters), null when none: which client (or replica) sent it. */
  client: string | null;
  status: number;
  /** Sandbox time (scaled, or frozen at time scale 0). */
  at: number;
  /** Wall-clock time the request arrived, ms: how far apart two clients' requests really were. */
  received_at: number;
}

export interface ControlHandlers {
  handle(
    method: string,
    path: string,
    body: unknown,
    query: URLSearchParams,
  ): { status: number; body: unknown };
}

interface CompiledRoute {
  tool: ToolName;
  method: string;
  regex: RegExp;
  names: string[];
}

const COMPILED: CompiledRoute[] = Object.values(ROUTES).map((r) => {
  const names: string[] = [];
  const pattern = r.path.replace(/\{(\w+)\}/g, (_, n: string) => {
    names.push(n);
    return '([^/]+)';
  });
  return { tool: r.tool as ToolName, method: r.method, regex: new RegExp(`^${pattern}$`), names };
});

export interface SandboxHttpOptions {
  engine: Engine;
  faults: Faults;
  controlToken: string;
  control: ControlHandlers;
  now: () => number;
  random: () => number;
  log: RequestLogEntry[];
  /** Sandbox ms per real ms (0: time moves only by advance()). */
  timeScale?: number;
  /** Per client IP, the times of its calls to the public endpoints (the gateway's PublicRateLimiter). */
  publicCalls?: Map<string, number[]>;
}

/** /v1/health and /v1/pricing are limited per client IP: 1 000 an hour, with X-RateLimit-* headers. */
const PUBLIC_LIMIT = 1_000;
const PUBLIC_WINDOW_MS = 3_600_000;

function sameToken(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function createSandboxServer(o: SandboxHttpOptions): Server {
  const server = createServer((req, res) => {
    handle(o, req, res).catch((e) => {
      if (!res.headersSent)
        problem(res, req, randomUUID(), new GatewayError(500, 'internal_error', (e as Error).message));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  return server;
}

function problem(res: ServerResponse, req: IncomingMessage, requestId: string, e: GatewayError): void {
  if (e.bare) res.removeHeader('x-request-id');
  const body = JSON.stringify({
    type: problemTypeFor(e.code),
    title: STATUS_TEXT[e.status] ?? 'Error',
    status: e.status,
    detail: e.detail,
    instance: (req.url ?? '/').split('?')[0],
  });
  res.writeHead(e.status, {
    'content-type': 'application/problem+json',
    ...(e.bare ? {} : { 'x-request-id': requestId }),
    ...e.headers,
  });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new GatewayError(413, 'payload_too_large', 'Request body exceeds 1 MiB');
    chunks.push(c as Buffer);
  }
  if (size === 0) return undefined;
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new GatewayError(422, 'validation_error', 'body: JSON decode error');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function handle(o: SandboxHttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId =
    (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].slice(0, 200)) ||
    randomUUID();
  res.setHeader('x-request-id', requestId);
  const method = req.method ?? 'GET';
  const rawUrl = req.url ?? '/';
  const entry: RequestLogEntry = {
    seq: o.log.length + 1,
    method,
    path: rawUrl.split('?')[0] ?? '/',
    query: rawUrl.includes('?') ? rawUrl.slice(rawUrl.indexOf('?') + 1) : '',
    tool: null,
    caller: null,
    client: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'].slice(0, 200) : null,
    status: 0,
    at: o.now(),
    received_at: Date.now(),
  };
  o.log.push(entry);
  const done = (status: number) => {
    entry.status = status;
  };
  try {
    if (/%2f|%5c/i.test(rawUrl.split('?')[0] ?? ''))
      throw new GatewayError(400, 'encoded_path_separator', 'Encoded path separators are not allowed');
    let url: URL;
    let segments: string[];
    try {
      url = new URL(rawUrl, 'http://sandbox');
      segments = url.pathname.split('/').map((s) => decodeURIComponent(s));
    } catch {
      throw new GatewayError(400, 'bad_request', 'Malformed URL encoding');
    }
    if (segments.some((s) => s.length > 128))
      throw new GatewayError(400, 'path_too_long', 'A path segment exceeds 128 characters');
    const path = url.pathname;

    if (path.startsWith('/_sandbox/') || path === '/_sandbox') {
      const auth = /^bearer\s+(.+)$/i.exec((req.headers.authorization ?? '').trim());
      if (!auth || !sameToken(auth[1]!.trim(), o.controlToken))
        throw new GatewayError(
          401,
          'missing_key',
          'The control API needs Authorization: Bearer <control_token>',
        );
      const body = await readBody(req);
      const r = o.control.handle(method, path.slice('/_sandbox'.length), body, url.searchParams);
      json(res, r.status, r.body, {});
      return done(r.status);
    }
    // Dead before auth, with the deprecation headers.
    if (path === '/v1/execute') {
      throw new GatewayError(
        410,
        'endpoint_removed',
        'POST /v1/execute was removed; use the per-domain REST routes or /v1/batch',
        {
          deprecation: 'true',
          sunset: 'Thu, 01 Oct 2026 00:00:00 GMT',
          link: '<https://api.greenhelix.net/docs/migration>; rel="sunset"',
        },
      );
    }
    if (method === 'GET' && (path === '/v1/health' || path === '/v1/pricing')) {
      const limits = publicRateLimit(o, req);
      const body =
        path === '/v1/health'
          ? { status: 'ok', version: '1.4.8' }
          : {
              tools: Object.keys(ROUTES).map((t) => ({
                name: t,
                per_call: t === 'create_escrow' ? null : 0,
              })),
            };
      json(res, 200, body, limits);
      return done(200);
    }

    // Fault injection applies to the gateway routes, never to the control API.
    const f = o.faults;
    const delay = f.latencyMs + (f.jitterMs ? o.random() * f.jitterMs : 0);
    if (delay > 0) await sleep(delay);
    if (f.timeoutRate > 0 && o.random() < f.timeoutRate) {
      await sleep(f.timeoutMs);
      throw new GatewayError(504, 'request_timeout', 'Upstream request timed out');
    }
    if (f.errorRate > 0 && o.random() < f.errorRate)
      throw new GatewayError(503, 'service_error', 'Injected service error');
    if (f.rateLimitStorm) throw new GatewayError(429, 'rate_limit_exceeded', 'Rate limit exceeded; back off');

    if (method === 'POST' && path === '/v1/register') {
      const body = (await readBody(req)) as { agent_id?: unknown } | undefined;
      const r = o.control.handle('POST', '/public-register', body, url.searchParams);
      json(res, r.status, r.body, {});
      return done(r.status);
    }
    const key = bearer(req);
    if (method === 'GET' && path === '/v1/events/stream') {
      const caller = o.engine.authenticate(key, 'batch');
      entry.caller = caller.agentId;
      streamEvents(o, req, res, url.searchParams);
      return done(200);
    }
    if (method === 'POST' && path === '/v1/batch') {
      const body = (await readBody(req)) as { calls?: unknown } | undefined;
      const caller = o.engine.authenticate(key, 'batch');
      entry.caller = caller.agentId;
      entry.tool = 'batch';
      const results = await runBatch(o, caller, body, requestId);
      json(res, 200, { results }, o.engine.rateHeaders(caller));
      return done(200);
    }
    // Non-admins list their own keys here (the /v1/infra/keys route is admin-only).
    if (method === 'GET' && path === '/v1/billing/keys') {
      const caller = o.engine.authenticate(key, 'rest');
      entry.caller = caller.agentId;
      const headers: Record<string, string> = {};
      json(res, 200, serializeRest(o.engine.ownKeys(caller, headers)), headers);
      return done(200);
    }
    const match = matchRoute(method, path);
    if (!match) throw new GatewayError(404, 'http_error', `No route ${method} ${path}`);
    entry.tool = match.tool;
    const caller = o.engine.authenticate(key, 'rest');
    entry.caller = caller.agentId;
    if (o.now() - caller.key.createdAt > 90 * 86_400_000)
      res.setHeader('x-key-age-warning', 'API key is older than 90 days; rotate it');
    const body = method === 'GET' || method === 'DELETE' ? undefined : await readBody(req);
    if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
      throw new GatewayError(422, 'validation_error', 'body: Input should be a valid dictionary');
    const spec = ROUTES[match.tool];
    const bodyFields = new Set([...spec.body, ...Object.keys(spec.bodyAliases ?? {})]);
    for (const k of Object.keys((body as Record<string, unknown> | undefined) ?? {})) {
      // Every request model rejects unknown fields, including a path parameter repeated in the body.
      if (!bodyFields.has(k))
        throw new GatewayError(422, 'validation_error', `body.${k}: Extra inputs are not permitted`);
    }
    const params: Record<string, unknown> = { ...(body as Record<string, unknown> | undefined) };
    // FastAPI ignores query parameters a route does not declare (only bodies forbid extra fields).
    for (const [k, v] of url.searchParams) if (ROUTES[match.tool].query.includes(k)) params[k] = v;
    Object.assign(params, match.params);
    const idem = req.headers['idempotency-key'];
    const rot = req.headers['x-rotate-confirmation'];
    const r = await o.engine.dispatchAsync(
      caller,
      match.tool,
      params,
      {
        via: 'rest',
        requestId,
        idempotencyKey: typeof idem === 'string' ? idem : undefined,
        rotateConfirmation: typeof rot === 'string' ? rot : undefined,
      },
      () => refundWindow(o),
    );
    const headers = { ...r.headers };
    if (r.status === 201 && r.body && typeof r.body === 'object' && 'id' in r.body)
      headers.location = `${path}/${String((r.body as { id: unknown }).id)}`;
    json(res, r.status, serializeRest(r.body), headers);
    return done(r.status);
  } catch (e) {
    const err = e instanceof GatewayError ? e : new GatewayError(500, 'internal_error', (e as Error).message);
    problem(res, req, requestId, err);
    return done(err.status);
  }
}

function bearer(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1]!.trim();
  }
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && x.trim() ? x.trim() : undefined;
}

function matchRoute(
  method: string,
  path: string,
): { tool: ToolName; params: Record<string, string> } | undefined {
  let pathMatched = false;
  for (const r of COMPILED) {
    const m = r.regex.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    const params: Record<string, string> = {};
    r.names.forEach((n, i) => {
      params[n] = decodeURIComponent(m[i + 1]!);
    });
    return { tool: r.tool, params };
  }
  if (pathMatched)
    throw new GatewayError(405 as number, 'http_error', `Method ${method} not allowed on ${path}`);
  return undefined;
}

/**
 * POST /v1/batch: at most 10 calls, run in order; per-call errors carry no HTTP status. The response has
 * the X-RateLimit-* headers of the key's own tier (set by the caller).
 */
async function runBatch(
  o: SandboxHttpOptions,
  caller: Caller,
  body: unknown,
  requestId: string,
): Promise<unknown[]> {
  const engine = o.engine;
  const calls = (body as { calls?: unknown } | undefined)?.calls;
  if (!Array.isArray(calls))
    throw new GatewayError(422, 'validation_error', 'body.calls: Field required (a list of {tool, params})');
  if (calls.length > 10) throw new GatewayError(400, 'batch_too_large', 'At most 10 calls per batch');
  // The rate limit is checked once per batch (a 429 for the whole batch); each call is still recorded.
  engine.checkRate(caller);
  const results: unknown[] = [];
  for (const [i, c] of calls.entries()) {
    const call = c as { tool?: unknown; params?: unknown };
    const tool = String(call.tool ?? '');
    if (!Object.hasOwn(ROUTES, tool)) {
      results.push({ success: false, error: { code: 'unknown_tool', message: `Unknown tool: ${tool}` } });
      continue;
    }
    try {
      const params =
        call.params && typeof call.params === 'object' ? (call.params as Record<string, unknown>) : {};
      const r = await engine.dispatchAsync(
        caller,
        tool as ToolName,
        params,
        { via: 'batch', requestId: `${requestId}:${i}`, skipRateCheck: true },
        () => refundWindow(o),
      );
      results.push({ success: true, result: r.body });
    } catch (e) {
      const err =
        e instanceof GatewayError ? e : new GatewayError(500, 'internal_error', (e as Error).message);
      results.push({ success: false, error: { code: err.code, message: err.detail } });
    }
  }
  return results;
}

/**
 * One await inside the gateway's refund: up to twice Faults.refundWindowMs (a database round trip varies),
 * in sandbox time (a drill at 600× must not spend 600× as long refunding), and at least one turn of the
 * event loop.
 */
function refundWindow(o: SandboxHttpOptions): Promise<void> {
  const scale = o.timeScale ?? 0;
  const base = 2 * o.faults.refundWindowMs * Math.random();
  const ms = scale > 0 ? base / scale : base;
  return ms >= 1 ? sleep(ms) : new Promise((r) => setImmediate(r));
}

/** The gateway's PublicRateLimiter: per client IP, 1 000 calls a rolling hour, 429 with Retry-After past it. */
function publicRateLimit(o: SandboxHttpOptions, req: IncomingMessage): Record<string, string> {
  const now = o.now();
  const ip = req.socket.remoteAddress ?? 'unknown';
  o.publicCalls ??= new Map();
  const times = (o.publicCalls.get(ip) ?? []).filter((t) => t > now - PUBLIC_WINDOW_MS);
  o.publicCalls.set(ip, times);
  if (times.length >= PUBLIC_LIMIT) {
    const retryAfter = String(Math.max(1, Math.ceil((times[0]! + PUBLIC_WINDOW_MS - now) / 1000)));
    throw new GatewayError(429, 'rate_limit_exceeded', 'Too many requests. Please retry later.', {
      'retry-after': retryAfter,
      'x-ratelimit-limit': String(PUBLIC_LIMIT),
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': retryAfter,
    });
  }
  times.push(now);
  return {
    'x-ratelimit-limit': String(PUBLIC_LIMIT),
    'x-ratelimit-remaining': String(Math.max(0, PUBLIC_LIMIT - times.length)),
    'x-ratelimit-reset': String(Math.max(1, Math.ceil((PUBLIC_WINDOW_MS - (now % PUBLIC_WINDOW_MS)) / 1000))),
  };
}

/**
 * GET /v1/events/stream (SSE): `id:`/`data:` lines for bus events after `since_id` (or Last-Event-ID),
 * filtered by `event_type` and by `agent_id` (which matches `source`), a heartbeat every 5 s, a poll of
 * the bus every 1 s, closed after an hour, as the gateway does.
 */
function streamEvents(
  o: SandboxHttpOptions,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
): void {
  const lastEventId = Number(req.headers['last-event-id'] ?? Number.NaN);
  let cursor = Number.isFinite(lastEventId) ? lastEventId : Number(q.get('since_id') ?? 0) || 0;
  const type = q.get('event_type');
  const source = q.get('agent_id');
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.flushHeaders();
  const flush = () => {
    for (const e of o.engine.world.events) {
      if (e.id <= cursor) continue;
      cursor = e.id;
      if ((type && e.event_type !== type) || (source && e.source !== source)) continue;
      res.write(`id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`);
    }
  };
  flush();
  const poll = setInterval(flush, 1_000);
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 5_000);
  const stop = () => {
    clearInterval(poll);
    clearInterval(heartbeat);
    clearTimeout(hour);
    if (!res.writableEnded) res.end();
  };
  const hour = setTimeout(stop, 3_600_000);
  hour.unref();
  req.on('close', stop);
}
