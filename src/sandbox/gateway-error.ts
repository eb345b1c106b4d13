/** A gateway error as the sandbox raises it: status, RFC 9457 code, detail. */
export class GatewayError extends Error {
  /** Answered by the app's catch-all handler, outside the correlation middleware: no X-Request-ID. */
  bare = false;

  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}
