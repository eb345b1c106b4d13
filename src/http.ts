/**
 * Streamable HTTP transport for supervisors calling over the network (loopback by default).
 *
 * Every request needs `Authorization: Bearer <token>` (one of the configured tokens, compared in constant
 * time) and a browser `Origin` must be on the allow list, so a web page cannot drive containment through a
 * user's machine (DNS rebinding). One MCP session per client; all sessions share one engine.
 *
 * Sessions are bounded: at most `maxSessions` at once, each closed after `sessionIdleMs` without a request
 * (which detaches its alert notifier), and each answers only the token that created it: another token's
 * holder gets 404, as for a session that does not exist. A body must arrive within `bodyTimeoutMs`.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import {
  checkMessage,
  errorResponse,
  INVALID_REQUEST,
  type JsonRpcErrorResponse,
  parseError,
} from './jsonrpc.js';
import type { Logger } from './logger.js';
import type { Ops } from './runbooks/ops.js';
import { createServer } from './server.js';

const MAX_BODY = 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export const HTTP_DEFAULTS = { maxSessions: 100, sessionIdleMs: 15 * 60_000, bodyTimeoutMs: 10_000 } as const;

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The digest of the configured token `given` matches, or undefined. Every token is compared, in constant time. */
function matchToken(given: string, tokens: readonly Buffer[]): Buffer | undefined {
  const a = digest(given);
  let hit: Buffer | undefined;
  for (const t of tokens) if (timingSafeEqual(a, t)) hit = t;
  return hit;
}

function reply(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function reject(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  reply(res, status, errorResponse(null, -32000, message), headers);
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Reads the whole body, or fails: larger than MAX_BODY (413), not complete within `deadlineMs` (408). */
function readBody(req: IncomingMessage, deadlineMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: BodyError | null) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) finish(new BodyError(413, `the body is larger than ${MAX_BODY} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onError = (e: Error) => finish(new BodyError(400, e.message));
    const timer = setTimeout(
      () => finish(new BodyError(408, `the body did not arrive within ${deadlineMs} ms`)),
      deadlineMs,
    );
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** A malformed message's JSON-RPC answer: with its id (HTTP 200) when it has one, else HTTP 400. */
function malformed(body: unknown): JsonRpcErrorResponse | undefined {
  const messages = Array.isArray(body) ? body : [body];
  if (messages.length === 0) return errorResponse(null, INVALID_REQUEST, 'Invalid Request: an empty batch');
  for (const m of messages) {
    const checked = checkMessage(m);
    if (!checked.ok)
      return Array.isArray(body) || !checked.reply
        ? errorResponse(null, checked.reply?.error.code ?? INVALID_REQUEST, checked.reason)
        : checked.reply;
  }
  return undefined;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  close: () => Promise<void>;
  /** Digest of the token that created the session: the only one it answers. */
  token: Buffer;
  lastSeen: number;
  /** Requests still open (an SSE stream stays open): a session with one is never idle. */
  open: number;
}

export interface HttpServerHandle {
  url: string;
  server: Server;
  /** How many MCP sessions are open. */
  sessions(): number;
  close(): Promise<void>;
}

export interface HttpServerOptions {
  ops: Ops;
  logger: Logger;
  host: string;
  port: number;
  /** Accepted bearer tokens (at least one). */
  tokens: readonly string[];
  allowedOrigins: string[];
  maxSessions?: number;
  sessionIdleMs?: number;
  bodyTimeoutMs?: number;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const { ops, logger, allowedOrigins } = opts;
  if (opts.tokens.length === 0) throw new Error('startHttpServer needs at least one token');
  const tokens = opts.tokens.map(digest);
  const maxSessions = opts.maxSessions ?? HTTP_DEFAULTS.maxSessions;
  const idleMs = opts.sessionIdleMs ?? HTTP_DEFAULTS.sessionIdleMs;
  const bodyMs = opts.bodyTimeoutMs ?? HTTP_DEFAULTS.bodyTimeoutMs;
  const sessions = new Map<string, Session>();
  /** Sessions being opened (initialize in progress), counted against the cap. */
  let opening = 0;

  const expireIdle = () => {
    const now = Date.now();
    for (const [id, s] of sessions) {
      if (s.open > 0 || now - s.lastSeen < idleMs) continue;
      sessions.delete(id);
      logger.info({ session: id.slice(0, 8), idle_ms: now - s.lastSeen }, 'http session expired');
      void s.transport.close().catch(() => undefined);
    }
  };
  const sweeper = setInterval(expireIdle, Math.max(50, Math.min(idleMs / 2, 30_000)));
  sweeper.unref();

  const track = (s: Session, res: ServerResponse) => {
    s.open++;
    s.lastSeen = Date.now();
    res.once('close', () => {
      s.open--;
      s.lastSeen = Date.now();
    });
  };

  const openSession = async (token: Buffer, req: IncomingMessage, res: ServerResponse, body: unknown) => {
    if (sessions.size + opening >= maxSessions) expireIdle();
    if (sessions.size + opening >= maxSessions) {
      logger.warn({ sessions: sessions.size, max: maxSessions }, 'http session refused: at the cap');
      return reject(
        res,
        503,
        `Too many sessions (${maxSessions}): close one (DELETE with its mcp-session-id) or wait; idle sessions close after ${Math.round(idleMs / 1000)} s`,
        { 'retry-after': String(Math.max(1, Math.ceil(Math.min(idleMs, 60_000) / 1000))) },
      );
    }
    opening++;
    const { server: mcp, close } = createServer({ ops, logger });
    let closed = false;
    const closeOnce = async () => {
      if (closed) return;
      closed = true;
      await close().catch(() => undefined);
    };
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        const s: Session = { transport, close: closeOnce, token, lastSeen: Date.now(), open: 0 };
        sessions.set(id, s);
        track(s, res);
      },
    });
    try {
      await mcp.connect(transport);
      // After connect (which installs the server's own handler): forget the session and stop sending it alerts.
      const onclose = transport.onclose;
      transport.onclose = () => {
        onclose?.();
        if (transport.sessionId) sessions.delete(transport.sessionId);
        void closeOnce();
      };
      await transport.handleRequest(req, res, body);
    } finally {
      opening--;
      // An initialize that failed never became a session: release its server (and its notifier) now.
      if (!transport.sessionId || !sessions.has(transport.sessionId)) await closeOnce();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/mcp') return reject(res, 404, 'Not found: the MCP endpoint is /mcp');
    // DNS rebinding: on loopback, a request whose Host names another site came through a browser.
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    if (LOOPBACK.has(opts.host) && !LOOPBACK.has(hostHeader))
      return reject(res, 403, `Host ${hostHeader || '(none)'} is not allowed`);
    const origin = req.headers.origin;
    if (origin && !allowedOrigins.includes(origin))
      return reject(res, 403, `Origin ${origin} is not allowed`);
    const m = /^bearer\s+(.+)$/i.exec((req.headers.authorization ?? '').trim());
    const token = m ? matchToken(m[1]!.trim(), tokens) : undefined;
    if (!token) {
      res.setHeader('www-authenticate', 'Bearer');
      return reject(res, 401, 'Missing or wrong bearer token (INCIDENT_HTTP_TOKEN)');
    }
    const sessionId = req.headers['mcp-session-id'];
    const found = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    // Another token's session is answered as one that does not exist: its id is not proof of anything.
    const existing = found && timingSafeEqual(found.token, token) ? found : undefined;
    if (sessionId !== undefined && !existing)
      return reject(res, 404, 'Session not found: it expired, was closed, or belongs to another token');
    if (req.method === 'POST') {
      let text: string;
      try {
        text = (await readBody(req, bodyMs)).toString('utf8');
      } catch (e) {
        const status = e instanceof BodyError ? e.status : 400;
        return reject(res, status, `Bad request body: ${(e as Error).message}`, { connection: 'close' });
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return reply(res, 400, parseError(Buffer.byteLength(text)));
      }
      const bad = malformed(body);
      if (bad) return reply(res, bad.id === null ? 400 : 200, bad);
      if (existing) {
        track(existing, res);
        return void (await existing.transport.handleRequest(req, res, body));
      }
      if (!isInitializeRequest(body))
        return reject(res, 400, 'No valid session: send initialize first, then the mcp-session-id header');
      return openSession(token, req, res, body);
    }
    if (!existing) return reject(res, 400, 'Missing mcp-session-id');
    track(existing, res);
    await existing.transport.handleRequest(req, res);
  };

  const server = createHttpServer(
    {
      // Slow clients: the headers within the body deadline, the whole request within twice it.
      headersTimeout: bodyMs,
      requestTimeout: bodyMs * 2,
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, bodyMs / 4)),
    },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        logger.error({ err: (e as Error).message }, 'http transport error');
        if (!res.headersSent) reject(res, 500, 'internal error');
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/mcp`,
    server,
    sessions: () => sessions.size,
    close: async () => {
      clearInterval(sweeper);
      for (const s of [...sessions.values()]) await s.transport.close().catch(() => undefined);
      for (const s of sessions.values()) await s.close();
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
