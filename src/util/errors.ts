/**
 * A refusal or failure the caller can act on: what went wrong, whether trying again can help, what to do.
 * Raised by the engine (runbooks) and the guards; the tool seam turns it into an `isError` result.
 */
export class ToolError extends Error {
  override readonly name = 'ToolError';
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
    readonly fix?: string,
  ) {
    super(message);
  }
}
