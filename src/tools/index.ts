import { checkReadiness } from './check-readiness.js';
import { containAgent } from './contain-agent.js';
import { detectAnomalies } from './detect-anomalies.js';
import { fleetShutdown } from './fleet-shutdown.js';
import { getIncident } from './get-incident.js';
import { listIncidents } from './list-incidents.js';
import { listRunbooks } from './list-runbooks.js';
import { recoverAgent } from './recover-agent.js';
import { runPostmortem } from './run-postmortem.js';
import { runRunbook } from './run-runbook.js';
import type { ToolDefinition } from './types.js';

/** Every tool, in the order a host lists them. */
export const TOOLS: ToolDefinition[] = [
  detectAnomalies,
  containAgent,
  recoverAgent,
  runPostmortem,
  listIncidents,
  getIncident,
  fleetShutdown,
  listRunbooks,
  runRunbook,
  checkReadiness,
] as unknown as ToolDefinition[];
