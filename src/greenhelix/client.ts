/**
 * The GreenHelix client: one instance per credential, so the caller always chooses which key acts.
 *
 * - undici Pool per origin with keep-alive (or an injected Dispatcher);
 * - status and content type checked before parsing: an HTML 502 is an error, not a crash;
 * - RFC 9457 problem details → GreenHelixError;
 * - retries only where safe (ROUTES[tool].retry): reads and idempotent transitions always, keyed creates
 *   only with an Idempotency-Key, never the rest; exponential backoff with full jitter, Retry-After
 *   honoured (the authenticated 429 sends none), all inside the caller's deadline and AbortSignal;
 * - bounded concurrency (FIFO), a fresh X-Request-ID per attempt: the gateway de-duplicates usage rows on
 *   `{X-Request-ID}:{tool}`, so reusing an id would hide fees from the budget check.
 */
import { randomUUID } from 'node:crypto';
import { type Dispatcher, Pool } from 'undici';
import type { z } from 'zod';
import { codeFromProblemType, GreenHelixError } from './errors.js';
import { keyHashPrefix } from './key-hash.js';
import { buildPath, ROUTES, type RouteSpec, type ToolName } from './routes.js';
import * as S from './schemas.js';

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Absolute deadline, ms since epoch. */
  deadline?: number | undefined;
  /** Relative deadline; ignored when `deadline` is given. */
  timeoutMs?: number | undefined;
  idempotencyKey?: string | undefined;
}

export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  dispatcher?: Dispatcher;
  concurrency?: number;
  maxRetries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  logger?: { debug: (obj: object, msg?: string) => void } | undefined;
  random?: () => number;
}

type Params = Record<string, unknown>;

/** FIFO semaphore; a waiter that is aborted or runs out of time leaves the queue. */
class Semaphore {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async acquire(signal: AbortSignal): Promise<() => void> {
    if (this.active < this.limit) {
      this.active++;
      return () => this.release();
    }
    await new Promise<void>((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.queue.indexOf(go);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(go);
    });
    this.active++;
    return () => this.release();
  }

  private release(): void {
    this.active--;
    this.queue.shift()?.();
  }
}

export class GreenHelixClient {
  readonly baseUrl: URL;
  /** SHA3-256 prefix of this client's key, as the gateway lists it; the key itself is never exposed. */
  readonly keyHashPrefix: string;
  private readonly apiKey: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly sem: Semaphore;
  private readonly opts: Required<
    Pick<ClientOptions, 'maxRetries' | 'baseDelayMs' | 'maxDelayMs' | 'timeoutMs' | 'random'>
  >;
  private readonly logger: ClientOptions['logger'];

  constructor(o: ClientOptions) {
    if (!o.apiKey) throw new TypeError('GreenHelixClient needs an apiKey (one client per credential)');
    this.baseUrl = new URL(o.baseUrl);
    this.apiKey = o.apiKey;
    this.keyHashPrefix = keyHashPrefix(o.apiKey);
    const concurrency = o.concurrency ?? 64;
    this.dispatcher =
      o.dispatcher ??
      new Pool(this.baseUrl.origin, { connections: concurrency, keepAliveTimeout: 30_000, pipelining: 1 });
    this.ownsDispatcher = !o.dispatcher;
    this.sem = new Semaphore(concurrency);
    this.opts = {
      maxRetries: o.maxRetries ?? 3,
      baseDelayMs: o.baseDelayMs ?? 100,
      maxDelayMs: o.maxDelayMs ?? 2_000,
      timeoutMs: o.timeoutMs ?? 10_000,
      random: o.random ?? Math.random,
    };
    this.logger = o.logger;
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** Calls one tool through its REST route; the result is the bare JSON object the gateway returned. */
  async call(tool: ToolName, params: Params = {}, opts: CallOptions = {}): Promise<unknown> {
    const spec: RouteSpec = ROUTES[tool];
    checkParams(spec, params);
    const deadline = opts.deadline ?? Date.now() + (opts.timeoutMs ?? this.opts.timeoutMs);
    const mayRetry =
      spec.retry === 'read' ||
      spec.retry === 'idempotent' ||
      (spec.retry === 'keyed' && Boolean(opts.idempotencyKey));
    let attempt = 0;
    let ambiguous = false;
    for (;;) {
      try {
        return await this.attempt(spec, params, opts, deadline);
      } catch (e) {
        const err =
          e instanceof GreenHelixError
            ? e
            : new GreenHelixError({ status: 0, code: 'network_error', detail: String(e), tool, cause: e });
        // A cancel whose earlier attempt may have landed: invalid_state now means "already refunded"
        // if the escrow says so. Report what the gateway holds, not the retry's 409.
        if (tool === 'cancel_escrow' && ambiguous && err.code === 'invalid_state') {
          const escrow = await this.getEscrow(
            { escrow_id: String(params.escrow_id) },
            { ...opts, deadline },
          ).catch(() => undefined);
          if (escrow?.status === 'refunded')
            return { id: escrow.id, status: 'refunded', amount: escrow.amount, recovered_after_retry: true };
        }
        if (!err.retryable || !mayRetry || attempt >= this.opts.maxRetries || opts.signal?.aborted) throw err;
        ambiguous ||= err.status === 0 || err.status >= 500;
        const backoff =
          this.opts.random() * Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** attempt);
        const wait = Math.max(backoff, (err.retryAfterSeconds ?? 0) * 1000);
        if (Date.now() + wait >= deadline) throw err;
        await sleep(wait, opts.signal);
        attempt++;
      }
    }
  }

  private async attempt(
    spec: RouteSpec,
    params: Params,
    opts: CallOptions,
    deadline: number,
  ): Promise<unknown> {
    const remaining = deadline - Date.now();
    if (remaining <= 0)
      throw new GreenHelixError({
        status: 0,
        code: 'deadline_exceeded',
        detail: 'deadline passed before the call',
        tool: spec.tool,
        retryable: false,
      });
    const timer = AbortSignal.timeout(remaining);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timer]) : timer;
    let release: () => void;
    try {
      release = await this.sem.acquire(signal);
    } catch {
      throw this.abortError(spec, opts, timer);
    }
    const requestId = randomUUID();
    const started = Date.now();
    try {
      const { path, body } = buildRequest(spec, params);
      const headers: Record<string, string> = {
        authorization: `Bearer ${this.apiKey}`,
        accept: 'application/json',
        'x-request-id': requestId,
        'user-agent': 'agent-incident-mcp',
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
      if (spec.tool === 'rotate_key') headers['x-rotate-confirmation'] = 'confirm';
      const res = await this.dispatcher.request({
        origin: this.baseUrl.origin,
        path: `${this.baseUrl.pathname.replace(/\/$/, '')}${path}`,
        method: spec.method,
        headers,
        body,
        signal,
        headersTimeout: Math.max(1, deadline - Date.now()),
        bodyTimeout: Math.max(1, deadline - Date.now()),
      });
      const text = await res.body.text();
      this.logger?.debug(
        { tool: spec.tool, status: res.statusCode, ms: Date.now() - started, request_id: requestId },
        'greenhelix call',
      );
      return parseResponse(spec, res.statusCode, res.headers, text, requestId);
    } catch (e) {
      if (e instanceof GreenHelixError) throw e;
      if (signal.aborted) throw this.abortError(spec, opts, timer);
      throw new GreenHelixError({
        status: 0,
        code: 'network_error',
        detail: (e as Error).message,
        tool: spec.tool,
        requestId,
        cause: e,
      });
    } finally {
      release();
    }
  }

  private abortError(spec: RouteSpec, opts: CallOptions, timer: AbortSignal): GreenHelixError {
    if (opts.signal?.aborted || !timer.aborted)
      return new GreenHelixError({
        status: 0,
        code: 'aborted',
        detail: 'the caller cancelled the call',
        tool: spec.tool,
        retryable: false,
      });
    return new GreenHelixError({
      status: 0,
      code: 'deadline_exceeded',
      detail: 'no answer within the deadline',
      tool: spec.tool,
      retryable: false,
    });
  }

  private async typed<T extends z.ZodType>(
    schema: T,
    tool: ToolName,
    params: Params,
    opts?: CallOptions,
  ): Promise<z.infer<T>> {
    const raw = await this.call(tool, params, opts);
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new GreenHelixError({
        status: 200,
        code: 'invalid_response',
        detail: `${tool}: ${issue?.path.join('.') || '(body)'}: ${issue?.message}`,
        tool,
        retryable: false,
      });
    }
    return parsed.data;
  }

  /** POST /v1/batch, chunked to the gateway's 10 calls. Batch skips scopes and budget caps, and admin promotion. */
  async batch(calls: { tool: string; params: Params }[], opts: CallOptions = {}): Promise<S.BatchResult[]> {
    const out: S.BatchResult[] = [];
    for (let i = 0; i < calls.length; i += 10) {
      const raw = await this.callRaw('POST', '/v1/batch', { calls: calls.slice(i, i + 10) }, opts);
      const parsed = S.BatchSchema.safeParse(raw);
      if (!parsed.success)
        throw new GreenHelixError({
          status: 200,
          code: 'invalid_response',
          detail: `batch: ${parsed.error.issues[0]?.message}`,
          tool: 'batch',
          retryable: false,
        });
      out.push(...parsed.data.results);
    }
    return out;
  }

  private async callRaw(method: 'POST', path: string, body: unknown, opts: CallOptions): Promise<unknown> {
    const spec: RouteSpec = {
      tool: 'batch',
      method,
      path,
      pathParams: [],
      query: [],
      body: ['calls'],
      successStatus: 200,
      adminOnly: false,
      tier: 'free',
      ownership: 'none',
      retry: 'unsafe',
    };
    return this.attempt(
      spec,
      body as Params,
      opts,
      opts.deadline ?? Date.now() + (opts.timeoutMs ?? this.opts.timeoutMs),
    );
  }

  // Billing
  getBalance = (p: { agent_id: string; currency?: string }, o?: CallOptions) =>
    this.typed(S.BalanceSchema, 'get_balance', p, o);
  getBudgetStatus = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.BudgetStatusSchema, 'get_budget_status', p, o);
  /** PUT replaces both caps: omitting one clears it. Amounts as decimal strings or numbers (CREDITS). */
  setBudgetCap = (
    p: {
      agent_id: string;
      daily_cap: string | number | null;
      monthly_cap: string | number | null;
      alert_threshold?: number;
    },
    o?: CallOptions,
  ) => this.typed(S.BudgetCapSchema, 'set_budget_cap', p, o);
  freezeWallet = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.FreezeSchema, 'freeze_wallet', p, o);
  unfreezeWallet = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.FreezeSchema, 'unfreeze_wallet', p, o);
  getUsageSummary = (p: { agent_id: string; since?: number }, o?: CallOptions) =>
    this.typed(S.UsageSchema, 'get_usage_summary', p, o);
  getTransactions = (p: { agent_id: string; limit?: number; offset?: number }, o?: CallOptions) =>
    this.typed(S.TransactionsSchema, 'get_transactions', p, o);

  // Payments
  createEscrow = (
    p: {
      payer: string;
      payee: string;
      amount: string | number;
      description?: string;
      timeout_hours?: number;
    },
    o?: CallOptions,
  ) => this.typed(S.EscrowCreatedSchema, 'create_escrow', p, o);
  getEscrow = (p: { escrow_id: string }, o?: CallOptions) => this.typed(S.EscrowSchema, 'get_escrow', p, o);
  listEscrows = (
    p: { agent_id: string; status?: string; limit?: number; offset?: number },
    o?: CallOptions,
  ) => this.typed(S.EscrowListSchema, 'list_escrows', p, o);
  cancelEscrow = (p: { escrow_id: string }, o?: CallOptions) =>
    this.typed(S.EscrowTransitionSchema, 'cancel_escrow', p, o);
  releaseEscrow = (p: { escrow_id: string }, o?: CallOptions) =>
    this.typed(S.EscrowTransitionSchema, 'release_escrow', p, o);

  /** Every escrow matching the filter, page by page (the gateway sends no total: stop on a short page). */
  async listAllEscrows(
    p: { agent_id: string; status?: string },
    o?: CallOptions,
    pageSize = 500,
    maxPages = 40,
  ): Promise<S.Escrow[]> {
    const out: S.Escrow[] = [];
    for (let page = 0; page < maxPages; page++) {
      const r = await this.listEscrows({ ...p, limit: pageSize, offset: page * pageSize }, o);
      out.push(...r.escrows);
      if (r.escrows.length < pageSize) break;
    }
    return out;
  }

  // Identity, trust, disputes
  getAgentIdentity = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.IdentitySchema, 'get_agent_identity', p, o);
  getAgentReputation = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.ReputationSchema, 'get_agent_reputation', p, o);
  getVerifiedClaims = (p: { agent_id: string }, o?: CallOptions) =>
    this.typed(S.ClaimsSchema, 'get_verified_claims', p, o);
  getClaimChains = (p: { agent_id: string; limit?: number }, o?: CallOptions) =>
    this.typed(S.ClaimChainsSchema, 'get_claim_chains', p, o);
  openDispute = (p: { escrow_id: string; opener: string; reason?: string }, o?: CallOptions) =>
    this.typed(S.DisputeSchema, 'open_dispute', p, o);

  // Infra
  publishEvent = (
    p: { event_type: string; source: string; payload?: Record<string, unknown> },
    o?: CallOptions,
  ) => this.typed(S.PublishedSchema, 'publish_event', p, o);
  getEvents = (p: { since_id?: number; event_type?: string; limit?: number }, o?: CallOptions) =>
    this.typed(S.EventsSchema, 'get_events', p, o);
  listApiKeys = (p: { agent_id?: string }, o?: CallOptions) =>
    this.typed(S.KeysSchema, 'list_api_keys', p, o);
}

function checkParams(spec: RouteSpec, params: Params): void {
  const known = new Set([
    ...spec.pathParams,
    ...spec.query,
    ...spec.body,
    ...Object.keys(spec.bodyAliases ?? {}),
  ]);
  for (const k of Object.keys(params)) {
    if (!known.has(k)) {
      throw new GreenHelixError({
        status: 0,
        code: 'invalid_request',
        detail: `${spec.tool}: unknown parameter "${k}"; accepted: ${[...known].join(', ') || 'none'}`,
        tool: spec.tool,
        retryable: false,
      });
    }
  }
  for (const r of spec.requiredBody ?? []) {
    if (params[r] === undefined)
      throw new GreenHelixError({
        status: 0,
        code: 'invalid_request',
        detail: `${spec.tool}: parameter "${r}" is required`,
        tool: spec.tool,
        retryable: false,
      });
  }
}

function buildRequest(spec: RouteSpec, params: Params): { path: string; body: string | undefined } {
  let path: string;
  try {
    path = buildPath(spec, params);
  } catch (e) {
    throw new GreenHelixError({
      status: 0,
      code: 'invalid_request',
      detail: (e as Error).message,
      tool: spec.tool,
      retryable: false,
    });
  }
  const qs = new URLSearchParams();
  for (const q of spec.query) {
    const v = params[q];
    if (v !== undefined && v !== null) qs.set(q, String(v));
  }
  if (qs.size) path += `?${qs}`;
  if (spec.method === 'GET' || spec.method === 'DELETE') return { path, body: undefined };
  const body: Params = {};
  for (const k of [...spec.body, ...Object.keys(spec.bodyAliases ?? {})])
    if (params[k] !== undefined) body[k] = params[k];
  return { path, body: spec.body.length || Object.keys(body).length ? JSON.stringify(body) : undefined };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseResponse(
  spec: RouteSpec,
  status: number,
  headers: Record<string, string | string[] | undefined>,
  text: string,
  sentId: string,
): unknown {
  const requestId = header(headers, 'x-request-id') ?? sentId;
  const type = header(headers, 'content-type') ?? '';
  const retryAfter = Number(header(headers, 'retry-after'));
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
  if (status >= 200 && status < 300) {
    if (!/json/i.test(type))
      throw new GreenHelixError({
        status,
        code: 'invalid_response',
        detail: `expected JSON, got ${type || 'no content type'}`,
        tool: spec.tool,
        requestId,
        retryable: false,
      });
    try {
      return JSON.parse(text);
    } catch {
      throw new GreenHelixError({
        status,
        code: 'invalid_response',
        detail: 'success body is not valid JSON',
        tool: spec.tool,
        requestId,
        retryable: false,
      });
    }
  }
  if (/problem\+json|json/i.test(type)) {
    try {
      const p = JSON.parse(text) as { type?: unknown; detail?: unknown; title?: unknown };
      const code = typeof p.type === 'string' ? codeFromProblemType(p.type) : `http_${status}`;
      throw new GreenHelixError({
        status,
        code,
        detail: String(p.detail ?? p.title ?? ''),
        tool: spec.tool,
        requestId,
        retryAfterSeconds,
      });
    } catch (e) {
      if (e instanceof GreenHelixError) throw e;
    }
  }
  // Not a problem document (an HTML page from a proxy, an empty body): an error, with a short excerpt.
  throw new GreenHelixError({
    status,
    code: status === 502 ? 'bad_gateway' : `http_${status}`,
    detail: `non-JSON ${status} response: ${text.slice(0, 120).replace(/\s+/g, ' ')}`,
    tool: spec.tool,
    requestId,
    retryAfterSeconds,
  });
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(
        new GreenHelixError({
          status: 0,
          code: 'aborted',
          detail: 'the caller cancelled the call',
          retryable: false,
        }),
      );
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
