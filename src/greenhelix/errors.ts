/**
 * Typed errors from RFC 9457 problem details (CONTRACT.md §3).
 *
 * The gateway's body carries no code field: the code is the last segment of `type`, with `-` for `_`.
 * The request id is only in the `X-Request-ID` header.
 */

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
}

export const PROBLEM_TYPE_BASE = 'https://api.greenhelix.net/errors/';

/**
 * Statuses worth retrying: rate limiting and transient server trouble. Every 5xx but 501
 * (not_implemented, which will not change) — a proxy in front of the gateway may answer 520–599.
 */
function retryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

export class GreenHelixError extends Error {
  override readonly name = 'GreenHelixError';
  /** HTTP status; 0 for transport failures (connection refused, timeout, abort). */
  readonly status: number;
  /** Snake-case code such as `wallet_frozen`, `budget_exceeded`, `network_error`, `deadline_exceeded`. */
  readonly code: string;
  readonly detail: string;
  readonly requestId: string | undefined;
  /** Whether the same call may succeed if tried again later (says nothing about whether it is safe to). */
  readonly retryable: boolean;
  readonly tool: string | undefined;
  /** Seconds the server asked us to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: {
    status: number;
    code: string;
    detail: string;
    requestId?: string | undefined;
    retryable?: boolean;
    tool?: string | undefined;
    retryAfterSeconds?: number | undefined;
    cause?: unknown;
  }) {
    super(
      `${init.tool ? `${init.tool}: ` : ''}${init.status ? `${init.status} ` : ''}${init.code}: ${init.detail}`,
      {
        cause: init.cause,
      },
    );
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.retryable = init.retryable ?? (init.status === 0 || retryableStatus(init.status));
    this.tool = init.tool;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** `https://api.greenhelix.net/errors/wallet-frozen` → `wallet_frozen`. */
export function codeFromProblemType(type: string): string {
  const last = type.split('/').filter(Boolean).pop() ?? 'unknown';
  return last.replace(/-/g, '_');
}

/** `wallet_frozen` → `https://api.greenhelix.net/errors/wallet-frozen`. */
export function problemTypeFor(code: string): string {
  return `${PROBLEM_TYPE_BASE}${code.replace(/_/g, '-')}`;
}

export function isGreenHelixError(e: unknown, code?: string): e is GreenHelixError {
  return e instanceof GreenHelixError && (code === undefined || e.code === code);
}

/**
 * GET …/reputation's 404 for an agent that has no reputation row: the gateway seeds one only for keys
 * provisioned through it, so every agent whose key was made directly in its database answers this
 * (ToolNotFoundError, "Agent reputation not found: <id>. Register identity first…"). It means "no
 * record", not "the check failed". Any other failure (5xx, timeout, 404 of an unknown route) is not it.
 */
export function isReputationMissing(e: unknown): boolean {
  return (
    e instanceof GreenHelixError &&
    e.status === 404 &&
    e.code === 'not_found' &&
    /^Agent reputation not found\b/i.test(e.detail)
  );
}
