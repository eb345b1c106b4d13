/**
 * The GreenHelix gateway client and the facts both sides share (routes, errors, money).
 */
export { type CallOptions, type ClientOptions, GreenHelixClient } from './client.js';
export {
  codeFromProblemType,
  GreenHelixError,
  isGreenHelixError,
  type ProblemDetails,
  problemTypeFor,
} from './errors.js';
export { keyHashPrefix } from './key-hash.js';
export { type Cents, centsToNumber, formatCents, parseCents, sumCents } from './money.js';
export { buildPath, ROUTES, type RouteSpec, requiredScope, type ToolName } from './routes.js';
export type { BatchResult, Escrow } from './schemas.js';
