/**
 * A recording HTTP proxy in front of the sandbox: it forwards every request unchanged and keeps each
 * request and response. `intercept` may act on a request instead (drop the connection after the
 * sandbox answered, do something first), which is how an unseen success is produced over real HTTP.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Captured {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The parsed JSON body, or undefined when there was none. */
  body: unknown;
  rawBody: string;
  status: number;
  response: unknown;
}

export interface Upstream {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
}

/** Return true when the request was handled (answered or dropped) by the interceptor. */
export type Intercept = (
  c: Pick<Captured, 'method' | 'path' | 'rawBody'>,
  res: ServerResponse,
  forward: () => Promise<Upstream>,
) => Promise<boolean>;

export interface RecordingProxy {
  url: string;
  log: Captured[];
  intercept: Intercept | undefined;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<RecordingProxy> {
  const t = new URL(target);
  const proxy: RecordingProxy = { url: '', log: [], intercept: undefined, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://proxy');
      const forward = () =>
        new Promise<Upstream>((resolve, reject) => {
          const up = httpRequest(
            { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
            (r) => {
              const out: Buffer[] = [];
              r.on('data', (c: Buffer) => out.push(c));
              r.on('end', () =>
                resolve({
                  status: r.statusCode ?? 0,
                  headers: r.headers,
                  text: Buffer.concat(out).toString('utf8'),
                }),
              );
            },
          );
          up.on('error', reject);
          up.end(rawBody);
        });
      const record = (u: Upstream) =>
        proxy.log.push({
          method: req.method ?? 'GET',
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          body: rawBody ? JSON.parse(rawBody) : undefined,
          rawBody,
          status: u.status,
          response: u.text ? JSON.parse(u.text) : undefined,
        });
      const tracked = async () => {
        const u = await forward();
        record(u);
        return u;
      };
      try {
        if (
          proxy.intercept &&
          (await proxy.intercept({ method: req.method ?? 'GET', path: url.pathname, rawBody }, res, tracked))
        )
          return;
        const u = await tracked();
        res.writeHead(u.status, u.headers);
        res.end(u.text);
      } catch {
        res.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}
