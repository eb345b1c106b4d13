/**
 * HTTP mode's limits (issue 9, finding 6; finding 7 over HTTP): a cap on sessions, idle expiry that
 * releases each session's alert notifier, a deadline on slow headers and bodies, a session bound to the
 * token that created it, and a JSON-RPC error for every malformed message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type HttpServerHandle, startHttpServer } from '../src/http.js';
import { silentLogger } from '../src/logger.js';
import { type Sandbox, startSandbox } from '../src/sandbox/index.js';

const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';
const IDLE_MS = 400;
const BODY_MS = 500;

let sandbox: Sandbox;
let app: App;
let http: HttpServerHandle;
let dataDir: string;
/** Alert notifiers attached and not yet detached: one per live MCP server. */
let liveNotifiers = 0;

beforeAll(async () => {
  sandbox = await startSandbox({ agents: 2, seed: 5, timeScale: 0, autoStartTraffic: false });
  dataDir = mkdtempSync(join(tmpdir(), 'aim-http-'));
  const config = loadConfig({
    env: {},
    flags: {
      greenhelix: {
        baseUrl: sandbox.url,
        monitorKey: sandbox.keys.monitor,
        containmentKey: sandbox.keys.containment,
      },
      fleet: sandbox.fleet,
      dataDir,
      logLevel: 'silent',
    },
  });
  app = await startApp(config, silentLogger(), { clock: sandbox.clock });
  const attach = app.ops.attachNotifier;
  app.ops.attachNotifier = (fn) => {
    liveNotifiers++;
    const detach = attach(fn);
    let done = false;
    return () => {
      if (!done) liveNotifiers--;
      done = true;
      detach();
    };
  };
  http = await startHttpServer({
    ops: app.ops,
    logger: silentLogger(),
    host: '127.0.0.1',
    port: 0,
    tokens: [TOKEN_A, TOKEN_B],
    allowedOrigins: [],
    maxSessions: 3,
    sessionIdleMs: IDLE_MS,
    bodyTimeoutMs: BODY_MS,
  });
});
afterAll(async () => {
  await http?.close();
  await app?.close();
  await sandbox?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
};

async function post(body: unknown, token: string, session?: string) {
  const r = await fetch(http.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      ...(session ? { 'mcp-session-id': session } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? 'null');
  return { status: r.status, session: r.headers.get('mcp-session-id'), json: JSON.parse(data) };
}

async function open(token = TOKEN_A): Promise<string> {
  const r = await post(INIT, token);
  expect(r.status).toBe(200);
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, token, r.session!);
  return r.session!;
}

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

describe('sessions', () => {
  it('are capped: beyond maxSessions an initialize gets 503 until one closes or expires', async () => {
    const ids = [await open(), await open(), await open()];
    expect(http.sessions()).toBe(3);
    const refused = await post(INIT, TOKEN_A);
    expect(refused.status).toBe(503);
    expect(refused.json.error.message).toMatch(/Too many sessions \(3\)/);
    // Each live session has its own notifier; the refused one attached none.
    expect(liveNotifiers).toBe(3);
    // Idle sessions expire, and with them their notifiers.
    expect(await until(() => http.sessions() === 0, IDLE_MS * 4)).toBe(true);
    expect(liveNotifiers).toBe(0);
    expect((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, TOKEN_A, ids[0])).status).toBe(404);
    expect(await open()).toBeTruthy();
  });

  it('a session in use does not expire', async () => {
    const id = await open();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, IDLE_MS / 3));
      expect((await post({ jsonrpc: '2.0', id: 10 + i, method: 'ping' }, TOKEN_A, id)).status).toBe(200);
    }
  });

  it('an open notification stream (GET) keeps its session, past the idle time and the request deadline', async () => {
    const id = await open();
    const ctl = new AbortController();
    const stream = await fetch(http.url, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${TOKEN_A}`, 'mcp-session-id': id },
      signal: ctl.signal,
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    let ended = false;
    void reader.read().then(
      (r) => {
        ended = r.done;
      },
      () => undefined,
    );
    await new Promise((r) => setTimeout(r, Math.max(IDLE_MS, BODY_MS) * 3));
    expect(ended).toBe(false);
    expect((await post({ jsonrpc: '2.0', id: 4, method: 'ping' }, TOKEN_A, id)).status).toBe(200);
    ctl.abort();
  });

  it("answers only the token that created it: another token's holder gets 404", async () => {
    const mine = await open(TOKEN_A);
    const list = { jsonrpc: '2.0', id: 3, method: 'tools/list' };
    const theirs = await post(list, TOKEN_B, mine);
    expect(theirs.status).toBe(404);
    expect(JSON.stringify(theirs.json)).not.toContain('contain_agent');
    const own = await post(list, TOKEN_A, mine);
    expect(own.status).toBe(200);
    expect(JSON.stringify(own.json)).toContain('contain_agent');
  });
});

/** Opens a raw connection, writes `parts` with pauses, and resolves with what came back and when. */
function slowRequest(parts: string[], gapMs: number): Promise<{ text: string; ms: number }> {
  const u = new URL(http.url);
  return new Promise((resolve) => {
    const started = Date.now();
    let text = '';
    const socket = connect(Number(u.port), u.hostname);
    socket.on('data', (d) => {
      text += d.toString();
    });
    socket.on('close', () => resolve({ text, ms: Date.now() - started }));
    socket.on('error', () => undefined);
    let i = 0;
    const next = () => {
      if (socket.destroyed || i >= parts.length) return;
      socket.write(parts[i++]!);
      setTimeout(next, gapMs);
    };
    next();
    setTimeout(() => socket.destroy(), 10_000);
  });
}

describe('slow clients', () => {
  it('a body that trickles in is cut off with 408 after the deadline', async () => {
    const body = JSON.stringify(INIT);
    const head =
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN_A}\r\n` +
      `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`;
    const drip = [head, ...body.slice(0, 40).split('')];
    const r = await slowRequest(drip, 100);
    expect(r.text).toMatch(/^HTTP\/1\.1 408/);
    expect(r.ms).toBeLessThan(BODY_MS * 3);
  });

  it('headers that never finish are cut off too', async () => {
    const r = await slowRequest(['POST /mcp HTTP/1.1\r\n', 'Host: 127.0.0.1\r\n', 'X-Slow: 1\r\n'], 50);
    expect(r.ms).toBeLessThan(BODY_MS * 4);
  });
});

describe('malformed messages over HTTP', () => {
  it('params null, [] or "x" get -32602 with the request id; text that is not JSON gets -32700', async () => {
    const id = await open();
    for (const [n, params] of [null, [], 'x'].entries()) {
      const r = await post({ jsonrpc: '2.0', id: 100 + n, method: 'tools/call', params }, TOKEN_A, id);
      expect(r.json).toMatchObject({ id: 100 + n, error: { code: -32602 } });
    }
    const junk = await post('{"jsonrpc": "2.0", "id": 1', TOKEN_A, id);
    expect(junk.status).toBe(400);
    expect(junk.json.error.code).toBe(-32700);
    const notRpc = await post({ hello: 'world' }, TOKEN_A, id);
    expect(notRpc.status).toBe(400);
    expect(notRpc.json.error.code).toBe(-32600);
    const ok = await post({ jsonrpc: '2.0', id: 200, method: 'ping' }, TOKEN_A, id);
    expect(ok.json).toMatchObject({ id: 200, result: {} });
  });
});
