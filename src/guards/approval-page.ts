/**
 * The approval page: where a person holding the operator secret approves or rejects an action the model
 * (or the watcher) may not take alone. Served by this process on 127.0.0.1 only, so no MCP host can
 * answer it: a host that auto-accepts every elicitation still has no operator secret.
 *
 * - The secret is typed into a form (never in a URL, which logs and histories keep); a random session
 *   cookie (HttpOnly, SameSite=Strict) follows.
 * - Every form carries a single-use token issued with the page, and a POST from another origin is refused.
 * - The Host header must be this loopback address (DNS rebinding), bodies are small and time-bound.
 * - The page shows the exact action: tool, agents, count, money at risk, digest, expiry; the decision is
 *   bound to that digest.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatCents } from '../greenhelix/money.js';
import type { Clock } from '../util/clock.js';
import type { Approval, ApprovalBook } from './approvals.js';

export interface ApprovalPage {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** The page of one request: safe to log and to send by URL elicitation (it holds no secret). */
  urlFor(id: string): string;
  close(): Promise<void>;
}

export interface ApprovalPageOptions {
  book: ApprovalBook;
  operatorSecret: string;
  /** 0 = any free port. */
  port: number;
  clock: Clock;
  onError?: ((err: unknown) => void) | undefined;
}

const COOKIE = 'aim_operator';
const SESSION_MS = 60 * 60_000;
const FORM_TOKEN_MS = 30 * 60_000;
const MAX_FORM_TOKENS = 2_000;
const MAX_SESSIONS = 50;
const MAX_BODY = 8 * 1024;
const BODY_DEADLINE_MS = 10_000;
/** Wrong secrets accepted per minute before the login answers 429 for the rest of it. */
const LOGIN_FAILURES_PER_MIN = 10;
const HOST = '127.0.0.1';

const token = () => randomBytes(24).toString('base64url');

/** Constant time whatever the lengths: both sides are hashed first. */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** Starts the page on 127.0.0.1. Rejects if the port is taken. */
export async function startApprovalPage(opts: ApprovalPageOptions): Promise<ApprovalPage> {
  const { book, clock } = opts;
  const sessions = new Map<string, number>();
  /** Form token → what it may be used for (login, or a decision on one request) and by which session. */
  const formTokens = new Map<string, { purpose: string; session: string | null; expiresAt: number }>();
  let failures: { since: number; count: number } = { since: 0, count: 0 };
  let origin = '';

  const issueFormToken = (purpose: string, session: string | null) => {
    const now = clock.now();
    for (const [t, v] of formTokens) if (v.expiresAt <= now) formTokens.delete(t);
    while (formTokens.size >= MAX_FORM_TOKENS) formTokens.delete(formTokens.keys().next().value as string);
    const t = token();
    formTokens.set(t, { purpose, session, expiresAt: now + FORM_TOKEN_MS });
    return t;
  };
  const useFormToken = (t: string | undefined, purpose: string, session: string | null) => {
    const v = t ? formTokens.get(t) : undefined;
    if (!v || !t) return false;
    formTokens.delete(t);
    return v.purpose === purpose && v.session === session && v.expiresAt > clock.now();
  };
  const sessionOf = (req: IncomingMessage): string | null => {
    const c = parseCookies(req.headers.cookie)[COOKIE];
    if (!c) return null;
    const exp = sessions.get(c);
    if (exp === undefined || exp <= clock.now()) {
      sessions.delete(c);
      return null;
    }
    return c;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // Only this loopback origin: a page elsewhere (or a rebound DNS name) gets nothing.
    if (req.headers.host !== new URL(origin).host)
      return send(res, 421, page('Wrong host', '<p>Use the address the server logged.</p>'));
    const requestOrigin = req.headers.origin;
    if (req.method === 'POST' && requestOrigin !== undefined && requestOrigin !== origin)
      return send(res, 403, page('Refused', '<p>Cross-origin form.</p>'));
    const path = new URL(req.url ?? '/', origin).pathname;
    const session = sessionOf(req);
    const detail = /^\/approvals\/(apr_[0-9a-f-]{36})$/.exec(path);
    const decision = /^\/approvals\/(apr_[0-9a-f-]{36})\/decide$/.exec(path);

    if (req.method === 'GET' && (path === '/' || detail)) {
      if (!session) return send(res, 200, loginPage(path, issueFormToken('login', null)));
      if (path === '/') return send(res, 200, listPage(book.list(), clock.now()));
      const a = book.get(detail![1]!);
      if (!a) return send(res, 404, page('Not found', '<p>No such request (it may have been cleared).</p>'));
      const form = a.status === 'pending' ? issueFormToken(`decide:${a.id}`, session) : null;
      return send(res, 200, detailPage(a, form, clock.now()));
    }
    if (req.method === 'POST' && path === '/login') {
      const body = await readForm(req);
      if (!body) return send(res, 400, page('Bad request', '<p>Form too large or too slow.</p>'));
      if (!useFormToken(body.get('form_token') ?? undefined, 'login', null))
        return send(res, 403, page('Expired form', '<p><a href="/">Reload the page</a> and try again.</p>'));
      const now = clock.now();
      if (now - failures.since > 60_000) failures = { since: now, count: 0 };
      if (failures.count >= LOGIN_FAILURES_PER_MIN)
        return send(res, 429, page('Too many attempts', '<p>Wait a minute, then try again.</p>'));
      if (!sameSecret(body.get('secret') ?? '', opts.operatorSecret)) {
        failures.count++;
        const next = safeNext(body.get('next'));
        return send(res, 401, loginPage(next, issueFormToken('login', null), 'Wrong operator secret.'));
      }
      for (const [s, exp] of sessions) if (exp <= now) sessions.delete(s);
      while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
      const s = token();
      sessions.set(s, now + SESSION_MS);
      res.setHeader(
        'set-cookie',
        `${COOKIE}=${s}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}`,
      );
      return redirect(res, safeNext(body.get('next')));
    }
    if (req.method === 'POST' && decision) {
      const id = decision[1]!;
      if (!session) return send(res, 401, loginPage(`/approvals/${id}`, issueFormToken('login', null)));
      const body = await readForm(req);
      if (!body) return send(res, 400, page('Bad request', '<p>Form too large or too slow.</p>'));
      if (!useFormToken(body.get('form_token') ?? undefined, `decide:${id}`, session))
        return send(
          res,
          403,
          page('Expired form', `<p><a href="/approvals/${id}">Reload the request</a> and decide again.</p>`),
        );
      const choice = body.get('decision');
      if (choice !== 'approve' && choice !== 'reject')
        return send(res, 400, page('Bad request', '<p>decision must be approve or reject.</p>'));
      const r = book.decide(id, choice, body.get('digest') ?? '', 'operator (approval page)');
      if (!r.ok)
        return send(
          res,
          409,
          page(
            'Not decided',
            `<p>${esc(r.message)} ${esc(r.fix)}</p><p><a href="/approvals/${id}">Back</a></p>`,
          ),
        );
      return redirect(res, `/approvals/${id}`);
    }
    return send(
      res,
      req.method === 'GET' || req.method === 'POST' ? 404 : 405,
      page('Not found', '<p><a href="/">Approval requests</a></p>'),
    );
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      opts.onError?.(err);
      if (!res.headersSent) send(res, 500, page('Error', '<p>The page failed; nothing was decided.</p>'));
      else res.destroy();
    });
  });
  server.headersTimeout = BODY_DEADLINE_MS;
  server.requestTimeout = BODY_DEADLINE_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, HOST, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  origin = `http://${HOST}:${addr.port}`;
  return {
    url: origin,
    urlFor: (id) => `${origin}/approvals/${encodeURIComponent(id)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on its own form posts.
    'referrer-policy': 'same-origin',
  });
  res.end(html);
}

function redirect(res: ServerResponse, to: string): void {
  res.writeHead(303, { location: to, 'cache-control': 'no-store' });
  res.end();
}

/** Only this page's own paths: a login form must not become an open redirect. */
function safeNext(next: string | null | undefined): string {
  return typeof next === 'string' && /^\/(approvals\/apr_[0-9a-f-]{36})?$/.test(next) ? next : '/';
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** The urlencoded form body, or null when too large, too slow or of another type. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return null;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      resolve(null);
      req.destroy();
    }, BODY_DEADLINE_MS);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        clearTimeout(timer);
        resolve(null);
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE =
  'body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}' +
  'table{border-collapse:collapse}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}' +
  'code{font-size:13px}.agents{max-height:16rem;overflow:auto}button{font-size:16px;padding:.4rem 1.2rem;margin-right:1rem}' +
  '.approve{background:#b00020;color:#fff}.status{font-weight:bold}';

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · agent-incident-mcp</title><style>${STYLE}</style></head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

function loginPage(next: string, formToken: string, error?: string): string {
  return page(
    'Operator sign-in',
    `${error ? `<p role="alert"><strong>${esc(error)}</strong></p>` : ''}` +
      '<p>Approvals of fleet-wide actions need the operator secret (INCIDENT_OPERATOR_SECRET), not the MCP token.</p>' +
      `<form method="post" action="/login"><input type="hidden" name="form_token" value="${esc(formToken)}">` +
      `<input type="hidden" name="next" value="${esc(safeNext(next))}">` +
      '<label>Operator secret <input type="password" name="secret" autocomplete="current-password" required autofocus></label> ' +
      '<button type="submit">Sign in</button></form>',
  );
}

function money(cents: number | null): string {
  return cents === null ? 'unknown (escrows unreadable)' : `${formatCents(cents)} CREDITS`;
}

function when(ms: number, now: number): string {
  const s = Math.round((ms - now) / 1000);
  return `${new Date(ms).toISOString()} (${s >= 0 ? `in ${s} s` : `${-s} s ago`})`;
}

function listPage(all: Approval[], now: number): string {
  if (all.length === 0) return page('Approval requests', '<p>No requests.</p>');
  const rows = all
    .map(
      (a) =>
        `<tr><td><a href="/approvals/${esc(a.id)}">${esc(a.tool)}</a></td><td>${a.agent_count}</td><td>${esc(money(a.at_risk_cents))}</td>` +
        `<td><code>${esc(a.digest)}</code></td><td class="status">${esc(a.status)}</td><td>${esc(when(a.expires_at, now))}</td></tr>`,
    )
    .join('');
  return page(
    'Approval requests',
    `<table><tr><th>action</th><th>agents</th><th>at risk</th><th>digest</th><th>status</th><th>expires</th></tr>${rows}</table>`,
  );
}

function detailPage(a: Approval, formToken: string | null, now: number): string {
  const params = Object.entries(a.params)
    .map(([k, v]) => `${esc(k)}=${esc(v)}`)
    .join(', ');
  const facts = [
    ['Action', `<code>${esc(a.tool)}</code>${params ? ` (${params})` : ''}`],
    ['Agents', `<span id="agent-count">${a.agent_count}</span>`],
    [
      'Money at risk',
      `<span id="at-risk">${esc(money(a.at_risk_cents))}</span> held in escrow by these agents when asked`,
    ],
    ['Digest', `<code id="digest">${esc(a.digest)}</code>`],
    ['Expires', esc(when(a.expires_at, now))],
    ['Why approval', esc(a.why)],
    ['Reason given by the caller (unverified)', esc(a.reason)],
    ['Requested by', esc(a.requester)],
    [
      'Status',
      `<span class="status" id="status">${esc(a.status)}</span>${a.decided_by ? ` by ${esc(a.decided_by)}` : ''}`,
    ],
  ]
    .map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`)
    .join('');
  const agents = `<div class="agents"><code id="agents">${a.agent_ids.map(esc).join(', ')}</code></div>`;
  const form = formToken
    ? `<form method="post" action="/approvals/${esc(a.id)}/decide">` +
      `<input type="hidden" name="form_token" value="${esc(formToken)}">` +
      `<input type="hidden" name="digest" value="${esc(a.full_digest)}">` +
      `<button class="approve" type="submit" name="decision" value="approve">Approve</button>` +
      '<button type="submit" name="decision" value="reject">Reject</button></form>'
    : '';
  return page(
    `Approve ${a.tool} on ${a.agent_count} agents?`,
    `<table>${facts}</table><h2>Agents</h2>${agents}${form}<p><a href="/">All requests</a></p>`,
  );
}
