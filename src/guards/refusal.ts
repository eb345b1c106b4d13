/**
 * The one shape every guard refuses with. A refusal is never retryable: trying the same call again
 * gives the same answer until someone applies the fix, so the model must not loop on it.
 */
import { ToolError } from '../util/errors.js';

/** A refusal the model (or the operator) can act on: what is wrong and exactly what to fix. */
export interface GuardRefusal {
  readonly ok: false;
  /** Stable snake_case code, e.g. `containment_key_not_separate`. */
  readonly code: string;
  readonly message: string;
  readonly fix: string;
  readonly retryable: false;
}

/** Builds a {@link GuardRefusal}. */
export function refusal(code: string, message: string, fix: string): GuardRefusal {
  return { ok: false, code, message, fix, retryable: false };
}

/** The tool seam's error for a refusal: it becomes an `isError` result with the code, message and fix. */
export function refusalError(r: GuardRefusal): ToolError {
  return new ToolError(r.code, r.message, false, r.fix);
}
