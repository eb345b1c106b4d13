/**
 * Guards: the checks every MCP tool passes through (the seam is in server.ts). Plain functions with
 * injected dependencies; no MCP or HTTP of their own.
 */

export { checkBlastRadius } from './blast-radius.js';
export { buildElicitation, checkElicitationResponse, FleetShutdownConfirmation } from './confirmation.js';
export { checkContainmentKey, type KeyCheck, type KeyVerdict, keyHashPrefix } from './keys.js';
export { filterTools } from './readonly.js';
export { redactKey, sanitizeGatewayData, untrustedText } from './redact.js';

/** A refusal the model can act on: what is wrong and exactly what to fix. */
export interface GuardRefusal {
  ok: false;
  code: string;
  message: string;
  fix: string;
  retryable: false;
}
