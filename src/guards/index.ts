/**
 * Guards: the checks every MCP tool passes through. Plain functions and classes with injected
 * dependencies (clock, key list, delivery channel); no MCP SDK and no HTTP of their own.
 *
 * How the seam in `server.ts` uses them:
 * - at registration, {@link filterTools} (read-only beats everything, an exclusion beats an inclusion);
 * - before a state-changing tool runs, {@link checkContainmentKey} (the acting key is separate from the
 *   monitor key and from every agent's key) and {@link checkBlastRadius} (fleet agents only, capped);
 * - wherever a gateway client is picked for a call, {@link assertActingKey} (the monitor key never acts);
 * - for fleet_shutdown, {@link buildElicitation} / {@link checkElicitationResponse} when the host can ask
 *   the person, otherwise {@link FleetShutdownConfirmation} with a code delivered out of band;
 * - on the way out, {@link untrustedText} / {@link sanitizeGatewayData} for gateway text, and
 *   {@link redactKey} / {@link REDACT_PATHS} so keys never reach a message or a log line.
 *
 * Every verdict, allowed or refused, is recorded with {@link recordVerdict} in the store's audit log.
 *
 * Every refusal is a {@link GuardRefusal}: `{ ok: false, code, message, fix, retryable: false }`.
 */

export { type GuardDecisionSink, recordVerdict } from './audit.js';
export { AGENT_ID_PATTERN, checkBlastRadius } from './blast-radius.js';
export {
  buildElicitation,
  type ConfirmationMessage,
  type ConfirmationRefusalCode,
  type ConfirmationRequest,
  checkElicitationResponse,
  type ElicitationAnswer,
  type ElicitationContent,
  FleetShutdownConfirmation,
  type FleetShutdownConfirmationOptions,
} from './confirmation.js';
export {
  assertActingKey,
  checkContainmentKey,
  checkKeyRole,
  clearKeyVerdictCache,
  type GatewayKeyRow,
  type KeyCheck,
  type KeyCheckMethod,
  type KeyRole,
  type KeyVerdict,
  KeyVerdictCache,
  keyHashPrefix,
  sameSecret,
} from './keys.js';
export { type FilterableTool, filterTools, type ToolFilter } from './readonly.js';
export {
  markUntrusted,
  REDACT_PATHS,
  redactKey,
  type SanitizeLimits,
  sanitizeGatewayData,
  UNTRUSTED_CLOSE,
  UNTRUSTED_LEGEND,
  UNTRUSTED_OPEN,
  type UntrustedData,
  untrustedInline,
  untrustedText,
} from './redact.js';
export { type GuardRefusal, refusal, refusalError } from './refusal.js';
