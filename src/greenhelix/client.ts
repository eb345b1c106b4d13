/**
 * The GreenHelix client: one instance per credential, so the caller always chooses which key acts.
 *
 * Each call: params checked against the tool's input schema (unknown fields refused by name) → the
 * REST request built from ROUTES (path params in the path, query in the query string, the rest as a
 * JSON body; GET and DELETE never carry one) → sent through a bounded FIFO queue and an undici Pool →
 * status and content type checked before parsing → the body validated with zod, money as integer cents.
 * `/v1/execute` is never called: the gateway answers it with 410 (CONTRACT §1).
 *
 * Retry safety (ROUTES[tool].retry): reads and idempotent transitions are retried; keyed creates
 * (create_escrow, release_escrow) only when an Idempotency-Key makes a replay return the first result;
 * everything else (publish_event, register_webhook, refund_intent…) never, because a second attempt
 * after an unseen success would act twice. Only network errors, 429 and 5xx are retried, with
 * exponential full-jitter backoff, Retry-After honoured, never past the deadline.
 *
 * X-Request-ID: the gateway de-duplicates usage rows on `{X-Request-ID}:{tool}` when there is no
 * Idempotency-Key (CONTRACT §5). Each attempt of an unkeyed call is a separate request that may be
 * metered, so each gets a fresh id: reusing one would fold a retry's fee into the first attempt's row
 * and hide it from the budget check. A keyed call is de-duplicated on its key instead, so its attempts
 * share one id, which lets its log lines be followed across retries.
 *
 * Audit: with a `writeRecorder`, every call that can change state (any route not classed `read`, and a
 * batch holding one) is recorded before it is sent and its outcome after (the incident store's audit log).
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { type Dispatcher, Pool } from 'undici';
import { GreenHelixError, isReputationMissing } from './errors.js';
import { type ToolParams, validateParams } from './inputs.js';
import { keyHashPrefix } from './key-hash.js';
import { ConcurrencyLimiter } from './limiter.js';
import { header, interpret } from './response.js';
import { type BackoffPolicy, retryAllowed, stopError, withRetries } from './retry.js';
import { buildPath, type HttpMethod, ROUTES, type RouteSpec, type ToolName } from './routes.js';
import {
  type BatchResult,
  BatchSchema,
  type Escrow,
  type Intent,
  type Subscription,
  TOOL_OUTPUTS,
  type ToolResult,
} from './schemas.js';

export interface CallOptions {
  /** Cancels the call, including time queued and backoff sleeps; the call rejects with code `aborted`. */
  signal?: AbortSignal | undefined;
  /** Absolute deadline, epoch ms, for the whole call including retries. */
  deadline?: number | undefined;
  /** Relative deadline; ignored when `deadline` is given. Defaults to the client's timeoutMs. */
  timeoutMs?: number | undefined;
  /**
   * Sent as the Idempotency-Key header (create_escrow, release_escrow, cancel_escrow). Makes keyed
   * calls retryable. Keys are global on the gateway, not per agent: make them unique.
   */
  idempotencyKey?: string | undefined;
  /**
   * false: one attempt only, whatever the route's retry class. For a caller that reconciles an unseen
   * outcome itself (containment's escrow ledger re-reads the escrow instead of sending a second cancel that
   * could race the first: the real gateway's refund is not atomic).
   */
  retry?: boolean | undefined;
  /**
   * The agent a state-changing call acts for when its params do not name one (cancel_escrow names only the
   * escrow): recorded in the audit log with the call. Never sent.
   */
  agentId?: string | undefined;
}

/** A state-changing request, as the audit log records it before it is sent. */
export interface GatewayWrite {
  tool: string;
  method: string;
  /** The request path, ids filled in. */
  route: string;
  agent_id: string | null;
  /** The object acted on when it is not the agent: the route's other path parameter (an escrow id…). */
  target: string | null;
  idempotency_key: string | null;
  /** The acting key's hash prefix: which credential sent it. */
  key: string;
}

/**
 * Where state-changing requests are recorded (the incident store's audit log). `writeIntent` must be
 * durable when it resolves; when it rejects, the request is not sent.
 */
export interface GatewayWriteRecorder {
  writeIntent(w: GatewayWrite): Promise<number>;
  writeOutcome(o: {
    intent: number;
    status: number;
    code: string | null;
    attempts: number;
    confirmed_by_read?: boolean;
  }): void;
}

/** The part of a pino logger the client uses. */
export interface GreenHelixLogger {
  debug(obj: object, msg?: string): void;
}

export interface ClientOptions {
  /** Gateway origin, optionally with a path prefix: `https://api.greenhelix.net`. */
  baseUrl: string;
  /** The one credential this client acts with. Never logged; see keyHashPrefix. */
  apiKey: string;
  /** Replaces the owned Pool (tests, proxies, interceptors). An injected dispatcher is not closed by close(). */
  dispatcher?: Dispatcher | undefined;
  /** Requests in flight at once, and the Pool's connections. Default 64. */
  concurrency?: number | undefined;
  /** Retries after the first attempt, for calls where retrying is safe. Default 3. */
  maxRetries?: number | undefined;
  /** First backoff window. Default 100 ms. */
  baseDelayMs?: number | undefined;
  /** Largest backoff window. Default 2 000 ms. */
  maxDelayMs?: number | undefined;
  /** Default deadline per call. Default 10 000 ms. */
  timeoutMs?: number | undefined;
  logger?: GreenHelixLogger | undefined;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: (() => number) | undefined;
  /** Records every state-changing request before it is sent, and its outcome after. */
  writeRecorder?: GatewayWriteRecorder | undefined;
  /** The User-Agent header: the server names its replica in it, so a gateway's log tells replicas apart. */
  userAgent?: string | undefined;
}

/** One call inside a batch: a tool and its flat params, as the catalog names them. */
export type BatchCall = { [T in ToolName]: { tool: T; params: ToolParams<T> } }[ToolName];

interface BuiltRequest {
  tool: string;
  method: HttpMethod;
  path: string;
  body: string | undefined;
  idempotencyKey: string | undefined;
  headers?: Record<string, string>;
}

/** What a call's attempts saw, for its audit outcome. */
interface Trace {
  attempts: number;
  /** The last attempt's HTTP status; 0 when it got no answer. */
  status: number;
}

interface Attempt {
  signal: AbortSignal | undefined;
  deadline: number;
  requestId: string;
  attempt: number;
}

const BATCH_MAX = 10;
/**
 * A containment shares one caller signal across hundreds of concurrent requests, each adding one abort
 * listener that it removes when it ends. Node would warn of a leak past 10; this fan-out is by design.
 */
const fannedOut = new WeakSet<AbortSignal>();
function allowFanOut(signal: AbortSignal): void {
  if (fannedOut.has(signal)) return;
  setMaxListeners(0, signal);
  fannedOut.add(signal);
}

const DEADLINE = Symbol('deadline');
const ABORTED = Symbol('aborted');
/** Tools whose engine honours Idempotency-Key (CONTRACT §5); elsewhere a key would only mislead. */
const KEY_HONOURED = new Set<string>(['create_escrow', 'release_escrow', 'cancel_escrow', 'create_intent']);

export class GreenHelixClient {
  readonly baseUrl: URL;
  /** First 8 hex characters of SHA3-256(apiKey), as the gateway lists keys: compare keys without holding them. */
  readonly keyHashPrefix: string;
  /** Requests in flight at once. */
  readonly concurrency: number;
  readonly #apiKey: string;
  readonly #userAgent: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #limiter: ConcurrencyLimiter;
  readonly #policy: BackoffPolicy;
  readonly #timeoutMs: number;
  readonly #logger: GreenHelixLogger | undefined;
  readonly #recorder: GatewayWriteRecorder | undefined;
  #closed = false;

  constructor(o: ClientOptions) {
    this.baseUrl = checkBaseUrl(o.baseUrl);
    this.#apiKey = checkApiKey(o.apiKey);
    // Header values may not hold control characters; anything else a caller names goes through.
    this.#userAgent = (o.userAgent ?? 'agent-incident-mcp').replace(/[^\x20-\x7e]/g, '?');
    this.keyHashPrefix = keyHashPrefix(this.#apiKey);
    this.concurrency = checkInt('concurrency', o.concurrency ?? 64, 1, 4096);
    this.#policy = {
      maxRetries: checkInt('maxRetries', o.maxRetries ?? 3, 0, 20),
      baseDelayMs: checkInt('baseDelayMs', o.baseDelayMs ?? 100, 0, 60_000),
      maxDelayMs: checkInt('maxDelayMs', o.maxDelayMs ?? 2_000, 0, 600_000),
      random: o.random ?? Math.random,
    };
    this.#timeoutMs = checkInt('timeoutMs', o.timeoutMs ?? 10_000, 1, 3_600_000);
    this.#logger = o.logger;
    this.#recorder = o.writeRecorder;
    this.#limiter = new ConcurrencyLimiter(this.concurrency);
    this.#ownsDispatcher = !o.dispatcher;
    this.#dispatcher =
      o.dispatcher ?? new Pool(this.baseUrl.origin, { connections: this.concurrency, pipelining: 1 });
  }

  /** Closes the owned Pool (an injected dispatcher is left to its owner). Later calls fail with `client_closed`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  /** Never print the key, even by accident (printing the client object, JSON logs of a context object). */
  toJSON(): object {
    return { baseUrl: this.baseUrl.href, keyHashPrefix: this.keyHashPrefix };
  }

  /**
   * Calls one tool through its REST route. Params are validated before sending (a GreenHelixError with
   * code `invalid_request` names the field); the result is validated and money is in integer cents.
   * Rejects with GreenHelixError only.
   */
  async call<T extends ToolName>(
    tool: T,
    params: ToolParams<T>,
    opts: CallOptions = {},
  ): Promise<ToolResult<T>> {
    const spec = routeOf(tool);
    const input = validated(tool, params);
    const idempotencyKey = keyFor(tool, input, opts);
    const request = buildRequest(spec, input, idempotencyKey);
    const deadline = this.#deadline(tool, opts);
    if (spec.retry === 'read' || !this.#recorder)
      return this.#send(tool, spec, input, request, opts, deadline);
    const intent = await this.#recordIntent(request, {
      agent_id: stringOr(input.agent_id) ?? opts.agentId ?? null,
      target: stringOr(input[spec.pathParams.find((p) => p !== 'agent_id') ?? '']) ?? null,
    });
    const trace: Trace = { attempts: 0, status: 0 };
    try {
      const result = await this.#send(tool, spec, input, request, opts, deadline, trace);
      const confirmed = (result as { confirmed_by_read?: unknown }).confirmed_by_read === true;
      this.#recorder.writeOutcome({
        intent,
        status: trace.status,
        code: null,
        attempts: trace.attempts,
        ...(confirmed ? { confirmed_by_read: true } : {}),
      });
      return result;
    } catch (e) {
      const err = e as GreenHelixError;
      this.#recorder.writeOutcome({
        intent,
        status: err.status ?? 0,
        code: err.code ?? 'internal_error',
        attempts: trace.attempts,
      });
      throw err;
    }
  }

  /** Writes the intent ahead; a write that cannot be recorded is not sent. */
  async #recordIntent(
    req: BuiltRequest,
    who: { agent_id: string | null; target: string | null },
  ): Promise<number> {
    try {
      return await (this.#recorder as GatewayWriteRecorder).writeIntent({
        tool: req.tool,
        method: req.method,
        route: req.path,
        ...who,
        idempotency_key: req.idempotencyKey ?? null,
        key: this.keyHashPrefix,
      });
    } catch (e) {
      throw new GreenHelixError({
        status: 0,
        code: 'audit_unavailable',
        detail: `not sent: the audit log could not record the request (${(e as Error).message})`,
        tool: req.tool,
        retryable: false,
        cause: e,
      });
    }
  }

  async #send<T extends ToolName>(
    tool: T,
    spec: RouteSpec,
    input: Record<string, unknown>,
    request: BuiltRequest,
    opts: CallOptions,
    deadline: number,
    trace: Trace = { attempts: 0, status: 0 },
  ): Promise<ToolResult<T>> {
    // A keyed call's attempts share one id (de-dup is on the key); unkeyed attempts each get their own.
    const sharedId = request.idempotencyKey ? randomUUID() : undefined;
    let unseenOutcome = false;
    try {
      const { body, requestId } = await withRetries(
        async (attempt) => {
          trace.attempts = attempt + 1;
          try {
            const r = await this.#exchange(request, {
              signal: opts.signal,
              deadline,
              requestId: sharedId ?? randomUUID(),
              attempt,
            });
            trace.status = r.status;
            return r;
          } catch (e) {
            trace.status = (e as GreenHelixError).status ?? 0;
            if (outcomeUnseen(e as GreenHelixError)) unseenOutcome = true;
            throw e;
          }
        },
        this.#policy,
        {
          allowed: opts.retry !== false && retryAllowed(spec.retry, Boolean(request.idempotencyKey)),
          deadline,
          signal: opts.signal,
          abortError: () => stopError('aborted', tool),
          onRetry: (err, n, delayMs) =>
            this.#logger?.debug(
              { tool, attempt: n, code: err.code, status: err.status, delay_ms: delayMs },
              'greenhelix retry',
            ),
        },
      );
      return parseOutput(tool, body, requestId);
    } catch (e) {
      const err = e as GreenHelixError;
      if (tool === 'cancel_escrow' && unseenOutcome && err.code === 'invalid_state')
        return (await this.#confirmRefunded(String(input.escrow_id), err, opts, deadline)) as ToolResult<T>;
      throw err;
    }
  }

  /**
   * POST /v1/batch, chunked to the gateway's 10 calls per request and sent chunk after chunk (the
   * gateway runs calls in order). Resolves with exactly one result per call, in order; a chunk whose
   * request failed gives each of its calls `{success:false, error}` with the transport code, and an
   * abort or deadline marks the unsent rest. Rejects only for invalid calls, before anything is sent.
   *
   * Batch differs from REST (CONTRACT §1): no admin promotion (admin-only tools are refused here, as
   * they would always fail), no scope or budget-cap check, raw results (numbers, unix floats), one
   * rate-limit check per request. A chunk is retried only if every call in it is a read or a keyed
   * create with its idempotency_key: an idempotent transition replayed inside a batch reports a per-call
   * 409 that cannot be told apart from a real conflict.
   */
  async batch(calls: readonly BatchCall[], opts: CallOptions = {}): Promise<BatchResult[]> {
    if (!Array.isArray(calls)) throw invalid('batch', 'calls: expected an array of {tool, params}');
    const checked = calls.map((c, i) => checkBatchCall(c, i));
    const deadline = this.#deadline('batch', opts);
    const out: BatchResult[] = [];
    for (let i = 0; i < checked.length; i += BATCH_MAX) {
      const chunk = checked.slice(i, i + BATCH_MAX);
      const stopped = out.find(
        (r) => !r.success && (r.error.code === 'aborted' || r.error.code === 'deadline_exceeded'),
      );
      if (stopped && !stopped.success) {
        out.push(
          ...chunk.map(() => failure(stopped.error.code, 'not sent: the batch stopped before this chunk')),
        );
        continue;
      }
      out.push(...(await this.#batchChunk(chunk, opts, deadline)));
    }
    return out;
  }

  async #batchChunk(
    chunk: { tool: ToolName; params: Record<string, unknown> }[],
    opts: CallOptions,
    deadline: number,
  ): Promise<BatchResult[]> {
    const request: BuiltRequest = {
      tool: 'batch',
      method: 'POST',
      path: '/v1/batch',
      body: JSON.stringify({ calls: chunk }),
      idempotencyKey: undefined,
    };
    const safe = chunk.every(
      (c) =>
        ROUTES[c.tool].retry === 'read' ||
        (ROUTES[c.tool].retry === 'keyed' && typeof c.params.idempotency_key === 'string'),
    );
    const writes = chunk.filter((c) => ROUTES[c.tool].retry !== 'read');
    const trace: Trace = { attempts: 0, status: 0 };
    let intent: number | undefined;
    try {
      if (writes.length && this.#recorder) {
        const agents = [...new Set(writes.map((c) => stringOr(c.params.agent_id) ?? opts.agentId))];
        intent = await this.#recordIntent(request, {
          agent_id: agents.length === 1 ? (agents[0] ?? null) : null,
          target: writes.map((c) => c.tool).join(','),
        });
      }
      const { body, requestId } = await withRetries(
        async (attempt) => {
          trace.attempts = attempt + 1;
          try {
            const r = await this.#exchange(request, {
              signal: opts.signal,
              deadline,
              requestId: randomUUID(),
              attempt,
            });
            trace.status = r.status;
            return r;
          } catch (e) {
            trace.status = (e as GreenHelixError).status ?? 0;
            throw e;
          }
        },
        this.#policy,
        { allowed: safe, deadline, signal: opts.signal, abortError: () => stopError('aborted', 'batch') },
      );
      const parsed = BatchSchema.safeParse(body);
      if (!parsed.success || parsed.data.results.length !== chunk.length)
        throw new GreenHelixError({
          status: 200,
          code: 'invalid_response',
          detail: parsed.success
            ? `batch: ${parsed.data.results.length} results for ${chunk.length} calls`
            : `batch: ${issueText(parsed.error.issues[0])}`,
          tool: 'batch',
          requestId,
          retryable: false,
        });
      if (intent !== undefined)
        this.#recorder?.writeOutcome({ intent, status: trace.status, code: null, attempts: trace.attempts });
      return parsed.data.results as BatchResult[];
    } catch (e) {
      const err = e as GreenHelixError;
      if (intent !== undefined)
        this.#recorder?.writeOutcome({
          intent,
          status: err.status ?? 0,
          code: err.code,
          attempts: trace.attempts,
        });
      const note = outcomeUnseen(err)
        ? 'the batch request failed; these calls may or may not have run'
        : 'the batch request failed; these calls did not run';
      return chunk.map(() => failure(err.code, `${note}: ${err.message}`));
    }
  }

  /**
   * The cancel_escrow special case. cancel_escrow is retried without a key, so when an attempt's
   * outcome was never seen (connection lost, 5xx after the gateway may have acted), the retry can find
   * the escrow already refunded by that very attempt and get 409 invalid_state. Passing the 409 on would
   * tell containment the cancel failed while the money is back with the payer; claiming success blindly
   * would hide a payee's release. So the gateway is asked: only an escrow that now reads `refunded` is
   * reported as cancelled, marked `confirmed_by_read: true`. A refund by someone else in between (the
   * payer, another admin) cannot be told apart, but it has the same effect the caller asked for.
   * Anything else (settled, expired, the read failing) rethrows the 409.
   */
  async #confirmRefunded(
    escrowId: string,
    conflict: GreenHelixError,
    opts: CallOptions,
    deadline: number,
  ): Promise<ToolResult<'cancel_escrow'>> {
    const escrow = await this.getEscrow({ escrow_id: escrowId }, { signal: opts.signal, deadline }).catch(
      () => undefined,
    );
    if (escrow?.status !== 'refunded') throw conflict;
    this.#logger?.debug(
      { tool: 'cancel_escrow', escrow_id: escrowId, request_id: conflict.requestId },
      'greenhelix cancel confirmed by read after an unseen attempt',
    );
    return { id: escrow.id, status: 'refunded', amount: escrow.amount, confirmed_by_read: true };
  }

  async #exchange(
    req: BuiltRequest,
    a: Attempt,
  ): Promise<{ body: unknown; requestId: string; status: number }> {
    if (this.#closed)
      throw new GreenHelixError({
        status: 0,
        code: 'client_closed',
        detail: 'the client was closed',
        tool: req.tool,
        retryable: false,
      });
    if (a.signal?.aborted) throw stopError('aborted', req.tool);
    const remaining = a.deadline - Date.now();
    if (remaining <= 0)
      throw stopError('deadline_exceeded', req.tool, 'the deadline passed before the request was sent');
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(DEADLINE), remaining);
    const onAbort = () => ctl.abort(ABORTED);
    if (a.signal) allowFanOut(a.signal);
    a.signal?.addEventListener('abort', onAbort, { once: true });
    const queuedAt = Date.now();
    let release: (() => void) | undefined;
    let status = 0;
    let text: string | undefined;
    try {
      release = await this.#limiter.acquire(ctl.signal);
      const sentAt = Date.now();
      try {
        const res = await this.#dispatcher.request({
          origin: this.baseUrl.origin,
          path: `${this.baseUrl.pathname.replace(/\/$/, '')}${req.path}`,
          method: req.method,
          headers: this.#headers(req, a.requestId),
          body: req.body,
          signal: ctl.signal,
          // Backstops only: the deadline timer above aborts first and names the error.
          headersTimeout: remaining + 1_000,
          bodyTimeout: remaining + 1_000,
        });
        status = res.statusCode;
        text = await res.body.text();
        const body = interpret(
          { status, headers: res.headers, text },
          { tool: req.tool, requestId: a.requestId, now: Date.now() },
        );
        this.#log(req, a, status, sentAt, queuedAt, header(res.headers, 'x-request-id'));
        return { body, requestId: header(res.headers, 'x-request-id') ?? a.requestId, status };
      } catch (e) {
        const err = this.#toError(e, req.tool, a.requestId, ctl.signal);
        // Raw upstream bodies go to the log only, never into the error the caller may show.
        const excerpt = text && err.status !== 0 ? text.slice(0, 200) : undefined;
        this.#log(req, a, err.status || status, sentAt, queuedAt, err.requestId, err.code, excerpt);
        throw err;
      }
    } catch (e) {
      throw this.#toError(e, req.tool, a.requestId, ctl.signal);
    } finally {
      release?.();
      clearTimeout(timer);
      a.signal?.removeEventListener('abort', onAbort);
    }
  }

  #headers(req: BuiltRequest, requestId: string): Record<string, string> {
    const h: Record<string, string> = {
      authorization: `Bearer ${this.#apiKey}`,
      accept: 'application/json, application/problem+json',
      'x-request-id': requestId,
      'user-agent': this.#userAgent,
    };
    if (req.body !== undefined) h['content-type'] = 'application/json';
    if (req.idempotencyKey) h['idempotency-key'] = req.idempotencyKey;
    return { ...h, ...req.headers };
  }

  #toError(e: unknown, tool: string, requestId: string, signal: AbortSignal): GreenHelixError {
    if (e instanceof GreenHelixError) return e;
    if (signal.aborted)
      return signal.reason === ABORTED
        ? stopError('aborted', tool, undefined, requestId)
        : stopError('deadline_exceeded', tool, undefined, requestId);
    const code = (e as { code?: unknown }).code;
    return new GreenHelixError({
      status: 0,
      code: 'network_error',
      detail: `${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message ?? String(e)}`,
      tool,
      requestId,
      cause: e,
    });
  }

  #log(
    req: BuiltRequest,
    a: Attempt,
    status: number,
    sentAt: number,
    queuedAt: number,
    echoedId: string | undefined,
    code?: string,
    bodyExcerpt?: string,
  ): void {
    this.#logger?.debug(
      {
        tool: req.tool,
        method: req.method,
        status,
        ms: Date.now() - sentAt,
        queued_ms: sentAt - queuedAt,
        attempt: a.attempt,
        request_id: echoedId ?? a.requestId,
        ...(code ? { code } : {}),
        ...(bodyExcerpt ? { body_excerpt: bodyExcerpt } : {}),
      },
      'greenhelix call',
    );
  }

  #deadline(tool: string, opts: CallOptions): number {
    if (opts.deadline !== undefined) {
      if (!Number.isFinite(opts.deadline))
        throw invalid(tool, 'options.deadline: expected epoch milliseconds');
      return opts.deadline;
    }
    const timeout = opts.timeoutMs ?? this.#timeoutMs;
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw invalid(tool, 'options.timeoutMs: expected a positive number of milliseconds');
    return Date.now() + timeout;
  }

  // Billing
  getBalance = (p: ToolParams<'get_balance'>, o?: CallOptions) => this.call('get_balance', p, o);
  getUsageSummary = (p: ToolParams<'get_usage_summary'>, o?: CallOptions) =>
    this.call('get_usage_summary', p, o);
  getTransactions = (p: ToolParams<'get_transactions'>, o?: CallOptions) =>
    this.call('get_transactions', p, o);
  getServiceAnalytics = (p: ToolParams<'get_service_analytics'>, o?: CallOptions) =>
    this.call('get_service_analytics', p, o);
  getMetricsTimeseries = (p: ToolParams<'get_metrics_timeseries'>, o?: CallOptions) =>
    this.call('get_metrics_timeseries', p, o);
  /** PUT replaces both caps, so both are required: null clears one on purpose. CREDITS, ≤ 2 decimals. */
  setBudgetCap = (p: ToolParams<'set_budget_cap'>, o?: CallOptions) => this.call('set_budget_cap', p, o);
  getBudgetStatus = (p: ToolParams<'get_budget_status'>, o?: CallOptions) =>
    this.call('get_budget_status', p, o);
  /** Admin only. Blocks money moving into or out of the wallet, including escrow refunds (CONTRACT §8). */
  freezeWallet = (p: ToolParams<'freeze_wallet'>, o?: CallOptions) => this.call('freeze_wallet', p, o);
  unfreezeWallet = (p: ToolParams<'unfreeze_wallet'>, o?: CallOptions) => this.call('unfreeze_wallet', p, o);
  /** Takes money out of the gateway for good; a frozen wallet refuses (403 wallet_frozen). */
  withdraw = (p: ToolParams<'withdraw'>, o?: CallOptions) => this.call('withdraw', p, o);
  convertCurrency = (p: ToolParams<'convert_currency'>, o?: CallOptions) =>
    this.call('convert_currency', p, o);

  // Payments
  /** Pro tier; payer = caller. `idempotency_key` (param) or `idempotencyKey` (option) travels as the header. */
  createEscrow = (p: ToolParams<'create_escrow'>, o?: CallOptions) => this.call('create_escrow', p, o);
  getEscrow = (p: ToolParams<'get_escrow'>, o?: CallOptions) => this.call('get_escrow', p, o);
  listEscrows = (p: ToolParams<'list_escrows'>, o?: CallOptions) => this.call('list_escrows', p, o);
  releaseEscrow = (p: ToolParams<'release_escrow'>, o?: CallOptions) => this.call('release_escrow', p, o);
  /** Payer or admin; 409 unless held. See the cancel special case on `call`. */
  cancelEscrow = (p: ToolParams<'cancel_escrow'>, o?: CallOptions) => this.call('cancel_escrow', p, o);
  listIntents = (p: ToolParams<'list_intents'>, o?: CallOptions) => this.call('list_intents', p, o);
  /**
   * Voids a pending intent (payer, payee or admin). On a settled intent it moves the money back, and the
   * gateway allows that again and again (the status stays `settled`): never call it twice for one intent.
   */
  refundIntent = (p: ToolParams<'refund_intent'>, o?: CallOptions) => this.call('refund_intent', p, o);
  /** 2 % fee. options.idempotencyKey makes a replay return the first intent (a different body: 409). */
  createIntent = (p: ToolParams<'create_intent'>, o?: CallOptions) => this.call('create_intent', p, o);
  /** Pro tier. Moves the money at once (no intent is stored); percentages sum to 100. */
  createSplitIntent = (p: ToolParams<'create_split_intent'>, o?: CallOptions) =>
    this.call('create_split_intent', p, o);
  getIntent = (p: ToolParams<'get_intent'>, o?: CallOptions) => this.call('get_intent', p, o);
  /** Payer or admin; 409 unless pending; a frozen payer or payee gives 403 wallet_frozen. */
  captureIntent = (p: ToolParams<'capture_intent'>, o?: CallOptions) => this.call('capture_intent', p, o);
  partialCapture = (p: ToolParams<'partial_capture'>, o?: CallOptions) => this.call('partial_capture', p, o);
  createSubscription = (p: ToolParams<'create_subscription'>, o?: CallOptions) =>
    this.call('create_subscription', p, o);
  listSubscriptions = (p: ToolParams<'list_subscriptions'>, o?: CallOptions) =>
    this.call('list_subscriptions', p, o);
  getSubscription = (p: ToolParams<'get_subscription'>, o?: CallOptions) =>
    this.call('get_subscription', p, o);
  /** Final: a cancelled subscription cannot be reactivated (only a suspended one can). */
  cancelSubscription = (p: ToolParams<'cancel_subscription'>, o?: CallOptions) =>
    this.call('cancel_subscription', p, o);
  /** 409 unless suspended. */
  reactivateSubscription = (p: ToolParams<'reactivate_subscription'>, o?: CallOptions) =>
    this.call('reactivate_subscription', p, o);
  /** Pro tier. Charges every due subscription of every agent, and expires escrows. */
  processDueSubscriptions = (o?: CallOptions) => this.call('process_due_subscriptions', {}, o);
  getPaymentHistory = (p: ToolParams<'get_payment_history'>, o?: CallOptions) =>
    this.call('get_payment_history', p, o);

  /** Every escrow matching the filter, page by page (the gateway sends no total: stop on a short page). */
  async listAllEscrows(
    p: { agent_id: string; status?: ToolParams<'list_escrows'>['status'] },
    o?: CallOptions,
    pageSize = 500,
    maxPages = 40,
  ): Promise<Escrow[]> {
    const out: Escrow[] = [];
    for (let page = 0; page < maxPages; page++) {
      const r = await this.listEscrows({ ...p, limit: pageSize, offset: page * pageSize }, o);
      out.push(...r.escrows);
      if (r.escrows.length < pageSize) break;
    }
    return out;
  }

  /** Every intent matching the filter, page by page (no total: stop on a short page). */
  async listAllIntents(
    p: { agent_id: string; status?: ToolParams<'list_intents'>['status'] },
    o?: CallOptions,
    pageSize = 500,
    maxPages = 40,
  ): Promise<Intent[]> {
    const out: Intent[] = [];
    for (let page = 0; page < maxPages; page++) {
      const r = await this.listIntents({ ...p, limit: pageSize, offset: page * pageSize }, o);
      out.push(...r.intents);
      if (r.intents.length < pageSize) break;
    }
    return out;
  }

  /** Every subscription matching the filter (payer or payee), page by page. */
  async listAllSubscriptions(
    p: { agent_id: string; status?: ToolParams<'list_subscriptions'>['status'] },
    o?: CallOptions,
    pageSize = 500,
    maxPages = 40,
  ): Promise<Subscription[]> {
    const out: Subscription[] = [];
    for (let page = 0; page < maxPages; page++) {
      const r = await this.listSubscriptions({ ...p, limit: pageSize, offset: page * pageSize }, o);
      out.push(...r.subscriptions);
      if (r.subscriptions.length < pageSize) break;
    }
    return out;
  }

  // Infra: events, webhooks, keys
  /** `source` is required; put the agent in the payload or use it as the source (CONTRACT §11). */
  publishEvent = (p: ToolParams<'publish_event'>, o?: CallOptions) => this.call('publish_event', p, o);
  getEvents = (p: ToolParams<'get_events'>, o?: CallOptions) => this.call('get_events', p, o);
  /** Pro tier; https to a public host; the owner is the caller. Never fires except test pings (CONTRACT §9). */
  registerWebhook = (p: ToolParams<'register_webhook'>, o?: CallOptions) =>
    this.call('register_webhook', p, o);
  listWebhooks = (o?: CallOptions) => this.call('list_webhooks', {}, o);
  deleteWebhook = (p: ToolParams<'delete_webhook'>, o?: CallOptions) => this.call('delete_webhook', p, o);
  getWebhookDeliveries = (p: ToolParams<'get_webhook_deliveries'>, o?: CallOptions) =>
    this.call('get_webhook_deliveries', p, o);
  testWebhook = (p: ToolParams<'test_webhook'>, o?: CallOptions) => this.call('test_webhook', p, o);
  /** Admin only; without agent_id it lists the whole fleet's keys. */
  listApiKeys = (p: ToolParams<'list_api_keys'>, o?: CallOptions) => this.call('list_api_keys', p, o);
  /** Admin only, and it searches only the caller's own keys (CONTRACT §7). */
  revokeApiKey = (p: ToolParams<'revoke_api_key'>, o?: CallOptions) => this.call('revoke_api_key', p, o);
  /** Admin only; sends X-Rotate-Confirmation. The new key has no admin scope. */
  rotateKey = (p: ToolParams<'rotate_key'>, o?: CallOptions) => this.call('rotate_key', p, o);
  getGlobalAuditLog = (p: ToolParams<'get_global_audit_log'>, o?: CallOptions) =>
    this.call('get_global_audit_log', p, o);

  // Identity, trust, marketplace, disputes
  registerAgent = (p: ToolParams<'register_agent'>, o?: CallOptions) => this.call('register_agent', p, o);
  /** Checks an Ed25519 signature over `message` against the registered key; not a health check. */
  verifyAgent = (p: ToolParams<'verify_agent'>, o?: CallOptions) => this.call('verify_agent', p, o);
  submitMetrics = (p: ToolParams<'submit_metrics'>, o?: CallOptions) => this.call('submit_metrics', p, o);
  getAgentIdentity = (p: ToolParams<'get_agent_identity'>, o?: CallOptions) =>
    this.call('get_agent_identity', p, o);
  getVerifiedClaims = (p: ToolParams<'get_verified_claims'>, o?: CallOptions) =>
    this.call('get_verified_claims', p, o);
  getAgentReputation = (p: ToolParams<'get_agent_reputation'>, o?: CallOptions) =>
    this.call('get_agent_reputation', p, o);
  /**
   * get_agent_reputation, with "this agent has no reputation row" (the 404 the gateway gives every agent
   * whose key was made directly, see isReputationMissing) answered as null rather than thrown. Real
   * failures still throw.
   */
  getAgentReputationRecord = async (
    p: ToolParams<'get_agent_reputation'>,
    o?: CallOptions,
  ): Promise<ToolResult<'get_agent_reputation'> | null> => {
    try {
      return await this.call('get_agent_reputation', p, o);
    } catch (e) {
      if (isReputationMissing(e)) return null;
      throw e;
    }
  };
  buildClaimChain = (p: ToolParams<'build_claim_chain'>, o?: CallOptions) =>
    this.call('build_claim_chain', p, o);
  getClaimChains = (p: ToolParams<'get_claim_chains'>, o?: CallOptions) =>
    this.call('get_claim_chains', p, o);
  queryMetrics = (p: ToolParams<'query_metrics'>, o?: CallOptions) => this.call('query_metrics', p, o);
  getMetricDeltas = (p: ToolParams<'get_metric_deltas'>, o?: CallOptions) =>
    this.call('get_metric_deltas', p, o);
  ingestMetrics = (p: ToolParams<'ingest_metrics'>, o?: CallOptions) => this.call('ingest_metrics', p, o);
  getTrustScore = (p: ToolParams<'get_trust_score'>, o?: CallOptions) => this.call('get_trust_score', p, o);
  /** The rater is the caller (from the key). */
  rateService = (p: ToolParams<'rate_service'>, o?: CallOptions) => this.call('rate_service', p, o);
  openDispute = (p: ToolParams<'open_dispute'>, o?: CallOptions) => this.call('open_dispute', p, o);
}

function stringOr(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function invalid(tool: string, detail: string): GreenHelixError {
  return new GreenHelixError({ status: 0, code: 'invalid_request', detail, tool, retryable: false });
}

function failure(code: string, message: string): BatchResult {
  return { success: false, error: { code, message } };
}

/** Whether the gateway may have acted although we never saw its answer. */
function outcomeUnseen(err: GreenHelixError): boolean {
  return (err.status === 0 && err.code === 'network_error') || err.status >= 500;
}

function routeOf(tool: string): RouteSpec {
  if (!Object.hasOwn(ROUTES, tool))
    throw invalid(String(tool), `unknown tool "${String(tool)}"; known: ${Object.keys(ROUTES).join(', ')}`);
  return ROUTES[tool as ToolName];
}

function validated(tool: ToolName, params: unknown): Record<string, unknown> {
  const r = validateParams(tool, params);
  if (!r.ok) throw invalid(tool, r.message);
  return r.value;
}

function checkBatchCall(c: BatchCall, i: number): { tool: ToolName; params: Record<string, unknown> } {
  const where = `calls[${i}]`;
  const tool = (c as { tool?: unknown } | undefined)?.tool;
  if (typeof tool !== 'string' || !Object.hasOwn(ROUTES, tool))
    throw invalid('batch', `${where}: unknown tool ${JSON.stringify(tool)}`);
  if (ROUTES[tool as ToolName].adminOnly)
    throw invalid(
      'batch',
      `${where}: ${tool} is admin-only and batch never acts as admin; call it over REST`,
    );
  const r = validateParams(tool as ToolName, c.params);
  if (!r.ok) throw invalid('batch', `${where} (${tool}): ${r.message}`);
  return { tool: tool as ToolName, params: r.value };
}

/**
 * The Idempotency-Key for a call: the option or create_escrow's `idempotency_key` param, which the
 * REST body refuses (422, CONTRACT §5) and so always travels as the header.
 */
function keyFor(tool: ToolName, input: Record<string, unknown>, opts: CallOptions): string | undefined {
  const fromParams = typeof input.idempotency_key === 'string' ? input.idempotency_key : undefined;
  if (fromParams && opts.idempotencyKey && fromParams !== opts.idempotencyKey)
    throw invalid(tool, 'idempotency_key and options.idempotencyKey differ; pass one');
  const key = opts.idempotencyKey ?? fromParams;
  if (key !== undefined && !KEY_HONOURED.has(tool))
    throw invalid(
      tool,
      `the gateway ignores Idempotency-Key for ${tool}; only ${[...KEY_HONOURED].join(', ')} honour it`,
    );
  if (key !== undefined && !/^[\x21-\x7e]{1,255}$/.test(key))
    throw invalid(tool, 'options.idempotencyKey: expected 1–255 visible ASCII characters');
  return key;
}

function buildRequest(
  spec: RouteSpec,
  input: Record<string, unknown>,
  idempotencyKey: string | undefined,
): BuiltRequest {
  let path = buildPath(spec, input);
  const qs = new URLSearchParams();
  for (const q of spec.query) if (input[q] !== undefined && input[q] !== null) qs.set(q, String(input[q]));
  if (qs.size) path += `?${qs}`;
  const req: BuiltRequest = { tool: spec.tool, method: spec.method, path, body: undefined, idempotencyKey };
  if (spec.tool === 'rotate_key') req.headers = { 'x-rotate-confirmation': 'confirm' };
  if (spec.method === 'GET' || spec.method === 'DELETE' || spec.body.length === 0) return req;
  const body: Record<string, unknown> = {};
  for (const k of spec.body) if (input[k] !== undefined) body[k] = input[k];
  req.body = JSON.stringify(body);
  return req;
}

function parseOutput<T extends ToolName>(tool: T, body: unknown, requestId: string): ToolResult<T> {
  const parsed = TOOL_OUTPUTS[tool].safeParse(body);
  if (parsed.success) return parsed.data as ToolResult<T>;
  throw new GreenHelixError({
    status: 200,
    code: 'invalid_response',
    detail: `the response does not match ${tool}'s schema: ${issueText(parsed.error.issues[0])}`,
    tool,
    requestId,
    retryable: false,
  });
}

function issueText(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (!issue) return 'unknown mismatch';
  return `${issue.path.map(String).join('.') || '(body)'}: ${issue.message}`;
}

function checkBaseUrl(value: unknown): URL {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash)
    throw new TypeError(
      `GreenHelixClient: baseUrl must be an http(s) URL without query, got ${JSON.stringify(value)}`,
    );
  return url;
}

function checkApiKey(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new TypeError(
      'GreenHelixClient needs exactly one apiKey, a non-empty string (one client per credential)',
    );
  // Never echo the value: it is a secret.
  if (!/^[\x21-\x7e]+$/.test(value))
    throw new TypeError('GreenHelixClient: apiKey contains whitespace or non-ASCII characters');
  return value;
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new TypeError(`GreenHelixClient: ${name} must be an integer ${min}–${max}, got ${String(value)}`);
  return value;
}
