/**
 * Streamable HTTP transport for supervisors calling over the network (loopback by default).
 *
 * Every request needs `Authorization: Bearer <INCIDENT_HTTP_TOKEN>` (compared in constant time) and a
 * browser `Origin` must be on the allow list, so a web page cannot drive containment through a user's
 * machine (DNS rebinding). One MCP session per client; all sessions share one engine.
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
import type { Logger } from './logger.js';
import type { Ops } from './runbooks/ops.js';
import { createServer } from './server.js';

const MAX_BODY = 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function reject(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

export interface HttpServerHandle {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startHttpServer(opts: {
  ops: Ops;
  logger: Logger;
  host: string;
  port: number;
  token: string;
  allowedOrigins: string[];
}): Promise<HttpServerHandle> {
  const { ops, logger, token, allowedOrigins } = opts;
  const sessions = new Map<
    string,
    { transport: StreamableHTTPServerTransport; close: () => Promise<void> }
  >();

  const server = createHttpServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/mcp') return reject(res, 404, 'Not found: the MCP endpoint is /mcp');
      // DNS rebinding: on loopback, a request whose Host names another site came through a browser.
      const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      if (LOOPBACK.has(opts.host) && !LOOPBACK.has(hostHeader))
        return reject(res, 403, `Host ${hostHeader || '(none)'} is not allowed`);
      const origin = req.headers.origin;
      if (origin && !allowedOrigins.includes(origin))
        return reject(res, 403, `Origin ${origin} is not allowed`);
      const auth = req.headers.authorization ?? '';
      const m = /^bearer\s+(.+)$/i.exec(auth.trim());
      if (!m || !sameToken(m[1]!.trim(), token)) {
        res.setHeader('www-authenticate', 'Bearer');
        return reject(res, 401, 'Missing or wrong bearer token (INCIDENT_HTTP_TOKEN)');
      }
      const sessionId = req.headers['mcp-session-id'];
      const existing = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
      if (req.method === 'POST') {
        let body: unknown;
        try {
          body = await readJson(req);
        } catch (e) {
          return reject(res, 400, `Bad request body: ${(e as Error).message}`);
        }
        if (existing) return void (await existing.transport.handleRequest(req, res, body));
        if (!isInitializeRequest(body))
          return reject(res, 400, 'No valid session: send initialize first, then the mcp-session-id header');
        const { server: mcp, close } = createServer({ ops, logger });
        const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            sessions.set(id, { transport, close });
          },
        });
        await mcp.connect(transport);
        // After connect (which installs the server's own handler): forget the session and stop sending it alerts.
        const onclose = transport.onclose;
        transport.onclose = () => {
          onclose?.();
          if (transport.sessionId) sessions.delete(transport.sessionId);
          void close().catch(() => undefined);
        };
        return void (await transport.handleRequest(req, res, body));
      }
      if (!existing) return reject(res, 400, 'Unknown or missing mcp-session-id');
      await existing.transport.handleRequest(req, res);
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'http transport error');
      if (!res.headersSent) reject(res, 500, 'internal error');
    }
  });
  server.requestTimeout = 0;
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
    close: async () => {
      for (const s of sessions.values()) await s.close().catch(() => undefined);
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
