/**
 * Guards: the checks every MCP tool passes through. Plain functions and classes with injected
 * dependencies (clock, key list, delivery channel); no MCP SDK. The one HTTP server here is the
 * operator's approval page on loopback, which is a guard: the only place an approval can be given.
 *
 * How the seam in `server.ts` uses them:
 * - at registration, {@link filterTools} (read-only beats everything, an exclusion beats an inclusion);
 * - before a state-changing tool runs, {@link checkContainmentKey} (the acting key is separate from the
 *   monitor key and from every agent's key) and {@link checkBlastRadius} (fleet agents only);
 * - before anything acts (tools, runbooks, the watcher), {@link BlastRadiusPolicy} (a few agents per call
 *   and per window) and beyond it {@link ApprovalBook}, decided on the {@link startApprovalPage} page;
 * - wherever a gateway client is picked for a call, {@link assertActingKey} (the monitor key never acts);
 * - where configured, {@link buildElicitation} / {@link checkElicitationResponse} let the person at the host
 *   approve in a form instead (off by default: a host can auto-accept forms);
 * - on the way out, {@link untrustedText} / {@link sanitizeGatewayData} for gateway text, and
 *   {@link redactKey} / {@link REDACT_PATHS} so keys never reach a message or a log line.
 *
 * Every verdict, allowed or refused, is recorded with {@link recordVerdict} in the store's audit log.
 *
 * Every refusal is a {@link GuardRefusal}: `{ ok: false, code, message, fix, retryable: false }`.
 */

export { type ApprovalPage, type ApprovalPageOptions, startApprovalPage } from './approval-page.js';
export {
  type ActionSpec,
  type Approval,
  ApprovalBook,
  type ApprovalBookOptions,
  type ApprovalLookup,
  type ApprovalStatus,
  actionKey,
} from './approvals.js';
export { type GuardDecisionSink, recordVerdict } from './audit.js';
export {
  AGENT_ID_PATTERN,
  type BlastRadiusExcess,
  type BlastRadiusLimits,
  BlastRadiusPolicy,
  checkBlastRadius,
  describeExcess,
} from './blast-radius.js';
export {
  buildElicitation,
  checkElicitationResponse,
  type ElicitationAnswer,
  type ElicitationContent,
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
