/**
 * The GreenHelix gateway client and the facts both sides share (routes, errors, money).
 */
export {
  type BatchCall,
  type CallOptions,
  type ClientOptions,
  type GatewayWrite,
  type GatewayWriteRecorder,
  GreenHelixClient,
  type GreenHelixLogger,
} from './client.js';
export {
  codeFromProblemType,
  GreenHelixError,
  isGreenHelixError,
  isReputationMissing,
  type ProblemDetails,
  problemTypeFor,
} from './errors.js';
export {
  acceptedFields,
  CURRENCIES,
  METRIC_NAMES,
  TOOL_INPUTS,
  type ToolInput,
  type ToolParams,
  validateParams,
} from './inputs.js';
export { keyHashPrefix } from './key-hash.js';
export { ConcurrencyLimiter } from './limiter.js';
export { type Cents, centsToNumber, formatCents, parseCents, sumCents } from './money.js';
export {
  type BackoffPolicy,
  backoffMs,
  parseRetryAfter,
  retryAllowed,
  retryDelayMs,
  withRetries,
} from './retry.js';
export {
  buildPath,
  type HttpMethod,
  OWNERSHIP_FIELDS,
  type RetryClass,
  ROUTES,
  type RouteSpec,
  requiredScope,
  type ToolName,
} from './routes.js';
export {
  type BatchResult,
  type Escrow,
  type EscrowTransition,
  type Intent,
  type Subscription,
  TOOL_OUTPUTS,
  type ToolResult,
} from './schemas.js';
